package bench

import (
	"context"
	"fmt"
	"io"
	"time"
)

// NodeConfig says what a node benchmark run (command nodebench) measures
// and with which programs.
type NodeConfig struct {
	MQTTer   string        // path of the mqtter binary: the server and the nodes
	BareHost string        // path of a built bench/cmd/nodebench/barehost; built into a temp dir when missing
	N        int           // latency samples per path
	Warmup   int           // latency messages sent first and not counted
	Msgs     int           // messages in a direct throughput run
	APIMsgs  int           // messages sent through a node's local API in a throughput run
	Senders  int           // concurrent local API senders in a throughput run
	Batch    int           // messages per pipelined burst
	Settle   time.Duration // wait before reading memory
	Timeout  time.Duration // longest wait for one message or one burst
	Keep     bool          // keep logs and data even when all went well
	Progress io.Writer     // progress lines; nil discards them
}

// DefaultNodeConfig returns the full run's settings: about a minute on two
// cores.
func DefaultNodeConfig() NodeConfig {
	return NodeConfig{
		MQTTer: "bin/mqtter",
		N:      2000, Warmup: 200, Msgs: 30000, APIMsgs: 4000, Senders: 4, Batch: 256,
		Settle: 3 * time.Second, Timeout: 10 * time.Second,
	}
}

// Quick shrinks c to a smoke test's size.
func (c NodeConfig) Quick() NodeConfig {
	c.N, c.Warmup, c.Msgs, c.APIMsgs, c.Settle = 200, 20, 3000, 500, time.Second
	return c
}

// Validate reports settings a run cannot use.
func (c NodeConfig) Validate() error {
	if c.N < 1 || c.Warmup < 0 || c.Msgs < 1 || c.APIMsgs < 1 || c.Senders < 1 || c.Batch < 1 {
		return fmt.Errorf("counts must be positive (n %d, warmup %d, msgs %d, api-msgs %d, senders %d, batch %d)",
			c.N, c.Warmup, c.Msgs, c.APIMsgs, c.Senders, c.Batch)
	}
	if c.Settle < 0 || c.Timeout <= 0 {
		return fmt.Errorf("settle %v and timeout %v must not be negative", c.Settle, c.Timeout)
	}
	return nil
}

// Names of the measured paths, the rows of the report.
const (
	PathEcho      = "raw libp2p stream echo (ceiling)"
	PathRequest   = "p2p request → peer node stored → answered"
	PathBurst     = "p2p bursts → peer node stored → answered"
	PathAPIStored = "node → node: API send → stored at the peer"
	PathAPIAnswer = "node → node: API send → sender's receipt"
	PathRelay     = "node → server → node: API send → stored"
)

// NodeResults are the figures of a node benchmark run.
type NodeResults struct {
	Config     NodeConfig
	Latency    map[string]Latencies // by path
	LatencyErr map[string]string    // by path: why the run stopped early
	Flows      []NodeFlow           // throughput rows, in report order
	Memory     []NodeMemory
	Frame      int      // bytes of one direct message frame, as measured
	Notes      []string // things to know when reading the figures
	Errors     []string // what kept part of the run from happening
	Load       [2]string
}

// NodeFlow is one throughput run.
type NodeFlow struct {
	Path    string
	How     string        // what was sent and how
	Msgs    int           // messages confirmed stored (or echoed)
	Elapsed time.Duration // from the first send to the last confirmation
	// CPU per message of the sending and the receiving process; 0 when
	// unknown.
	SenderCPU, ReceiverCPU time.Duration
	Err                    string
}

// Rate is the flow's messages per second.
func (f NodeFlow) Rate() float64 { return Rate(f.Msgs, f.Elapsed) }

// NodeMemory is one process's resident memory.
type NodeMemory struct {
	Name     string
	Node     bool  // a node's (not the bare host's)
	Idle     bool  // read before the measurements
	RSS, HWM int64 // VmRSS and VmHWM, bytes
	Err      string
}

// RunNodes measures two nodes talking directly and through the server, a
// node's p2p path alone, a raw libp2p echo beside them, and the nodes'
// memory. It never fails on a figure: setup failures are in
// NodeResults.Errors, and whatever could be measured is still there.
func RunNodes(ctx context.Context, cfg NodeConfig) *NodeResults {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	res := &NodeResults{Config: cfg, Latency: map[string]Latencies{}, LatencyErr: map[string]string{}}
	res.Load[0] = loadAverage()
	defer func() { res.Load[1] = loadAverage() }()
	err := inRunDir("nodebench", func(dir string) { res.run(ctx, dir) },
		func() bool { return cfg.Keep || len(res.Errors) > 0 },
		func(note string) { res.Notes = append(res.Notes, note) })
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	return res
}

func (res *NodeResults) progress(format string, args ...any) {
	fmt.Fprintf(res.Config.Progress, "nodebench: "+format+"\n", args...)
}

