// Command nodebench measures MQTTER's nodes on loopback: a direct message
// from one node until it is stored at the peer, the same through the
// server, the p2p path alone with the peer node's real handler, and a raw
// libp2p stream echo beside them as the ceiling; latency percentiles,
// msgs/s with every message stored on both sides, and idle node memory
// beside a bare libp2p host. It prints tables and exits 0 whatever the
// figures; it exits 1 only when the run could not be set up. `make bench`
// runs it.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/mqtter/mqtter/bench"
)

func main() {
	bench.Main("nodebench", parseFlags, func(ctx context.Context, cfg bench.NodeConfig) bench.Report {
		cfg.Progress = os.Stderr
		return bench.RunNodes(ctx, cfg)
	})
}

// parseFlags reads the flags into a NodeConfig. With --quick the defaults
// are the quick ones, and any other flag given still wins. It also returns
// where to write a CPU profile of nodebench itself, if asked.
func parseFlags(args []string) (cfg bench.NodeConfig, cpuProfile string, err error) {
	cfg, err = bench.ParseFlags(args, bench.DefaultNodeConfig(), func(c bench.NodeConfig) bench.NodeConfig { return c.Quick() },
		func(c *bench.NodeConfig) (*flag.FlagSet, *bool) { return newFlagSet(c, &cpuProfile) })
	if err != nil {
		return cfg, "", err
	}
	return cfg, cpuProfile, cfg.Validate()
}

func newFlagSet(cfg *bench.NodeConfig, cpuProfile *string) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("nodebench", flag.ContinueOnError)
	fs.StringVar(&cfg.MQTTer, "mqtter", cfg.MQTTer, "path of the mqtter binary (server and nodes)")
	fs.StringVar(&cfg.BareHost, "barehost", cfg.BareHost, "path of a built bench/cmd/nodebench/barehost; built when missing")
	fs.IntVar(&cfg.N, "n", cfg.N, "latency samples per path")
	fs.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "latency messages sent first and not counted")
	fs.IntVar(&cfg.Msgs, "msgs", cfg.Msgs, "messages in the direct throughput runs (echo and p2p)")
	fs.IntVar(&cfg.APIMsgs, "api-msgs", cfg.APIMsgs, "messages in the throughput runs through a node's local API")
	fs.IntVar(&cfg.Senders, "senders", cfg.Senders, "concurrent local API callers in a throughput run")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "messages per pipelined burst (the outbox's batch is 256)")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "wait before reading idle memory")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait for one message or one burst")
	fs.BoolVar(&cfg.Keep, "keep", cfg.Keep, "keep the logs and data directories")
	fs.StringVar(cpuProfile, "cpuprofile", *cpuProfile, "write a CPU profile of nodebench itself (the bench device, echo client, API callers) to this file")
	quick := fs.Bool("quick", false, "small numbers, for a smoke test")
	return fs, quick
}
