package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Limits of the thing runtime.
const (
	// thingWorkQueue bounds the work waiting for the runtime's loop
	// (incoming commands, program output, listener changes).
	thingWorkQueue = 1024
	// maxQueuedCommands bounds the commands waiting for the device
	// program; past it a command is rejected as busy.
	maxQueuedCommands = 256
	// maxRunningCommands bounds the commands handed over and not answered;
	// past it commands wait in the queue.
	maxRunningCommands = 256
	// maxRecentCommands is how many answered commands' traces are kept,
	// so that state or an event the program reports after its result
	// still finds the chain it belongs to.
	maxRecentCommands = 256
	// thingBurst is how much more ready work the loop takes before it
	// commits what the work queued: a program that writes its state and
	// its result at once has them committed together.
	thingBurst = 64
	// thingTick is how often expiries are checked.
	thingTick = 100 * time.Millisecond
)

// Texts of the results the node gives itself.
const (
	errInterrupted   = "interrupted: the node restarted before the device answered"
	errProgramExited = "the device program exited before it answered"
	errExpired       = "expired before the device answered"
)

// thingRuntime is what a node does when its account is a thing: it takes
// the commands addressed to it (each runs at most once, whatever path
// brings it and whatever crash comes between), hands them to the device
// program (--thing-handler) or to the local API's listeners, sends the
// feedback the program reports to whoever must hear of it, keeps and
// publishes the thing's description, and runs the rules that make this
// thing command others. One loop goroutine owns the commands; the others
// hand it work through a bounded queue.
type thingRuntime struct {
	n       *Node
	log     *slog.Logger
	self    string
	started time.Time
	rules   *ruleEngine
	program *deviceProgram // nil without --thing-handler

	work          chan func()
	serverKick    chan struct{}
	needDescribe  atomic.Bool
	needRules     atomic.Bool
	ctx           context.Context
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	startOnce     sync.Once
	closeOnce     sync.Once
	nRunning      atomic.Int64
	nQueued       atomic.Int64
	programIsUp   atomic.Bool
	programDefect atomic.Int64

	// Owned by the loop goroutine.
	running     map[string]*openCommand // by MsgId
	queued      []*openCommand
	recent      map[string]thing.Trace // answered commands' traces, by MsgId
	recentOrder []string
	stdin       chan<- []byte    // the program's, while it runs
	told        map[string]int64 // person → description version sent
	pending     localdb.Outgoing // queued by the work, committed by flush
	hold        map[string]bool  // MsgIds of pending that may wait for company
	release     []string         // conversations whose held messages need wait no more (a burst ended)
	seen        map[string]bool  // "From MsgId" of pending.Seen
	stateRev    int64            // the last state revision given out

	mu        sync.Mutex
	listeners *fanout[thing.Invocation] // GET /v1/thing/invocations
	desc      *thing.Description
}

// openCommand is a command taken and not answered yet.
type openCommand struct {
	msgID, from string
	cmd         thing.Command
	toProgram   bool // handed to the device program (not only to listeners)
}

func newThingRuntime(n *Node) *thingRuntime {
	ctx, cancel := context.WithCancel(n.ctx)
	rt := &thingRuntime{
		n: n, log: n.log.With("part", "thing"), self: n.cfg.User, started: time.Now(),
		work:       make(chan func(), thingWorkQueue),
		serverKick: make(chan struct{}, 1),
		ctx:        ctx, cancel: cancel,
		running:   make(map[string]*openCommand),
		recent:    make(map[string]thing.Trace),
		listeners: newFanout[thing.Invocation](programStdinQueue, nil), // a listener that does not keep up is dropped
	}
	rt.rules = newRuleEngine(n.cfg.User, func(d DroppedFiring) {
		n.counts.rulesDropped.Add(1)
		rt.log.Warn("rule firing dropped", "rule", d.Rule, "origin_msg", d.OriginMsg, "reason", d.Reason)
	})
	if n.cfg.ThingHandler != "" {
		rt.program = &deviceProgram{
			command: n.cfg.ThingHandler,
			log:     rt.log.With("program", n.cfg.ThingHandler),
			onUp:    rt.programUp,
			onDown:  rt.programDown,
			onLine:  rt.programLine,
		}
	}
	return rt
}

// start loads what was kept (description, rules), takes up the commands
// a previous run left open, and starts the loop, the server sync and the
// device program.
func (rt *thingRuntime) start(ctx context.Context) error {
	if err := rt.loadKept(ctx); err != nil {
		return err
	}
	rt.startOnce.Do(func() {
		rt.wg.Add(2)
		go rt.loop()
		go rt.serverLoop()
		if rt.program != nil {
			rt.wg.Add(1)
			go func() {
				defer rt.wg.Done()
				rt.program.run(rt.ctx)
			}()
		}
	})
	return nil
}

