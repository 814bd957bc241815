package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mqtter/mqtter/internal/natlab"
	"github.com/mqtter/mqtter/node"
)

// RelayConfig says what a relay benchmark run (command relaybench)
// measures.
type RelayConfig struct {
	MQTTer    string        // path of the mqtter binary: the server and the nodes
	Rounds    int           // hole punches timed, each in a fresh network
	TCPRounds int           // more of them with the relay and the nodes on TCP alone
	N         int           // latency samples per path
	Warmup    int           // latency messages sent first and not counted
	Pace      time.Duration // gap between messages while waiting for the punch
	PunchWait time.Duration // longest wait for the direct upgrade
	Timeout   time.Duration // longest wait for one message
	Keep      bool          // keep logs and data even when all went well
	Progress  io.Writer     // progress lines; nil discards them
}

// DefaultRelayConfig returns the full run's settings: about two minutes
// on two cores.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{
		MQTTer: "bin/mqtter", Rounds: 10, TCPRounds: 5, N: 500, Warmup: 50,
		Pace: 20 * time.Millisecond, PunchWait: 30 * time.Second, Timeout: 10 * time.Second,
	}
}

// Quick shrinks c to a smoke test's size.
func (c RelayConfig) Quick() RelayConfig {
	c.Rounds, c.TCPRounds, c.N, c.Warmup = 1, 1, 100, 10
	return c
}

// Validate reports settings a run cannot use.
func (c RelayConfig) Validate() error {
	if c.Rounds < 1 || c.TCPRounds < 0 || c.N < 1 || c.Warmup < 0 {
		return fmt.Errorf("counts must be positive (rounds %d, tcp-rounds %d, n %d, warmup %d)", c.Rounds, c.TCPRounds, c.N, c.Warmup)
	}
	if c.Pace < 0 || c.PunchWait <= 0 || c.Timeout <= 0 {
		return fmt.Errorf("pace %v must not be negative, punch-wait %v and timeout %v positive", c.Pace, c.PunchWait, c.Timeout)
	}
	return nil
}

// Names of the latency paths, the rows of the report.
const (
	PathHolePunched = "direct, hole-punched (cone NATs)"
	PathRelayed     = "relayed by the server's relay (symmetric NATs)"
	PathViaServer   = "through the server (--p2p none, no relay)"
)

// relayPaths are the latency paths in report order, with the Via their
// messages should arrive with, and what each measures.
var relayPaths = []struct{ path, via, what string }{
	{PathHolePunched, "p2p", "after the punch of round 1, alice's node to bob's over the connection the punch made"},
	{PathRelayed, "relayed", "behind routers that map each connection to a new port (MASQUERADE --random-fully): " +
		"the punch cannot pass, the messages take the circuit through the server's relay"},
	{PathViaServer, "server", "nodes that listen nowhere, and a server without a relay: MQTT up to the server, its push down to bob"},
}

// PunchRound is one timed upgrade from relayed to direct.
type PunchRound struct {
	// Ready is from the nodes' start until both held a relay slot, the
	// moment the other times start from (hole punching may start later:
	// a relayed connection open by then is punched once it has).
	Ready time.Duration
	// Listen is what the relay and the nodes listen on: "tcp+quic" or
	// "tcp".
	Listen string
	// ToRelayed is from both nodes online (friends, relay slots held,
	// alice knowing bob's relayed address) until the first message is
	// stored at bob; FirstVia is how it came (relayed, or p2p when the
	// punch beat it).
	ToRelayed time.Duration
	FirstVia  string
	// ToDirect is from the same moment until the first message stored
	// with Via p2p; Before counts the messages before it (one every
	// Pace after the previous one is stored), by Via.
	ToDirect time.Duration
	Before   map[string]int
	// Conns are alice's direct connections to bob afterwards (their
	// transport), as peers' conns shows them.
	Conns []string
	Err   string
}

// RelayResults are the figures of a relay benchmark run.
type RelayResults struct {
	Config     RelayConfig
	Skipped    string // why nothing ran: namespaces cannot be made here
	Rounds     []PunchRound
	Latency    map[string]Latencies      // by path
	LatencyErr map[string]string         // by path: why the run stopped early
	Via        map[string]map[string]int // by path: how the timed messages arrived
	Notes      []string
	Errors     []string // what kept part of the run from happening
	Load       [2]string
}

// RunRelay times the relayed start and the hole punch, then latency
// direct, relayed and through the server, each setting in a natlab
// network of its own. It never fails on a figure: setup failures are in
// Errors; where namespaces cannot be made, Skipped says why and nothing
// ran.
func RunRelay(ctx context.Context, cfg RelayConfig) *RelayResults {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	res := &RelayResults{Config: cfg, Latency: map[string]Latencies{}, LatencyErr: map[string]string{}, Via: map[string]map[string]int{}}
	res.Load[0] = loadAverage()
	defer func() { res.Load[1] = loadAverage() }()
	err := inRunDir("relaybench", func(dir string) { res.run(ctx, dir) },
		func() bool { return cfg.Keep || len(res.Errors) > 0 },
		func(note string) { res.Notes = append(res.Notes, note) })
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	return res
}

func (res *RelayResults) progress(format string, args ...any) {
	fmt.Fprintf(res.Config.Progress, "relaybench: "+format+"\n", args...)
}

