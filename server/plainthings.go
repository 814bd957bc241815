package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// What the server does for things without a node (plain MQTT devices): it
// runs their rules, brings the answers to a chain's commands to the
// chain's origin, and answers the commands that expired before they could
// be delivered (expired.go). A thing's node does all of this itself, and
// signs what it writes; the server acts only on unsigned messages, which
// only a plain client's connection writes, so nothing is done twice.

// Bounds of that work.
const (
	// maxThingChores bounds the work waiting for its goroutine; past it
	// the work is dropped, counted and logged.
	maxThingChores = 1024
	// maxReportsSeen bounds the reports remembered so that one report a
	// device writes into several dms fires its rules once.
	maxReportsSeen = 4096
	// maxSameID bounds the messages looked at that share a command's MsgId
	// (unique per author only).
	maxSameID = 8
	// choreTimeout bounds one piece of work.
	choreTimeout = 10 * time.Second
)

// Reasons a server-run firing is dropped beyond the guards' (thing.Drop*).
const (
	dropQueue   = "queue"   // too much work waiting
	dropRefused = "refused" // the accept path refused the command
	dropStore   = "store"   // storing it failed
)

// errExpiredUndelivered is the error of the result the server records for
// a command that expired before it reached its plain device.
const errExpiredUndelivered = "expired before delivery"

// plainThings is the server's state for things without a node.
type plainThings struct {
	guardOnce sync.Once
	guard     *thing.Guard

	mu          sync.Mutex
	chores      []func(context.Context)
	running     bool
	reports     map[string]struct{}
	reportOrder []string
}

func (p *plainThings) loopGuard() *thing.Guard {
	p.guardOnce.Do(func() { p.guard = thing.NewGuard() })
	return p.guard
}

// firstReport reports whether m is a report not seen before: the same
// From, TimeCreate and payload in another dm is the same report.
func (p *plainThings) firstReport(m *wire.Message) bool {
	h := sha256.Sum256(m.Payload)
	key := m.From + "\x00" + strconv.FormatInt(m.TimeCreate, 10) + "\x00" + hex.EncodeToString(h[:16])
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, seen := p.reports[key]; seen {
		return false
	}
	if p.reports == nil {
		p.reports = make(map[string]struct{})
	}
	p.reports[key] = struct{}{}
	p.reportOrder = append(p.reportOrder, key)
	if len(p.reportOrder) > maxReportsSeen {
		delete(p.reports, p.reportOrder[0])
		p.reportOrder[0] = ""
		p.reportOrder = p.reportOrder[1:]
	}
	return true
}

// thingMetrics count what the server does for things without a node.
type thingMetrics struct {
	rulesFired      prometheus.Counter
	rulesDropped    *prometheus.CounterVec
	commandsExpired prometheus.Counter
}

func (m *metrics) addThingMetrics() {
	m.things = thingMetrics{
		rulesFired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mqtter_rule_firings_total", Help: "Commands made by rules the server runs for things without a node.",
		}),
		rulesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mqtter_rule_firings_dropped_total", Help: "Firings of rules the server runs that were dropped, by reason (hops, self, duplicate, rate, unbound, queue, refused, store).",
		}, []string{"reason"}),
		commandsExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mqtter_commands_expired_total", Help: "Deliveries of a command past its expiry withheld from a thing's device that is not a node.",
		}),
	}
	m.reg.MustRegister(m.things.rulesFired, m.things.rulesDropped, m.things.commandsExpired)
}

// chore queues work for things without a node, off the paths that must
// not block (the store's writer callback, a session's writer). One
// goroutine at a time runs the queue, on a slot of the worker pool, so
// Close waits for it. It reports false when the queue is full.
func (s *Server) chore(fn func(context.Context)) bool {
	p := &s.plain
	p.mu.Lock()
	if len(p.chores) >= maxThingChores {
		p.mu.Unlock()
		return false
	}
	p.chores = append(p.chores, fn)
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go s.runChores()
	}
	return true
}

