package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// commandGrace is how long past its expiry a command may still get its
// result before it is marked timed out here: the thing's clock and the
// path may be a little late.
const commandGrace = 5 * time.Second

// sweepAtMost is the longest the sweeper sleeps when no command is open.
const sweepAtMost = time.Minute

// timeoutReason is the error of a command timed out here.
const timeoutReason = "no result from the thing by the command's expiry"

// commandNotifier wakes whoever waits for a tracked command to change:
// the sweeper, at any change, and a command's waiters with the row as it
// now stands. Its zero value is ready to use.
type commandNotifier struct {
	mu      sync.Mutex
	ch      chan struct{}
	waiters map[string][]chan localdb.Command // by MsgId
}

// watch returns a channel closed at the next change.
func (c *commandNotifier) watch() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// follow returns a channel that gets command id's row at each change
// (the latest only, when the reader is behind), and a func to stop.
func (c *commandNotifier) follow(id string) (<-chan localdb.Command, func()) {
	ch := make(chan localdb.Command, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiters == nil {
		c.waiters = make(map[string][]chan localdb.Command)
	}
	c.waiters[id] = append(c.waiters[id], ch)
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		list := c.waiters[id]
		for i, w := range list {
			if w == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(c.waiters, id)
		} else {
			c.waiters[id] = list
		}
	}
}

func (c *commandNotifier) notify(row localdb.Command) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
	for _, w := range c.waiters[row.MsgId] {
		select { // keep only the latest
		case <-w:
		default:
		}
		w <- row
	}
}

// ownCommandRow is the row that tracks m, if m is a command of this
// account to a thing.
func (n *Node) ownCommandRow(m *wire.Message) (localdb.Command, bool) {
	if m.MsgType != wire.MsgTypeCommand || m.From != n.cfg.User {
		return localdb.Command{}, false
	}
	c, err := thing.ParseCommand(m.Payload)
	if err != nil {
		return localdb.Command{}, false // MayWrite let no such command through
	}
	f, err := wire.ParseFeeds(m.Feeds)
	if err != nil || f.Kind != wire.FeedsDM {
		return localdb.Command{}, false
	}
	row := localdb.Command{MsgId: m.MsgId, Thing: f.Peer(n.cfg.User), Action: c.Action, Input: c.Input,
		Expires: c.Expires, Created: m.TimeCreate}
	if len(c.Write) > 0 {
		row.Write, _ = json.Marshal(c.Write)
	}
	row.Trace, _ = json.Marshal(c.Trace)
	return row, true
}

// trackThingMessages takes the messages of an ingest batch that are new
// to this device for the thing model: commands of this account sent from
// another of its devices, and things' feedback (answers to commands,
// state, events, descriptions, what a chain of ours caused). All of it is
// recorded in one transaction, in message order, and only then are the
// waiters woken and the events published.
func (n *Node) trackThingMessages(msgs []wire.Message) {
	steps := n.feedbackSteps(msgs)
	if steps == nil {
		return
	}
	var list []localdb.ThingFeedback
	var from []int // the message of each step
	for i, s := range steps {
		if s != nil {
			list = append(list, *s)
			from = append(from, i)
		}
	}
	outs, err := n.db.RecordFeedback(context.WithoutCancel(n.ctx), list)
	if err != nil {
		n.log.Error("track feedback", "messages", len(list), "err", err)
		return
	}
	for k, o := range outs {
		n.feedbackTracked(&msgs[from[k]], &list[k], o)
	}
}

// feedbackSteps is what each of msgs asks the person's side to record
// (nil for nothing), or nil when none does.
func (n *Node) feedbackSteps(msgs []wire.Message) []*localdb.ThingFeedback {
	var steps []*localdb.ThingFeedback
	for i := range msgs {
		s, ok := n.feedbackStep(&msgs[i])
		if !ok {
			continue
		}
		if steps == nil {
			steps = make([]*localdb.ThingFeedback, len(msgs))
		}
		steps[i] = &s
	}
	return steps
}

