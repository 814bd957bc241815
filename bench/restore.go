package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// RestoreConfig says what a history restore benchmark run (command
// restorebench) measures.
type RestoreConfig struct {
	MQTTer           string        // path of the built mqtter binary
	Sizes            []int         // history sizes, one run each
	Convs            int           // conversations the history is spread over
	Dir              string        // where the runs keep their files; a temporary one when empty
	Keep             bool          // keep the files
	InProcess        bool          // also restore in this process (sync.Syncer over mqttlink), for profiling
	CPUProfile       string        // CPU profile of the in-process restore; implies InProcess
	ServerCPUProfile string        // CPU profile of the server during the last size's run
	Timeout          time.Duration // longest a restore may take
	Progress         io.Writer     // progress lines; nil discards them
}

// Validate reports settings a run cannot use.
func (c RestoreConfig) Validate() error {
	if len(c.Sizes) == 0 {
		return fmt.Errorf("no history sizes")
	}
	for _, n := range c.Sizes {
		if n < 1 {
			return fmt.Errorf("history size %d: want a positive number", n)
		}
	}
	if c.Convs < 1 || c.Convs > 26 {
		return fmt.Errorf("--convs %d: want 1 to 26", c.Convs)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("timeout %v must be positive", c.Timeout)
	}
	return nil
}

// RestoreResults are the figures of a restore benchmark run, one row a
// history size.
type RestoreResults struct {
	Config RestoreConfig
	Runs   []RestoreRun
	Err    error // what stopped the run: a setup failure or lost messages
}

// RestoreRun is one history size's figures.
type RestoreRun struct {
	N, Convs  int
	Fill      time.Duration // filling the server's store
	Node      RestoreNode
	Raw       RestoreRaw
	InProcess time.Duration // 0 when not run
	Err       error
}

// RunRestore measures every size in turn, stopping at the first run that
// could not be set up or lost messages; RestoreResults.Err says which.
// The figures themselves are never judged here.
func RunRestore(ctx context.Context, cfg RestoreConfig) *RestoreResults {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.CPUProfile != "" {
		cfg.InProcess = true
	}
	res := &RestoreResults{Config: cfg}
	res.Err = res.run(ctx)
	return res
}

func (res *RestoreResults) run(ctx context.Context) error {
	cfg := res.Config
	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.MQTTer); err != nil {
		return fmt.Errorf("mqtter binary: %w (build it: make build)", err)
	}
	bin, err := filepath.Abs(cfg.MQTTer)
	if err != nil {
		return err
	}
	root := cfg.Dir
	if root == "" {
		if root, err = os.MkdirTemp("", "restorebench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if cfg.Keep {
		fmt.Fprintf(cfg.Progress, "restorebench: files in %s\n", root)
	} else if cfg.Dir == "" {
		defer os.RemoveAll(root)
	}
	for i, n := range cfg.Sizes {
		dir := filepath.Join(root, fmt.Sprintf("n%d", n))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		serverProf := ""
		if i == len(cfg.Sizes)-1 {
			serverProf = cfg.ServerCPUProfile
		}
		r := res.runSize(ctx, bin, dir, n, serverProf)
		res.Runs = append(res.Runs, r)
		if !cfg.Keep {
			os.RemoveAll(dir)
		}
		if r.Err != nil {
			return fmt.Errorf("%d messages: %w", n, r.Err)
		}
	}
	return nil
}

func (res *RestoreResults) runSize(ctx context.Context, bin, dir string, n int, serverProf string) RestoreRun {
	cfg := res.Config
	r := RestoreRun{N: n, Convs: cfg.Convs}
	say := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "restorebench: %d messages: "+format+"\n", append([]any{n}, args...)...)
	}
	dataDir := filepath.Join(dir, "server-data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		r.Err = err
		return r
	}
	say("filling the server's store")
	t0 := time.Now()
	h, err := fillRestoreHistory(ctx, bin, dataDir, n, cfg.Convs)
	r.Fill = time.Since(t0)
	if err != nil {
		r.Err = fmt.Errorf("fill: %w", err)
		return r
	}
	say("filled in %.1f s; raw inserts of the same rows", r.Fill.Seconds())
	if r.Raw, err = restoreRawInsert(ctx, dataDir, dir, h); err != nil {
		r.Err = fmt.Errorf("raw insert: %w", err)
		return r
	}

	mqttAddr, err := freeAddr()
	if err != nil {
		r.Err = err
		return r
	}
	httpAddr, err := freeAddr()
	if err != nil {
		r.Err = err
		return r
	}
	args := []string{"server", "--data", dataDir, "--mqtt", mqttAddr, "--http", httpAddr, "--log-level", "warn"}
	if serverProf != "" {
		args = append(args, "--cpuprofile", serverProf)
	}
	server, err := startProcess("server", dir, nil, bin, args...)
	if err != nil {
		r.Err = err
		return r
	}
	defer server.stop()
	if err := server.waitListening(ctx, mqttAddr); err != nil {
		r.Err = err
		return r
	}
	url := "tcp://" + mqttAddr
	say("restoring with a new node")
	if r.Node, err = restoreWithNode(ctx, bin, dir, server, url, h, cfg.Timeout); err != nil {
		r.Err = fmt.Errorf("node restore: %w", err)
		return r
	}
	if cfg.InProcess {
		say("restoring in process")
		if r.InProcess, err = restoreInProcess(ctx, dir, url, cfg.CPUProfile, h); err != nil {
			r.Err = fmt.Errorf("in-process restore: %w", err)
			return r
		}
	}
	server.stop()
	if server.err != nil {
		r.Err = fmt.Errorf("server: %s exited (%v)%s", server.name, server.err, server.tail())
	}
	return r
}