func (s *Server) runChores() {
	p := &s.plain
	stop := func() {
		p.mu.Lock()
		p.chores, p.running = nil, false
		p.mu.Unlock()
	}
	select {
	case s.workers <- struct{}{}:
	case <-s.done:
		stop()
		return
	}
	defer func() { <-s.workers }()
	for {
		if isClosed(s.done) {
			stop()
			return
		}
		p.mu.Lock()
		if len(p.chores) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		fn := p.chores[0]
		p.chores[0] = nil
		p.chores = p.chores[1:]
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), choreTimeout)
		fn(ctx)
		cancel()
	}
}

// afterStored takes a message newly stored: unsigned feedback a thing's
// plain client wrote runs that thing's rules (state, event) or reaches
// its chain's origin (ack, result). It runs on the store's writer
// goroutine and never blocks.
func (s *Server) afterStored(sess *session, m wire.Message) {
	if sess == nil || sess.kind != KindThing || m.Signed() || m.MsgType != wire.MsgTypeFeedback {
		return
	}
	if !s.chore(func(ctx context.Context) { s.plainFeedback(ctx, m) }) {
		s.metrics.things.rulesDropped.WithLabelValues(dropQueue).Inc()
		s.log.Warn("feedback of a thing without a node not looked at: too much work waiting", "thing", m.From, "msg_id", m.MsgId)
	}
}

func (s *Server) plainFeedback(ctx context.Context, m wire.Message) {
	fb, err := thing.ParseFeedback(m.Payload)
	if err != nil {
		return // accept parsed it
	}
	switch fb.Kind {
	case thing.KindState, thing.KindEvent:
		s.fireRules(ctx, &m, &fb)
	case thing.KindAck, thing.KindResult:
		c, _, ok := s.commandTo(ctx, m.From, fb.Cmd)
		if ok {
			s.toOrigin(ctx, m.From, m.Feeds, &c, fb, m.TimeCreate)
		}
	}
}

