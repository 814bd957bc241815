package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// wantNothingIn fails unless feeds holds no message, read by reader (the two
// of a dm may read it whatever their relation).
func wantNothingIn(t *testing.T, reader *servertest.Client, feeds string) {
	t.Helper()
	if h := history(t, reader, feeds, 0, 0); len(h.Messages) != 0 || h.LastSeqID != 0 {
		t.Errorf("history(%s) = %d messages from %v, last %d; want none", feeds, len(h.Messages), fromOf(h.Messages), h.LastSeqID)
	}
}

// history_push of one's own message needs the write right that send needs:
// without a relation (never one, a rejected request, a removed friend) the
// dm is readable but not writable, whichever method carries the message.
func TestHistoryPushOwnNeedsRelation(t *testing.T) {
	t.Parallel()
	_, c := start(t, "bob", "mallory", "carol", "dave")
	bob, mallory, carol, dave := c[0], c[1], c[2], c[3]
	carol.OK("add_friend", map[string]string{"user": "bob"}, nil)
	bob.OK("reject_friend", map[string]string{"user": "carol"}, nil)
	befriend(t, dave, bob)
	dave.OK("remove_friend", map[string]string{"user": "bob"}, nil)
	bob.Drain(quiet)

	for _, tt := range []struct {
		name string
		cl   *servertest.Client
	}{
		{"a stranger", mallory},
		{"after a rejected request", carol},
		{"after remove_friend", dave},
	} {
		dm := wire.DM(tt.cl.User, "bob")
		for _, batch := range [][]wire.Message{
			{text(dm, "unasked")},
			{text(dm, "one"), text(dm, "two")},
		} {
			what := fmt.Sprintf("%s: history_push of %d own messages into %s", tt.name, len(batch), dm)
			wantError(t, what, tt.cl.Fail("history_push", wire.HistoryPushReq{Messages: batch}), "forbidden")
		}
		wantError(t, tt.name+": send", tt.cl.Fail("send", text(dm, "unasked")), "forbidden")
		wantNothingIn(t, bob, dm)
	}
	bob.NoPush(wire.PushNews, quiet)
}

// A command goes to a thing only from who may write to it: a person the
// thing is not bound to cannot slip one in by history_push.
func TestHistoryPushCommandToUnboundThing(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	code := inst.AddUser(t, "lamp", password("lamp"), true)
	bob.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: code}, nil)
	lamp := dial(t, inst, "lamp", "lamp-1")

	cmd := func(from *servertest.Client) wire.Message {
		return commandMsg(from.User, "lamp", personCommand(from.User, "toggle"))
	}
	evil := cmd(alice)
	wantError(t, "history_push of a command to a thing alice is not bound to",
		alice.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{evil}}), "forbidden")
	wantError(t, "send of that command", alice.Fail("send", evil), "forbidden")
	lamp.NoPush(wire.PushNews, quiet)
	wantNothingIn(t, lamp, evil.Feeds)

	// Its owner's command goes through, by either method.
	var res []wire.SeqResult
	bob.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{cmd(bob)}}, &res)
	send(t, bob, cmd(bob))
	for want := int64(1); want <= 2; want++ {
		if n := lamp.News(); n.Message.SeqId != want || n.Message.From != "bob" {
			t.Errorf("lamp news = SeqId %d From %s, want SeqId %d from bob", n.Message.SeqId, n.Message.From, want)
		}
	}
}

// The s2s push writes as From, and From needs the write right like any
// sender: a trusted backend cannot open a dm between strangers.
func TestS2SPushNeedsWriteRight(t *testing.T) {
	t.Parallel()
	const secret = "s2s-secret-token"
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.S2SToken = secret }))
	people(t, inst, "alice", "bob", "carol")
	alice, bob, carol := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1"), dial(t, inst, "carol", "carol-1")
	befriend(t, alice, bob)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"bob"}}, &g)
	push := inst.HTTP + "/v1/s2s/push"
	msg := func(from, feeds string) []byte {
		return mustJSON(wire.Message{Feeds: feeds, MsgType: wire.MsgTypeText, From: from, Payload: mustJSON(map[string]string{"text": "backend"})})
	}
	for _, tt := range []struct {
		name  string
		body  []byte
		feeds string
	}{
		{"From an unrelated account", msg("carol", wire.DM("bob", "carol")), wire.DM("bob", "carol")},
		{"From a group non-member", msg("carol", g.Feeds), g.Feeds},
	} {
		if status, body := call(t, http.MethodPost, push, bearer(secret), tt.body); status != http.StatusForbidden {
			t.Errorf("POST /v1/s2s/push (%s) = %d %s, want 403", tt.name, status, body)
		}
		wantNothingIn(t, bob, tt.feeds)
	}
	bob.NoPush(wire.PushNews, quiet)
	carol.NoPush(wire.PushNews, 0)
	if status, body := call(t, http.MethodPost, push, bearer(secret), msg("alice", wire.DM("alice", "bob"))); status != http.StatusOK {
		t.Errorf("POST /v1/s2s/push from a friend = %d %s, want 200", status, body)
	}
	if n := bob.News(); n.Message.From != "alice" {
		t.Errorf("bob news after the s2s push = %+v, want alice's message", n.Message)
	}
}

