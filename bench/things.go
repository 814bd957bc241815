package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/thing"
)

// ThingConfig says what a thing benchmark run (command thingbench)
// measures and with which binary.
type ThingConfig struct {
	MQTTer      string        // path of the mqtter binary: the server and the nodes
	N           int           // samples of the message and command paths
	Warmup      int           // sent first and not counted, on each path
	ChainN      int           // samples of the rule chain
	ChainWarmup int           // chain runs first and not counted
	Timeout     time.Duration // longest wait for one sample
	// LinkDelay, when set, puts every hop between processes (node to
	// node, client to server) through a proxy that holds each byte this
	// long each way: a network link's one-way delay, which loopback lacks.
	LinkDelay time.Duration
	Keep      bool      // keep logs and data even when all went well
	Progress  io.Writer // progress lines; nil discards them
}

// DefaultThingConfig returns the full run's settings: a minute or two on
// two cores.
func DefaultThingConfig() ThingConfig {
	return ThingConfig{MQTTer: "bin/mqtter", N: 1000, Warmup: 100, ChainN: 200, ChainWarmup: 10, Timeout: 10 * time.Second}
}

// Quick shrinks c to a smoke test's size.
func (c ThingConfig) Quick() ThingConfig {
	c.N, c.Warmup, c.ChainN, c.ChainWarmup = 50, 5, 20, 2
	return c
}

// Validate reports settings a run cannot use.
func (c ThingConfig) Validate() error {
	if c.N < 1 || c.Warmup < 0 || c.ChainN < 1 || c.ChainWarmup < 0 {
		return fmt.Errorf("counts must be positive (n %d, warmup %d, chain-n %d, chain-warmup %d)", c.N, c.Warmup, c.ChainN, c.ChainWarmup)
	}
	if c.LinkDelay < 0 {
		return fmt.Errorf("link delay %v must not be negative", c.LinkDelay)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("timeout %v must be positive", c.Timeout)
	}
	return nil
}

// Names of the measured thing paths, the rows of the report.
const (
	PathThingStored   = "alice → lamp: API send of a text → stored at the lamp's node"
	PathThingMessage  = "alice → lamp: API send of a text → alice's receipt"
	PathThingAlone    = "alice → lamp: do toggle, wait → done, before carol is bound"
	PathThingCommand  = "alice → lamp: do toggle, wait → done"
	PathThingRelayed  = "carol (MQTT) → server → lamp: send command → result pushed"
	PathThingChain    = "alice → door → rule → lamp: do open → lamp's result in the chain"
	PathThingDoorDone = "alice → door: do close, wait → done (between chain samples)"
)

// chainPerRule is how many times one rule may fire in a row: the node's
// loop guard lets a rule fire ten times at once, then ten a minute.
const chainPerRule = 10

// ThingResults are the figures of a thing benchmark run.
type ThingResults struct {
	Config     ThingConfig
	Latency    map[string]Latencies // by path
	LatencyErr map[string]string    // by path: why the run stopped early
	Notes      []string             // things to know when reading the figures
	Errors     []string             // what kept part of the run from happening
	Load       [2]string
}

// RunThings measures the thing paths: a text to a thing, a command to it
// directly and through the server, and a chain through a rule. It never
// fails on a figure: setup failures are in ThingResults.Errors, and
// whatever could be measured is still there.
func RunThings(ctx context.Context, cfg ThingConfig) *ThingResults {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	res := &ThingResults{Config: cfg, Latency: map[string]Latencies{}, LatencyErr: map[string]string{}}
	res.Load[0] = loadAverage()
	defer func() { res.Load[1] = loadAverage() }()
	err := inRunDir("thingbench", func(dir string) { res.run(ctx, dir) },
		func() bool { return cfg.Keep || len(res.Errors) > 0 || len(res.LatencyErr) > 0 },
		func(note string) { res.Notes = append(res.Notes, note) })
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	return res
}

func (res *ThingResults) progress(format string, args ...any) {
	fmt.Fprintf(res.Config.Progress, "thingbench: "+format+"\n", args...)
}