// fireRules runs the rules of thing m.From (as A) that the server holds
// on its report fb, with the loop guards of a thing's node, and writes
// each firing's command through the accept path.
func (s *Server) fireRules(ctx context.Context, m *wire.Message, fb *thing.Feedback) {
	all, err := s.db.RulesOf(ctx, m.From)
	if err != nil {
		s.log.Error("rules of a thing without a node", "thing", m.From, "err", err)
		return
	}
	var rules []thing.Rule
	for _, r := range all {
		if r.A == m.From {
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 || !s.plain.firstReport(m) {
		return
	}
	r := rights{ctx, s}
	bound := func(person string) bool {
		state, kind, err := r.Tie(m.From, person)
		return err == nil && state == wire.StateBound && kind == wire.KindPerson
	}
	fired, drops := s.plain.loopGuard().Plan(rules, fb, s.causeTrace(ctx, m.From, fb), m.MsgId, bound, time.Now())
	for _, d := range drops {
		s.ruleDropped(m.From, d, nil)
	}
	for _, f := range fired {
		s.sendFiring(ctx, f)
	}
}

// causeTrace is the trace of the command that caused a report of thing
// name: the trace of the command its cause names, as the server stored
// it, or else the trace the report carries (which can only make a chain
// look longer, never start it afresh), or nil (the chain starts here).
func (s *Server) causeTrace(ctx context.Context, name string, fb *thing.Feedback) *thing.Trace {
	if fb.Cause != "" && fb.Cause != thing.CauseLocal {
		if c, _, ok := s.commandTo(ctx, name, fb.Cause); ok {
			return &c.Trace
		}
	}
	return fb.Trace
}

// commandTo finds the stored command msgID addressed to thing name.
func (s *Server) commandTo(ctx context.Context, name, msgID string) (thing.Command, wire.Message, bool) {
	msgs, err := s.db.MessagesByID(ctx, msgID, maxSameID)
	if err != nil {
		s.log.Warn("look up a command", "msg_id", msgID, "err", err)
		return thing.Command{}, wire.Message{}, false
	}
	for _, m := range msgs {
		if m.MsgType != wire.MsgTypeCommand || m.From == name {
			continue
		}
		if f, err := wire.ParseFeeds(m.Feeds); err != nil || f.Kind != wire.FeedsDM || !f.Has(name) {
			continue
		}
		if c, err := thing.ParseCommand(m.Payload); err == nil {
			return c, m, true
		}
	}
	return thing.Command{}, wire.Message{}, false
}

// sendFiring writes a firing's command as its thing A's node would: From
// A, in the dm of A and B, the rule as its grant, unsigned, Device the
// server's own (wire.ServerDevice), through the accept path, so the
// command rule and the grant check apply and it is pushed like any
// message.
func (s *Server) sendFiring(ctx context.Context, f thing.Firing) {
	payload, err := json.Marshal(&f.Command)
	if err != nil {
		s.log.Error("encode a rule's command", "rule", f.Rule.ID, "err", err)
		return
	}
	now := time.Now().UnixMilli()
	m := wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.DM(f.Rule.A, f.Rule.B), MsgType: wire.MsgTypeCommand,
		From: f.Rule.A, Payload: payload, TimeCreate: now, Device: wire.ServerDevice}
	d := thing.Drop{Rule: f.Rule.ID, OriginMsg: f.Command.Trace.OriginMsg}
	err = s.accept(ctx, nil, false, []wire.Message{m}, func(_ []store.Appended, err error) {
		if err != nil {
			d.Reason = dropStore
			s.ruleDropped(f.Rule.A, d, err)
		}
	})
	if err != nil {
		d.Reason = dropRefused
		s.ruleDropped(f.Rule.A, d, err)
		return
	}
	s.metrics.things.rulesFired.Inc()
	s.log.Info("rule fired for a thing without a node", "rule", f.Rule.ID, "a", f.Rule.A, "b", f.Rule.B,
		"action", f.Command.Action, "msg_id", m.MsgId, "origin", f.Command.Trace.Origin, "hops", f.Command.Trace.Hops)
}

// ruleDropped counts and logs a server-run firing that was dropped.
func (s *Server) ruleDropped(name string, d thing.Drop, err error) {
	s.metrics.things.rulesDropped.WithLabelValues(d.Reason).Inc()
	args := []any{"thing", name, "rule", d.Rule, "origin_msg", d.OriginMsg, "reason", d.Reason}
	if err != nil {
		args = append(args, "err", err)
	}
	s.log.Warn("rule firing dropped", args...)
}

// toOrigin brings an answer (fb, an ack or result thing name wrote, or
// the server for it, in feeds) to command c to the chain's origin when
// the origin is not in feeds: a copy in the dm of the thing and the
// origin, with the command's trace, as a thing's node sends it. The write
// rule applies: an origin the thing is not related to gets nothing.
func (s *Server) toOrigin(ctx context.Context, name, feeds string, c *thing.Command, fb thing.Feedback, at int64) {
	origin := c.Trace.Origin
	f, err := wire.ParseFeeds(feeds)
	if err != nil || origin == name || f.Has(origin) {
		return
	}
	tr := c.Trace
	fb.Trace = &tr
	err = s.writeAsThing(ctx, asThing{Thing: name, Device: wire.ServerDevice, Feeds: wire.DM(name, origin), Feedback: fb, At: at},
		func(_ wire.Message, _ store.Appended, err error) {
			if err != nil {
				s.log.Warn("answer to a chain's origin not stored", "thing", name, "origin", origin, "cmd", fb.Cmd, "err", err)
			}
		})
	if err != nil {
		s.log.Debug("answer not brought to the chain's origin", "thing", name, "origin", origin, "cmd", fb.Cmd, "err", err)
	}
}
