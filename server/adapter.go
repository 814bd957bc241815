package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/mqtter/mqtter/adapter"
	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Bounds of the firmware adapters (see docs/protocol.md "Firmware
// adapters").
const (
	// adapterResultWait is how long a command sent to an adopted device
	// waits for the device's answer before its result is timeout.
	adapterResultWait = 5 * time.Second
	// maxAdapterPending bounds the commands in flight to one device; past
	// it a command is rejected.
	maxAdapterPending = 64
	// maxAdapterSeen is how many command MsgIds per thing are remembered
	// to drop a re-delivered command.
	maxAdapterSeen = 256
	// maxAdoptees bounds the adopted things the server holds state for.
	maxAdoptees = 1 << 16
	// adapterQueue bounds the commands and timeouts waiting for the
	// adapters' worker.
	adapterQueue = 1024
)

// adapters adopts things whose devices run stock firmware: it turns the
// commands stored for them into the firmware's PUBLISHes, and what the
// devices publish into feedback the server writes as the thing.
type adapters struct {
	srv    *Server
	work   chan adapterJob
	wg     sync.WaitGroup
	mu     sync.Mutex
	things map[string]*adoptee
}

// adapterJob is a command stored for a thing that may be adopted, or the
// end of a command's wait for its answer.
type adapterJob struct {
	cmd     *wire.Message
	thing   string // with a timeout: the thing and the command's MsgId
	timeout string
}

// adoptee is the adapter's state for one adopted thing; it outlives the
// device's connections.
type adoptee struct {
	name string
	// A thing behind a bridge (a Zigbee device): the bridge's account and
	// its name there; its commands go through the bridge's connection
	// and profile. Set once, when the adoptee is made.
	bridge, device string

	mu         sync.Mutex
	profile    adapter.Profile
	offline    bool // the device said Offline (its LWT) on a live connection
	qos        byte // the QoS its command subscription was granted
	nextID     uint16
	seen       []string // the last commands taken, oldest first
	seenSet    map[string]bool
	pending    []*adapterCmd // oldest first
	props      map[string]json.RawMessage
	schemas    map[string]*thing.Property
	actions    map[string]*thing.Action
	behind     map[string]string // a bridge's: name there → thing adopted
	rev        int64
	wroteProps bool                       // a description was stored from schemas
	local      map[string]json.RawMessage // changed by the device itself, in the last report
}

// adapterCmd is a command sent to the device, waiting for its answer.
type adapterCmd struct {
	msg   wire.Message
	cmd   thing.Command
	want  []string
	got   map[string]json.RawMessage
	timer *time.Timer
}

func newAdapters(s *Server) *adapters {
	a := &adapters{srv: s, work: make(chan adapterJob, adapterQueue), things: make(map[string]*adoptee)}
	a.wg.Add(1)
	go a.run()
	return a
}

// wait waits for the worker, which ends once the server is done.
func (a *adapters) wait() {
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.things {
		t.mu.Lock()
		for _, p := range t.pending {
			p.timer.Stop()
		}
		t.mu.Unlock()
	}
}

func (a *adapters) run() {
	defer a.wg.Done()
	for {
		select {
		case j := <-a.work:
			if j.cmd != nil {
				a.command(*j.cmd)
			} else {
				a.expire(j.thing, j.timeout)
			}
		case <-a.srv.done:
			return
		}
	}
}

// offer hands a newly stored command to the worker, if it is one; it never
// blocks (it runs on the store's writer).
func (a *adapters) offer(m wire.Message) {
	if m.MsgType != wire.MsgTypeCommand {
		return
	}
	select {
	case a.work <- adapterJob{cmd: &m}:
	default:
		a.srv.log.Warn("adapters busy: command not looked at", "msg", m.MsgId, "feeds", m.Feeds)
	}
}

// lookup returns the adoptee of name if name is adopted, loading its
// profile from the store.
func (a *adapters) lookup(ctx context.Context, name string) (*adoptee, error) {
	ad, err := a.srv.db.Adoption(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var prof adapter.Profile
	if ad.Bridge == "" {
		if prof, err = adapter.New(ad.Profile, ad.Topic); err != nil {
			return nil, fmt.Errorf("adoption of %s: %w", name, err)
		}
	}
	a.mu.Lock()
	t := a.things[name]
	if t != nil && (t.bridge != ad.Bridge || t.device != ad.Topic && ad.Bridge != "") {
		t = nil // adopted again, behind another bridge or name
	}
	if t == nil {
		if len(a.things) >= maxAdoptees {
			a.mu.Unlock()
			return nil, fmt.Errorf("adoption of %s: %d adopted things held already", name, maxAdoptees)
		}
		t = &adoptee{name: name, seenSet: make(map[string]bool), props: make(map[string]json.RawMessage),
			schemas: make(map[string]*thing.Property), actions: make(map[string]*thing.Action),
			behind: make(map[string]string), rev: time.Now().UnixMilli()}
		if ad.Bridge != "" {
			t.bridge, t.device = ad.Bridge, ad.Topic
		}
		a.things[name] = t
	}
	a.mu.Unlock()
	t.mu.Lock()
	if prof != nil && (t.profile == nil || t.profile.Name() != prof.Name() || t.profile.Title("") != prof.Title("")) {
		t.profile = prof
	}
	t.mu.Unlock()
	return t, nil
}

// command runs a command stored in a dm with an adopted thing: dropped if
// seen before; timeout if expired; rejected if the profile cannot map it
// or the device is offline; else accepted and sent to the device.
func (a *adapters) command(m wire.Message) {
	s := a.srv
	f, err := wire.ParseFeeds(m.Feeds)
	if err != nil || f.Kind != wire.FeedsDM {
		return
	}
	name := f.A
	if name == m.From {
		name = f.B
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t, err := a.lookup(ctx, name)
	if err != nil {
		s.log.Warn("adapter: adoption", "thing", name, "err", err)
		return
	}
	if t == nil {
		return
	}
	cmd, err := thing.ParseCommand(m.Payload)
	if err != nil {
		return // the accept path refused such a command already
	}
	// The device it goes through: its own, or its bridge's.
	via := t
	if t.bridge != "" {
		if via, err = a.lookup(ctx, t.bridge); err != nil {
			s.log.Warn("adapter: bridge", "thing", name, "bridge", t.bridge, "err", err)
		}
	}
	ack := func(status, why string) thing.Feedback {
		return thing.Feedback{Kind: thing.KindAck, Cmd: m.MsgId, Action: cmd.Action, Status: status, Error: why, Trace: &cmd.Trace}
	}
	t.mu.Lock()
	key := m.From + "\x00" + m.MsgId
	if t.seenSet[key] {
		t.mu.Unlock()
		s.log.Debug("adapter: command seen before", "thing", name, "msg", m.MsgId)
		return
	}
	t.remember(key)
	var sess *session
	var prof adapter.Profile
	offline := true
	if via != nil {
		sess = a.device(via.name)
		via.lockIfOther(t)
		prof, offline = via.profile, via.offline || t.offline
		via.unlockIfOther(t)
	}
	var fbs []thing.Feedback
	var mapped adapter.Command
	switch {
	case cmd.Expired(time.Now()):
		fbs = append(fbs, thing.Feedback{Kind: thing.KindResult, Cmd: m.MsgId, Action: cmd.Action, Status: thing.ResultTimeout,
			Error: "expired before it reached the device", Trace: &cmd.Trace})
	case sess == nil || offline || prof == nil:
		fbs = append(fbs, ack(thing.AckRejected, "the device is offline"))
	case len(t.pending) >= maxAdapterPending:
		fbs = append(fbs, ack(thing.AckRejected, "too many commands in flight"))
	default:
		mapped, err = prof.Map(t.device, &cmd)
		if err != nil {
			fbs = append(fbs, ack(thing.AckRejected, err.Error()))
		} else {
			fbs = append(fbs, ack(thing.AckAccepted, ""))
		}
	}
	device := ""
	if sess != nil && t.bridge == "" {
		device = sess.device // a bridge's client id is not a device of the thing
	}
	// The ack is handed to the store before the device can answer, so it
	// is sequenced before the result.
	for _, fb := range fbs {
		s.writeAdopted(ctx, name, device, m.Feeds, fb)
	}
	if len(mapped.Publishes) > 0 {
		p := &adapterCmd{msg: m, cmd: cmd, want: mapped.Want, got: make(map[string]json.RawMessage)}
		thingName, id := name, m.MsgId
		p.timer = time.AfterFunc(adapterResultWait, func() {
			select {
			case a.work <- adapterJob{thing: thingName, timeout: id}:
			case <-s.done:
			}
		})
		t.pending = append(t.pending, p)
		via.lockIfOther(t)
		for _, pub := range mapped.Publishes {
			sess.push(outPacket{raw: via.publishPacket(sess, pub)})
		}
		via.unlockIfOther(t)
		s.metrics.pushes.WithLabelValues("adapter").Inc()
	}
	t.mu.Unlock()
}

// lockIfOther locks t unless it is held, which it is when t is held.
func (t *adoptee) lockIfOther(held *adoptee) {
	if t != held {
		t.mu.Lock()
	}
}

func (t *adoptee) unlockIfOther(held *adoptee) {
	if t != held {
		t.mu.Unlock()
	}
}

// remember records a command taken, forgetting the oldest past
// maxAdapterSeen.
func (t *adoptee) remember(key string) {
	if len(t.seen) >= maxAdapterSeen {
		delete(t.seenSet, t.seen[0])
		t.seen = slices.Delete(t.seen, 0, 1)
	}
	t.seen = append(t.seen, key)
	t.seenSet[key] = true
}

// publishPacket encodes pub for the device at the QoS its subscription
// was granted; never retained.
func (t *adoptee) publishPacket(sess *session, pub adapter.Publish) []byte {
	var id uint16
	if t.qos > 0 {
		t.nextID++
		if t.nextID == 0 {
			t.nextID = 1
		}
		id = t.nextID
	}
	var buf bytes.Buffer
	sess.encodePublish(&buf, pub.Topic, pub.Payload, t.qos, id)
	return buf.Bytes()
}

// device returns the connected session of an adopted thing, or nil.
func (a *adapters) device(name string) *session {
	list := a.srv.sessions.sessions(name)
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

// expire ends the wait of command id to thing: its result is timeout.
func (a *adapters) expire(name, id string) {
	a.mu.Lock()
	t := a.things[name]
	a.mu.Unlock()
	if t == nil {
		return
	}
	t.mu.Lock()
	i := slices.IndexFunc(t.pending, func(p *adapterCmd) bool { return p.msg.MsgId == id })
	if i < 0 {
		t.mu.Unlock()
		return
	}
	p := t.pending[i]
	t.pending = slices.Delete(t.pending, i, i+1)
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.srv.writeAdopted(ctx, name, a.deviceID(name), p.msg.Feeds, thing.Feedback{Kind: thing.KindResult, Cmd: id,
		Action: p.cmd.Action, Status: thing.ResultTimeout, Error: "the device did not answer", Trace: &p.cmd.Trace})
}

// deviceID is the client id of the connection of a thing's own device,
// "" when none is connected (or it is behind a bridge, whose connection
// is the bridge's account's).
func (a *adapters) deviceID(name string) string {
	if sess := a.device(name); sess != nil {
		return sess.device
	}
	return ""
}

// writeAdopted writes feedback of adopted thing name into feeds, as the
// thing, Device its device's client id (writeAsThing); once stored, the
// feedback runs the thing's rules or reaches a chain's origin, as a plain
// thing's does, since an adopted thing has no node. A refusal is logged.
func (s *Server) writeAdopted(ctx context.Context, name, device, feeds string, fb thing.Feedback) {
	err := s.writeAsThing(ctx, asThing{Thing: name, Device: device, Feeds: feeds, Feedback: fb},
		func(m wire.Message, res store.Appended, err error) {
			if err != nil {
				s.log.Warn("adapter: feedback not stored", "thing", name, "feeds", feeds, "kind", fb.Kind, "err", err)
				return
			}
			if res.Duplicate {
				return
			}
			if !s.chore(func(ctx context.Context) { s.plainFeedback(ctx, m) }) {
				s.metrics.things.rulesDropped.WithLabelValues(dropQueue).Inc()
				s.log.Warn("adapter: feedback not looked at for rules: too much work waiting", "thing", name, "msg_id", m.MsgId)
			}
		})
	if err != nil {
		s.log.Warn("adapter: feedback refused", "thing", name, "feeds", feeds, "kind", fb.Kind, "err", err)
	}
}

// sortedKeys is maps.Keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
