package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func TestSendSeqIDsPerConversation(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"bob", "carol"}}, &g)

	// Interleaved sends: each conversation counts on its own.
	steps := []struct {
		cl    *servertest.Client
		feeds string
		want  int64
	}{
		{alice, wire.DM("alice", "bob"), 1},
		{bob, wire.DM("alice", "bob"), 2},
		{alice, wire.DM("alice", "carol"), 1},
		{carol, g.Feeds, 1},
		{alice, wire.DM("alice", "bob"), 3},
		{bob, g.Feeds, 2},
		{carol, wire.DM("alice", "carol"), 2},
		{alice, g.Feeds, 3},
	}
	for i, s := range steps {
		if got := send(t, s.cl, text(s.feeds, fmt.Sprint("m", i))).SeqId; got != s.want {
			t.Errorf("step %d: %s send to %s: SeqId = %d, want %d", i, s.cl.User, s.feeds, got, s.want)
		}
	}
	// The client's SeqId is ignored: only the server sequences.
	m := text(wire.DM("alice", "bob"), "claims 99")
	m.SeqId = 99
	if got := send(t, alice, m).SeqId; got != 4 {
		t.Errorf("send with SeqId 99: SeqId = %d, want 4", got)
	}
	h := history(t, bob, wire.DM("alice", "bob"), 0, 0)
	if got := seqIDs(h.Messages); !slices.Equal(got, span(1, 4)) || h.LastSeqID != 4 {
		t.Errorf("history(dm:alice:bob) = %v last %d, want [1 2 3 4] last 4", got, h.LastSeqID)
	}
	var convs []wire.Conversation
	alice.OK("conversations", wire.Empty{}, &convs)
	slices.SortFunc(convs, func(a, b wire.Conversation) int { return strings.Compare(a.Feeds, b.Feeds) })
	want := []wire.Conversation{{Feeds: wire.DM("alice", "bob"), LastSeqID: 4}, {Feeds: wire.DM("alice", "carol"), LastSeqID: 2}, {Feeds: g.Feeds, LastSeqID: 3}}
	if !slices.Equal(convs, want) {
		t.Errorf("alice conversations = %+v, want %+v", convs, want)
	}
	bob.OK("conversations", wire.Empty{}, &convs)
	if len(convs) != 2 {
		t.Errorf("bob conversations = %+v, want dm:alice:bob and %s", convs, g.Feeds)
	}
}

func TestConversationsEmptyGroup(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice")
	alice := c[0]
	var convs []wire.Conversation
	alice.OK("conversations", wire.Empty{}, &convs)
	if convs == nil || len(convs) != 0 {
		t.Errorf("conversations of a new account = %#v, want []", convs)
	}
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "solo"}, &g)
	alice.OK("conversations", wire.Empty{}, &convs)
	if want := []wire.Conversation{{Feeds: g.Feeds, LastSeqID: 0}}; !slices.Equal(convs, want) {
		t.Errorf("conversations with an empty group = %+v, want %+v", convs, want)
	}
}

func TestSendIdempotent(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	send(t, alice, text(dm, "one"))
	m := text(dm, "two")
	first := send(t, alice, m)
	if first.SeqId != 2 {
		t.Fatalf("send SeqId = %d, want 2", first.SeqId)
	}
	bob.News()
	if n := bob.News(); n.Message.MsgId != m.MsgId {
		t.Fatalf("bob's second news = %s, want %s", n.Message.MsgId, m.MsgId)
	}
	// The retry of the same message gets the same answer; the same MsgId
	// with other content is another message, refused.
	for range 2 {
		if got := send(t, alice, m); got != first {
			t.Errorf("retried send = %+v, want %+v", got, first)
		}
	}
	changed := m
	changed.Payload = mustJSON(map[string]string{"text": "changed"})
	wantError(t, "send of a sent MsgId with other content", alice.Fail("send", changed), "conflict: MsgId already used by another message: "+m.MsgId)
	bob.NoPush(wire.PushNews, quiet)
	if got := send(t, alice, text(dm, "three")).SeqId; got != 3 {
		t.Errorf("send after retries and a conflict: SeqId = %d, want 3 (no gap)", got)
	}
	h := history(t, alice, dm, 0, 0)
	if got := seqIDs(h.Messages); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Errorf("history = %v, want [1 2 3]", got)
	}
	if got := string(h.Messages[1].Payload); got != `{"text":"two"}` {
		t.Errorf("history[2].Payload = %s, want the first send's {\"text\":\"two\"}", got)
	}
}

