package bench

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
)

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

// ProfileCPU starts a CPU profile of this process into file and returns
// what stops it; with no file it does nothing.
func ProfileCPU(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