// close stops the device program and the loops and waits for them.
func (rt *thingRuntime) close() {
	rt.closeOnce.Do(func() {
		rt.cancel()
		rt.wg.Wait()
		rt.listeners.closeAll() // ends the invocation streams of the local API
	})
}

// post hands fn to the loop, waiting while the queue is full.
func (rt *thingRuntime) post(fn func()) bool {
	select {
	case rt.work <- fn:
		return true
	case <-rt.ctx.Done():
		return false
	}
}

func (rt *thingRuntime) loop() {
	defer rt.wg.Done()
	rt.recoverOpen()
	rt.flush()
	tick := time.NewTicker(thingTick)
	defer tick.Stop()
	var ticks int
	for {
		select {
		case <-rt.ctx.Done():
			return
		case fn := <-rt.work:
			fn()
			rt.drainWork()
		case now := <-tick.C:
			rt.expire(now)
			if ticks++; ticks%10 == 0 {
				rt.tellDescription() // to persons bound since
			}
		}
		rt.dispatchQueued() // room may have come
		rt.flush()
		rt.nRunning.Store(int64(len(rt.running)))
		rt.nQueued.Store(int64(len(rt.queued)))
	}
}

// drainWork runs the work that is ready now, up to thingBurst items, so
// that a burst is committed at once.
func (rt *thingRuntime) drainWork() {
	for range thingBurst {
		select {
		case fn := <-rt.work:
			fn()
		default:
			return
		}
	}
}

// intake takes a message newly stored on this device (any path): a
// command addressed to this account goes to the loop. It never blocks the
// ingester: a full queue drops the command unrecorded (so a copy that
// comes again by another path may still run), counted and logged.
func (rt *thingRuntime) intake(m wire.Message, via string) {
	if !rt.addressedHere(&m) {
		return
	}
	// A device restoring the account's history with sync must never act
	// on it: what the history holds was for the device that had the
	// account then, and ran there or expired. Expiry guards it anyway;
	// this also guards a command with a far expiry (or a sender's clock
	// far ahead). A live command comes by push or directly; one a sync
	// brings after this node started is still taken.
	if via == localdb.ViaSync && m.TimeCreate < rt.started.UnixMilli() {
		rt.log.Debug("command from history not run", "msg_id", m.MsgId, "from", m.From)
		return
	}
	select {
	case rt.work <- func() { rt.takeCommand(m) }:
	default:
		rt.n.counts.thingRejected.Add(1)
		rt.log.Warn("command dropped: the thing runtime is too far behind", "msg_id", m.MsgId, "from", m.From)
	}
}

// addressedHere reports whether m is a command to this account from
// another one.
func (rt *thingRuntime) addressedHere(m *wire.Message) bool {
	if m.MsgType != wire.MsgTypeCommand || m.From == rt.self {
		return false
	}
	f, err := wire.ParseFeeds(m.Feeds)
	return err == nil && f.Kind == wire.FeedsDM && f.Has(rt.self)
}

// takeCommand runs on the loop: the first sighting of a command decides
// its fate; a later one (another path, a retry) changes nothing.
func (rt *thingRuntime) takeCommand(m wire.Message) {
	ctx := rt.ctx
	// The loop is the only one to record commands, and records a new one
	// with its ack (flush): a read tells whether it was seen before,
	// committed or still pending.
	key := m.From + " " + m.MsgId
	known, err := rt.n.db.CommandKnown(ctx, m.MsgId, m.From)
	if err != nil {
		rt.log.Error("look up a command", "msg_id", m.MsgId, "err", err)
		return
	}
	if known || rt.seen[key] {
		rt.log.Debug("command seen before; not run again", "msg_id", m.MsgId, "from", m.From)
		return
	}
	if rt.seen == nil {
		rt.seen = make(map[string]bool)
	}
	rt.seen[key] = true
	rt.pending.Seen = append(rt.pending.Seen, localdb.SeenCommand{MsgId: m.MsgId, From: m.From, Payload: m.Payload})
	// The direct path checked this already and the server checks what it
	// relays; the book is asked again whatever the path.
	err = thing.MayWrite(bookRights{rt.n.book}, &m)
	if errors.Is(err, thing.ErrNotAllowed) && rt.n.link.Connected() {
		// The book may lag the server: the binding that allows the
		// command can be a moment old (the command came through the
		// server, which checked it). Ask the server once before refusing.
		if rerr := rt.n.refreshRelations(ctx); rerr == nil {
			err = thing.MayWrite(bookRights{rt.n.book}, &m)
		}
	}
	if err != nil {
		if errors.Is(err, thing.ErrNotAllowed) {
			rt.n.counts.refused.Add(1)
			rt.log.Warn("command refused", "msg_id", m.MsgId, "from", m.From, "err", err)
			rt.mark(m.MsgId, m.From, localdb.CommandAnswered, "refused")
			return
		}
		rt.reject(&openCommand{msgID: m.MsgId, from: m.From}, err.Error())
		return
	}
	c, err := thing.ParseCommand(m.Payload)
	if err != nil { // MayWrite parsed it; kept for the compiler's sake
		rt.reject(&openCommand{msgID: m.MsgId, from: m.From}, err.Error())
		return
	}
	oc := &openCommand{msgID: m.MsgId, from: m.From, cmd: c}
	if c.Expired(time.Now()) {
		rt.answer(oc, thing.ResultTimeout, nil, "expired before it arrived")
		return
	}
	if time.UnixMilli(c.Expires).After(time.Now().Add(thing.MaxExpiry)) {
		// A command that may wait days is how a device gets switched
		// long after anyone meant it.
		rt.reject(oc, fmt.Sprintf("expires more than %v from now", thing.MaxExpiry))
		return
	}
	if d := rt.description(); d != nil {
		if err := d.CheckCommand(&c); err != nil {
			rt.reject(oc, err.Error())
			return
		}
	}
	if rt.available() && len(rt.running) < maxRunningCommands && len(rt.queued) == 0 {
		rt.run(oc)
		return
	}
	if len(rt.queued) >= maxQueuedCommands {
		rt.reject(oc, "busy: the device is not running and too many commands wait for it")
		return
	}
	rt.queued = append(rt.queued, oc)
	rt.ack(oc, thing.AckQueued, "")
}