// A MsgId names one message everywhere: reusing one already stored in a
// conversation the sender cannot read must neither succeed silently nor tell
// the sender where that message is.
func TestSendReusedMsgIdElsewhere(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob", "carol", "dave")
	alice, bob, carol, dave := c[0], c[1], c[2], c[3]
	befriend(t, alice, bob)
	befriend(t, carol, dave)
	secret := text(wire.DM("alice", "bob"), "secret")
	send(t, alice, secret)

	m := text(wire.DM("carol", "dave"), "mine")
	m.MsgId = secret.MsgId
	a := carol.Call("send", m)
	if a.Error != "" {
		if strings.Contains(a.Error, secret.Feeds) {
			t.Errorf("carol send(MsgId of alice's message) = Error %q, want it not to name %s", a.Error, secret.Feeds)
		}
		return
	}
	var r wire.SendResult
	json.Unmarshal(a.Result, &r)
	if r.Feeds != m.Feeds {
		t.Errorf("carol send(MsgId of alice's message, to %s) = %+v, want an Error or her own Feeds: it reveals %s", m.Feeds, r, r.Feeds)
	}
	if h := history(t, dave, m.Feeds, 0, 0); len(h.Messages) != 1 {
		t.Errorf("carol's message with a reused MsgId: answered %+v but history(%s) has %d messages, want 1 (or an Error answer)", r, m.Feeds, len(h.Messages))
	}
}

func TestSendFromSetByServer(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")

	m := text(dm, "no From")
	m.Device = "forged-device"
	send(t, alice, m)
	n := bob.News()
	if n.Message.From != "alice" || n.Message.Device != "alice-1" {
		t.Errorf("news of an unsigned message = From %q Device %q, want From alice Device alice-1", n.Message.From, n.Message.Device)
	}
	own := text(dm, "own From")
	own.From = "alice"
	send(t, alice, own)

	spoof := text(dm, "I am bob")
	spoof.From = "bob"
	wantError(t, "unsigned send with From=bob by alice", alice.Fail("send", spoof), "forbidden")

	h := history(t, bob, dm, 0, 0)
	if len(h.Messages) != 2 {
		t.Fatalf("history = %d messages, want 2", len(h.Messages))
	}
	for _, m := range h.Messages {
		if m.From != "alice" || m.Device != "alice-1" || m.Sig != "" {
			t.Errorf("stored unsigned message %d = From %q Device %q Sig %q, want alice, alice-1, no Sig", m.SeqId, m.From, m.Device, m.Sig)
		}
	}
}

// signedUser connects account name as a node would: client id = the peer id
// of a fresh Ed25519 key, registered with the proof of that key.
func signedUser(t *testing.T, inst *servertest.Instance, name string) (*servertest.Client, crypto.PrivKey) {
	t.Helper()
	key, id := servertest.NewDeviceKey(t)
	cl := dial(t, inst, name, id)
	cl.Register(key, nil)
	return cl, key
}

func signed(t *testing.T, key crypto.PrivKey, from, feeds, s string) wire.Message {
	t.Helper()
	m := text(feeds, s)
	m.From = from
	if err := m.Sign(key); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return m
}

