// Command relaybench measures two nodes behind NAT routers, in network
// namespaces it makes (internal/natlab, the NAT tests' own network): the
// time from both online to the first message relayed by the server's
// relay, and to the first one direct after the hole punch, then message
// latency direct (hole-punched), relayed (behind symmetric NATs) and
// through the server, in the same run. It prints tables and exits 0
// whatever the figures; without root (or ip and iptables) it prints a
// "skipped" line and exits 0; it exits 1 only when the run could not be
// set up. `make bench` runs it.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/mqtter/mqtter/bench"
)

func main() {
	bench.Main("relaybench", noProfile(parseFlags), func(ctx context.Context, cfg bench.RelayConfig) bench.Report {
		cfg.Progress = os.Stderr
		return bench.RunRelay(ctx, cfg)
	})
}

// noProfile adapts a flag parser with no --cpuprofile to bench.Main.
func noProfile[C any](parse func([]string) (C, error)) func([]string) (C, string, error) {
	return func(args []string) (C, string, error) {
		cfg, err := parse(args)
		return cfg, "", err
	}
}

// parseFlags reads the flags into a RelayConfig. With --quick the
// defaults are the quick ones, and any other flag given still wins.
func parseFlags(args []string) (bench.RelayConfig, error) {
	cfg, err := bench.ParseFlags(args, bench.DefaultRelayConfig(), func(c bench.RelayConfig) bench.RelayConfig { return c.Quick() }, newFlagSet)
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func newFlagSet(cfg *bench.RelayConfig) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("relaybench", flag.ContinueOnError)
	fs.StringVar(&cfg.MQTTer, "mqtter", cfg.MQTTer, "path of the mqtter binary (server and nodes)")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "hole punches timed, each in a fresh network")
	fs.IntVar(&cfg.TCPRounds, "tcp-rounds", cfg.TCPRounds, "more hole punches timed with the relay and the nodes on TCP alone")
	fs.IntVar(&cfg.N, "n", cfg.N, "latency samples per path")
	fs.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "latency messages sent first and not counted")
	fs.DurationVar(&cfg.Pace, "pace", cfg.Pace, "gap between messages while waiting for the hole punch")
	fs.DurationVar(&cfg.PunchWait, "punch-wait", cfg.PunchWait, "longest wait for a message to go direct")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest wait for one message")
	fs.BoolVar(&cfg.Keep, "keep", cfg.Keep, "keep the logs and data directories")
	quick := fs.Bool("quick", false, "one round and fewer messages, for a smoke test")
	return fs, quick
}