func (res *ThingResults) note(format string, args ...any) {
	res.Notes = append(res.Notes, fmt.Sprintf(format, args...))
}

func (res *ThingResults) keep(path string, samples []time.Duration, err error) {
	res.Latency[path] = Summarize(samples)
	if err != nil {
		res.LatencyErr[path] = err.Error()
	}
}

// run sets up the world, then measures each path in turn. A setup failure
// ends the run.
func (res *ThingResults) run(ctx context.Context, dir string) {
	cfg := res.Config
	w, err := startThingWorld(ctx, cfg, dir, res.progress)
	if w != nil {
		defer func() { res.Errors = append(res.Errors, w.close()...) }()
	}
	if err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("setup: %v", err))
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	cw := newChainWatch()
	stopWatch := cw.follow(ctx, w.alice.api)
	defer func() {
		cancel()
		if err := stopWatch(); err != nil {
			res.note("alice's event stream: %v", err)
		}
	}()

	res.progress("a text to the lamp: %d samples after %d warm-up", cfg.N, cfg.Warmup)
	msgs, err := apiLatency(ctx, w.alice, w.lamp, thingLamp, true, cfg.Warmup, cfg.N, cfg.Timeout)
	res.keep(PathThingStored, msgs.stored, err)
	res.keep(PathThingMessage, msgs.answered, err)
	for how, n := range msgs.via {
		if how != "p2p" {
			res.note("%s: %d samples arrived via %s, not p2p", PathThingMessage, n, how)
		}
	}

	// The lamp sends its feedback to each of its people and things in
	// turn, so the same commands are timed before and after carol joins
	// them.
	res.progress("commands to the lamp, directly, before carol is bound: %d samples after %d warm-up", cfg.N, cfg.Warmup)
	res.directCommands(ctx, w, cw, PathThingAlone)
	res.progress("carol (no node, a plain MQTT client) binds the lamp with a code from the lamp's node")
	if err := w.bindCarol(ctx); err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("setup: carol binds the lamp: %v", err))
		return
	}
	res.progress("commands to the lamp, directly: %d samples after %d warm-up", cfg.N, cfg.Warmup)
	res.directCommands(ctx, w, cw, PathThingCommand)

	res.progress("commands to the lamp from carol through the server: %d samples after %d warm-up", cfg.N, cfg.Warmup)
	samples, err := res.relayedCommands(ctx, w)
	res.keep(PathThingRelayed, samples, err)

	res.progress("the chain door → rule → lamp: %d samples after %d warm-up (a fresh rule every %d)", cfg.ChainN, cfg.ChainWarmup, chainPerRule)
	chain, closes, err := res.chain(ctx, w, cw)
	res.keep(PathThingChain, chain, err)
	res.keep(PathThingDoorDone, closes, nil)
	res.rulesNote(ctx, w)
}

// doDone sends a command with the local API and waits until it is done;
// any other outcome is an error.
func doDone(ctx context.Context, api *node.Client, th, action string, timeout time.Duration) (node.CommandRow, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+node.CommandGrace)
	defer cancel()
	row, err := api.Do(ctx, th, node.DoRequest{Action: action, Wait: true, TimeoutMS: timeout.Milliseconds()})
	if err != nil {
		return row, fmt.Errorf("do %s %s: %w", th, action, err)
	}
	if row.State != thing.ResultDone {
		return row, fmt.Errorf("do %s %s: command %s ended %s (%s)", th, action, row.MsgId, row.State, row.Error)
	}
	return row, nil
}