func TestSendSigned(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob", "carol")
	alice, aliceKey := signedUser(t, inst, "alice")
	bob, bobKey := signedUser(t, inst, "bob")
	carol := dial(t, inst, "carol", "carol-1")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	dm := wire.DM("alice", "bob")

	good := signed(t, aliceKey, "alice", dm, "signed hi")
	send(t, alice, good)
	n := bob.News()
	if n.Message.Sig != good.Sig || n.Message.Device != alice.Device {
		t.Errorf("news of a signed message: Sig %q Device %q, want %q %q", n.Message.Sig, n.Message.Device, good.Sig, alice.Device)
	}
	if err := n.Message.Verify(); err != nil {
		t.Errorf("signed message as pushed does not verify: %v", err)
	}
	h := history(t, bob, dm, 0, 0)
	if len(h.Messages) != 1 || h.Messages[0].Verify() != nil {
		t.Errorf("history of a signed message = %+v, want it stored with a signature that verifies", h.Messages)
	}

	tampered := signed(t, aliceKey, "alice", dm, "original")
	tampered.Payload = mustJSON(map[string]string{"text": "tampered"})
	asBob := signed(t, aliceKey, "bob", dm, "I am bob")
	bobsDevice := signed(t, bobKey, "alice", dm, "bob's key, alice's name")
	strangerKey, _ := servertest.NewDeviceKey(t)
	unknownDevice := signed(t, strangerKey, "alice", dm, "unknown device")
	badSig := signed(t, aliceKey, "alice", dm, "bad sig")
	badSig.Sig = "not base64!"
	otherFeeds := signed(t, aliceKey, "alice", wire.DM("alice", "carol"), "moved")
	otherFeeds.Feeds = dm

	tests := []struct {
		name string
		m    wire.Message
		want string
	}{
		{"tampered payload", tampered, "forbidden"},
		{"moved to another conversation", otherFeeds, "forbidden"},
		{"From another account", asBob, "forbidden"},
		{"device of another account", bobsDevice, "forbidden"},
		{"device never seen", unknownDevice, "forbidden"},
		{"malformed Sig", badSig, "bad request"},
	}
	for _, tt := range tests {
		wantError(t, "signed send: "+tt.name, alice.Fail("send", tt.m), tt.want)
	}
	bob.NoPush(wire.PushNews, quiet)
	if h := history(t, alice, dm, 0, 0); len(h.Messages) != 1 {
		t.Errorf("history after refused sends = %d messages, want 1", len(h.Messages))
	}
	// A signed message from another of alice's devices, sent by a plain one.
	plain := dial(t, inst, "alice", "alice-plain")
	send(t, plain, signed(t, aliceKey, "alice", dm, "relayed by my other device"))
}

func TestSendRefused(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)
	befriend(t, bob, carol)
	var g wire.FeedsReq
	bob.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"carol"}}, &g)

	mut := func(fn func(m *wire.Message)) wire.Message {
		m := text(wire.DM("alice", "bob"), "x")
		fn(&m)
		return m
	}
	tests := []struct {
		name string
		m    wire.Message
		want string
	}{
		{"dm with a non-friend", text(wire.DM("alice", "carol"), "x"), "forbidden"},
		{"dm of others", text(wire.DM("bob", "carol"), "x"), "forbidden"},
		{"group of others", text(g.Feeds, "x"), "forbidden"},
		{"no such group", text("g:nosuchgroup", "x"), "forbidden"},
		{"dm out of order", text("dm:bob:alice", "x"), "bad request"},
		{"bad feeds", text("chat:alice", "x"), "bad request"},
		{"no MsgId", mut(func(m *wire.Message) { m.MsgId = "" }), "missing field"},
		{"MsgId too long", mut(func(m *wire.Message) { m.MsgId = strings.Repeat("x", 65) }), "bad request"},
		{"unknown MsgType", mut(func(m *wire.Message) { m.MsgType = "sticker" }), "bad request"},
		{"no Payload", mut(func(m *wire.Message) { m.Payload = nil }), "bad request"},
		{"null Payload", mut(func(m *wire.Message) { m.Payload = json.RawMessage("null") }), "bad request"},
		{"negative TimeCreate", mut(func(m *wire.Message) { m.TimeCreate = -1 }), "bad request"},
	}
	for _, tt := range tests {
		wantError(t, "send "+tt.name, alice.Fail("send", tt.m), tt.want)
	}
	var convs []wire.Conversation
	alice.OK("conversations", wire.Empty{}, &convs)
	if len(convs) != 0 {
		t.Errorf("conversations after refused sends = %+v, want none", convs)
	}
	for _, tt := range []struct {
		body string
		want string
	}{
		{`{"MsgId":`, "bad json"},
		{`[1,2]`, "bad json"},
		{`{"MsgId":"x","Feeds":"dm:alice:bob","MsgType":"text","Payload":{"text":"x"},"TimeCreate":"soon"}`, "bad json"},
	} {
		a := alice.Call("send", []byte(tt.body))
		wantError(t, "send "+tt.body, a.Error, tt.want)
	}
}

