package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Meta keys of what the thing runtime keeps in localdb.
const (
	metaThingDescription = "thing.description" // the latest description (JSON)
	metaThingRules       = "thing.rules"       // the rules last listed by the server (JSON)
	metaThingToldDesc    = "thing.told"        // person → the description version sent to them (JSON)
)

// errNotRunning is the answer to a result for a command that is not
// running (answered already, timed out, or never there).
var errNotRunning = errors.New("no such command is running")

// loadKept reads the description and the rules a previous run kept.
func (rt *thingRuntime) loadKept(ctx context.Context) error {
	raw, err := rt.n.db.Get(ctx, metaThingDescription)
	switch {
	case err == nil:
		var d thing.Description
		if err := json.Unmarshal([]byte(raw), &d); err != nil || d.Validate() != nil {
			rt.log.Warn("kept description unreadable; waiting for the program's", "err", err)
		} else {
			rt.desc = &d
			rt.needDescribe.Store(true)
		}
	case !errors.Is(err, localdb.ErrNotFound):
		return fmt.Errorf("node: thing description: %w", err)
	}
	raw, err = rt.n.db.Get(ctx, metaThingToldDesc)
	switch {
	case err == nil:
		if err := json.Unmarshal([]byte(raw), &rt.told); err != nil {
			rt.log.Warn("kept description receivers unreadable; telling them again", "err", err)
		}
	case !errors.Is(err, localdb.ErrNotFound):
		return fmt.Errorf("node: thing description receivers: %w", err)
	}
	if rt.told == nil {
		rt.told = make(map[string]int64)
	}
	raw, err = rt.n.db.Get(ctx, metaThingRules)
	switch {
	case err == nil:
		var rules []thing.Rule
		if err := json.Unmarshal([]byte(raw), &rules); err != nil {
			rt.log.Warn("kept rules unreadable; waiting for the server's", "err", err)
		} else {
			rt.rules.set(rules)
		}
	case !errors.Is(err, localdb.ErrNotFound):
		return fmt.Errorf("node: thing rules: %w", err)
	}
	rt.needRules.Store(true)
	if rt.stateRev, err = rt.n.db.LastStateRev(ctx); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// programUp, programDown and programLine are the device program's
// callbacks, on its goroutines: each hands its work to the loop.
func (rt *thingRuntime) programUp(stdin chan<- []byte) {
	rt.programIsUp.Store(true)
	rt.post(func() {
		rt.stdin = stdin
		rt.dispatchQueued()
	})
}

func (rt *thingRuntime) programDown(err error) {
	rt.programIsUp.Store(false)
	rt.post(func() {
		rt.stdin = nil
		// What the program was given died with it: answered, never
		// given to the next one (at most once).
		for _, oc := range rt.running {
			if oc.toProgram {
				rt.answer(oc, thing.ResultFailed, nil, errProgramExited)
			}
		}
	})
}

func (rt *thingRuntime) programLine(line []byte, tooLong bool) {
	if tooLong {
		rt.programDefect.Add(1)
		rt.n.counts.thingBadLines.Add(1)
		rt.log.Warn("device program wrote a line over the limit; skipped", "limit", maxProgramLine, "start", truncate(string(line[:min(len(line), 80)]), 80))
		return
	}
	fb, err := parseProgramLine(line)
	if errors.Is(err, errEmptyLine) {
		return
	}
	if err != nil {
		rt.programDefect.Add(1)
		rt.n.counts.thingBadLines.Add(1)
		rt.log.Warn("device program wrote a line that is not feedback; skipped", "err", err, "line", truncate(string(line), 200))
		return
	}
	rt.post(func() {
		if err := rt.fromProgram(&fb); err != nil {
			rt.log.Warn("device program's feedback not taken", "kind", fb.Kind, "cmd", fb.Cmd, "err", err)
		}
	})
}

// feedback takes a Feedback from the local API (POST /v1/thing/feedback)
// as if the program had written it, and says whether it was taken.
func (rt *thingRuntime) feedback(ctx context.Context, body []byte) error {
	fb, err := parseProgramLine(body)
	if errors.Is(err, errEmptyLine) {
		return badRequest("empty feedback")
	}
	if err != nil {
		return badRequest("%v", err)
	}
	done := make(chan error, 1)
	if !rt.post(func() {
		err := rt.fromProgram(&fb)
		if ferr := rt.flush(); err == nil && ferr != nil {
			err = ferr
		}
		done <- err
	}) {
		return errors.New("node stopping")
	}
	select {
	case err := <-done:
		if errors.Is(err, errNotRunning) {
			return &userError{http.StatusConflict, err.Error()}
		}
		if err != nil {
			return badRequest("%v", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fromProgram takes the program's feedback, on the loop: a result closes
// its command; state and event get their cause, revision and trace, go to
// the thing's people and things, and run the rules; a description
// replaces the kept one if it changed.
func (rt *thingRuntime) fromProgram(fb *thing.Feedback) error {
	switch fb.Kind {
	case thing.KindResult:
		oc, ok := rt.running[fb.Cmd]
		if !ok {
			rt.n.counts.thingIgnored.Add(1)
			return fmt.Errorf("%w: %s", errNotRunning, fb.Cmd)
		}
		rt.answer(oc, fb.Status, fb.Output, fb.Error)
		return nil
	case thing.KindState, thing.KindEvent:
		if fb.Cause == "" {
			fb.Cause = thing.CauseLocal
		}
		if fb.Kind == thing.KindState {
			// Kept with the message in flush's commit: revisions increase
			// across restarts without a commit of their own.
			rt.stateRev = max(rt.stateRev+1, fb.Rev)
			fb.Rev = rt.stateRev
			rt.pending.StateRev = rt.stateRev
		}
		fb.Trace = nil
		if fb.Cause != thing.CauseLocal {
			fb.Trace = rt.traceOf(fb.Cause)
		}
		if err := fb.Validate(); err != nil {
			return err
		}
		from := len(rt.pending.Messages)
		first := rt.sendFeedback(fb, rt.stateTargets())
		if oc, ok := rt.running[fb.Cause]; ok {
			// A running command's result mostly follows at once: its state
			// and events keep the ack company (ackHold) where the result
			// goes, so that all go in one batch rather than the result
			// behind their round trip. So do those to the things this
			// one's rules command: a command a later line of the burst
			// fires goes with them, not behind their round trip (a
			// conversation has one batch in flight).
			to := append(rt.resultTo(oc), rt.rules.targets()...)
			for _, m := range rt.pending.Messages[from:] {
				if f, err := wire.ParseFeeds(m.Feeds); err == nil && slices.Contains(to, f.Peer(rt.self)) {
					rt.holdBack(m.MsgId)
				}
			}
		}
		rt.fireRules(fb, first)
		return nil
	case thing.KindDescription:
		return rt.setDescription(fb.Description)
	}
	return fmt.Errorf("%w: kind %q", thing.ErrBadFeedback, fb.Kind)
}

// description returns the kept description, or nil.
func (rt *thingRuntime) description() *thing.Description {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.desc
}

// setDescription keeps d if it says something new (a version no higher
// than the kept one is raised past it), tells the server (describe) and
// sends it to the persons bound to this thing.
func (rt *thingRuntime) setDescription(d *thing.Description) error {
	nd := *d
	if nd.Thing == "" {
		nd.Thing = rt.self
	}
	if nd.Thing != rt.self {
		return fmt.Errorf("%w: a description of %q, this thing is %s", thing.ErrBadDescription, nd.Thing, rt.self)
	}
	old := rt.description()
	if old != nil {
		if sameDescription(old, &nd) {
			return nil
		}
		if nd.Version <= old.Version {
			nd.Version = old.Version + 1
		}
	}
	if err := nd.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(&nd)
	if err != nil {
		return err
	}
	if err := rt.n.db.Set(rt.ctx, metaThingDescription, string(raw)); err != nil {
		return fmt.Errorf("keep description: %w", err)
	}
	rt.mu.Lock()
	rt.desc = &nd
	rt.mu.Unlock()
	rt.log.Info("description changed", "version", nd.Version)
	rt.needDescribe.Store(true)
	rt.kickServer()
	rt.tellDescription()
	return nil
}

// tellDescription sends the description to each bound person who has not
// had this version yet: at a change, and to a person bound since.
func (rt *thingRuntime) tellDescription() {
	d := rt.description()
	if d == nil {
		return
	}
	var told []string
	for _, p := range rt.boundPersons() {
		if rt.told[p] >= d.Version {
			continue
		}
		if rt.sendFeedback(&thing.Feedback{Kind: thing.KindDescription, Description: d}, []string{p}) != "" {
			told = append(told, p)
		}
	}
	if len(told) == 0 {
		return
	}
	if err := rt.flush(); err != nil {
		return // told again at the next tick
	}
	for _, p := range told {
		rt.told[p] = d.Version
	}
	if raw, err := json.Marshal(rt.told); err == nil {
		if err := rt.n.db.Set(rt.ctx, metaThingToldDesc, string(raw)); err != nil {
			rt.log.Warn("keep description receivers", "err", err)
		}
	}
}

// sameDescription reports whether a and b say the same but for Version.
func sameDescription(a, b *thing.Description) bool {
	x, y := *a, *b
	x.Version, y.Version = 0, 0
	xa, err1 := json.Marshal(&x)
	ya, err2 := json.Marshal(&y)
	return err1 == nil && err2 == nil && string(xa) == string(ya)
}

// sendFeedback queues fb to each target (a message each, made and signed
// now, committed with the rest of the loop's burst by flush) and returns
// the first MsgId.
func (rt *thingRuntime) sendFeedback(fb *thing.Feedback, targets []string) string {
	payload, err := json.Marshal(fb)
	if err != nil {
		rt.log.Error("encode feedback", "kind", fb.Kind, "err", err)
		return ""
	}
	var first string
	for _, to := range targets {
		id, err := rt.queue(SendRequest{To: to, MsgType: wire.MsgTypeFeedback, Payload: payload})
		if err != nil {
			rt.log.Warn("send feedback", "kind", fb.Kind, "to", to, "cmd", fb.Cmd, "err", err)
			continue
		}
		if first == "" {
			first = id
		}
	}
	return first
}

// queue makes and signs a message for the loop's next commit and returns
// its MsgId.
func (rt *thingRuntime) queue(req SendRequest) (string, error) {
	m, err := rt.n.prepare(req, wire.NewMsgID())
	if err != nil {
		return "", err
	}
	rt.pending.Messages = append(rt.pending.Messages, m)
	return m.MsgId, nil
}

// holdBack lets the outbox keep the message msgID back a moment (ackHold)
// for the next message of its conversation: committed, so it counts as
// sent, it only leaves a little later.
func (rt *thingRuntime) holdBack(msgID string) {
	if rt.hold == nil {
		rt.hold = make(map[string]bool)
	}
	rt.hold[msgID] = true
}

// flush commits what the loop queued (messages, and the marks of the
// commands they answer) in one transaction, and hands the messages to
// the outbox. It commits even while the node stops: what the program
// reported is the device's own word and goes out after a restart.
func (rt *thingRuntime) flush() error {
	if len(rt.pending.Messages) == 0 && len(rt.pending.Marks) == 0 && len(rt.pending.Seen) == 0 && rt.pending.StateRev == 0 && len(rt.release) == 0 {
		return nil
	}
	out, hold, release := rt.pending, rt.hold, rt.release
	rt.pending, rt.hold, rt.seen, rt.release = localdb.Outgoing{}, nil, nil, nil
	err := rt.n.enqueue(context.WithoutCancel(rt.ctx), out, hold, release)
	if err != nil {
		rt.log.Error("commit feedback", "messages", len(out.Messages), "marks", len(out.Marks), "err", err)
	}
	return err
}

// senders are who hear of a command's ack and result: its sender, and the
// chain's origin when that is another account related to this thing.
func (rt *thingRuntime) senders(oc *openCommand) []string {
	out := []string{oc.from}
	if o := oc.cmd.Trace.Origin; o != "" && o != oc.from && o != rt.self && rt.n.book.canMessage(o) {
		out = append(out, o)
	}
	return out
}

// resultTo are who hear of a command's result: its sender, the chain's
// origin, and every person bound; an associated thing only when it sent
// the command (rules fire on state and events, never results).
func (rt *thingRuntime) resultTo(oc *openCommand) []string {
	return dedupe(append(rt.senders(oc), rt.boundPersons()...))
}

// audience are who hear of state and events: the persons
// bound to this thing and the things associated with it.
func (rt *thingRuntime) audience() []string {
	b := rt.n.book
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []string
	for user, r := range b.relations {
		if (r.State == wire.StateBound && r.Kind == wire.KindPerson) || r.State == wire.StateAssociated {
			out = append(out, user)
		}
	}
	slices.Sort(out)
	return out
}

// stateTargets are where this thing's state and events go when someone
// hears them: its feed, once, when the server keeps one (list_thing_feeds
// named it; docs/protocol.md, "Things' feeds"), else a dm to each person
// bound and each thing associated, as a server without feeds needs.
func (rt *thingRuntime) stateTargets() []string {
	audience := rt.audience()
	if len(audience) == 0 {
		return nil
	}
	feeds := wire.ThingFeeds(rt.self)
	if _, ok := rt.n.book.group(feeds); ok {
		return []string{feeds}
	}
	return audience
}

// boundPersons are the persons bound to this thing.
func (rt *thingRuntime) boundPersons() []string {
	var out []string
	for _, u := range rt.audience() {
		if rt.boundPerson(u) {
			out = append(out, u)
		}
	}
	return out
}

// boundPerson reports whether user is a person bound to this thing.
func (rt *thingRuntime) boundPerson(user string) bool {
	rt.n.book.mu.RLock()
	defer rt.n.book.mu.RUnlock()
	r, ok := rt.n.book.relations[user]
	return ok && r.State == wire.StateBound && r.Kind == wire.KindPerson
}

// isThing reports whether, as far as the book knows, this account is a
// thing: a person is bound to it or a thing associated with it.
func (rt *thingRuntime) isThing() bool {
	return len(rt.audience()) > 0
}

// dedupe returns list without repeats, in first-seen order.
func dedupe(list []string) []string {
	out := list[:0:0]
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// kickServer asks the server loop to run what is needed.
func (rt *thingRuntime) kickServer() {
	select {
	case rt.serverKick <- struct{}{}:
	default:
	}
}

// onConnect runs after every connect to the server: describe the thing
// and list its rules again.
func (rt *thingRuntime) onConnect() {
	rt.needDescribe.Store(true)
	rt.needRules.Store(true)
	rt.kickServer()
}

// onRelation takes a relation push: the rules of this thing changed.
func (rt *thingRuntime) onRelation(ev wire.RelationEvent) {
	if ev.Event == wire.EventRules {
		rt.needRules.Store(true)
		rt.kickServer()
	}
}

// serverLoop does the thing's calls to the server (describe, list_rules)
// when asked and connected, so that neither the loop nor the link waits
// on them.
func (rt *thingRuntime) serverLoop() {
	defer rt.wg.Done()
	for {
		select {
		case <-rt.ctx.Done():
			return
		case <-rt.serverKick:
		}
		if rt.n.link == nil || !rt.n.link.Connected() {
			continue
		}
		if rt.needDescribe.Swap(false) {
			if d := rt.description(); d != nil {
				err := rt.n.link.Call(rt.ctx, wire.MethodDescribe, d, nil)
				switch {
				case err == nil:
					rt.log.Debug("described to the server", "version", d.Version)
				case isAnswerKind(err, errUnknownMethod):
					rt.log.Debug("the server has no describe method yet", "err", err)
				case rt.ctx.Err() == nil:
					rt.log.Warn("describe", "err", err)
					rt.needDescribe.Store(true) // again at the next connect
				}
			}
		}
		if rt.needRules.Swap(false) {
			rt.fetchRules()
		}
	}
}

// notAThing is how the server's answer says an account is no thing.
const notAThing = "is not a thing"

// fetchRules asks the server for the rules of this thing and keeps them.
func (rt *thingRuntime) fetchRules() {
	ctx, cancel := context.WithTimeout(rt.ctx, 30*time.Second)
	defer cancel()
	var rules []thing.Rule
	err := rt.n.link.Call(ctx, wire.MethodListRules, thing.ThingReq{Thing: rt.self}, &rules)
	switch {
	case err == nil:
		rt.setRules(rules)
	case isAnswerKind(err, errUnknownMethod):
		rt.log.Debug("the server has no list_rules method yet; keeping the cached rules", "err", err)
	case isAnswerKind(err, errBadRequest) && strings.Contains(err.Error(), notAThing):
		// A person's node asks too (it cannot tell its own kind): no
		// rules are this account's, and that is no warning.
		rt.log.Debug("list_rules: this account is not a thing", "err", err)
	case rt.ctx.Err() == nil:
		rt.log.Warn("list_rules; keeping the cached rules", "err", err)
		rt.needRules.Store(true)
	}
}

// setRules keeps the rules the server listed, in localdb (so they run
// while the server is down) and in the engine.
func (rt *thingRuntime) setRules(rules []thing.Rule) {
	raw, err := json.Marshal(rules)
	if err == nil {
		err = rt.n.db.Set(rt.ctx, metaThingRules, string(raw))
	}
	if err != nil {
		rt.log.Warn("cache rules", "err", err)
	}
	rt.rules.set(rules)
}

// fireRules runs the rules on state or an event this thing emitted (the
// message first), and sends each firing's command.
func (rt *thingRuntime) fireRules(fb *thing.Feedback, first string) {
	if first == "" {
		first = wire.NewMsgID() // nobody heard of it; the chain still needs an origin
	}
	for _, f := range rt.rules.plan(fb, fb.Trace, first, rt.boundPerson, time.Now()) {
		payload, err := json.Marshal(&f.cmd)
		if err != nil {
			rt.log.Error("encode a rule's command", "rule", f.rule.ID, "err", err)
			continue
		}
		id, err := rt.queue(SendRequest{To: f.rule.B, MsgType: wire.MsgTypeCommand, Payload: payload})
		if err != nil {
			rt.rules.dropped(f.rule.ID, f.cmd.Trace.OriginMsg, "send: "+err.Error())
			continue
		}
		rt.n.counts.rulesFired.Add(1)
		rt.log.Info("rule fired", "rule", f.rule.ID, "to", f.rule.B, "action", f.cmd.Action, "msg_id", id, "hops", f.cmd.Trace.Hops)
	}
}
