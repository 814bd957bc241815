// Command restorebench measures how fast a new device restores its
// account's history: it fills a server's store with N signed messages over
// a few conversations, starts the built `mqtter server` and a fresh
// `mqtter node` for one of the accounts on loopback, and times the node
// from its start until its history pull is done, with the node's peak
// resident memory. Beside it, in the same run, the same rows go into a
// fresh SQLite file the way localdb stores a pulled page (AddMessages, one
// transaction a page of 1000), and with a bare INSERT loop: the ceiling the
// restore is compared with. It checks that the node holds every message
// once, prints a table and exits 0 whatever the figures; it exits 1 only
// when a run could not be set up or the restore lost messages. `make
// bench` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mqtter/mqtter/bench"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "restorebench:", err)
		os.Exit(2)
	}
	cfg.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := bench.RunRestore(ctx, cfg)
	res.Print(os.Stdout)
	if res.Err != nil {
		fmt.Fprintln(os.Stderr, "restorebench:", res.Err)
		stop()
		os.Exit(1)
	}
}

// parseFlags reads the flags into a RestoreConfig; --n takes a
// comma-separated list of sizes, and --quick overrides it.
func parseFlags(args []string) (bench.RestoreConfig, error) {
	var cfg bench.RestoreConfig
	fs := flag.NewFlagSet("restorebench", flag.ContinueOnError)
	fs.StringVar(&cfg.MQTTer, "mqtter", "bin/mqtter", "path of the built mqtter binary (make build)")
	n := fs.String("n", "100000", "messages in the history; a comma-separated list runs each size")
	quick := fs.Bool("quick", false, "10,000 messages: a smoke test (overrides --n)")
	fs.IntVar(&cfg.Convs, "convs", 3, "conversations the history is spread over")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the runs' files (default: a temporary one)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the runs' files (logs, databases)")
	fs.BoolVar(&cfg.InProcess, "in-process", false, "also restore in this process (sync.Syncer, localdb, mqttlink) against the same server")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the in-process restore here (implies --in-process)")
	fs.StringVar(&cfg.ServerCPUProfile, "server-cpuprofile", "", "write a CPU profile of the server process here (of the last size run)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "longest a restore may take")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quick {
		*n = "10000"
	}
	for _, s := range strings.Split(*n, ",") {
		v, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
		if err != nil || v < 1 {
			return cfg, fmt.Errorf("--n: %q is not a positive number", s)
		}
		cfg.Sizes = append(cfg.Sizes, v)
	}
	return cfg, cfg.Validate()
}
