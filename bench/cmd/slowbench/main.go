// Command slowbench measures the server's resident memory under clients
// that never read: it starts the built `mqtter server`, fills a
// conversation with large messages, then opens raw MQTT connections that
// ask for the conversation's whole history over and over without reading
// a byte, and prints the server's VmRSS before, at its peak, and at the
// end. The figures are printed, never asserted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mqtter/mqtter/bench"
)

func main() {
	var cfg bench.SlowReaderConfig
	flag.StringVar(&cfg.MQTTer, "mqtter", "bin/mqtter", "path of the built mqtter binary (make build)")
	flag.StringVar(&cfg.Dir, "dir", "", "directory for the run's files (default: a temporary one)")
	flag.IntVar(&cfg.Conns, "conns", 4, "never-reading connections")
	flag.IntVar(&cfg.Requests, "requests", 200, "history requests each connection sends")
	flag.IntVar(&cfg.Messages, "messages", 100, "messages of 150 KiB in the conversation")
	flag.DurationVar(&cfg.Watch, "watch", 20*time.Second, "how long to sample RSS once the attack starts")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.RunSlowReader(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "slowbench:", err)
		stop()
		os.Exit(1)
	}
	res.Print(os.Stdout, cfg)
}
