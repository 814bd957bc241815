// Command thingbench measures MQTTER's thing paths on loopback: a text
// from a person's node to a thing's node until the sender has its receipt
// (the baseline), a command to the thing until its result (directly, and
// from a person without a node through the server), and a chain through a
// rule (door opened → lamp toggles) until the second thing's result shows
// in the person's command, with the two targets of issue 10 beside them.
// The things are nodes running the example device programs
// (examples/lamp, examples/doorsensor), built into the run's directory. It
// prints a table and exits 0 whatever the figures; it exits 1 only when
// the run could not be set up. `make bench` runs it.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/mqtter/mqtter/bench"
)

func main() {
	bench.Main("thingbench", parseFlags, func(ctx context.Context, cfg bench.ThingConfig) bench.Report {
		cfg.Progress = os.Stderr
		return bench.RunThings(ctx, cfg)
	})
}

// parseFlags reads the flags into a ThingConfig. With --quick the
// defaults are the quick ones, and any other flag given still wins. It
// also returns where to write a CPU profile of thingbench itself, if
// asked.
func parseFlags(args []string) (cfg bench.ThingConfig, cpuProfile string, err error) {
	cfg, err = bench.ParseFlags(args, bench.DefaultThingConfig(), func(c bench.ThingConfig) bench.ThingConfig { return c.Quick() },
		func(c *bench.ThingConfig) (*flag.FlagSet, *bool) { return newFlagSet(c, &cpuProfile) })
	if err != nil {
		return cfg, "", err
	}
	return cfg, cpuProfile, cfg.Validate()
}

func newFlagSet(cfg *bench.ThingConfig, cpuProfile *string) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("thingbench", flag.ContinueOnError)
	fs.StringVar(&cfg.MQTTer, "mqtter", cfg.MQTTer, "path of the mqtter binary (server and nodes)")
	fs.IntVar(&cfg.N, "n", cfg.N, "samples of each message and command path")
	fs.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "messages or commands sent first on each path and not counted")
	fs.IntVar(&cfg.ChainN, "chain-n", cfg.ChainN, "samples of the rule chain (door opened → lamp toggles)")
	fs.IntVar(&cfg.ChainWarmup, "chain-warmup", cfg.ChainWarmup, "chain runs first and not counted")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait for one sample")
	fs.DurationVar(&cfg.LinkDelay, "link-delay", cfg.LinkDelay, "one-way delay of a link put on every hop between processes (node to node, client to server), e.g. 5ms; 0: plain loopback")
	fs.BoolVar(&cfg.Keep, "keep", cfg.Keep, "keep the logs and data directories")
	fs.StringVar(cpuProfile, "cpuprofile", *cpuProfile, "write a CPU profile of thingbench itself (carol's client, the API callers) to this file")
	quick := fs.Bool("quick", false, "small numbers, for a smoke test")
	return fs, quick
}
