package sync_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/server/servertest"
	mqsync "github.com/mqtter/mqtter/sync"
	"github.com/mqtter/mqtter/wire"
)

// loopEvery is how often the syncers of the relay tests push: much more
// often than their grace, as a node's 3 s are next to its 10 s.
const loopEvery = 50 * time.Millisecond

// relaying gives d a syncer that relays other devices' messages after
// relayAfter, and runs its loop until the test ends.
func (d *device) relaying(t *testing.T, relayAfter time.Duration) {
	t.Helper()
	s, err := mqsync.New(mqsync.Config{DB: d.db, Server: d.link, Device: d.id, Interval: loopEvery,
		RelayAfter: relayAfter, Logger: servertest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	d.syncer = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Loop(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done }) // before the database closes
}

// hold stores msgs on d as if they had come directly from their author.
func (d *device) hold(t *testing.T, msgs ...wire.Message) {
	t.Helper()
	if _, err := d.db.AddMessages(t.Context(), msgs, localdb.ViaP2P); err != nil {
		t.Fatal(err)
	}
}

// seqOf returns the SeqId d holds for m, 0 for none.
func (d *device) seqOf(t *testing.T, m wire.Message) int64 {
	t.Helper()
	for _, h := range d.history(t, m.Feeds) {
		if h.From == m.From && h.MsgId == m.MsgId {
			return h.SeqId
		}
	}
	t.Fatalf("%s does not hold %s", d.id, m.MsgId)
	return 0
}

// waitSequenced waits until d holds a SeqId for every one of msgs.
func (d *device) waitSequenced(t *testing.T, within time.Duration, msgs ...wire.Message) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, m := range msgs {
		for d.seqOf(t, m) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s is still unsequenced on %s after %v", m.MsgId, d.id, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// wantServerOrder checks, on a new device of user that pulls everything,
// that the server holds exactly want in feeds, in that order, as SeqIds
// 1..N.
func wantServerOrder(t *testing.T, srv *servertest.Instance, user, feeds string, want []wire.Message) {
	t.Helper()
	fresh := newDevice(t, srv, user)
	if _, err := fresh.syncer.Run(t.Context(), true); err != nil {
		t.Fatalf("pull: %v", err)
	}
	h := fresh.history(t, feeds)
	var got, wantIDs []string
	for i, m := range h {
		got = append(got, m.MsgId)
		if m.SeqId != int64(i+1) {
			t.Errorf("position %d: %s has SeqId %d, want %d", i, m.MsgId, m.SeqId, i+1)
		}
	}
	for _, m := range want {
		wantIDs = append(wantIDs, m.MsgId)
	}
	if !slices.Equal(got, wantIDs) {
		t.Errorf("the server's history is %v, want the sender's order %v", got, wantIDs)
	}
}

// A receiver with two devices: the laptop got all of bob's five messages
// directly, the phone only the last (bob's outbox counts a message
// delivered once any one device stored it). The phone must not push the
// last before bob pushes his own, or the server sequences it first; it
// relays it only after its grace, and gets the SeqId bob's push gave it.
func TestRelayWaitsForTheAuthor(t *testing.T) {
	srv, dm := friends(t)
	bob := newDevice(t, srv, "bob")
	laptop := newDevice(t, srv, "alice")
	phone := newDevice(t, srv, "alice")
	sent := bob.write(t, dm, "bob", 5)
	laptop.hold(t, sent...)
	phone.hold(t, sent[4])

	const grace = time.Second
	laptop.relaying(t, grace)
	phone.relaying(t, grace)
	time.Sleep(300 * time.Millisecond) // several of the receivers' rounds
	if s := phone.seqOf(t, sent[4]); s != 0 {
		t.Fatalf("the phone pushed bob's last message (SeqId %d) before its grace", s)
	}
	if res, err := bob.syncer.Run(t.Context(), false); err != nil || res.Pushed != 5 {
		t.Fatalf("bob's push = %+v, %v, want his 5 messages pushed", res, err)
	}
	for i, m := range sent {
		if s := bob.seqOf(t, m); s != int64(i+1) {
			t.Errorf("bob's message %d got SeqId %d, want %d (his sending order)", i, s, i+1)
		}
	}

	// The test's links take no news pushes: the receivers learn the SeqIds
	// by relaying after the grace, which the server answers with the
	// SeqIds it gave bob's push.
	phone.waitSequenced(t, 10*time.Second, sent[4])
	laptop.waitSequenced(t, 10*time.Second, sent...)
	if s := phone.seqOf(t, sent[4]); s != 5 {
		t.Errorf("the phone holds bob's last message as SeqId %d, want 5", s)
	}
	// The SeqId is written before the push returns and counts the relay:
	// give the count that moment.
	c := phone.syncer.Counts()
	for deadline := time.Now().Add(5 * time.Second); c.Relayed == 0 && time.Now().Before(deadline); c = phone.syncer.Counts() {
		time.Sleep(10 * time.Millisecond)
	}
	if c.Relayed != 1 {
		t.Errorf("the phone's counts = %+v, want 1 relayed", c)
	}
	wantServerOrder(t, srv, "alice", dm, sent)
}

// A message whose author never pushes it (its device is gone for good)
// is still sequenced: a receiver relays it once its grace is over, in the
// order the receiver holds them.
func TestRelayAfterTheGraceWhenTheAuthorNeverPushes(t *testing.T) {
	srv, dm := friends(t)
	bob := newDevice(t, srv, "bob")
	laptop := newDevice(t, srv, "alice")
	sent := bob.write(t, dm, "bob", 3)
	laptop.hold(t, sent...)

	start := time.Now()
	const grace = 500 * time.Millisecond
	laptop.relaying(t, grace)
	laptop.waitSequenced(t, 10*time.Second, sent...)
	if took := time.Since(start); took < grace {
		t.Errorf("relayed after %v, before the grace of %v", took, grace)
	}
	wantServerOrder(t, srv, "bob", dm, sent)
}

// After an outage every message held is old, and the author reconnects
// too: the grace counts again from the reconnect, or a receiver that
// reconnects first pushes a later message before its author's earlier
// ones.
func TestRelayClockRestartsAtReconnect(t *testing.T) {
	srv, dm := friends(t)
	bob := newDevice(t, srv, "bob")
	phone := newDevice(t, srv, "alice")
	sent := bob.write(t, dm, "bob", 5)
	phone.hold(t, sent[4])

	const grace = 1500 * time.Millisecond
	phone.relaying(t, grace)
	time.Sleep(300 * time.Millisecond) // the phone's clock runs
	srv.Stop(t)
	time.Sleep(grace + 500*time.Millisecond) // longer than the grace, but disconnected
	if s := phone.seqOf(t, sent[4]); s != 0 {
		t.Fatalf("the phone holds SeqId %d for bob's last message before the outage's end", s)
	}
	srv.Restart(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, d := range []*device{phone, bob} {
		if err := d.link.Wait(ctx); err != nil {
			t.Fatalf("reconnect: %v", err)
		}
	}
	time.Sleep(300 * time.Millisecond) // bob takes a moment after his reconnect
	if s := phone.seqOf(t, sent[4]); s != 0 {
		t.Fatalf("the phone relayed bob's last message (SeqId %d) right after the reconnect", s)
	}
	if res, err := bob.syncer.Run(t.Context(), false); err != nil || res.Pushed != 5 {
		t.Fatalf("bob's push = %+v, %v, want his 5 messages pushed", res, err)
	}
	phone.waitSequenced(t, 10*time.Second, sent[4])
	if s := phone.seqOf(t, sent[4]); s != 5 {
		t.Errorf("the phone holds bob's last message as SeqId %d, want 5", s)
	}
	wantServerOrder(t, srv, "alice", dm, sent)
}

// Others' messages in their grace hold up none of this device's own in
// other conversations, even more of them than a push batch takes and
// ahead of them in local order. In their own conversation they hold back
// the own messages stored after them (a reply never overtakes what it
// answers), and PushConv says so; a message another device of this account
// signed holds back like another account's.
func TestOwnMessagesGoFirst(t *testing.T) {
	srv, dm := friends(t)
	srv.AddUser(t, "carol", "carol-pw", false)
	dm2 := befriend(t, srv, "alice", "carol")

	bob := newDevice(t, srv, "bob")
	laptop := newDevice(t, srv, "alice")
	phone := newDevice(t, srv, "alice")
	fromBob := bob.write(t, dm, "bob", wire.MaxHistoryPush+100)
	fromPhone := phone.write(t, dm, "alice", 2)
	laptop.hold(t, fromBob...)
	laptop.hold(t, fromPhone...)
	held := laptop.write(t, dm, "alice", 2)
	free := laptop.write(t, dm2, "alice", 3)

	s, err := mqsync.New(mqsync.Config{DB: laptop.db, Server: laptop.link, Device: laptop.id, Interval: time.Hour,
		RelayAfter: time.Hour, Logger: servertest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(t.Context(), false)
	if err != nil || res.Pushed != len(free) {
		t.Errorf("a round pushed %d messages (%v), want the laptop's own %d in %s", res.Pushed, err, len(free), dm2)
	}
	for i, m := range free {
		if got := laptop.seqOf(t, m); got != int64(i+1) {
			t.Errorf("own message %d: SeqId %d, want %d", i, got, i+1)
		}
	}
	for _, m := range append(append(fromPhone, fromBob[0], fromBob[len(fromBob)-1]), held...) {
		if s := laptop.seqOf(t, m); s != 0 {
			t.Errorf("%s's message %s was pushed ahead of others' in their grace (SeqId %d)", m.From, m.MsgId, s)
		}
	}
	// Ahead of a server send: the held conversation says so.
	for _, c := range []struct {
		feeds string
		held  bool
	}{{dm, true}, {dm2, false}} {
		p, err := s.PushConv(t.Context(), c.feeds)
		if err != nil || p.Held[c.feeds] != c.held || len(p.Sequenced) != 0 {
			t.Errorf("PushConv(%s) = held %v, sequenced %d, %v; want held %v, nothing sequenced", c.feeds, p.Held, len(p.Sequenced), err, c.held)
		}
	}
	if res, err := s.Run(t.Context(), false); err != nil || res.Pushed != 0 {
		t.Errorf("a round in the grace = %+v, %v, want nothing pushed", res, err)
	}
}

// A reply never overtakes what it answers: the laptop holds bob's message
// unsequenced (it came directly while the server was away) and answers
// it; its push holds the reply back until bob's message has its SeqId
// (here: once relayed after the grace, bob having pushed it first), so
// the server has the message, then the reply.
func TestReplyWaitsForWhatItAnswers(t *testing.T) {
	srv, dm := friends(t)
	bob := newDevice(t, srv, "bob")
	laptop := newDevice(t, srv, "alice")
	asked := bob.write(t, dm, "bob", 1)
	laptop.hold(t, asked...)
	reply := laptop.write(t, dm, "alice", 1)

	laptop.relaying(t, time.Second)
	time.Sleep(300 * time.Millisecond) // several of the laptop's rounds
	if s := laptop.seqOf(t, reply[0]); s != 0 {
		t.Fatalf("the laptop pushed its reply (SeqId %d) before bob's message was sequenced", s)
	}
	if res, err := bob.syncer.Run(t.Context(), false); err != nil || res.Pushed != 1 {
		t.Fatalf("bob's push = %+v, %v, want his message pushed", res, err)
	}
	laptop.waitSequenced(t, 10*time.Second, append(asked, reply...)...)
	wantServerOrder(t, srv, "alice", dm, append(asked, reply...))
}

// PushConv pushes only the conversation a server send is for: own
// messages of other conversations wait for the next round; in a
// conversation where own messages wait behind another device's in its
// grace it pushes none of them and says so.
func TestPushConvOneConversation(t *testing.T) {
	srv, dm := friends(t)
	srv.AddUser(t, "carol", "carol-pw", false)
	dm2 := befriend(t, srv, "alice", "carol")

	bob := newDevice(t, srv, "bob")
	laptop := newDevice(t, srv, "alice")
	fromBob := bob.write(t, dm, "bob", 1)
	laptop.hold(t, fromBob...)
	held := laptop.write(t, dm, "alice", 2)
	other := laptop.write(t, dm2, "alice", 2)
	s, err := mqsync.New(mqsync.Config{DB: laptop.db, Server: laptop.link, Device: laptop.id, Interval: time.Hour,
		RelayAfter: time.Hour, Logger: servertest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}

	p, err := s.PushConv(t.Context(), dm)
	if err != nil {
		t.Fatalf("PushConv(dm): %v", err)
	}
	if len(p.Sequenced) != 0 || !p.Held[dm] || len(p.Held) != 1 {
		t.Errorf("PushConv(dm) = sequenced %d, held %v, want none sequenced and %s held", len(p.Sequenced), p.Held, dm)
	}
	for _, m := range append(held, other...) {
		if s := laptop.seqOf(t, m); s != 0 {
			t.Errorf("PushConv(dm) pushed %s of %s (SeqId %d)", m.MsgId, m.Feeds, s)
		}
	}

	p, err = s.PushConv(t.Context(), dm2)
	if err != nil {
		t.Fatalf("PushConv(dm2): %v", err)
	}
	if len(p.Sequenced) != len(other) || len(p.Held) != 0 {
		t.Errorf("PushConv(dm2) = sequenced %d, held %v, want %d and none held", len(p.Sequenced), p.Held, len(other))
	}
	for i, m := range other {
		if s := laptop.seqOf(t, m); s != int64(i+1) {
			t.Errorf("own message %d of %s: SeqId %d, want %d", i, dm2, s, i+1)
		}
	}
	for _, m := range held {
		if s := laptop.seqOf(t, m); s != 0 {
			t.Errorf("PushConv(dm2) pushed %s of %s (SeqId %d)", m.MsgId, dm, s)
		}
	}
}
