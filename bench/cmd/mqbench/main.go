// Command mqbench measures an MQTTER server from outside, on loopback:
// relay latency and throughput of im://modulus/send beside plain QoS 1
// publish/subscribe through Mosquitto, and resident memory with many idle
// connections beside a bare mochi broker and Mosquitto. It prints tables
// and exits 0 whatever the figures; it exits 1 only when part of the run
// could not be set up. `make bench` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/mqtter/mqtter/bench"
)

func main() {
	bench.Main("mqbench", parseFlags, func(ctx context.Context, cfg bench.Config) bench.Report {
		if err := raiseFileLimit(); err != nil {
			fmt.Fprintln(os.Stderr, "mqbench: raising the open-file limit:", err)
		}
		cfg.Progress = os.Stderr
		return bench.Run(ctx, cfg)
	})
}

// parseFlags reads the flags into a Config. With --quick the defaults are
// the quick ones, and any other flag given still wins.
// It also returns where to write a CPU profile of mqbench itself, if asked.
func parseFlags(args []string) (cfg bench.Config, cpuProfile string, err error) {
	cfg, err = bench.ParseFlags(args, bench.DefaultConfig(), func(c bench.Config) bench.Config { return c.Quick() },
		func(c *bench.Config) (*flag.FlagSet, *bool) { return newFlagSet(c, &cpuProfile) })
	if err != nil {
		return cfg, "", err
	}
	return cfg, cpuProfile, cfg.Validate()
}

func newFlagSet(cfg *bench.Config, cpuProfile *string) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet("mqbench", flag.ContinueOnError)
	fs.StringVar(&cfg.MQTTer, "mqtter", cfg.MQTTer, "path of the mqtter binary")
	fs.StringVar(&cfg.BareMochi, "baremochi", cfg.BareMochi, "path of the bare mochi broker (bench/cmd/baremochi); built when missing")
	fs.StringVar(&cfg.Mosquitto, "mosquitto", cfg.Mosquitto, "path of mosquitto (default: PATH, then /usr/sbin)")
	fs.BoolVar(&cfg.SkipMosquitto, "skip-mosquitto", cfg.SkipMosquitto, "do not measure Mosquitto")
	fs.IntVar(&cfg.N, "n", cfg.N, "latency samples")
	fs.IntVar(&cfg.Warmup, "warmup", cfg.Warmup, "latency messages sent first and not counted")
	fs.IntVar(&cfg.Msgs, "msgs", cfg.Msgs, "messages per publisher in a throughput run")
	fs.Var((*intList)(&cfg.Pubs), "pubs", "publisher counts, one throughput run each (comma-separated)")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "messages a publisher may have sent but not yet received")
	fs.IntVar(&cfg.Idle, "idle", cfg.Idle, "idle connections for the memory figure")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "wait before reading memory")
	fs.DurationVar(&cfg.Stall, "stall", cfg.Stall, "stop a throughput run when nothing arrives for this long")
	fs.Var((*phaseList)(&cfg.Phases), "only", "run only these parts: latency, throughput, rss (comma-separated)")
	fs.BoolVar(&cfg.Keep, "keep", cfg.Keep, "keep the brokers' logs and data directories")
	fs.StringVar(cpuProfile, "cpuprofile", *cpuProfile, "write a CPU profile of mqbench's own clients to this file")
	quick := fs.Bool("quick", false, "small numbers, for a smoke test")
	return fs, quick
}

// intList is a comma-separated list of integers.
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, n := range *l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// phaseList is a comma-separated list of phase names.
type phaseList []string

func (l *phaseList) String() string { return strings.Join(*l, ",") }

func (l *phaseList) Set(v string) error {
	*l = nil
	for f := range strings.SplitSeq(v, ",") {
		*l = append(*l, strings.TrimSpace(f))
	}
	return nil
}

// raiseFileLimit lifts the soft open-file limit to the hard one, for this
// process and the brokers it starts: a thousand idle clients need more than
// the usual 1024 descriptors on each side. (Go raises it for itself alone.)
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