// directCommands times alice's do(lamp, toggle, wait) until it returns
// done, keeps the samples as path, and notes commands that did not go
// directly (by alice's receipts).
func (res *ThingResults) directCommands(ctx context.Context, w *thingWorld, cw *chainWatch, path string) {
	cfg := res.Config
	var samples []time.Duration
	var ids []string
	var err error
	for i := range cfg.Warmup + cfg.N {
		start := time.Now()
		var row node.CommandRow
		row, err = doDone(ctx, w.alice.api, thingLamp, lampAction, cfg.Timeout)
		took := time.Since(start)
		if err != nil {
			err = fmt.Errorf("command %d: %w", i, err)
			break
		}
		if i >= cfg.Warmup {
			samples = append(samples, took)
			ids = append(ids, row.MsgId)
		}
	}
	res.keep(path, samples, err)
	if sleep(ctx, 200*time.Millisecond) == nil { // the last receipts' events
		if via := cw.paths(ids); via["p2p"] != len(ids) {
			res.note("%s: the commands went %s (by alice's receipts)", path, describeVia(via))
		}
	}
}

// relayedCommands times carol's commands to the lamp, from her send until
// the lamp's result is pushed to her. The first ones may find the lamp's
// node not yet aware of carol's binding: a few probes go first.
func (res *ThingResults) relayedCommands(ctx context.Context, w *thingWorld) ([]time.Duration, error) {
	cfg := res.Config
	var probeErr error
	for try := 0; try < 20; try++ {
		id, err := w.carol.command(ctx, lampAction)
		if err == nil {
			_, err = w.carol.waitResult(ctx, id, time.Second)
		}
		if probeErr = err; err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if probeErr != nil {
		return nil, fmt.Errorf("probe command: %w", probeErr)
	}
	var samples []time.Duration
	for i := range cfg.Warmup + cfg.N {
		start := time.Now()
		id, err := w.carol.command(ctx, lampAction)
		if err != nil {
			return samples, fmt.Errorf("command %d: %w", i, err)
		}
		at, err := w.carol.waitResult(ctx, id, cfg.Timeout)
		if err != nil {
			return samples, fmt.Errorf("command %d: %w", i, err)
		}
		if i >= cfg.Warmup {
			samples = append(samples, at.Sub(start))
		}
	}
	return samples, nil
}

// chain times alice's do(door, open) until the lamp's result shows in
// that command's chain (alice's event stream); the door is closed first
// each time, since it reports opened only when it was closed. It also
// returns the times of those closes: a plain command to the door.
func (res *ThingResults) chain(ctx context.Context, w *thingWorld, cw *chainWatch) (chain, closes []time.Duration, err error) {
	cfg := res.Config
	fired := 0
	for i := range cfg.ChainWarmup + cfg.ChainN {
		if fired == chainPerRule {
			if err := w.renewRule(ctx); err != nil {
				return chain, closes, fmt.Errorf("sample %d: %w", i, err)
			}
			fired = 0
		}
		start := time.Now()
		if _, err := doDone(ctx, w.alice.api, thingDoor, "close", cfg.Timeout); err != nil {
			return chain, closes, fmt.Errorf("sample %d: %w", i, err)
		}
		closed := time.Since(start)
		start = time.Now()
		row, err := w.alice.api.Do(ctx, thingDoor, node.DoRequest{Action: "open", TimeoutMS: cfg.Timeout.Milliseconds()})
		if err != nil {
			return chain, closes, fmt.Errorf("sample %d: do door open: %w", i, err)
		}
		fired++
		at, err := cw.waitLamp(ctx, row.MsgId, cfg.Timeout)
		if err != nil {
			return chain, closes, fmt.Errorf("sample %d: %w", i, err)
		}
		if i >= cfg.ChainWarmup {
			chain = append(chain, at.Sub(start))
			closes = append(closes, closed)
		}
	}
	return chain, closes, nil
}

// rulesNote notes what the door's rules did, when a guard dropped any.
func (res *ThingResults) rulesNote(ctx context.Context, w *thingWorld) {
	st, err := w.door.api.Status(ctx)
	if err != nil || st.Thing == nil {
		return
	}
	r := st.Thing.Rules
	if len(r.Dropped) > 0 {
		res.note("the door's rules fired %d times and dropped %v (loop guards)", r.Fired, r.Dropped)
	}
}

// Failed reports whether part of the run could not be set up.
func (res *ThingResults) Failed() bool { return len(res.Errors) > 0 }