// feedbackStep is what m, a message new to this device, asks the person's
// side to record, if anything.
func (n *Node) feedbackStep(m *wire.Message) (localdb.ThingFeedback, bool) {
	switch {
	case m.MsgType == wire.MsgTypeCommand && m.From == n.cfg.User:
		row, ok := n.ownCommandRow(m)
		return localdb.ThingFeedback{Record: &row}, ok
	case m.MsgType == wire.MsgTypeFeedback && m.From != n.cfg.User:
		f, err := thing.ParseFeedback(m.Payload)
		if err != nil {
			n.log.Info("unreadable feedback", "from", m.From, "msg_id", m.MsgId, "err", err)
			return localdb.ThingFeedback{}, false
		}
		s, err := n.feedbackOf(m, &f)
		if err != nil {
			n.log.Error("track feedback", "from", m.From, "msg_id", m.MsgId, "kind", f.Kind, "err", err)
			return localdb.ThingFeedback{}, false
		}
		return s, s != (localdb.ThingFeedback{})
	}
	return localdb.ThingFeedback{}, false
}

// feedbackOf is what one feedback message of thing m.From records.
func (n *Node) feedbackOf(m *wire.Message, f *thing.Feedback) (localdb.ThingFeedback, error) {
	from := m.From
	var s localdb.ThingFeedback
	ours := f.Trace != nil && f.Trace.Origin == n.cfg.User
	link := localdb.ChainLink{MsgId: m.MsgId, Thing: from, Kind: f.Kind, Cmd: f.Cmd, Status: f.Status,
		Event: f.Event, Error: f.Error, At: m.TimeCreate}
	if f.Trace != nil {
		link.Hops = f.Trace.Hops
	}
	switch f.Kind {
	case thing.KindAck, thing.KindResult:
		if f.Trace != nil && f.Trace.OriginMsg != f.Cmd {
			// The answer to a command some thing sent down a chain.
			if !ours {
				return s, nil
			}
			link.Body = f.Output
			s.Link = &localdb.ChainFeedback{Origin: f.Trace.OriginMsg, ChainLink: link}
			return s, nil
		}
		u := localdb.CommandUpdate{State: f.Status, Output: f.Output, Error: f.Error,
			Result: f.Kind == thing.KindResult}
		u.Final = u.Result || f.Status == thing.AckRejected
		s.Update = &localdb.CommandFeedback{MsgId: f.Cmd, Thing: from, CommandUpdate: u}
	case thing.KindState:
		s.State = &localdb.StateReport{Thing: from, Props: f.Props, Rev: f.Rev, At: m.TimeCreate, Cause: f.Cause}
		if ours {
			link.Body, _ = json.Marshal(f.Props)
			s.Link = &localdb.ChainFeedback{Origin: f.Trace.OriginMsg, ChainLink: link}
		}
	case thing.KindEvent:
		s.Event = &localdb.ThingEvent{MsgId: m.MsgId, Thing: from, Event: f.Event, Data: f.Data, Cause: f.Cause, At: m.TimeCreate}
		if ours {
			link.Body = f.Data
			s.Link = &localdb.ChainFeedback{Origin: f.Trace.OriginMsg, ChainLink: link}
		}
	case thing.KindDescription:
		if f.Description.Thing != from {
			return s, fmt.Errorf("a description of %s sent by %s", f.Description.Thing, from)
		}
		d, err := descriptionReport(f.Description)
		if err != nil {
			return s, err
		}
		s.Description = &d
	}
	return s, nil
}

// feedbackTracked tells waiters and the event stream what the feedback of
// m changed, once it is committed.
func (n *Node) feedbackTracked(m *wire.Message, s *localdb.ThingFeedback, o localdb.FeedbackOutcome) {
	if o.Err != nil {
		n.log.Error("track feedback", "from", m.From, "msg_id", m.MsgId, "err", o.Err)
		return
	}
	if st := s.State; st != nil && len(o.Props) > 0 {
		ts := ThingState{Thing: st.Thing, Props: make([]PropState, 0, len(o.Props))}
		for _, name := range o.Props {
			p := localdb.ThingProp{Name: name, Value: st.Props[name], Rev: st.Rev, At: st.At, Cause: st.Cause}
			ts.Props = append(ts.Props, PropState{ThingProp: p, AgeMS: ageMS(st.At)})
		}
		n.events.publish(EventThingState, ts)
	}
	if s.Event != nil && o.Kept {
		n.events.publish(EventThingEvent, *s.Event)
	}
	if o.Command != nil {
		n.commandChanged(*o.Command)
	}
}

// descriptionReport is d checked and made ready to cache.
func descriptionReport(d *thing.Description) (localdb.DescriptionReport, error) {
	if err := d.Validate(); err != nil {
		return localdb.DescriptionReport{}, err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return localdb.DescriptionReport{}, err
	}
	return localdb.DescriptionReport{Thing: d.Thing, Version: d.Version, Body: b}, nil
}