// Relaying (history_push of a message another account signed) needs the
// relayer's membership and the author's: in a dm the relayer is then the
// other of the two, who received the message; in a group the author must
// still be a member, for the message reaches every member.
func TestHistoryPushRelayRule(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob", "carol", "dave")
	alice, _ := signedUser(t, inst, "alice")
	bob, bobKey := signedUser(t, inst, "bob")
	carol, carolKey := signedUser(t, inst, "carol")
	dave := dial(t, inst, "dave", "dave-1")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	befriend(t, alice, dave)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"carol", "dave"}}, &g)
	dm := wire.DM("alice", "bob")

	// bob's message reached alice directly while they were friends; alice
	// removed bob before her node synced it. She holds it, and it goes up.
	fromBob := signed(t, bobKey, "bob", dm, "said while friends")
	alice.OK("remove_friend", map[string]string{"user": "bob"}, nil)
	var res []wire.SeqResult
	alice.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{fromBob}}, &res)
	if len(res) != 1 || res[0].SeqId != 1 {
		t.Errorf("alice relays bob's message into their dm = %+v, want SeqId 1", res)
	}
	// A third party cannot relay into that dm.
	wantError(t, "dave relays bob's message into dm:alice:bob",
		dave.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{signed(t, bobKey, "bob", dm, "x")}}), "forbidden")

	// carol's group message, relayed by dave: fine while she is a member,
	// refused once she is not.
	before := signed(t, carolKey, "carol", g.Feeds, "still a member")
	dave.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{before}}, &res)
	alice.OK("remove_feeds_member", wire.RemoveMemberReq{Member: "carol", Feeds: g.Feeds}, nil)
	after := signed(t, carolKey, "carol", g.Feeds, "removed")
	wantError(t, "dave relays a removed member's message",
		dave.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{text(g.Feeds, "dave's own"), after}}), "forbidden")
	// carol herself can neither relay into it nor write.
	wantError(t, "carol pushes into a group she left", carol.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{after}}), "forbidden")
	if h := history(t, alice, g.Feeds, 0, 0); len(h.Messages) != 1 || h.Messages[0].MsgId != before.MsgId {
		t.Errorf("history(group) = %d messages from %v, want only carol's message from before", len(h.Messages), fromOf(h.Messages))
	}
	_ = bob
}

// A MsgId is unique per sender. bob, who saw alice's MsgId (on a direct
// stream, say), sends a message of his own under it before alice's reaches
// the server: both are stored, each under its author, and alice's is hers.
func TestMsgIdTakenByAnotherSender(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")

	// By send.
	hers := text(dm, "alice's words")
	forged := text(dm, "bob's words in alice's place")
	forged.MsgId = hers.MsgId
	if got := send(t, bob, forged).SeqId; got != 1 {
		t.Fatalf("bob's send under alice's MsgId: SeqId %d, want 1", got)
	}
	alice.News()
	if got := send(t, alice, hers).SeqId; got != 2 {
		t.Errorf("alice's send after bob took her MsgId: SeqId %d, want 2 (a message of its own)", got)
	}
	if n := bob.News(); n.Message.SeqId != 2 || n.Message.From != "alice" || string(n.Message.Payload) != string(hers.Payload) {
		t.Errorf("bob's news of alice's message = %+v, want SeqId 2 with her text", n.Message)
	}

	// By history_push, after bob's send.
	pushed := text(dm, "alice's words, gone direct")
	forged2 := text(dm, "bob again")
	forged2.MsgId = pushed.MsgId
	send(t, bob, forged2) // SeqId 3
	alice.News()
	var res []wire.SeqResult
	alice.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{pushed}}, &res)
	if want := (wire.SeqResult{MsgId: pushed.MsgId, SeqId: 4, From: "alice"}); len(res) != 1 || res[0] != want {
		t.Errorf("alice's history_push after bob took her MsgId = %+v, want [%+v]", res, want)
	}
	if n := bob.News(); n.Message.SeqId != 4 || n.Message.From != "alice" {
		t.Errorf("bob's news of alice's pushed message = %+v, want SeqId 4 from alice", n.Message)
	}

	h := history(t, bob, dm, 0, 0)
	want := []struct{ from, text string }{{"bob", "bob's words in alice's place"}, {"alice", "alice's words"}, {"bob", "bob again"}, {"alice", "alice's words, gone direct"}}
	if len(h.Messages) != len(want) {
		t.Fatalf("history = %d messages, want %d", len(h.Messages), len(want))
	}
	for i, m := range h.Messages {
		if m.From != want[i].from || string(m.Payload) != string(mustJSON(map[string]string{"text": want[i].text})) {
			t.Errorf("history[%d] = From %s %s, want From %s %q", i, m.From, m.Payload, want[i].from, want[i].text)
		}
	}
	// Retries still get their own SeqIds and store nothing.
	if got := send(t, alice, hers).SeqId; got != 2 {
		t.Errorf("alice retries her send: SeqId %d, want 2", got)
	}
	if got := send(t, bob, forged).SeqId; got != 1 {
		t.Errorf("bob retries his send: SeqId %d, want 1", got)
	}
	alice.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{hers, pushed}}, &res)
	if len(res) != 2 || res[0] != (wire.SeqResult{MsgId: hers.MsgId, SeqId: 2, From: "alice"}) || res[1] != (wire.SeqResult{MsgId: pushed.MsgId, SeqId: 4, From: "alice"}) {
		t.Errorf("alice pushes her two messages again = %+v, want SeqIds 2 and 4, hers", res)
	}
	bob.NoPush(wire.PushNews, quiet)
	if h := history(t, alice, dm, 0, 0); h.LastSeqID != 4 {
		t.Errorf("last SeqId after retries = %d, want 4", h.LastSeqID)
	}
}

