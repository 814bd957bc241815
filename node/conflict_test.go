package node_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/p2p"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// A held message whose (From, MsgId) the server already holds for another
// message is answered "conflict" on history_push: the node lists it in
// status, counts it, warns, never writes a SeqId for it and stops pushing
// it, keeping it stored. Here alice's second device sends, under the MsgId
// of a message alice's node delivered directly to bob and not yet pushed,
// another message into another conversation.
func TestNodeConflictIsReportedNotRetried(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser(t, "alice", "alice-pw", false)
	srv.AddUser(t, "bob", "bob-pw", false)

	// Bob is a bare device that takes direct messages and reports them.
	got := make(chan wire.Message, 16)
	bobKey, bobID := servertest.NewDeviceKey(t)
	bobHost, err := p2p.New(t.Context(), p2p.Config{Key: bobKey, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Authorize: func(peer.ID) bool { return true },
		Handler: p2p.HandlerFunc(func(_ context.Context, _ peer.ID, _ string, body []byte) []byte {
			var m wire.Message
			if err := json.Unmarshal(body, &m); err != nil {
				return wire.Fail("", "bad request: "+err.Error())
			}
			got <- m
			a, _ := wire.OK("", map[string]string{"MsgId": m.MsgId})
			return a
		})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bobHost.Close() })
	bob := servertest.Dial(t, srv, "bob", "bob-pw", bobID)
	defer bob.Close()
	bob.Register(bobKey, bobHost.Addrs())

	// The node pushes only when told to (Sync), so the second device acts
	// before the push.
	cl, stop := runNodeWith(t, srv, t.TempDir(), "alice", func(c *node.Config) { c.SyncInterval = time.Hour })
	defer stop()
	ctx := t.Context()
	if err := cl.Call(ctx, wire.MethodAddFriend, wire.UserReq{User: "bob"}, nil); err != nil {
		t.Fatal(err)
	}
	bob.OK(wire.MethodAcceptFriend, wire.UserReq{User: "alice"}, nil)
	var sent node.SendResult
	deadline := time.Now().Add(10 * time.Second)
	for {
		peers, err := cl.Peers(ctx)
		known := false
		for _, p := range peers {
			known = known || p.Device == bobID
		}
		if err == nil && known {
			if sent, err = cl.Send(ctx, node.SendRequest{To: "bob", Text: "the real one"}); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's node cannot send to bob's device: peers %v, %v", peers, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case m := <-got:
		if m.MsgId != sent.MsgId {
			t.Fatalf("bob got %s, want %s", m.MsgId, sent.MsgId)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bob's device got no direct message")
	}

	// Alice's second device uses that MsgId first, in a group of her own.
	second := servertest.Dial(t, srv, "alice", "alice-pw", "alice-second-device")
	defer second.Close()
	var g wire.FeedsReq
	second.OK(wire.MethodCreateFeeds, wire.CreateFeedsReq{Name: "notes", Members: []string{}}, &g)
	second.OK(wire.MethodSend, wire.Message{MsgId: sent.MsgId, Feeds: g.Feeds, MsgType: wire.MsgTypeText,
		Payload: json.RawMessage(`{"text":"another message"}`), TimeCreate: time.Now().UnixMilli()}, nil)

	for range 3 {
		if _, err := cl.Sync(ctx); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Conflicted) != 1 || st.Conflicted[0].MsgId != sent.MsgId || st.Conflicted[0].From != "alice" {
		t.Errorf("status conflicted = %+v, want alice's %s", st.Conflicted, sent.MsgId)
	}
	if st.Counters["conflicts"] != 1 {
		t.Errorf("conflicts counter = %d after three syncs, want 1: pushed once, not again", st.Counters["conflicts"])
	}
	if st.Unsynced != 0 || st.Outbox != 0 {
		t.Errorf("status unsynced %d, outbox %d; want 0, 0: nothing left to push", st.Unsynced, st.Outbox)
	}
	h, err := cl.History(ctx, "bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 1 || h.Messages[0].MsgId != sent.MsgId || h.Messages[0].SeqId != 0 {
		t.Errorf("alice's history with bob = %+v, want the message kept, with no SeqId", h.Messages)
	}
}
