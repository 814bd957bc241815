// Command gossipbench measures a group message's fan-out on loopback: from
// one member's device until the last of 5, 20 and 50 other members' nodes
// has stored it, by GossipSub among the members' nodes and through the
// server's push (`mqtter server` as a process), in the same run; latency
// percentiles and CPU per delivered message, with issue 12's target
// beside them. Small groups' members are `mqtter node` processes, larger
// ones real nodes in this process (the output says which). It prints a
// table and exits 0 whatever the figures; it exits 1 only when the run
// could not be set up. `make bench` runs it.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/mqtter/mqtter/bench"
)

func main() {
	bench.Main("gossipbench", parseFlags, func(ctx context.Context, cfg bench.GossipConfig) bench.Report {
		cfg.Progress = os.Stderr
		return bench.RunGossip(ctx, cfg)
	})
}

// parseFlags reads the flags into a GossipConfig. With --quick the
// defaults are the quick ones, and any other flag given still wins. It
// also returns where to write a CPU profile of gossipbench itself, if
// asked.
func parseFlags(args []string) (cfg bench.GossipConfig, cpuProfile string, err error) {
	cfg, err = bench.ParseFlags(args, bench.DefaultGossipConfig(), func(c bench.GossipConfig) bench.GossipConfig { return c.Quick() },
		func(c *bench.GossipConfig) (*flag.FlagSet, *bool) { return newFlagSet(c, &cpuProfile) })
	if err != nil {
		return cfg, "", err
	}
	return cfg, cpuProfile, cfg.Validate()
}

func newFlagSet(cfg *bench.GossipConfig, cpuProfile *string) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("gossipbench", flag.ContinueOnError)
	fs.StringVar(&cfg.MQTTer, "mqtter", cfg.MQTTer, "path of the mqtter binary (server and member node processes)")
	fs.Var(&cfg.Sizes, "sizes", "group sizes measured (members besides the sender), comma-separated")
	fs.IntVar(&cfg.Procs, "procs", cfg.Procs, "groups of up to this many members run them as mqtter node processes; larger ones run real nodes in this process")
	fs.IntVar(&cfg.N, "n", cfg.N, "messages timed per size and path")
	fs.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "messages sent first on each path and not counted")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait for one message to reach every member")
	fs.DurationVar(&cfg.MeshWait, "mesh-wait", cfg.MeshWait, "longest wait for the group's meshes to form")
	fs.DurationVar(&cfg.LinkDelay, "link-delay", cfg.LinkDelay, "one-way delay of a link put on every hop between devices and to the server, e.g. 5ms; 0: plain loopback")
	fs.BoolVar(&cfg.Keep, "keep", cfg.Keep, "keep the logs and data directories")
	fs.StringVar(cpuProfile, "cpuprofile", *cpuProfile, "write a CPU profile of gossipbench itself (the sender, the in-process nodes) to this file")
	quick := fs.Bool("quick", false, "fewer messages, for a smoke test")
	return fs, quick
}
