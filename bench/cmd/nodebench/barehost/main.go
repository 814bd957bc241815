// Command barehost is a libp2p host with the transports, security and
// muxer of MQTTER's nodes (p2p.BaseOptions) and nothing else. nodebench
// reads its memory as the baseline of an idle node's, and echoes raw
// streams on it as the ceiling of the nodes' direct path. It prints
// "addr <multiaddr>" for each listen address, then "ready", and runs until
// SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/mqtter/mqtter/p2p"
)

// echoProtocol is the stream protocol echoed (bench.echoProtocol).
const echoProtocol protocol.ID = "/mqtter/bench-echo/1.0.0"

func main() {
	listen := flag.String("listen", "/ip4/127.0.0.1/tcp/0", "listen multiaddr")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := libp2p.New(p2p.BaseOptions(*listen)...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "barehost:", err)
		os.Exit(1)
	}
	h.SetStreamHandler(echoProtocol, func(s network.Stream) {
		if _, err := io.Copy(s, s); err != nil {
			_ = s.Reset()
			return
		}
		_ = s.Close()
	})
	for _, a := range h.Addrs() {
		fmt.Printf("addr %s/p2p/%s\n", a, h.ID())
	}
	fmt.Println("ready")
	<-ctx.Done()
	if err := h.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "barehost: close:", err)
	}
}
