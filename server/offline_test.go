package server_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// reconnect closes cl and connects the same device again.
func reconnect(t *testing.T, inst *servertest.Instance, cl *servertest.Client) *servertest.Client {
	t.Helper()
	cl.Close()
	return dial(t, inst, cl.User, cl.Device)
}

// settle waits until cl's sends so far have been pushed to the devices
// online: a request that is not a send runs only after them.
func settle(t *testing.T, cl *servertest.Client) {
	t.Helper()
	cl.OK("list_feeds", wire.Empty{}, nil)
}

// replayed connects device and returns what it is pushed on CONNECT: the
// topics in order (presence left out) and the news, reading until the news
// hold last of every conversation in wantLast.
func replayed(t *testing.T, inst *servertest.Instance, user, device string, wantLast map[string]int64) (*servertest.Client, []string, []wire.News) {
	t.Helper()
	cl := dial(t, inst, user, device)
	var ps []servertest.Push
	missing := func() bool {
		_, news := decodePushes(t, ps)
		seen := newsSeqs(news)
		for f, last := range wantLast {
			if !slices.Contains(seen[f], last) {
				return true
			}
		}
		return false
	}
	ps = append(ps, cl.NextAnyPush())
	for missing() {
		ps = append(ps, cl.NextAnyPush())
	}
	ps = append(ps, cl.Drain(quiet)...)
	topics, news := decodePushes(t, ps)
	return cl, topics, news
}

func TestOfflineReplay(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)
	befriend(t, bob, carol)
	var g wire.FeedsReq
	bob.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"alice", "carol"}}, &g)
	ab, bc := wire.DM("alice", "bob"), wire.DM("bob", "carol")
	bob.Close()

	// While bob is away: three conversations, interleaved.
	send(t, alice, text(ab, "a1"))
	send(t, carol, text(g.Feeds, "g1"))
	send(t, alice, text(ab, "a2"))
	send(t, carol, text(bc, "c1"))
	send(t, alice, text(g.Feeds, "g2"))
	send(t, alice, text(ab, "a3"))
	send(t, carol, text(bc, "c2"))
	settle(t, alice)
	settle(t, carol)

	want := map[string][]int64{ab: {1, 2, 3}, g.Feeds: {1, 2}, bc: {1, 2}}
	bob, topics, news := replayed(t, inst, "bob", "bob-1", map[string]int64{ab: 3, g.Feeds: 2, bc: 2})
	if len(topics) == 0 || topics[0] != wire.PushRelations {
		t.Fatalf("pushes on CONNECT = %v, want the relation snapshot first", topics)
	}
	if slices.Contains(topics[1:], wire.PushRelations) {
		t.Errorf("pushes on CONNECT = %v, want one relation snapshot", topics)
	}
	if got := newsSeqs(news); len(got) != len(want) || !slices.Equal(got[ab], want[ab]) || !slices.Equal(got[g.Feeds], want[g.Feeds]) || !slices.Equal(got[bc], want[bc]) {
		t.Errorf("news replayed on CONNECT = %v, want %v", got, want)
	}
	for _, n := range news {
		if n.Message.SeqId == 0 || n.Feeds != n.Message.Feeds || n.LastSeqID < n.Message.SeqId {
			t.Errorf("replayed news = feeds %s last %d message %s/%d, want consistent feeds and last_seq_id", n.Feeds, n.LastSeqID, n.Message.Feeds, n.Message.SeqId)
		}
	}

	// Ack moves the cursor: only what is after it comes again.
	bob.OK("ack", wire.AckReq{Feeds: ab, SeqID: 2}, nil)
	bob.OK("ack", wire.AckReq{Feeds: g.Feeds, SeqID: 2}, nil)
	bob.OK("ack", wire.AckReq{Feeds: ab, SeqID: 1}, nil) // never moves back
	bob.Close()
	bob, _, news = replayed(t, inst, "bob", "bob-1", map[string]int64{ab: 3, bc: 2})
	want = map[string][]int64{ab: {3}, bc: {1, 2}}
	if got := newsSeqs(news); len(got) != 2 || !slices.Equal(got[ab], want[ab]) || !slices.Equal(got[bc], want[bc]) {
		t.Errorf("news replayed after ack(%s, 2), ack(%s, 2) = %v, want %v", ab, g.Feeds, got, want)
	}
	bob.OK("ack", wire.AckReq{Feeds: ab, SeqID: 3}, nil)
	bob.OK("ack", wire.AckReq{Feeds: bc, SeqID: 2}, nil)
	bob = reconnect(t, inst, bob)
	bob.NextPush(wire.PushRelations)
	bob.NoPush(wire.PushNews, quiet)

	refused := []struct {
		name string
		req  any
		want string
	}{
		{"of another dm", wire.AckReq{Feeds: wire.DM("alice", "carol"), SeqID: 1}, "forbidden"},
		{"of no group", wire.AckReq{Feeds: "g:nosuchgroup", SeqID: 1}, "forbidden"},
		{"without feeds", wire.AckReq{SeqID: 1}, "missing field"},
		{"negative", wire.AckReq{Feeds: ab, SeqID: -1}, "bad request"},
	}
	for _, tt := range refused {
		wantError(t, "ack "+tt.name, bob.Fail("ack", tt.req), tt.want)
	}
}