func TestHistoryPush(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob", "carol")
	alice, _ := signedUser(t, inst, "alice")
	bob, bobKey := signedUser(t, inst, "bob")
	carol := dial(t, inst, "carol", "carol-1")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	dm := wire.DM("alice", "bob")
	send(t, alice, text(dm, "sent live"))
	bob.News()

	// Messages alice's node delivered peer to peer, now synced: its own
	// (unsigned, attested by the server) and bob's (signed by his device).
	batch := []wire.Message{text(dm, "p2p 1"), signed(t, bobKey, "bob", dm, "p2p 2 from bob"), text(dm, "p2p 3")}
	var res []wire.SeqResult
	alice.OK("history_push", wire.HistoryPushReq{Messages: batch}, &res)
	want := []wire.SeqResult{{MsgId: batch[0].MsgId, SeqId: 2, From: "alice"}, {MsgId: batch[1].MsgId, SeqId: 3, From: "bob"}, {MsgId: batch[2].MsgId, SeqId: 4, From: "alice"}}
	if !slices.Equal(res, want) {
		t.Fatalf("history_push = %+v, want %+v", res, want)
	}
	got := newsUntil(t, bob, dm, 4)
	if s := newsSeqs(got)[dm]; !slices.Equal(s, []int64{2, 3, 4}) {
		t.Errorf("bob's news after history_push = %v, want [2 3 4]", s)
	}
	// Idempotent: the same batch again, and with a message sent before.
	again := append([]wire.Message{}, batch...)
	again = append(again, text(dm, "p2p 4"))
	alice.OK("history_push", wire.HistoryPushReq{Messages: again}, &res)
	want = append(want, wire.SeqResult{MsgId: again[3].MsgId, SeqId: 5, From: "alice"})
	if !slices.Equal(res, want) {
		t.Errorf("history_push repeated = %+v, want %+v", res, want)
	}
	if n := bob.News(); n.Message.SeqId != 5 {
		t.Errorf("bob's news after the repeated push = SeqId %d, want only the new 5", n.Message.SeqId)
	}
	bob.NoPush(wire.PushNews, quiet)
	h := history(t, alice, dm, 0, 0)
	if got := seqIDs(h.Messages); !slices.Equal(got, span(1, 5)) {
		t.Errorf("history after pushes = %v, want [1..5]", got)
	}
	if h.Messages[2].From != "bob" || h.Messages[2].Verify() != nil {
		t.Errorf("history[3] = From %q, verify %v; want bob's signed message", h.Messages[2].From, h.Messages[2].Verify())
	}
	if h.Messages[1].From != "alice" || h.Messages[1].Device != alice.Device {
		t.Errorf("history[2] = From %q Device %q, want alice's unsigned message attested to %s", h.Messages[1].From, h.Messages[1].Device, alice.Device)
	}
	alice.OK("history_push", wire.HistoryPushReq{}, &res)
	if len(res) != 0 {
		t.Errorf("history_push of nothing = %+v, want []", res)
	}

	// Refused batches store nothing, not even their good messages.
	spoofed := text(dm, "unsigned as bob")
	spoofed.From = "bob"
	tamperedBob := signed(t, bobKey, "bob", dm, "x")
	tamperedBob.Payload = mustJSON("tampered")
	tests := []struct {
		name string
		bad  wire.Message
		want string
	}{
		{"unsigned message from another account", spoofed, "forbidden"},
		{"bad signature", tamperedBob, "forbidden"},
		{"conversation of others", text(wire.DM("bob", "carol"), "x"), "forbidden"},
		{"no MsgId", wire.Message{Feeds: dm}, "missing field"},
	}
	for _, tt := range tests {
		// Alone, and after a good message of the same conversation.
		for _, msgs := range [][]wire.Message{{tt.bad}, {text(tt.bad.Feeds, "good one"), tt.bad}} {
			a := alice.Call("history_push", wire.HistoryPushReq{Messages: msgs})
			wantError(t, fmt.Sprintf("history_push %s (batch of %d)", tt.name, len(msgs)), a.Error, tt.want)
		}
	}
	over := make([]wire.Message, wire.MaxHistoryPush+1)
	for i := range over {
		over[i] = text(dm, "x")
	}
	wantError(t, "history_push of 501", alice.Fail("history_push", wire.HistoryPushReq{Messages: over}), "bad request")
	if h := history(t, alice, dm, 0, 0); h.LastSeqID != 5 || len(h.Messages) != 5 {
		t.Errorf("history after refused pushes = %v last %d, want [1..5] last 5", seqIDs(h.Messages), h.LastSeqID)
	}
	bob.NoPush(wire.PushNews, quiet)
}