func (res *NodeResults) failed(what string, err error) {
	res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", what, err))
}

func (res *NodeResults) note(format string, args ...any) {
	res.Notes = append(res.Notes, fmt.Sprintf(format, args...))
}

// run sets up the server, four nodes, the bench's own device and a bare
// host, then measures. A setup failure ends the run.
func (res *NodeResults) run(ctx context.Context, dir string) {
	cfg := res.Config
	res.progress("starting a server and four nodes (alice, bob direct; carol, dave through the server)")
	w, err := startNodeWorld(ctx, cfg, dir)
	if w != nil {
		defer func() {
			for _, msg := range w.close() {
				res.Errors = append(res.Errors, msg)
			}
		}()
	}
	if err != nil {
		res.failed("setup", err)
		return
	}
	res.Frame = len(w.device.frame(w.bob.id, w.device.message(0)))

	res.progress("memory: settling %v", cfg.Settle)
	if err := sleep(ctx, cfg.Settle); err != nil {
		res.failed("memory", err)
		return
	}
	res.Memory = append(res.Memory, memoryOf("bare libp2p host (same transports), idle", w.bare.process, false, true))
	for _, n := range w.nodes() {
		res.Memory = append(res.Memory, memoryOf(n.user+"'s node, idle", n.process, true, true))
	}

	res.progress("latency: %d samples per path after %d warm-up", cfg.N, cfg.Warmup)
	res.latency(ctx, PathEcho, func(ctx context.Context, count int) ([]time.Duration, error) {
		return w.echo.latency(ctx, count, res.Frame, cfg.Timeout)
	})
	res.latency(ctx, PathRequest, func(ctx context.Context, count int) ([]time.Duration, error) {
		return w.device.requestLatency(ctx, w.bob, count, cfg.Timeout)
	})
	direct, err := apiLatency(ctx, w.alice, w.bob, "bob", true, cfg.Warmup, cfg.N, cfg.Timeout)
	res.keepLatency(PathAPIStored, direct.stored, err)
	res.keepLatency(PathAPIAnswer, direct.answered, err)
	res.checkVia(PathAPIStored, direct.via, "p2p")
	relayed, err := apiLatency(ctx, w.carol, w.dave, w.group, false, cfg.Warmup, cfg.N, cfg.Timeout)
	res.keepLatency(PathRelay, relayed.stored, err)
	res.checkVia(PathRelay, relayed.via, "server")

	res.progress("throughput: %d messages directly in bursts of %d, %d through the local API", cfg.Msgs, cfg.Batch, cfg.APIMsgs)
	res.Flows = append(res.Flows,
		w.echo.throughput(ctx, w.bare.process, cfg.Msgs, cfg.Batch, res.Frame, cfg.Timeout),
		w.device.throughput(ctx, w.bob, cfg.Msgs, cfg.Batch, cfg.Timeout),
		apiThroughput(ctx, PathAPIStored, w.alice, w.bob, "bob", "received_p2p", cfg.APIMsgs, cfg.Senders, cfg.Timeout),
		apiThroughput(ctx, PathRelay, w.carol, w.dave, w.group, "received_server", cfg.APIMsgs, cfg.Senders, cfg.Timeout),
	)
	for _, n := range w.nodes() {
		res.Memory = append(res.Memory, memoryOf(n.user+"'s node, after the run", n.process, true, false))
	}
	res.note("history_push is deferred (--sync-interval 1h) on every node, so the figures are of the delivery path alone")
}

// latency runs warmup+N samples of one path and keeps the last N.
func (res *NodeResults) latency(ctx context.Context, path string, measure func(ctx context.Context, count int) ([]time.Duration, error)) {
	cfg := res.Config
	samples, err := measure(ctx, cfg.Warmup+cfg.N)
	if len(samples) > cfg.Warmup {
		samples = samples[cfg.Warmup:]
	} else {
		samples = nil
	}
	res.keepLatency(path, samples, err)
}

func (res *NodeResults) keepLatency(path string, samples []time.Duration, err error) {
	res.Latency[path] = Summarize(samples)
	if err != nil {
		res.LatencyErr[path] = err.Error()
	}
}

// checkVia notes samples of a path that arrived another way than want.
func (res *NodeResults) checkVia(path string, via map[string]int, want string) {
	for how, count := range via {
		if how != want {
			res.note("%s: %d samples arrived via %s, not %s", path, count, how, want)
		}
	}
}

func memoryOf(name string, p *process, isNode, idle bool) NodeMemory {
	m := NodeMemory{Name: name, Node: isNode, Idle: idle}
	rss, hwm, err := readMemory(p.cmd.Process.Pid)
	if err != nil {
		m.Err = err.Error()
	}
	m.RSS, m.HWM = rss, hwm
	return m
}

// Failed reports whether part of the run could not be set up.
func (res *NodeResults) Failed() bool { return len(res.Errors) > 0 }
