// Command adapterbench measures a command until its result through the
// server's Tasmota adapter (a simulated Tasmota plug adopted as a thing)
// beside the same command to a thing's node (examples/lamp), on loopback.
// It prints a table and exits 0 whatever the figures; it exits 1 only when
// the run could not be set up. `make bench` runs it.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/mqtter/mqtter/bench"
)

func main() {
	bench.Main("adapterbench", parseFlags, func(ctx context.Context, cfg bench.AdapterConfig) bench.Report {
		cfg.Progress = os.Stderr
		return bench.RunAdapters(ctx, cfg)
	})
}

// parseFlags reads the flags into an AdapterConfig. With --quick the
// defaults are the quick ones, and any other flag given still wins.
func parseFlags(args []string) (bench.AdapterConfig, string, error) {
	cfg, err := bench.ParseFlags(args, bench.DefaultAdapterConfig(), func(c bench.AdapterConfig) bench.AdapterConfig { return c.Quick() }, newFlagSet)
	if err == nil {
		err = cfg.Validate()
	}
	return cfg, "", err
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