// Only members may write to a conversation, also by way of another member's
// history_push: a message signed by a non-member is refused, wherever it
// stands in the batch.
func TestHistoryPushFromNonMember(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob", "carol")
	alice, _ := signedUser(t, inst, "alice")
	bob := dial(t, inst, "bob", "bob-1")
	_, carolKey := signedUser(t, inst, "carol")
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"bob"}}, &g)

	for _, feeds := range []string{dm, g.Feeds} {
		for _, first := range []bool{true, false} {
			bad := signed(t, carolKey, "carol", feeds, "carol was never here")
			batch := []wire.Message{bad}
			if !first {
				batch = []wire.Message{text(feeds, "alice's own"), bad}
			}
			a := alice.Call("history_push", wire.HistoryPushReq{Messages: batch})
			wantError(t, fmt.Sprintf("history_push to %s of carol's signed message (batch of %d)", feeds, len(batch)), a.Error, "forbidden")
		}
		if h := history(t, bob, feeds, 0, 0); len(h.Messages) != 0 {
			t.Errorf("history(%s) after refused pushes = %d messages from %v, want none", feeds, len(h.Messages), fromOf(h.Messages))
		}
	}
}

func fromOf(msgs []wire.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.From)
	}
	return out
}

// A client's requests are handled in the order it published them: sends
// fired without waiting get SeqIds in publish order, and a history asked
// right after them sees them all.
func TestRequestsInOrder(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	var ids []string
	for i := range 50 {
		m := text(dm, fmt.Sprint(i))
		ids = append(ids, m.MsgId)
		alice.Paho().Publish(wire.RequestTopic("modulus", "send", m.MsgId), 1, false, []byte(mustJSON(m)))
	}
	h := history(t, alice, dm, 0, 0)
	if len(h.Messages) != len(ids) {
		t.Fatalf("history right after 50 unawaited sends = %d messages, want 50", len(h.Messages))
	}
	for i, m := range h.Messages {
		if m.MsgId != ids[i] || m.SeqId != int64(i+1) {
			t.Fatalf("history[%d] = %s SeqId %d, want %s SeqId %d (publish order)", i, m.MsgId, m.SeqId, ids[i], i+1)
		}
	}
	news := newsUntil(t, bob, dm, 50)
	if got := newsSeqs(news)[dm]; !slices.Equal(got, span(1, 50)) {
		t.Errorf("bob's news = %v, want 1..50 in order", got)
	}
}

