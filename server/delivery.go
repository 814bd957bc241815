package server

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// deliveryMode is how a client takes answers and pushes.
type deliveryMode int

const (
	// modeUndecided: nothing is written yet. A new connection's first
	// packet tells: a SUBSCRIBE or UNSUBSCRIBE makes it a subscriber,
	// anything else (or SubscribeWait without a packet) a client that
	// gets everything unasked.
	modeUndecided deliveryMode = iota
	// modeUnasked: every answer and push, whatever the client subscribed
	// to, as the protocol's origin does (the node's link relies on it).
	modeUnasked
	// modeSubscribed: only what matches the client's subscriptions, as
	// any MQTT client expects.
	modeSubscribed
)

const (
	// maxSubscriptions bounds the filters one client holds.
	maxSubscriptions = 256
	// maxUnacked bounds a subscriber's QoS 1 messages written and not yet
	// acknowledged; past it the next go at QoS 0 and the cursor of their
	// conversation waits for the next connection's replay.
	maxUnacked = 4096
)

// subscription is one filter a client subscribed to, with the QoS granted
// and, for a temporary one, when it ends (persist.go).
type subscription struct {
	filter  string
	qos     byte
	expires int64 // unix ms; 0 permanent
	made    bool  // the SUBSCRIBE asked for its relation, which its expiry undoes
}

// matchQoS returns the highest QoS among the filters of subs that match
// topic, and whether any does.
func matchQoS(subs []subscription, topic string) (byte, bool) {
	var qos byte
	found := false
	for _, sub := range subs {
		if wire.MatchFilter(sub.filter, topic) {
			qos, found = max(qos, sub.qos), true
		}
	}
	return qos, found
}

// decide ends the undecided start of a connection; it does nothing once
// the connection is decided.
func (s *session) decide(m deliveryMode) {
	s.omu.Lock()
	if s.mode != modeUndecided {
		s.omu.Unlock()
		return
	}
	s.mode = m
	s.releaseLocked()
}

// releaseLocked starts the writer for what waits, and unlocks omu.
func (s *session) releaseLocked() {
	start := len(s.out) > 0 && s.writableLocked() && !s.writing
	s.writing = s.writing || start
	s.omu.Unlock()
	if start {
		go s.flush()
	}
}

// subscribe adds filters (replacing the QoS of one already there) and
// makes the client a subscriber. It reports, for each, whether it was
// added: the client may hold maxSubscriptions.
func (s *session) subscribe(add []subscription) []bool {
	ok := make([]bool, len(add))
	s.omu.Lock()
	subs := slices.Clone(s.subs)
	for i, a := range add {
		j := slices.IndexFunc(subs, func(x subscription) bool { return x.filter == a.filter })
		switch {
		case j >= 0:
			a.made = a.made || subs[j].made
			subs[j] = a
		case len(subs) < maxSubscriptions:
			subs = append(subs, a)
		default:
			continue
		}
		ok[i] = true
	}
	s.subs = subs
	s.mode = modeSubscribed
	s.releaseLocked()
	return ok
}

// unsubscribe removes filters and reports, for each, whether it was there.
// A client that unsubscribes is a subscriber, even with no filter left.
func (s *session) unsubscribe(filters ...string) []bool {
	had := make([]bool, len(filters))
	s.omu.Lock()
	subs := slices.Clone(s.subs)
	for i, f := range filters {
		if j := slices.IndexFunc(subs, func(x subscription) bool { return x.filter == f }); j >= 0 {
			subs = slices.Delete(subs, j, j+1)
			had[i] = true
		}
	}
	s.subs = subs
	s.mode = modeSubscribed
	s.releaseLocked()
	return had
}