// available reports whether a command can be handed over now: the device
// program runs, or the local API has a listener.
func (rt *thingRuntime) available() bool {
	if rt.stdin != nil {
		return true
	}
	return rt.listeners.count() > 0
}

// run marks the command running and acks it, durably and in one
// commit, then hands it over. A crash after the mark leaves it running,
// and a restart answers it failed instead of running it again.
func (rt *thingRuntime) run(oc *openCommand) {
	rt.mark(oc.msgID, oc.from, localdb.CommandRunning, "")
	rt.ack(oc, thing.AckAccepted, "")
	if err := rt.flush(); err != nil {
		if rt.ctx.Err() == nil {
			rt.answer(oc, thing.ResultFailed, nil, "the thing's node could not record the command")
		}
		return
	}
	rt.running[oc.msgID] = oc
	rt.n.counts.thingCommands.Add(1)
	inv := thing.NewInvocation(oc.msgID, oc.from, &oc.cmd)
	line, err := json.Marshal(inv)
	if err != nil {
		rt.answer(oc, thing.ResultFailed, nil, "encode invocation: "+err.Error())
		return
	}
	if rt.stdin != nil {
		select {
		case rt.stdin <- append(line, '\n'):
			oc.toProgram = true
		default:
			rt.log.Warn("device program's stdin is full; the command waits for its expiry", "msg_id", oc.msgID)
		}
	}
	rt.listeners.send(inv)
}

// dispatchQueued runs the queued commands still valid, in order, while
// the program or a listener is there and fewer than maxRunningCommands
// run.
func (rt *thingRuntime) dispatchQueued() {
	if len(rt.queued) == 0 || !rt.available() {
		return
	}
	now := time.Now()
	for len(rt.queued) > 0 && len(rt.running) < maxRunningCommands {
		oc := rt.queued[0]
		rt.queued[0] = nil
		rt.queued = rt.queued[1:]
		if oc.cmd.Expired(now) {
			rt.answer(oc, thing.ResultTimeout, nil, errExpired)
			continue
		}
		rt.run(oc)
	}
}

// expire answers timeout for every open command past its expiry.
func (rt *thingRuntime) expire(now time.Time) {
	for id, oc := range rt.running {
		if oc.cmd.Expired(now) {
			delete(rt.running, id)
			rt.answer(oc, thing.ResultTimeout, nil, errExpired)
		}
	}
	kept := rt.queued[:0]
	for _, oc := range rt.queued {
		if oc.cmd.Expired(now) {
			rt.answer(oc, thing.ResultTimeout, nil, errExpired)
			continue
		}
		kept = append(kept, oc)
	}
	clear(rt.queued[len(kept):])
	rt.queued = kept
}

