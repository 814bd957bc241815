package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mqtter/mqtter/adapter"
	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Bounds of an adopted device's PUBLISHes waiting to be read: their count
// and bytes. Past them its PUBLISHes are dropped with a log.
const (
	maxAdapterReports     = 256
	maxAdapterReportBytes = 1 << 20
)

// errBehindBridge refuses the CONNECT of a thing adopted behind a bridge:
// its device has no connection of its own.
var errBehindBridge = errors.New("a thing behind a bridge connects through the bridge")

// adoptedConn is what an adopted device's session holds: the thing's
// adapter state and the count of its PUBLISHes waiting to be read.
type adoptedConn struct {
	*adoptee
	queued      atomic.Int32
	queuedBytes atomic.Int64
}

// adoptSession marks sess as the connection of an adopted device when its
// account, a thing, is adopted: from then on its PUBLISHes and SUBSCRIBEs
// are the firmware's dialect, and nothing of the IM protocol is written
// to it (no answers, no pushes), only the adapter's commands.
func (s *Server) adoptSession(ctx context.Context, sess *session) error {
	if sess.kind != KindThing {
		return nil
	}
	t, err := s.adapters.lookup(ctx, sess.account)
	if err != nil || t == nil {
		return err
	}
	if t.bridge != "" {
		return errBehindBridge
	}
	t.mu.Lock()
	t.offline, t.qos = false, 0
	t.mu.Unlock()
	sess.adopted = &adoptedConn{adoptee: t}
	return nil
}

// fromAdopted takes a PUBLISH of an adopted device on its read loop and
// reads it in the device's request order.
func (s *Server) fromAdopted(sess *session, topic string, payload []byte) {
	c := sess.adopted
	size := int64(len(topic) + len(payload))
	n, b := c.queued.Add(1), c.queuedBytes.Add(size)
	if n > maxAdapterReports || b > maxAdapterReportBytes {
		c.queued.Add(-1)
		c.queuedBytes.Add(-size)
		s.log.Warn("adapter: device publishes faster than read, dropped", "thing", sess.account, "device", sess.device, "topic", topic, "bytes", len(payload))
		return
	}
	payload = bytes.Clone(payload)
	sess.enqueue(request{task: func() {
		defer func() {
			c.queued.Add(-1)
			c.queuedBytes.Add(-size)
		}()
		s.adapters.report(sess, topic, payload)
	}})
}

// adoptedSubscribe grants an adopted device the subscriptions its profile
// allows (its own command topics) and refuses the rest; nothing is written
// on them but the adapter's commands.
func (s *Server) adoptedSubscribe(sess *session, id uint16, reqs []subRequest) {
	t := sess.adopted
	codes := make([]byte, len(reqs))
	reason := ""
	t.mu.Lock()
	for i, r := range reqs {
		if !t.profile.MaySubscribe(r.filter, sess.device) {
			codes[i] = codeRefused
			reason = "not the device's own command topic: " + r.filter
			s.log.Info("subscribe refused", "account", sess.account, "device", sess.device, "filter", r.filter,
				"reason", "an adopted device subscribes to its own command topics only")
			continue
		}
		codes[i] = min(r.qos, 1)
		t.qos = max(t.qos, codes[i])
	}
	t.mu.Unlock()
	sess.decide(modeUnasked)
	sess.push(outPacket{raw: encodeSuback(sess.cl.Properties.ProtocolVersion, id, codes, reason)})
}

// adoptedUnsubscribe answers an adopted device's UNSUBSCRIBE: there is
// nothing to end.
func (s *Server) adoptedUnsubscribe(sess *session, id uint16, n int) {
	sess.decide(modeUnasked)
	sess.push(outPacket{raw: encodeUnsuback(sess.cl.Properties.ProtocolVersion, id, make([]byte, n), "")})
}

// thingWrite is one feedback to write as the thing.
type thingWrite struct {
	feeds string
	fb    thing.Feedback
}