// subscriberEncode appends what a subscriber gets of p: p on its own topic
// if a filter matches it, and on its alt topic if one matches that; a
// message on its feeds topic once, in SeqId order, at the QoS granted.
func (s *session) subscriberEncode(buf *bytes.Buffer, p outPacket, subs []subscription, written *map[string]bool) int {
	n := 0
	if _, ok := matchQoS(subs, p.topic); ok && p.topic != "" {
		s.encodePublish(buf, p.topic, p.body, 0, 0)
		n++
	}
	if p.alt == "" {
		return n
	}
	qos, ok := matchQoS(subs, p.alt)
	if !ok {
		return n
	}
	if p.feeds == "" {
		s.encodePublish(buf, p.alt, p.body, 0, 0)
		return n + 1
	}
	if !s.dl.fresh(p.feeds, p.seq) {
		return n
	}
	var news struct {
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(p.body, &news); err != nil || len(news.Message) == 0 {
		s.srv.log.Error("news without its message", "feeds", p.feeds, "seq", p.seq, "err", err)
		return n
	}
	id := s.dl.track(p.feeds, p.seq, qos)
	if id == 0 {
		qos = 0
	}
	s.encodePublish(buf, p.alt, news.Message, qos, id)
	if *written == nil {
		*written = make(map[string]bool)
	}
	(*written)[p.feeds] = true
	return n + 1
}

// delivered moves the device's cursor in feeds over the messages written
// (QoS 0) or acknowledged (QoS 1) without a gap.
func (s *session) delivered(feeds string) {
	if seq, ok := s.dl.advance(feeds); ok {
		s.moveCursor(feeds, seq)
	}
}

// acked takes a PUBACK of the client; it reports whether the packet id was
// one of a subscriber's messages.
func (s *session) acked(id uint16) bool {
	feeds, ok := s.dl.ack(id)
	if ok {
		s.delivered(feeds)
	}
	return ok
}

// moveCursor moves the device's delivery cursor in feeds to seq. Moves
// are written by one goroutine at a time per session, the latest per
// conversation, on a worker of the server's pool (so Close waits for
// them); they outlive the connection, so what was delivered before a
// disconnect is not replayed after it.
func (s *session) moveCursor(feeds string, seq int64) {
	d := &s.dl
	d.mu.Lock()
	if d.moves == nil {
		d.moves = make(map[string]int64)
	}
	d.moves[feeds] = max(d.moves[feeds], seq)
	start := !d.moving
	d.moving = true
	d.mu.Unlock()
	if start {
		go s.writeCursors()
	}
}

func (s *session) writeCursors() {
	d := &s.dl
	select {
	case s.srv.workers <- struct{}{}:
	case <-s.srv.done:
		d.mu.Lock()
		d.moving = false
		d.mu.Unlock()
		return
	}
	defer func() { <-s.srv.workers }()
	for {
		d.mu.Lock()
		moves := d.moves
		d.moves = nil
		if len(moves) == 0 {
			d.moving = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for feeds, seq := range moves {
			if err := s.srv.db.SetCursor(ctx, s.device, feeds, seq); err != nil {
				s.srv.log.Warn("move delivery cursor", "device", s.device, "feeds", feeds, "err", err)
			}
		}
		cancel()
	}
}

// delivery tracks a subscriber's messages on feeds topics: the last SeqId
// written per conversation (replays that overlap write nothing twice) and,
// per conversation in SeqId order, the messages written and not yet
// delivered, so the cursor moves only over a prefix without a gap.
type delivery struct {
	mu      sync.Mutex
	sent    map[string]int64
	pending map[string][]pendingSeq
	ids     map[uint16]string // packet id of an unacknowledged QoS 1 message → its feeds
	nextID  uint16
	moves   map[string]int64 // cursor moves not yet written
	moving  bool             // a writeCursors runs
}

type pendingSeq struct {
	seq  int64
	id   uint16 // 0 for QoS 0: delivered once written
	done bool
}

// sentSeq is the last SeqId of feeds written on its feeds topic.
func (d *delivery) sentSeq(feeds string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sent[feeds]
}

// fresh reports whether seq of feeds is after the last written, and
// records it as written.
func (d *delivery) fresh(feeds string, seq int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq <= d.sent[feeds] {
		return false
	}
	if d.sent == nil {
		d.sent = make(map[string]int64)
	}
	d.sent[feeds] = seq
	return true
}

// track records a message written on its feeds topic and returns its
// packet id: 0 at QoS 0, or when maxUnacked are already waiting for
// their PUBACK (the message then goes at QoS 0 but counts as undelivered).
func (d *delivery) track(feeds string, seq int64, qos byte) uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending == nil {
		d.pending, d.ids = make(map[string][]pendingSeq), make(map[uint16]string)
	}
	p := pendingSeq{seq: seq, done: qos == 0}
	if qos > 0 && len(d.ids) < maxUnacked {
		for {
			d.nextID++
			if _, used := d.ids[d.nextID]; d.nextID != 0 && !used {
				break
			}
		}
		p.id = d.nextID
		d.ids[p.id] = feeds
	}
	d.pending[feeds] = append(d.pending[feeds], p)
	return p.id
}

// ack marks the message of packet id delivered and returns its feeds.
func (d *delivery) ack(id uint16) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	feeds, ok := d.ids[id]
	if !ok {
		return "", false
	}
	delete(d.ids, id)
	for i := range d.pending[feeds] {
		if p := &d.pending[feeds][i]; p.id == id {
			p.done = true
			break
		}
	}
	return feeds, true
}

// advance drops the delivered prefix of feeds's pending messages and
// returns the last SeqId of it.
func (d *delivery) advance(feeds string) (int64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := d.pending[feeds]
	n := 0
	for n < len(list) && list[n].done {
		n++
	}
	if n == 0 {
		return 0, false
	}
	seq := list[n-1].seq
	if n == len(list) {
		delete(d.pending, feeds)
	} else {
		d.pending[feeds] = slices.Clone(list[n:])
	}
	return seq, true
}