// The same sender's MsgId with other content, or from another device, is a
// conflict that stores nothing, alone or inside a batch; the same message
// twice in one batch is one message.
func TestMsgIdReusedBySameSender(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	m := text(dm, "first")
	send(t, alice, m)
	bob.News()

	changed := m
	changed.Payload = mustJSON(map[string]string{"text": "second"})
	moved := m
	moved.Feeds = wire.GroupFeeds("nowhere")
	later := m
	later.TimeCreate++
	other := dial(t, inst, "alice", "alice-2")
	for _, tt := range []struct {
		name string
		cl   *servertest.Client
		msgs []wire.Message
	}{
		{"other text", alice, []wire.Message{changed}},
		{"other TimeCreate", alice, []wire.Message{later}},
		{"other device", other, []wire.Message{m}},
		{"in a batch after a good one", alice, []wire.Message{text(dm, "good"), changed}},
		{"twice in a batch, changed", alice, []wire.Message{text(dm, "good"), func() wire.Message { n := text(dm, "x"); n.MsgId = m.MsgId; n.TimeCreate = m.TimeCreate; return n }()}},
	} {
		wantError(t, "history_push "+tt.name, tt.cl.Fail("history_push", wire.HistoryPushReq{Messages: tt.msgs}), "conflict: MsgId already used by another message: "+m.MsgId)
		if len(tt.msgs) == 1 {
			wantError(t, "send "+tt.name, tt.cl.Fail("send", tt.msgs[0]), "conflict")
		}
	}
	n := text(dm, "new")
	dup := n
	dup.Payload = json.RawMessage(" {\n \"text\" : \"new\" } ") // the same JSON, encoded otherwise
	bad := n
	bad.Payload = mustJSON(map[string]string{"text": "not new"})
	wantError(t, "history_push of a new MsgId twice with other content",
		alice.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{n, bad}}), "conflict")
	bob.NoPush(wire.PushNews, quiet)
	if h := history(t, bob, dm, 0, 0); h.LastSeqID != 1 {
		t.Errorf("history after conflicts: last %d (%v), want 1", h.LastSeqID, fromOf(h.Messages))
	}
	var res []wire.SeqResult
	alice.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{n, dup}}, &res)
	if len(res) != 2 || res[0].SeqId != 2 || res[1].SeqId != 2 {
		t.Errorf("history_push of one message twice = %+v, want SeqId 2 twice", res)
	}
	if got := bob.News(); got.Message.SeqId != 2 {
		t.Errorf("bob's news = SeqId %d, want 2", got.Message.SeqId)
	}
	bob.NoPush(wire.PushNews, quiet)
}

// The per-sender MsgIds survive a restart: both messages stay, retries keep
// their SeqIds, and the key still refuses a changed message.
func TestMsgIdPerSenderAfterRestart(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	hers := text(dm, "alice's")
	his := text(dm, "bob's")
	his.MsgId = hers.MsgId
	send(t, bob, his)
	alice.Close()
	bob.Close()
	inst.Restart(t)

	alice = dial(t, inst, "alice", "alice-1")
	if got := send(t, alice, hers).SeqId; got != 2 {
		t.Errorf("alice's send after bob took her MsgId and a restart: SeqId %d, want 2", got)
	}
	inst.Restart(t)
	alice = dial(t, inst, "alice", "alice-1")
	if got := send(t, alice, hers).SeqId; got != 2 {
		t.Errorf("alice's retry after a restart: SeqId %d, want 2", got)
	}
	changed := hers
	changed.Payload = mustJSON(map[string]string{"text": "changed"})
	wantError(t, "changed message after a restart", alice.Fail("send", changed), "conflict")
	h := history(t, alice, dm, 0, 0)
	if len(h.Messages) != 2 || h.Messages[0].From != "bob" || h.Messages[1].From != "alice" || string(h.Messages[1].Payload) != string(hers.Payload) {
		t.Errorf("history after restarts = %+v, want bob's then alice's", h.Messages)
	}
}