func (res *RelayResults) run(ctx context.Context, dir string) {
	cfg := res.Config
	for i := range cfg.Rounds + cfg.TCPRounds {
		spec := natWorldSpec{name: fmt.Sprintf("punch-%d", i+1), relay: true, tcpOnly: i >= cfg.Rounds}
		listen := map[bool]string{false: "tcp+quic", true: "tcp"}[spec.tcpOnly]
		res.progress("round %d of %d: alice and bob behind cone NATs on %s, relayed until the hole punch", i+1, cfg.Rounds+cfg.TCPRounds, listen)
		ok := res.inWorld(ctx, dir, spec, func(w *natWorld) {
			round := res.punch(ctx, w)
			round.Listen, round.Ready = listen, w.ready
			res.Rounds = append(res.Rounds, round)
			if i == 0 && round.Err == "" {
				res.progress("latency direct: %d samples after %d warm-up", cfg.N, cfg.Warmup)
				res.latency(ctx, w, PathHolePunched)
			}
		})
		if !ok {
			return
		}
	}
	res.progress("latency relayed: alice and bob behind symmetric NATs")
	if !res.inWorld(ctx, dir, natWorldSpec{name: "symmetric", symmetric: true, relay: true}, func(w *natWorld) {
		res.latency(ctx, w, PathRelayed)
	}) {
		return
	}
	res.progress("latency through the server: nodes that listen nowhere, no relay")
	res.inWorld(ctx, dir, natWorldSpec{name: "server", relay: false}, func(w *natWorld) {
		res.latency(ctx, w, PathViaServer)
	})
	res.Notes = append(res.Notes,
		"every setting is a fresh natlab network (the NAT tests' own): the server on a public segment, alice and bob each behind a router that masquerades and drops what comes from outside unasked",
		"every link is a veth pair on this machine with no delay of its own, so the latency paths differ only by what the hops do (the relay, the server); "+
			"a real network's round trips come on top: alice↔bob direct, alice↔server↔bob relayed and through the server",
		"history_push is deferred (--sync-interval 1h) and --direct-timeout is 3s on every node, so the figures are of the delivery path alone",
		"a relayed address is dialled 500 ms after a peer's direct ones while those are still being tried (behind a NAT they lead nowhere): "+
			"on TCP alone they fail at once and the relay is dialled; a QUIC dial stays pending, and the first relayed message waits the 500 ms out",
		"go-libp2p starts hole punching once a node knows a public address of its own, looked for at 0.25 s then at doubling intervals up to 5 s "+
			"(possibly after the \"ready\" column); a relayed connection opened before that is punched once it has")
}

// inWorld builds a world, runs measure in it and tears it down. It
// reports false when the run should stop: the world could not be made.
func (res *RelayResults) inWorld(ctx context.Context, dir string, spec natWorldSpec, measure func(*natWorld)) bool {
	w, err := startNATWorld(ctx, res.Config.MQTTer, dir, spec)
	if w != nil {
		defer func() { res.Errors = append(res.Errors, w.close()...) }()
	}
	if errors.Is(err, natlab.ErrUnavailable) {
		res.Skipped = err.Error()
		return false
	}
	if err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("setup %s: %v", spec.name, err))
		return false
	}
	measure(w)
	return ctx.Err() == nil
}

// punch sends alice's messages to bob, one every Pace once the previous
// one is stored, from the moment both are online until one arrives
// direct.
func (res *RelayResults) punch(ctx context.Context, w *natWorld) PunchRound {
	cfg := res.Config
	round := PunchRound{Before: map[string]int{}}
	ctx, cancel := context.WithCancel(ctx)
	a := newArrivals()
	wait := a.follow(ctx, w.from.api, w.to.api)
	defer func() {
		cancel()
		_ = wait()
	}()
	start := time.Now()
	for i := 0; ; i++ {
		r, err := w.from.api.Send(ctx, node.SendRequest{To: "bob", Text: fmt.Sprintf("relaybench punch %d", i)})
		if err != nil {
			round.Err = fmt.Sprintf("message %d: %v", i, err)
			return round
		}
		v, err := a.wait(ctx, r.MsgId, false, cfg.Timeout)
		if err != nil {
			round.Err = fmt.Sprintf("message %d: %v", i, err)
			return round
		}
		at := v.stored.Sub(start)
		if i == 0 {
			round.ToRelayed, round.FirstVia = at, v.via
		}
		if v.via == "p2p" {
			round.ToDirect = at
			break
		}
		round.Before[v.via]++
		if time.Since(start) > cfg.PunchWait {
			round.Err = fmt.Sprintf("no message went direct within %v (before: %v)", cfg.PunchWait, round.Before)
			return round
		}
		if err := sleep(ctx, cfg.Pace); err != nil {
			round.Err = err.Error()
			return round
		}
	}
	rows, err := w.from.api.Peers(ctx)
	if err != nil {
		round.Err = fmt.Sprintf("peers: %v", err)
		return round
	}
	for _, r := range rows {
		for _, c := range r.Conns {
			if r.User == "bob" && !strings.Contains(c, "/p2p-circuit") {
				round.Conns = append(round.Conns, c)
			}
		}
	}
	return round
}

// latency times alice's messages to bob on path and notes those that
// arrived another way.
func (res *RelayResults) latency(ctx context.Context, w *natWorld, path string) {
	cfg := res.Config
	s, err := apiLatency(ctx, w.from, w.to, "bob", false, cfg.Warmup, cfg.N, cfg.Timeout)
	res.Latency[path] = Summarize(s.stored)
	res.Via[path] = s.via
	if err != nil {
		res.LatencyErr[path] = err.Error()
	}
	for _, p := range relayPaths {
		for how, count := range s.via {
			if p.path == path && how != p.via {
				res.Notes = append(res.Notes, fmt.Sprintf("%s: %d samples arrived via %s, not %s", path, count, how, p.via))
			}
		}
	}
}

// Failed reports whether part of the run could not be set up.
func (res *RelayResults) Failed() bool { return len(res.Errors) > 0 }
