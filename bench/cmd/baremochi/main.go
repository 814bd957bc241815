// Command baremochi is a bare mochi MQTT broker: one TCP listener, every
// client allowed, nothing else. mqbench measures its memory as the floor
// that MQTTER's server, built on mochi, is compared with.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "TCP address of the MQTT listener")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "baremochi:", err)
		os.Exit(1)
	}
}

// run serves MQTT on addr until ctx ends.
func run(ctx context.Context, addr string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	server := mqtt.New(&mqtt.Options{Logger: logger})
	if err := server.AddHook(new(allowAll), nil); err != nil {
		return err
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return err
	}
	if err := server.Serve(); err != nil {
		return err
	}
	<-ctx.Done()
	return server.Close()
}

// allowAll lets every client connect and use every topic. It is mochi's
// hooks/auth.AllowHook, written out because that package pulls in a YAML
// dependency for its ledger, which this broker does not need.
type allowAll struct {
	mqtt.HookBase
}

func (h *allowAll) ID() string { return "allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