// cacheDescription keeps d if it is newer than the cached description.
func (n *Node) cacheDescription(ctx context.Context, d *thing.Description) (bool, error) {
	r, err := descriptionReport(d)
	if err != nil {
		return false, err
	}
	return n.db.SetDescription(ctx, r.Thing, r.Version, r.Body)
}

// commandChanged tells waiters and the event stream of a command's new
// state.
func (n *Node) commandChanged(c localdb.Command) {
	n.cmds.notify(c)
	n.events.publish(EventCommand, c)
}

// ageMS is how long ago (by this clock) at was, never below 0.
func ageMS(at int64) int64 { return max(0, time.Now().UnixMilli()-at) }

// sweepCommands marks open commands timed out once their expiry plus the
// grace has passed, waking at the next expiry (or when a command changes).
func (n *Node) sweepCommands() {
	defer n.wg.Done()
	for {
		changed := n.cmds.watch()
		wait := sweepAtMost
		if next, ok, err := n.db.NextExpiry(n.ctx); err != nil {
			if n.ctx.Err() != nil {
				return
			}
			n.log.Warn("next command expiry", "err", err)
		} else if ok {
			wait = min(wait, max(0, time.Until(time.UnixMilli(next).Add(commandGrace))))
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-changed:
			t.Stop()
			continue
		case <-t.C:
		}
		n.sweepOnce()
	}
}

// sweepOnce times out what is due now.
func (n *Node) sweepOnce() {
	timedOut, err := n.db.TimeoutCommands(n.ctx, time.Now(), commandGrace, timeoutReason)
	if err != nil && n.ctx.Err() == nil {
		n.log.Warn("time out commands", "err", err)
	}
	for _, c := range timedOut {
		n.log.Info("command timed out", "msg_id", c.MsgId, "thing", c.Thing, "action", c.Action)
		n.commandChanged(c)
	}
}

// doCommand sends a command to a thing (POST /v1/things/{thing}/do): its
// trace starts a chain at this account, named by the command's own MsgId.
func (n *Node) doCommand(ctx context.Context, to string, req DoRequest) (localdb.Command, error) {
	if !wire.ValidAccount(to) || to == n.cfg.User {
		return localdb.Command{}, badRequest("%q is not a thing's name", to)
	}
	// What send's write rule would refuse, in the person's terms.
	if state, kind, _ := (bookRights{n.book}).Tie(n.cfg.User, to); state != wire.StateBound || kind != wire.KindThing {
		return localdb.Command{}, forbidden("%s is not a thing bound to %s (bind it first: mqtter thing bind %s CODE)", to, n.cfg.User, to)
	}
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	switch {
	case req.TimeoutMS == 0:
		timeout = thing.DefaultExpiry
	case req.TimeoutMS < 0 || req.TimeoutMS > thing.MaxExpiry.Milliseconds():
		return localdb.Command{}, badRequest("timeout_ms %d: want 1 to %d", req.TimeoutMS, thing.MaxExpiry.Milliseconds())
	}
	id := wire.NewMsgID()
	cmd := thing.Command{Action: req.Action, Input: req.Input, Write: req.Write,
		Expires: time.Now().Add(timeout).UnixMilli(),
		Trace:   thing.Trace{Origin: n.cfg.User, OriginMsg: id}}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return localdb.Command{}, badRequest("command: %v", err)
	}
	if _, err := thing.ParseCommand(payload); err != nil {
		return localdb.Command{}, badRequest("%v", err)
	}
	if _, err := n.sendWithID(ctx, SendRequest{To: to, MsgType: wire.MsgTypeCommand, Payload: payload}, id); err != nil {
		return localdb.Command{}, err
	}
	if !req.Wait {
		return n.db.Command(ctx, id)
	}
	return n.waitCommand(ctx, id, time.UnixMilli(cmd.Expires).Add(commandGrace))
}

// waitCommand returns command id once it is closed, or at deadline, when
// it is timed out if still open.
func (n *Node) waitCommand(ctx context.Context, id string, deadline time.Time) (localdb.Command, error) {
	changed, stop := n.cmds.follow(id)
	defer stop()
	c, err := n.db.Command(ctx, id)
	if err != nil {
		return localdb.Command{}, err
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for !c.Final() {
		select {
		case <-ctx.Done():
			return c, nil // the caller went away; the row says where it stands
		case <-n.ctx.Done():
			return c, errors.New("node stopping")
		case c = <-changed:
		case <-t.C:
			n.sweepOnce()
			return n.db.Command(ctx, id)
		}
	}
	return c, nil
}