// report reads one PUBLISH of an adopted device: presence, a description
// grown by what it announced, the answers of commands in flight, and the
// state it changed by itself; for a bridge, each about the thing adopted
// behind it under the name the report gives (devices nobody adopted are
// ignored).
func (a *adapters) report(sess *session, topic string, payload []byte) {
	s := a.srv
	own := sess.adopted.adoptee
	own.mu.Lock()
	prof := own.profile
	own.mu.Unlock()
	reports, err := prof.Parse(topic, payload)
	switch {
	case errors.Is(err, adapter.ErrNotOwn):
		s.log.Warn("adapter: publish outside the device's own topics ignored", "thing", sess.account, "device", sess.device, "topic", topic)
		return
	case err != nil:
		s.log.Info("adapter: unreadable publish ignored", "thing", sess.account, "device", sess.device, "topic", topic, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range reports {
		t, device := own, sess.device
		if r.Device != "" {
			if t = a.behind(ctx, own, r.Device); t == nil {
				continue
			}
			device = "" // the bridge's client id is not a device of the thing
		}
		a.presence(ctx, sess, t, r.Presence)
		a.describe(ctx, t, prof.Title(r.Device), r.Schemas, r.Actions)
		for _, w := range t.take(r) {
			s.writeAdopted(ctx, t.name, device, w.feeds, w.fb)
		}
		if local := t.localState(); local != nil {
			// Once, into the thing's feed: its readers (the persons
			// bound, the things associated) get it from there.
			s.writeAdopted(ctx, t.name, device, wire.ThingFeeds(t.name), *local)
		}
	}
}

// maxBehind bounds the names behind a bridge remembered with their things.
const maxBehind = 1024

// behind returns the thing adopted behind bridge under name, or nil.
func (a *adapters) behind(ctx context.Context, bridge *adoptee, name string) *adoptee {
	bridge.mu.Lock()
	thingName := bridge.behind[name]
	bridge.mu.Unlock()
	if thingName == "" {
		ad, err := a.srv.db.AdoptionBehind(ctx, bridge.name, name)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				a.srv.log.Warn("adapter: adoption behind a bridge", "bridge", bridge.name, "name", name, "err", err)
			}
			return nil
		}
		thingName = ad.Thing
		bridge.mu.Lock()
		if len(bridge.behind) >= maxBehind {
			clear(bridge.behind)
		}
		bridge.behind[name] = thingName
		bridge.mu.Unlock()
	}
	t, err := a.lookup(ctx, thingName)
	if err != nil || t == nil || t.bridge != bridge.name {
		return nil
	}
	return t
}

// presence applies what the device said of its availability: for its own
// connection, the session's presence; for a thing behind a bridge, a
// presence push about the thing to its contacts.
func (a *adapters) presence(ctx context.Context, sess *session, t *adoptee, p string) {
	if p == "" {
		return
	}
	t.mu.Lock()
	was := t.offline
	t.offline = p == adapter.Offline
	t.mu.Unlock()
	status := statusOnline
	if p == adapter.Offline {
		status = statusOffline
	}
	switch {
	case t.bridge != "":
		if was != (p == adapter.Offline) {
			a.srv.thingPresence(ctx, t.name, sess.device, status)
		}
	case p == adapter.Offline:
		sess.status.Store(statusOffline)
		a.srv.presenceChanged(sess, statusOffline)
		a.behindOffline(ctx, t, sess.device)
	case was:
		a.srv.presenceChanged(sess, statusOnline)
	}
}

// dropped tells, when an adopted device's connection ends, that the things
// behind it (if it is a bridge) are offline too: the server's presence
// covers the device's own account only.
func (a *adapters) dropped(sess *session) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.behindOffline(ctx, sess.adopted.adoptee, sess.device)
}

// connected tells, when a bridge connects, that the things behind it that
// its drop made offline are online again (until the bridge reports their
// availability otherwise).
func (a *adapters) connected(sess *session) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.setBehind(ctx, sess.adopted.adoptee, sess.device, false)
}

// behindOffline marks the things behind a bridge that went offline
// offline, and tells their contacts.
func (a *adapters) behindOffline(ctx context.Context, bridge *adoptee, device string) {
	a.setBehind(ctx, bridge, device, true)
}

// setBehind marks the things behind bridge known so far offline (or back
// online, those that were), and tells their contacts.
func (a *adapters) setBehind(ctx context.Context, bridge *adoptee, device string, offline bool) {
	bridge.mu.Lock()
	names := make([]string, 0, len(bridge.behind))
	for _, n := range bridge.behind {
		names = append(names, n)
	}
	bridge.mu.Unlock()
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		a.mu.Lock()
		t := a.things[name]
		a.mu.Unlock()
		if t == nil || t.bridge != bridge.name {
			continue
		}
		t.mu.Lock()
		changed := t.offline != offline
		t.offline = offline
		t.mu.Unlock()
		status := statusOnline
		if offline {
			status = statusOffline
		}
		if changed {
			a.srv.thingPresence(ctx, name, device, status)
		}
	}
}

// thingPresence tells the contacts of a thing behind a bridge its status,
// as presenceChanged does for a device of its own: device is the bridge's
// client id.
func (s *Server) thingPresence(ctx context.Context, name, device, status string) {
	related, err := s.contacts(ctx, name)
	if err != nil {
		s.log.Warn("presence: contacts", "account", name, "err", err)
		return
	}
	body, err := json.Marshal(wire.Presence{User: name, Device: device, Status: status, LastSeen: time.Now().UnixMilli()})
	if err != nil {
		return
	}
	p := outPacket{topic: wire.PushPresence, body: body, alt: wire.PresenceTopic(name)}
	for _, account := range related {
		for _, other := range s.sessions.sessions(account) {
			other.push(p)
		}
	}
}