func TestRelationSnapshotOnConnect(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob", "carol", "dave")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)
	carol.OK("add_friend", map[string]string{"user": "alice"}, nil)
	alice.OK("add_friend", map[string]string{"user": "dave"}, nil)
	alice.Close()
	alice = dial(t, inst, "alice", "alice-1")
	var snap []wire.Relation
	if err := json.Unmarshal(alice.NextPush(wire.PushRelations).Body, &snap); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]string)
	for _, r := range snap {
		got[r.User] = r.State
	}
	want := map[string]string{"bob": wire.StateFriend, "carol": wire.StatePendingIn, "dave": wire.StatePendingOut}
	if len(got) != len(want) || got["bob"] != want["bob"] || got["carol"] != want["carol"] || got["dave"] != want["dave"] {
		t.Errorf("relation snapshot on CONNECT = %v, want %v", got, want)
	}
}

func TestNewDeviceStartsAtLastSeq(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"bob"}}, &g)
	dm := wire.DM("alice", "bob")
	for range 3 {
		send(t, alice, text(dm, "old"))
		send(t, alice, text(g.Feeds, "old"))
	}
	settle(t, alice)
	bob.Close()

	// bob's new phone: no old pushes, history on request.
	phone := dial(t, inst, "bob", "bob-phone")
	phone.NextPush(wire.PushRelations)
	phone.NoPush(wire.PushNews, quiet)
	if h := history(t, phone, dm, 0, 0); len(h.Messages) != 3 {
		t.Errorf("history on a new device = %d messages, want 3", len(h.Messages))
	}
	// Later messages come live...
	send(t, alice, text(dm, "new 4"))
	if n := phone.News(); n.Feeds != dm || n.Message.SeqId != 4 {
		t.Errorf("new device's live news = %s/%d, want %s/4", n.Feeds, n.Message.SeqId, dm)
	}
	// ...and, when it was away, on CONNECT.
	phone.Close()
	send(t, alice, text(dm, "new 5"))
	send(t, alice, text(g.Feeds, "new 4"))
	settle(t, alice)
	_, _, news := replayed(t, inst, "bob", "bob-phone", map[string]int64{dm: 5, g.Feeds: 4})
	want := map[string][]int64{dm: {4, 5}, g.Feeds: {4}}
	if got := newsSeqs(news); len(got) != 2 || !slices.Equal(got[dm], want[dm]) || !slices.Equal(got[g.Feeds], want[g.Feeds]) {
		t.Errorf("new device replay = %v, want %v (everything after the SeqIds it started at)", got, want)
	}
	// The old device still has everything since it last connected.
	_, _, news = replayed(t, inst, "bob", "bob-1", map[string]int64{dm: 5, g.Feeds: 4})
	want = map[string][]int64{dm: span(1, 5), g.Feeds: span(1, 4)}
	if got := newsSeqs(news); !slices.Equal(got[dm], want[dm]) || !slices.Equal(got[g.Feeds], want[g.Feeds]) {
		t.Errorf("old device replay = %v, want %v", got, want)
	}
}