func TestHistoryPushFull(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	msgs := make([]wire.Message, wire.MaxHistoryPush)
	for i := range msgs {
		msgs[i] = text(dm, fmt.Sprint(i))
	}
	var res []wire.SeqResult
	alice.OK("history_push", wire.HistoryPushReq{Messages: msgs}, &res)
	if len(res) != len(msgs) {
		t.Fatalf("history_push of %d = %d results", len(msgs), len(res))
	}
	for i, r := range res {
		if r.MsgId != msgs[i].MsgId || r.SeqId != int64(i+1) {
			t.Fatalf("history_push result %d = %+v, want %s SeqId %d", i, r, msgs[i].MsgId, i+1)
		}
	}
	if n := newsUntil(t, bob, dm, 500); len(n) != 500 {
		t.Errorf("bob got %d news for a push of 500, want 500", len(n))
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	var sent []wire.Message
	for i := range 5 {
		m := text(dm, fmt.Sprint("m", i))
		send(t, alice, m)
		sent = append(sent, m)
	}
	tests := []struct {
		after int64
		limit int
		want  []int64
	}{
		{0, 0, span(1, 5)},
		{0, 2, []int64{1, 2}},
		{2, 2, []int64{3, 4}},
		{3, 100, []int64{4, 5}},
		{5, 0, nil},
		{9, 0, nil},
	}
	for _, tt := range tests {
		h := history(t, bob, dm, tt.after, tt.limit)
		if got := seqIDs(h.Messages); !slices.Equal(got, tt.want) || h.LastSeqID != 5 || h.Messages == nil {
			t.Errorf("history(after_seq %d, limit %d) = %v last %d, want %v last 5", tt.after, tt.limit, got, h.LastSeqID, tt.want)
		}
	}
	h := history(t, bob, dm, 0, 0)
	for i, m := range h.Messages {
		if m.MsgId != sent[i].MsgId || string(m.Payload) != string(sent[i].Payload) || m.Feeds != dm || m.TimeCreate != sent[i].TimeCreate || m.MsgType != "text" {
			t.Errorf("history[%d] = %+v, want what was sent: %+v", i, m, sent[i])
		}
	}
	// A conversation without messages yet.
	if h := history(t, alice, wire.DM("alice", "carol"), 0, 0); len(h.Messages) != 0 || h.LastSeqID != 0 {
		t.Errorf("history of an empty dm = %+v, want none, last 0", h)
	}

	refused := []struct {
		name string
		cl   *servertest.Client
		req  any
		want string
	}{
		{"by a non-member", carol, wire.HistoryReq{Feeds: dm}, "forbidden"},
		{"of no group", alice, wire.HistoryReq{Feeds: "g:nosuchgroup"}, "forbidden"},
		{"without feeds", alice, wire.HistoryReq{}, "missing field"},
		{"of bad feeds", alice, wire.HistoryReq{Feeds: "alice"}, "bad request"},
		{"negative after_seq", alice, wire.HistoryReq{Feeds: dm, AfterSeq: -1}, "bad request"},
		{"negative limit", alice, wire.HistoryReq{Feeds: dm, Limit: -1}, "bad request"},
	}
	for _, tt := range refused {
		wantError(t, "history "+tt.name, tt.cl.Fail("history", tt.req), tt.want)
	}
}

// A history_push that is refused stores nothing: not even the good messages
// next to one whose MsgId belongs to another conversation.
func TestHistoryPushReusedMsgIdElsewhere(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	other := text(wire.DM("alice", "carol"), "elsewhere")
	send(t, alice, other)
	dm := wire.DM("alice", "bob")
	reuse := text(dm, "reused id")
	reuse.MsgId = other.MsgId
	good := text(dm, "good")
	a := alice.Call("history_push", wire.HistoryPushReq{Messages: []wire.Message{good, reuse}})
	if a.Error == "" {
		var res []wire.SeqResult
		json.Unmarshal(a.Result, &res)
		for _, r := range res {
			if r.MsgId == other.MsgId && r.SeqId == 1 {
				t.Errorf("history_push with a MsgId of dm:alice:carol = %+v, want an Error, not that message's SeqId", res)
			}
		}
		return
	}
	if h := history(t, alice, dm, 0, 0); len(h.Messages) != 0 {
		t.Errorf("history_push answered Error %q but stored %d messages of the batch in %s, want none", a.Error, len(h.Messages), dm)
	}
	bob.NoPush(wire.PushNews, quiet)
}