// recoverOpen takes up what a previous run left open: a command left
// running is answered failed (it may have run, or half run: it is never
// run again), one only received runs if still valid.
func (rt *thingRuntime) recoverOpen() {
	open, err := rt.n.db.OpenCommands(rt.ctx)
	if err != nil {
		rt.log.Error("read open commands", "err", err)
		return
	}
	now := time.Now()
	for _, tc := range open {
		oc := &openCommand{msgID: tc.MsgId, from: tc.From}
		c, err := thing.ParseCommand(tc.Payload)
		if err != nil {
			rt.reject(oc, err.Error())
			continue
		}
		oc.cmd = c
		switch {
		case tc.State == localdb.CommandRunning:
			rt.log.Warn("command interrupted by a restart; answered failed", "msg_id", oc.msgID, "from", oc.from)
			rt.answer(oc, thing.ResultFailed, nil, errInterrupted)
		case c.Expired(now):
			rt.answer(oc, thing.ResultTimeout, nil, errExpired)
		case len(rt.queued) < maxQueuedCommands:
			rt.queued = append(rt.queued, oc)
		default:
			rt.reject(oc, "busy: too many commands wait for the device")
		}
	}
	// Commands stored just before the process ended, not yet taken: they
	// never ran, so they are taken now like any other.
	lost, err := rt.n.db.UnrecordedCommands(rt.ctx, rt.self, now.Add(-thing.MaxExpiry).UnixMilli())
	if err != nil {
		rt.log.Error("read commands not taken", "err", err)
		return
	}
	for _, m := range lost {
		if rt.addressedHere(&m) {
			rt.log.Info("taking a command stored before a restart", "msg_id", m.MsgId, "from", m.From)
			rt.takeCommand(m)
		}
	}
}

// ack tells the command's sender (and the chain's origin) where it stands.
func (rt *thingRuntime) ack(oc *openCommand, status, errText string) {
	fb := thing.Feedback{Kind: thing.KindAck, Cmd: oc.msgID, Action: oc.cmd.Action, Status: status, Error: errText}
	if oc.cmd.Expires > 0 {
		tr := oc.cmd.Trace
		fb.Trace = &tr
	}
	from := len(rt.pending.Messages)
	rt.sendFeedback(&fb, rt.senders(oc))
	if status == thing.AckAccepted {
		// The program's answer often comes within ackHold: the result
		// then goes with the ack rather than behind its round trip.
		for _, m := range rt.pending.Messages[from:] {
			rt.holdBack(m.MsgId)
		}
	}
}

// reject acks a command rejected and closes it.
func (rt *thingRuntime) reject(oc *openCommand, reason string) {
	rt.n.counts.thingRejected.Add(1)
	rt.log.Info("command rejected", "msg_id", oc.msgID, "from", oc.from, "reason", reason)
	rt.ack(oc, thing.AckRejected, truncate(reason, 1000))
	rt.mark(oc.msgID, oc.from, localdb.CommandAnswered, thing.AckRejected)
}

// answer sends the command's result and closes it for good.
func (rt *thingRuntime) answer(oc *openCommand, status string, output json.RawMessage, errText string) {
	delete(rt.running, oc.msgID)
	if status == thing.ResultTimeout {
		rt.n.counts.thingTimeouts.Add(1)
	}
	fb := thing.Feedback{Kind: thing.KindResult, Cmd: oc.msgID, Action: oc.cmd.Action, Status: status,
		Output: output, Error: truncate(errText, 4000)}
	if oc.cmd.Expires > 0 {
		tr := oc.cmd.Trace
		fb.Trace = &tr
		rt.remember(oc.msgID, tr)
	}
	rt.sendFeedback(&fb, rt.resultTo(oc))
	rt.mark(oc.msgID, oc.from, localdb.CommandAnswered, status)
	// The burst ended: what its state and events hold back for a rule's
	// command (fromProgram) waits for nothing more.
	for _, b := range rt.rules.targets() {
		rt.release = append(rt.release, wire.DM(rt.self, b))
	}
}

// mark queues a command's state change for the loop's next commit, with
// the feedback that goes with it.
func (rt *thingRuntime) mark(msgID, from, state, outcome string) {
	rt.pending.Marks = append(rt.pending.Marks, localdb.CommandMark{MsgId: msgID, From: from, State: state, Outcome: outcome})
}

// remember keeps an answered command's trace for a while.
func (rt *thingRuntime) remember(msgID string, tr thing.Trace) {
	if _, ok := rt.recent[msgID]; !ok {
		rt.recentOrder = append(rt.recentOrder, msgID)
	}
	rt.recent[msgID] = tr
	for len(rt.recentOrder) > maxRecentCommands {
		delete(rt.recent, rt.recentOrder[0])
		rt.recentOrder = rt.recentOrder[1:]
	}
}

// traceOf returns the trace of the command named by cause, if known.
func (rt *thingRuntime) traceOf(cause string) *thing.Trace {
	if oc, ok := rt.running[cause]; ok {
		tr := oc.cmd.Trace
		return &tr
	}
	if tr, ok := rt.recent[cause]; ok {
		return &tr
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