// describe stores a new description when the device announced properties
// or actions the stored one lacks (or none is stored), and tells who may
// see it.
func (a *adapters) describe(ctx context.Context, t *adoptee, title string, schemas map[string]*thing.Property, actions map[string]*thing.Action) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.wroteProps {
		// First report since the server started: start from the stored
		// description, so a restart does not shrink it.
		if d, err := a.srv.db.Description(ctx, t.name); err == nil {
			for name, p := range d.Properties {
				if _, ok := t.schemas[name]; !ok && len(t.schemas) < thing.MaxAffordances {
					t.schemas[name] = p
				}
			}
			for name, act := range d.Actions {
				if _, ok := t.actions[name]; !ok && len(t.actions) < thing.MaxAffordances {
					t.actions[name] = act
				}
			}
		}
	}
	grew := false
	for _, name := range sortedKeys(schemas) {
		if _, ok := t.schemas[name]; !ok && len(t.schemas) < thing.MaxAffordances {
			t.schemas[name] = schemas[name]
			grew = true
		}
	}
	for _, name := range sortedKeys(actions) {
		if _, ok := t.actions[name]; !ok && len(t.actions) < thing.MaxAffordances {
			t.actions[name] = actions[name]
			grew = true
		}
	}
	if len(t.schemas) == 0 || (t.wroteProps && !grew) {
		return
	}
	version := int64(1)
	d := adapter.Describe(title, t.name, 0, t.schemas, t.actions)
	if old, err := a.srv.db.Description(ctx, t.name); err == nil {
		d.Version, d.Title = old.Version, old.Title
		if sameDescription(old, d) {
			t.wroteProps = true
			return
		}
		version = old.Version + 1
	}
	d.Version = version
	if err := d.Validate(); err != nil {
		a.srv.log.Warn("adapter: description", "thing", t.name, "err", err)
		return
	}
	changed, err := a.srv.db.PutDescription(ctx, d, time.Now())
	if err != nil {
		a.srv.log.Warn("adapter: description", "thing", t.name, "err", err)
		return
	}
	t.wroteProps = true
	if changed {
		a.srv.log.Debug("adapter: described", "thing", t.name, "version", d.Version)
		a.srv.announceThing(ctx, t.name, nil)
	}
}

func sameDescription(a, b thing.Description) bool {
	x, err1 := json.Marshal(&a)
	y, err2 := json.Marshal(&b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// take matches a report against the commands in flight: a failure answers
// the oldest; values a command wanted are its result once all came (with
// the state they changed, caused by it). It records the values and
// returns the feedback to write, in order; values no command wanted are
// left in t.local for localState.
func (t *adoptee) take(r adapter.Report) []thingWrite {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []thingWrite
	if r.Answer && r.Failure != "" && len(t.pending) > 0 {
		p := t.pending[0]
		t.pending = t.pending[1:]
		p.timer.Stop()
		out = append(out, thingWrite{p.msg.Feeds, thing.Feedback{Kind: thing.KindResult, Cmd: p.msg.MsgId,
			Action: p.cmd.Action, Status: thing.ResultFailed, Error: r.Failure, Trace: &p.cmd.Trace}})
	}
	caused := make(map[*adapterCmd]map[string]json.RawMessage)
	t.local = nil
	for _, name := range sortedKeys(r.Props) {
		if _, known := t.schemas[name]; !known {
			continue
		}
		v := r.Props[name]
		var owner *adapterCmd
		for _, p := range t.pending {
			if _, got := p.got[name]; !got && slices.Contains(p.want, name) {
				owner = p
				break
			}
		}
		changed := !bytes.Equal(t.props[name], v)
		t.props[name] = v
		switch {
		case owner != nil:
			owner.got[name] = v
			if changed {
				if caused[owner] == nil {
					caused[owner] = make(map[string]json.RawMessage)
				}
				caused[owner][name] = v
			}
		case changed:
			if t.local == nil {
				t.local = make(map[string]json.RawMessage)
			}
			t.local[name] = v
		}
	}
	keep := t.pending[:0]
	for _, p := range t.pending {
		if len(p.got) < len(p.want) {
			keep = append(keep, p)
			continue
		}
		p.timer.Stop()
		if props := caused[p]; len(props) > 0 {
			t.rev++
			out = append(out, thingWrite{p.msg.Feeds, thing.Feedback{Kind: thing.KindState, Props: props, Rev: t.rev,
				Cause: p.msg.MsgId, Trace: &p.cmd.Trace}})
		}
		output, _ := json.Marshal(p.got)
		out = append(out, thingWrite{p.msg.Feeds, thing.Feedback{Kind: thing.KindResult, Cmd: p.msg.MsgId,
			Action: p.cmd.Action, Status: thing.ResultDone, Output: output, Trace: &p.cmd.Trace}})
	}
	clear(t.pending[len(keep):])
	t.pending = keep
	return out
}

// localState returns the state the device changed by itself in the last
// report (cause local), or nil.
func (t *adoptee) localState() *thing.Feedback {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.local) == 0 {
		return nil
	}
	t.rev++
	fb := &thing.Feedback{Kind: thing.KindState, Props: t.local, Rev: t.rev, Cause: thing.CauseLocal}
	t.local = nil
	return fb
}