func TestNewsToOtherDevicesNotSender(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	alice2, bob2 := dial(t, inst, "alice", "alice-2"), dial(t, inst, "bob", "bob-2")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"bob", "carol"}}, &g)

	for _, feeds := range []string{wire.DM("alice", "bob"), g.Feeds} {
		m := text(feeds, "from alice-1")
		r := send(t, alice, m)
		for _, cl := range []*servertest.Client{alice2, bob, bob2} {
			n := cl.News()
			if n.Message.MsgId != m.MsgId || n.Feeds != feeds || n.LastSeqID != r.SeqId || n.Message.SeqId != r.SeqId || n.Message.From != "alice" {
				t.Errorf("%s news = feeds %s last %d message %s/%d from %s, want %s SeqId %d from alice",
					cl.Device, n.Feeds, n.LastSeqID, n.Message.MsgId, n.Message.SeqId, n.Message.From, m.MsgId, r.SeqId)
			}
		}
		alice.NoPush(wire.PushNews, quiet)
	}
	if n := carol.News(); n.Feeds != g.Feeds {
		t.Errorf("carol news = %s, want only the group message", n.Feeds)
	}
	carol.NoPush(wire.PushNews, quiet)
}

// A backlog larger than the replay's pages and window comes whole and in
// order.
func TestReplayLargeBacklog(t *testing.T) {
	t.Parallel()
	const n = 1500
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	bob.Close()
	for i := 0; i < n; i += wire.MaxHistoryPush {
		batch := make([]wire.Message, wire.MaxHistoryPush)
		for k := range batch {
			batch[k] = text(dm, "backlog")
		}
		alice.OK("history_push", wire.HistoryPushReq{Messages: batch}, nil)
	}
	settle(t, alice)
	bob = dial(t, inst, "bob", "bob-1")
	news := newsUntil(t, bob, dm, n)
	if got := newsSeqs(news)[dm]; !slices.Equal(got, span(1, n)) {
		t.Errorf("replay of %d messages = %d pushes (first %v, last %v), want 1..%d in order", n, len(got), got[:min(20, len(got))], got[max(0, len(got)-20):], n)
	}
}

// A device that connects while others send gets its relation snapshot
// first and then each conversation in SeqId order: a live push must not
// overtake the replay of older messages.
func TestReplayWhileOthersSend(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	bob.Close()
	for range 200 {
		alice.Paho().Publish(wire.RequestTopic("modulus", "send", wire.NewMsgID()), 1, false, []byte(mustJSON(text(dm, "before"))))
	}
	settle(t, alice)

	stop := make(chan struct{})
	sent := make(chan int64, 1)
	go func() {
		var last int64
		defer func() { sent <- last }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			m := text(dm, "during")
			raw, err := alice.Raw(wire.RequestTopic("modulus", "send", m.MsgId), mustJSON(m))
			if err != nil {
				return
			}
			var r wire.SendResult
			if a, err := wire.ParseAnswer(raw); err == nil && a.Decode(&r) == nil {
				last = r.SeqId
			}
		}
	}()
	defer func() {
		close(stop)
		<-sent
	}()
	// Connect bob a few times while alice keeps sending: each time, the
	// replay from his cursor must come in order, after the snapshot.
	for round := range 3 {
		time.Sleep(50 * time.Millisecond)
		bob = dial(t, inst, "bob", "bob-1")
		var ps []servertest.Push
		for len(ps) < 400 {
			ps = append(ps, bob.NextAnyPush())
		}
		topics, news := decodePushes(t, ps)
		if i := slices.Index(topics, wire.PushRelations); i != 0 {
			t.Errorf("round %d: pushes on CONNECT while alice sends: %d news before the relation snapshot, want the snapshot first", round, i)
		}
		seqs := newsSeqs(news)[dm]
		if len(seqs) == 0 {
			t.Fatalf("round %d: no news on CONNECT while alice sends", round)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				t.Errorf("round %d: news on CONNECT while alice sends: SeqId %d after %d (push %d of %d), want SeqId order", round, seqs[i], seqs[i-1], i, len(seqs))
				break
			}
		}
		bob.OK("ack", wire.AckReq{Feeds: dm, SeqID: seqs[len(seqs)-1] - 100}, nil)
		bob.Close()
	}
}

// An ack beyond the conversation's last SeqId stops at it: messages sent
// later are still replayed to the device.
func TestAckPastTheEndIsClamped(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	send(t, alice, text(dm, "one"))
	bob.News()
	bob.OK("ack", wire.AckReq{Feeds: dm, SeqID: 1000}, nil)
	bob.Close()
	send(t, alice, text(dm, "two"))
	bob2 := dial(t, inst, "bob", bob.Device)
	if n := bob2.News(); n.Message.SeqId != 2 {
		t.Fatalf("replay after ack(1000) with last SeqId 1 = SeqId %d, want 2", n.Message.SeqId)
	}
}
