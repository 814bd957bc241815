package node

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// gossipGroup starts the server and the nodes of users (users[0] owns the
// group, befriends everyone and creates it with users[1:members]); the
// others are only users[0]'s friends. It waits until every member's mesh
// holds every other member's device.
func gossipGroup(t *testing.T, members int, users ...string) (*servertest.Instance, string, []*testNode) {
	t.Helper()
	srv := servertest.Start(t)
	nodes := make([]*testNode, len(users))
	for i, u := range users {
		srv.AddUser(t, u, u+"-pw", false)
		nodes[i] = startTestNode(t, srv, t.TempDir(), u, func(c *Config) {
			c.GossipHeartbeat = 100 * time.Millisecond
			c.DirectTimeout = 2 * time.Second
		})
	}
	ctx := t.Context()
	owner := nodes[0]
	for _, o := range nodes[1:] {
		if err := owner.cl.Call(ctx, wire.MethodAddFriend, wire.UserReq{User: o.n.cfg.User}, nil); err != nil {
			t.Fatal(err)
		}
		if err := o.cl.Call(ctx, wire.MethodAcceptFriend, wire.UserReq{User: owner.n.cfg.User}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var created wire.FeedsReq
	if err := owner.cl.Call(ctx, wire.MethodCreateFeeds, wire.CreateFeedsReq{Name: "gossip", Members: users[1:members]}, &created); err != nil {
		t.Fatal(err)
	}
	g := created.Feeds
	waitMeshes(t, g, nodes[:members]...)
	return srv, g, nodes
}

// waitMeshes waits until each node's mesh of g holds exactly the other
// nodes' devices.
func waitMeshes(t *testing.T, g string, nodes ...*testNode) {
	t.Helper()
	for _, a := range nodes {
		var want []string
		for _, b := range nodes {
			if b != a {
				want = append(want, b.n.self.String())
			}
		}
		slices.Sort(want)
		waitFor(t, a.n.cfg.User+"'s mesh of "+g, func() bool {
			var got []string
			for _, id := range a.n.gossip.MeshPeers(gossipTopic(g)) {
				got = append(got, id.String())
			}
			return slices.Equal(got, want)
		})
	}
}

// storedVia returns how n stored the message, or "" when it did not.
func storedVia(t *testing.T, n *testNode, feeds, msgID string) (string, int64) {
	t.Helper()
	h, err := n.n.db.History(t.Context(), feeds, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range h {
		if s.MsgId == msgID {
			return s.Via, s.SeqId
		}
	}
	return "", 0
}

func waitStored(t *testing.T, n *testNode, feeds, msgID string) string {
	t.Helper()
	var via string
	waitFor(t, n.n.cfg.User+" storing "+msgID, func() bool {
		via, _ = storedVia(t, n, feeds, msgID)
		return via != ""
	})
	return via
}

// groupText sends text to the group from n and returns its MsgId.
func groupText(t *testing.T, n *testNode, g, text string) string {
	t.Helper()
	r, err := n.cl.Send(t.Context(), SendRequest{To: g, Text: text})
	if err != nil {
		t.Fatalf("%s send to %s: %v", n.n.cfg.User, g, err)
	}
	return r.MsgId
}

// The members of a group get each other's messages by gossip, with the
// server and without it; when it is back every device holds the same
// SeqId-ordered list. A member removed gets nothing sent after; a friend
// outside the group cannot get in or inject; a forgery is refused.
func TestGroupGossip(t *testing.T) {
	srv, g, nodes := gossipGroup(t, 4, "alice", "bob", "carol", "dave", "eve")
	alice, bob, carol, dave, eve := nodes[0], nodes[1], nodes[2], nodes[3], nodes[4]
	members := []*testNode{alice, bob, carol, dave}

	// The server up: everyone gets it; the gossip path delivered it to
	// each (first or not: the server's push may win the race).
	id := groupText(t, bob, g, "hello by gossip")
	for _, n := range []*testNode{alice, carol, dave} {
		waitStored(t, n, g, id)
		waitFor(t, n.n.cfg.User+" delivered by gossip", func() bool { return n.n.gossip.Stats().Delivered >= 1 })
	}
	if bob.n.counts.sentGossip.Load() != 1 {
		t.Errorf("bob's sent_gossip = %d, want 1", bob.n.counts.sentGossip.Load())
	}

	// The server down: gossip only.
	srv.Stop(t)
	var offline []string
	for i, from := range []*testNode{carol, dave, alice} {
		offline = append(offline, groupText(t, from, g, "while the server is away "+string(rune('1'+i))))
	}
	for _, id := range offline {
		for _, n := range members {
			if via := waitStored(t, n, g, id); via != localdb.ViaGossip && via != localdb.ViaLocal {
				t.Errorf("%s stored %s via %s, want gossip", n.n.cfg.User, id, via)
			}
		}
	}
	if via, _ := storedVia(t, eve, g, offline[0]); via != "" {
		t.Errorf("eve, not a member, stored %s", offline[0])
	}

	// The server back: one SeqId order everywhere.
	srv.Restart(t)
	converged(t, g, members...)

	// A friend of alice's outside the group, whose node believes it is a
	// member (its book says so), joins the topic and publishes a message
	// signed by her own device: alice ignores her GRAFT and refuses the
	// message, and holds it against her.
	// (A refresh from the server puts her book right again: the test
	// puts the lie back until she has grafted alice.)
	waitFor(t, "eve grafting alice (in her own view)", func() bool {
		if _, ok := eve.n.book.group(g); !ok {
			eve.n.book.setGroups([]wire.Group{{Feeds: g, Name: "gossip", Owner: "alice", Members: []string{"alice", "eve"}}})
			eve.n.syncGossip(t.Context()) // joins, and dials alice
		}
		return slices.Contains(eve.n.gossip.MeshPeers(gossipTopic(g)), alice.n.self)
	})
	intruder := signedText(t, eve, g, "let me in")
	if _, err := eve.n.gossip.Publish(t.Context(), gossipTopic(g), intruder); err != nil {
		t.Fatal(err)
	}
	// A member forges: a message of carol's signed by bob's device.
	forged := signedText(t, bob, g, "carol says hi")
	var fm wire.Message
	json.Unmarshal(forged, &fm)
	fm.From = "carol"
	forgedBody, _ := json.Marshal(fm)
	if _, err := bob.n.gossip.Publish(t.Context(), gossipTopic(g), forgedBody); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice rejecting eve's and bob's messages", func() bool {
		return alice.n.gossip.Stats().Rejected >= 2 && alice.n.gossip.Score(eve.n.self) < 0 && alice.n.gossip.Score(bob.n.self) < 0
	})
	var em wire.Message
	json.Unmarshal(intruder, &em)
	for _, n := range []*testNode{alice, carol, dave} {
		for _, id := range []string{em.MsgId, fm.MsgId} {
			if via, _ := storedVia(t, n, g, id); via != "" {
				t.Errorf("%s stored the refused %s (via %s)", n.n.cfg.User, id, via)
			}
		}
	}
	if slices.Contains(alice.n.gossip.MeshPeers(gossipTopic(g)), eve.n.self) {
		t.Error("eve in alice's mesh")
	}

	// dave is removed: once the members' nodes know, nothing sent after
	// reaches him, by any path.
	if err := alice.cl.Call(t.Context(), wire.MethodRemoveFeedsMember, wire.RemoveMemberReq{Member: "dave", Feeds: g}, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{carol} {
		waitFor(t, n.n.cfg.User+" knowing dave left", func() bool {
			gr, _ := n.n.book.group(g)
			return !slices.Contains(gr.Members, "dave")
		})
	}
	waitFor(t, "dave out of alice's and carol's meshes", func() bool {
		return !slices.Contains(alice.n.gossip.MeshPeers(gossipTopic(g)), dave.n.self) &&
			!slices.Contains(carol.n.gossip.MeshPeers(gossipTopic(g)), dave.n.self)
	})
	after := groupText(t, carol, g, "after dave left")
	waitStored(t, alice, g, after)
	time.Sleep(time.Second)
	if via, _ := storedVia(t, dave, g, after); via != "" {
		t.Errorf("dave, removed, stored %s via %s", after, via)
	}
	if dave.n.gossip.Stats().Delivered > 3 {
		t.Logf("dave's deliveries: %+v", dave.n.gossip.Stats())
	}
}

// signedText is a group text of n's account signed by n's device, as
// its gossip body.
func signedText(t *testing.T, n *testNode, g, text string) []byte {
	t.Helper()
	payload, _ := json.Marshal(map[string]string{"text": text})
	m := wire.Message{MsgId: wire.NewMsgID(), Feeds: g, MsgType: wire.MsgTypeText, From: n.n.cfg.User,
		Payload: payload, TimeCreate: time.Now().UnixMilli()}
	if err := m.Sign(n.n.key); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// converged waits until every node holds the same messages of g, all
// sequenced, in the same SeqId order.
func converged(t *testing.T, g string, nodes ...*testNode) {
	t.Helper()
	list := func(n *testNode) []string {
		h, err := n.n.db.History(t.Context(), g, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range h {
			if s.SeqId == 0 {
				return nil
			}
			out = append(out, s.MsgId)
		}
		return out
	}
	waitFor(t, "every device holding the same sequenced list", func() bool {
		first := list(nodes[0])
		if first == nil {
			return false
		}
		for _, n := range nodes[1:] {
			if !slices.Equal(list(n), first) {
				return false
			}
		}
		return true
	})
}

// With the server down a group's queue in the outbox fails at every try
// (its server leg) and backs off, up to 30 s; a new message's gossip leg
// does not wait for that backoff: the online members get it at once.
func TestGroupGossipNotHeldByServerBackoff(t *testing.T) {
	srv, g, nodes := gossipGroup(t, 2, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	srv.Stop(t)
	waitFor(t, "alice seeing the server gone", func() bool { return !alice.n.link.Connected() })

	first := groupText(t, alice, g, "the server is away")
	waitStored(t, bob, g, first)
	// Four failed tries (0, 0.5, 1.5 and 3.5 s): the next is 8 s away.
	waitFor(t, "the server leg failing four times", func() bool {
		e, err := alice.n.db.OutboxState(t.Context(), first)
		return err == nil && e.Attempts >= 4
	})
	sent := time.Now()
	next := groupText(t, alice, g, "still away")
	if via := waitStored(t, bob, g, next); via != localdb.ViaGossip {
		t.Errorf("bob stored %s via %s, want gossip", next, via)
	}
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("a group message took %v to reach bob by gossip behind the server leg's backoff, want at once", took)
	}
}
