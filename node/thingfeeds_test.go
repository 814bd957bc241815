package node

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// feedHome starts the server and the nodes of a home: alice and bob are
// bound to the lamp, the door is associated with it (alice is bound to
// the door too); mallory is alice's friend, a stranger to the things. It
// waits until the lamp's feed has its mesh among the four readers.
func feedHome(t *testing.T) (srv *servertest.Instance, lamp, door, alice, bob, mallory *testNode) {
	t.Helper()
	srv = servertest.Start(t)
	fast := func(c *Config) {
		c.GossipHeartbeat = 100 * time.Millisecond
		c.DirectTimeout = 2 * time.Second
	}
	for _, u := range []string{"alice", "bob", "mallory"} {
		srv.AddUser(t, u, u+"-pw", false)
	}
	srv.AddUser(t, "lamp", "lamp-pw", true)
	srv.AddUser(t, "door", "door-pw", true)
	alice = startTestNode(t, srv, t.TempDir(), "alice", fast)
	bob = startTestNode(t, srv, t.TempDir(), "bob", fast)
	mallory = startTestNode(t, srv, t.TempDir(), "mallory", fast)
	lamp = startTestNode(t, srv, t.TempDir(), "lamp", func(c *Config) {
		fast(c)
		c.ThingHandler = deviceCommand("lamp", ranFile(t), false)
	})
	door = startTestNode(t, srv, t.TempDir(), "door", func(c *Config) {
		fast(c)
		c.ThingHandler = deviceCommand("sensor", ranFile(t), false)
	})
	bind(t, alice, lamp)
	bind(t, bob, lamp)
	bind(t, alice, door)
	ctx := t.Context()
	if err := alice.cl.Call(ctx, wire.MethodAssociate, wire.AssociateReq{A: "door", B: "lamp"}, nil); err != nil {
		t.Fatalf("associate: %v", err)
	}
	if err := alice.cl.Call(ctx, wire.MethodAddFriend, wire.UserReq{User: "mallory"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := mallory.cl.Call(ctx, wire.MethodAcceptFriend, wire.UserReq{User: "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mallory in alice's book", func() bool { return knows(alice, mallory, wire.StateFriend) })
	readers := []string{"alice", "bob", "door", "lamp"}
	for _, n := range []*testNode{lamp, door, alice, bob} {
		waitFor(t, n.n.cfg.User+" listing the lamp's feed", func() bool {
			g, ok := n.n.book.group("t:lamp")
			return ok && slices.Equal(g.Members, readers)
		})
	}
	if _, ok := mallory.n.book.group("t:lamp"); ok {
		t.Fatal("mallory's book lists the lamp's feed")
	}
	var list []wire.Group
	if err := alice.cl.Call(ctx, wire.MethodListThingFeeds, wire.Empty{}, &list); err != nil || len(list) != 2 {
		t.Fatalf("alice's list_thing_feeds through her node: %+v, %v; want the lamp's and the door's feeds", list, err)
	}
	waitMeshes(t, "t:lamp", lamp, door, alice, bob)
	return srv, lamp, door, alice, bob, mallory
}

// report makes the lamp's program report a state (through the local API,
// as its program would) and returns the MsgId of what its node sent.
func report(t *testing.T, lamp *testNode, fb thing.Feedback) string {
	t.Helper()
	before := lampSent(t, lamp)
	if err := lamp.cl.ThingFeedback(t.Context(), fb); err != nil {
		t.Fatal(err)
	}
	var id string
	waitFor(t, "the lamp sending its report", func() bool {
		sent := lampSent(t, lamp)
		if len(sent) > len(before) {
			id = sent[len(sent)-1]
			return true
		}
		return false
	})
	return id
}

// lampSent lists the MsgIds of the lamp's own messages in its feed.
func lampSent(t *testing.T, lamp *testNode) []string {
	t.Helper()
	h, err := lamp.n.db.History(t.Context(), "t:lamp", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range h {
		if s.From == "lamp" {
			out = append(out, s.MsgId)
		}
	}
	return out
}

func onState(on bool) thing.Feedback {
	return thing.Feedback{Kind: thing.KindState, Props: map[string]json.RawMessage{"on": json.RawMessage(fmt.Sprint(on))}}
}

// A thing's state and events go once into its feed, and reach the two
// persons bound to it and the thing associated with it by gossip, with
// the server up and down; each person's node keeps the live state; once
// the server is back every reader holds the same SeqId-ordered feed.
func TestThingFeedGossip(t *testing.T) {
	srv, lamp, door, alice, bob, mallory := feedHome(t)
	readers := []*testNode{door, alice, bob}
	ctx := t.Context()

	first := report(t, lamp, onState(true))
	for _, n := range readers {
		waitStored(t, n, "t:lamp", first)
		waitFor(t, n.n.cfg.User+" delivered by gossip", func() bool { return n.n.gossip.Stats().Delivered >= 1 })
	}
	if got := lamp.n.counts.sentGossip.Load(); got != 1 {
		t.Errorf("lamp's sent_gossip = %d, want 1 (one publish for its three readers)", got)
	}
	for _, person := range []string{"alice", "bob"} {
		h, err := lamp.n.db.History(ctx, wire.DM(person, "lamp"), 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range h {
			if fb, err := thing.ParseFeedback(s.Payload); err == nil && fb.Kind == thing.KindState {
				t.Errorf("the lamp sent its state to %s as a dm too (%s)", person, s.MsgId)
			}
		}
	}
	for _, p := range []*testNode{alice, bob} {
		waitFor(t, p.n.cfg.User+" showing the lamp on", func() bool {
			st, err := p.cl.ThingState(ctx, "lamp")
			return err == nil && len(st.Props) == 1 && string(st.Props[0].Value) == "true"
		})
	}
	if via, _ := storedVia(t, mallory, "t:lamp", first); via != "" {
		t.Errorf("mallory stored the lamp's state via %s", via)
	}

	// A command's state, in the feed, goes before its result, in the dm,
	// as when both went in the dm: who sees the result sees the state.
	for range 3 {
		cmd := sendCommand(t, alice, "lamp", thing.Command{Action: "toggle"})
		waitFeedback(t, alice, "lamp", cmd, thing.KindResult, thing.ResultDone)
		if !has(feedbackOf(t, alice, "lamp", cmd), thing.KindState, "") {
			t.Errorf("alice holds the result of %s before the state it caused", cmd)
		}
	}

	// The server down: gossip only, state and an event.
	srv.Stop(t)
	waitFor(t, "the lamp seeing the server gone", func() bool { return !lamp.n.link.Connected() })
	offline := []string{
		report(t, lamp, onState(false)),
		report(t, lamp, thing.Feedback{Kind: thing.KindEvent, Event: "overheat", Data: json.RawMessage(`{"c":90}`)}),
	}
	for _, id := range offline {
		for _, n := range readers {
			if via := waitStored(t, n, "t:lamp", id); via != localdb.ViaGossip {
				t.Errorf("%s stored %s via %s, want gossip", n.n.cfg.User, id, via)
			}
		}
	}
	waitFor(t, "alice showing the lamp off with the server down", func() bool {
		st, err := alice.cl.ThingState(ctx, "lamp")
		return err == nil && len(st.Props) == 1 && string(st.Props[0].Value) == "false"
	})

	// The server back: one order everywhere.
	srv.Restart(t)
	converged(t, "t:lamp", lamp, door, alice, bob)
	if via, _ := storedVia(t, mallory, "t:lamp", offline[0]); via != "" {
		t.Errorf("mallory stored the lamp's state via %s", via)
	}
}

// feedMessage is a state report in the lamp's feed written by n's
// account and signed by its device: a forgery unless n is the lamp.
func feedMessage(t *testing.T, n *testNode, on bool) (wire.Message, []byte) {
	t.Helper()
	fb := onState(on)
	fb.Rev, fb.Cause = 99, thing.CauseLocal
	payload, _ := json.Marshal(fb)
	m := wire.Message{MsgId: wire.NewMsgID(), Feeds: "t:lamp", MsgType: wire.MsgTypeFeedback, From: n.n.cfg.User,
		Payload: payload, TimeCreate: time.Now().UnixMilli()}
	if err := m.Sign(n.n.key); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	return m, b
}

// Nobody but the lamp writes its feed: a bound person's and an associated
// thing's publishes are rejected by the others (their score drops), as is
// their direct send; a stranger's host, even one that believes it reads
// the feed, gets into no mesh and its message is stored nowhere. A person
// unbound is dropped from the mesh and gets nothing sent after, by any
// path, and its node may pull the feed no more.
func TestThingFeedRefusals(t *testing.T) {
	_, lamp, door, alice, bob, mallory := feedHome(t)
	ctx := t.Context()

	forgedByAlice, aliceBody := feedMessage(t, alice, false)
	forgedByDoor, doorBody := feedMessage(t, door, false)
	for _, p := range []struct {
		n    *testNode
		body []byte
	}{{alice, aliceBody}, {door, doorBody}} {
		if _, err := p.n.n.gossip.Publish(ctx, gossipTopic("t:lamp"), p.body); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "bob rejecting alice's and the door's forgeries", func() bool {
		return bob.n.gossip.Stats().Rejected >= 2 && bob.n.gossip.Score(alice.n.self) < 0 && bob.n.gossip.Score(door.n.self) < 0
	})
	// The direct path refuses them too.
	topic := wire.RequestTopic(bob.n.self.String(), wire.MethodSend, forgedByAlice.MsgId)
	raw, err := alice.n.host.Request(ctx, bob.n.self, listenAddrs(t, bob), topic, aliceBody)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := wire.ParseAnswer(raw); err != nil || !isAnswerKind(a.Err(), errForbidden) {
		t.Errorf("alice's direct send into the lamp's feed: answer %s, want forbidden", raw)
	}
	// A stranger (alice's friend): its node lies to itself that it reads
	// the feed, joins the topic and dials alice.
	waitFor(t, "mallory grafting alice (in her own view a reader)", func() bool {
		if _, ok := mallory.n.book.group("t:lamp"); !ok {
			mallory.n.book.setThingFeeds([]wire.Group{{Feeds: "t:lamp", Name: "lamp", Owner: "lamp", Members: []string{"alice", "lamp", "mallory"}}})
			mallory.n.syncGossip(ctx)
		}
		return slices.Contains(mallory.n.gossip.MeshPeers(gossipTopic("t:lamp")), alice.n.self)
	})
	intruder, intruderBody := feedMessage(t, mallory, true)
	// In her own view alice is in her mesh (until alice's PRUNE comes):
	// alice refuses the message and holds it against her.
	peers, err := mallory.n.gossip.Publish(ctx, gossipTopic("t:lamp"), intruderBody)
	t.Logf("mallory's publish: %d mesh peers in her view, %v", peers, err)
	if peers > 0 {
		waitFor(t, "alice rejecting mallory's message", func() bool { return alice.n.gossip.Score(mallory.n.self) < 0 })
	}
	time.Sleep(time.Second)
	if slices.Contains(alice.n.gossip.MeshPeers(gossipTopic("t:lamp")), mallory.n.self) {
		t.Error("mallory in alice's mesh of the lamp's feed")
	}
	for _, n := range []*testNode{lamp, door, alice, bob} {
		for _, id := range []string{forgedByAlice.MsgId, forgedByDoor.MsgId, intruder.MsgId} {
			if via, _ := storedVia(t, n, "t:lamp", id); via != "" && !(n == alice && id == forgedByAlice.MsgId) && !(n == door && id == forgedByDoor.MsgId) {
				t.Errorf("%s stored the refused %s (via %s)", n.n.cfg.User, id, via)
			}
		}
	}

	// bob unbinds the lamp: once the others know, he gets nothing more.
	if err := bob.cl.Call(ctx, wire.MethodUnbindThing, wire.BindThingReq{Thing: "lamp"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{lamp, door, alice} {
		waitFor(t, n.n.cfg.User+" knowing bob reads the feed no more", func() bool {
			g, _ := n.n.book.group("t:lamp")
			return !slices.Contains(g.Members, "bob")
		})
	}
	waitFor(t, "bob out of the lamp's, the door's and alice's meshes", func() bool {
		for _, n := range []*testNode{lamp, door, alice} {
			if slices.Contains(n.n.gossip.MeshPeers(gossipTopic("t:lamp")), bob.n.self) {
				return false
			}
		}
		return true
	})
	after := report(t, lamp, onState(true))
	waitStored(t, alice, "t:lamp", after)
	waitStored(t, door, "t:lamp", after)
	if _, err := bob.cl.Sync(ctx); err != nil {
		t.Logf("bob's sync: %v", err)
	}
	time.Sleep(time.Second)
	if via, _ := storedVia(t, bob, "t:lamp", after); via != "" {
		t.Errorf("bob, unbound, stored %s via %s", after, via)
	}
	var h wire.HistoryResult
	if err := bob.n.link.Call(ctx, wire.MethodHistory, wire.HistoryReq{Feeds: "t:lamp"}, &h); !isAnswerKind(err, errForbidden) {
		t.Errorf("bob's history of the lamp's feed after the unbinding: %d messages, %v; want forbidden", len(h.Messages), err)
	}
}
