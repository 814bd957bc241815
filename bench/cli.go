package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mqtter/mqtter/internal/cpuprofile"
)

// Report is what a bench run gives back: it prints its figures, and says
// whether part of the run could not be set up.
type Report interface {
	Print(w io.Writer)
	Failed() bool
}

// Main is a bench command's main: parse reads the flags into a config
// (and where to write a CPU profile of the command itself, "" for none),
// run measures until done or interrupted (SIGINT, SIGTERM). It prints the
// report on stdout and exits 2 on bad flags, 1 when the run failed to set
// up, 0 whatever the figures.
func Main[C any](name string, parse func(args []string) (C, string, error), run func(context.Context, C) Report) {
	cfg, cpuProfile, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile, err := cpuprofile.Start(cpuProfile)
	if err != nil {
		stop()
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	res := run(ctx, cfg)
	res.Print(os.Stdout)
	stopProfile()
	stop()
	if res.Failed() {
		os.Exit(1)
	}
}

// ParseFlags is how the bench commands read their flags: newFlags binds a
// flag set to a config (and returns its --quick flag); the config starts
// from defaults, or from quick(defaults) when --quick is given, and any
// other flag given still wins.
func ParseFlags[C any](args []string, defaults C, quick func(C) C, newFlags func(*C) (*flag.FlagSet, *bool)) (C, error) {
	cfg := defaults
	fs, q := newFlags(&cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *q {
		cfg = quick(defaults)
		fs, _ = newFlags(&cfg)
		_ = fs.Parse(args) // parsed once already
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, nil
}

// inRunDir runs run in a fresh temporary directory named for the bench,
// then keeps it, telling note where, when keep says so, and removes it
// otherwise. Its error is that of making the directory (run did not run).
func inRunDir(name string, run func(dir string), keep func() bool, note func(string)) error {
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return err
	}
	run(dir)
	if keep() {
		note("logs and data kept in " + dir)
	} else {
		os.RemoveAll(dir)
	}
	return nil
}
