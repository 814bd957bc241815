// Command adapterbench measures a command until its result through the
// server's Tasmota adapter (a simulated Tasmota plug adopted as a thing)
// beside the same command to a thing's node (examples/lamp), on loopback.
// It prints a table and exits 0 whatever the figures; it exits 1 only when
// the run could not be set up. `make bench` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mqtter/mqtter/bench"
)

func main() {
	cfg, err := bench.ParseFlags(os.Args[1:], bench.DefaultAdapterConfig(), func(c bench.AdapterConfig) bench.AdapterConfig { return c.Quick() }, newFlagSet)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "adapterbench:", err)
		os.Exit(2)
	}
	cfg.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := bench.RunAdapters(ctx, cfg)
	res.Print(os.Stdout)
	if len(res.Errors) > 0 {
		stop()
		os.Exit(1)
	}
}

func newFlagSet(cfg *bench.AdapterConfig) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("adapterbench", flag.ContinueOnError)
	fs.StringVar(&cfg.MQTTer, "mqtter", cfg.MQTTer, "path of the mqtter binary (server and nodes)")
	fs.IntVar(&cfg.N, "n", cfg.N, "samples of each path")
	fs.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "commands sent first on each path and not counted")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait for one sample")
	quick := fs.Bool("quick", false, "small numbers, for a smoke test")
	return fs, quick
}
