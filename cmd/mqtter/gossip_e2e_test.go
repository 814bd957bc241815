package main_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/node"
)

// gossipCast is TestGossipFiveNodes' people: a group of five members'
// nodes (alice owns it) and frank, a friend of alice's outside it.
type gossipCast struct {
	t       *testing.T
	g       string // the group's feeds
	members []*nodeProc
	frank   *nodeProc
	devices map[*nodeProc]string // each node's device (peer id)
	sent    []string             // every MsgId whose send returned, in order
}

// A group of five `mqtter node` processes on loopback: its messages go by
// GossipSub among the members' nodes, with the server up and with it
// stopped; a member killed with SIGKILL while messages flow (the server
// down) comes back into the mesh, and once the server is back every
// member holds the identical SeqId-ordered list; a member removed gets
// nothing sent after, by any path; a friend of the owner outside the
// group gets none of it, and no CLI send from outside gets in.
func TestGossipFiveNodes(t *testing.T) {
	t.Parallel()
	start := time.Now()
	data := newAccounts(t, "alice", "bob", "carol", "dave", "erin", "frank")
	srv := startServer(t, data)
	broker := "tcp://" + srv.mqtt
	c := &gossipCast{t: t, devices: make(map[*nodeProc]string)}
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		c.members = append(c.members, startNode(t, broker, t.TempDir(), name, name+"-pw"))
	}
	c.frank = startNode(t, broker, t.TempDir(), "frank", "frank-pw")
	alice, bob, carol, dave, erin, frank := c.members[0], c.members[1], c.members[2], c.members[3], c.members[4], c.frank
	for _, n := range append(slices.Clone(c.members), frank) {
		c.devices[n] = n.status().Device
	}
	for _, o := range append(slices.Clone(c.members[1:]), frank) {
		befriend(t, alice, o)
	}
	c.g = strings.TrimSpace(alice.must("group", "create", "gossip", "bob", "carol", "dave", "erin"))
	if !strings.HasPrefix(c.g, "g:") {
		t.Fatalf("group create printed %q, want a feeds id", c.g)
	}
	c.waitMeshes(c.members...)
	t.Logf("set up, meshes full: %v", time.Since(start).Round(time.Millisecond))

	// 1. The server up: each member's message reaches every other by
	// gossip (the server's push may store it first; gossip delivers it
	// all the same), and is published once.
	before := c.snapshot()
	ids := c.round("server up", c.members...)
	c.waitHeld(ids, c.members...)
	for _, n := range c.members {
		n.eventually(10*time.Second, "gossip delivered the other four", func() (bool, string) {
			d := c.gossipStatus(n).Delivered - before[n].delivered
			return d >= 4, fmt.Sprintf("delivered %d", d)
		})
		st := n.status()
		if d := st.Gossip.Delivered - before[n].delivered; d != 4 {
			t.Errorf("%s: gossip delivered %d of the round, want 4 (once each)", n.user, d)
		}
		if d := st.Counters["sent_gossip"] - before[n].sent; d != 1 {
			t.Errorf("%s: sent_gossip grew by %d for its one message, want 1", n.user, d)
		}
	}
	t.Logf("server up, first path at each receiver: %v", c.firstPaths(ids))

	// 2. The server stopped: gossip alone carries the group.
	if err := srv.stop(t); err != nil {
		t.Fatalf("server after SIGTERM: %v", err)
	}
	c.waitServer(node.ServerDisconnected, append(slices.Clone(c.members), frank)...)
	before = c.snapshot()
	ids = c.round("server down", c.members...)
	c.waitVia(ids, c.members...)
	for _, n := range c.members {
		if d := n.status().Counters["received_gossip"] - before[n].received; d != 4 {
			t.Errorf("%s: received_gossip grew by %d with the server down, want 4", n.user, d)
		}
	}

	// 3. dave killed (SIGKILL) while bob and dave send (the server still
	// down); the others keep talking; dave restarts, offline, from his
	// cached book and gets back into the mesh.
	daves, burst := c.killMidBurst(dave, bob)
	live := []*nodeProc{alice, bob, carol, erin}
	c.waitVia(burst, live...)
	c.waitMeshes(live...)
	ids = c.round("dave away", alice, carol, erin)
	c.waitVia(ids, live...)
	dave.offline = true
	restarted := time.Now()
	dave.start()
	c.waitMeshes(c.members...)
	t.Logf("dave back in every mesh %v after his restart", time.Since(restarted).Round(time.Millisecond))
	ids = c.round("dave back", carol)
	c.waitVia(ids, c.members...)
	t.Logf("alice holds %d of dave's %d burst messages before the server returns", c.holds(alice, daves), len(daves))

	// 4. The server back on its ports: every member converges on one
	// SeqId-ordered list holding every message sent.
	srv = startServerAt(t, data, srv.mqtt, srv.http)
	back := time.Now()
	c.waitServer(node.ServerConnected, append(slices.Clone(c.members), frank)...)
	c.converged(c.members...)
	t.Logf("converged on %d messages %v after the server's return", len(c.sent), time.Since(back).Round(time.Millisecond))

	// 5. alice removes erin. Once the others' nodes know (erin's device
	// gone from their meshes, and from the peers of those not her
	// friends), nothing sent reaches her, by gossip or by the server.
	alice.must("group", "remove", c.g, "erin")
	rest := []*nodeProc{alice, bob, carol, dave}
	for _, n := range rest {
		n.eventually(15*time.Second, "erin is out of the group's mesh and book", func() (bool, string) {
			mesh := c.gossipStatus(n).Meshes[c.g]
			if slices.Contains(mesh, c.devices[erin]) {
				return false, fmt.Sprintf("mesh %v", mesh)
			}
			if n == alice {
				return true, ""
			}
			out := n.must("peers", "--json")
			return !strings.Contains(out, c.devices[erin]), out
		})
	}
	erin.eventually(15*time.Second, "erin's node left the topic", func() (bool, string) {
		m := c.gossipStatus(erin).Meshes
		_, in := m[c.g]
		return !in, fmt.Sprintf("meshes %v", m)
	})
	if code, out := erin.cli("send", c.g, "am I still in?"); code == 0 || !strings.Contains(out, "not a member") {
		t.Errorf("erin's send to the group after her removal = exit %d: %s, want refused: not a member", code, out)
	}
	gone := c.snapshot()[erin]
	held := len(c.history(erin))
	ids = c.round("after erin left", rest...)
	c.waitHeld(ids, rest...)
	for _, n := range rest { // the server has them all, and pushed them
		n.eventually(15*time.Second, "its message is sequenced", func() (bool, string) {
			h := c.history(n)
			return len(h) > 0 && h[len(h)-1].SeqId != 0, fmt.Sprintf("%d messages", len(h))
		})
	}
	erin.must("sync")
	st := erin.status()
	if d := st.Gossip.Delivered - gone.delivered; d != 0 {
		t.Errorf("erin, removed, had %d gossip messages delivered", d)
	}
	if d := st.Counters["received_gossip"] - gone.received; d != 0 {
		t.Errorf("erin, removed, stored %d messages by gossip", d)
	}
	if d := st.Counters["received_server"] - gone.server; d != 0 {
		t.Errorf("erin, removed, stored %d messages from the server", d)
	}
	if h := c.history(erin); len(h) != held {
		t.Errorf("erin holds %d messages of the group, %d once removed: %v", len(h), held, listOf(h[min(held, len(h)):]))
	}

	// 6. frank, alice's friend outside the group: nothing of it, no
	// topic, and his CLI cannot send into it.
	st = frank.status()
	if h := c.history(frank); len(h) != 0 {
		t.Errorf("frank, not a member, holds %d messages of the group: %v", len(h), listOf(h))
	}
	if st.Gossip == nil || len(st.Gossip.Meshes) != 0 || st.Gossip.Delivered != 0 || st.Counters["received_gossip"] != 0 {
		t.Errorf("frank's gossip = %+v, received_gossip %d; want no topic and nothing delivered", st.Gossip, st.Counters["received_gossip"])
	}
	if code, out := frank.cli("send", c.g, "let me in"); code == 0 || !strings.Contains(out, "not a member") {
		t.Errorf("frank's send to the group = exit %d: %s, want refused: not a member", code, out)
	}
	t.Logf("%d messages, %v in all", len(c.sent), time.Since(start).Round(time.Millisecond))
}

// counts are a node's gossip figures at one moment.
type counts struct{ delivered, sent, received, server int64 }

func (c *gossipCast) snapshot() map[*nodeProc]counts {
	out := make(map[*nodeProc]counts)
	for _, n := range append(slices.Clone(c.members), c.frank) {
		st := n.status()
		out[n] = counts{delivered: c.gossipOf(n, st).Delivered, sent: st.Counters["sent_gossip"],
			received: st.Counters["received_gossip"], server: st.Counters["received_server"]}
	}
	return out
}

func (c *gossipCast) gossipStatus(n *nodeProc) *node.GossipStatus {
	return c.gossipOf(n, n.status())
}

func (c *gossipCast) gossipOf(n *nodeProc, st node.Status) *node.GossipStatus {
	if st.Gossip == nil {
		c.t.Fatalf("%s: status has no gossip", n.user)
	}
	return st.Gossip
}

// waitMeshes waits until each node's mesh of the group holds exactly the
// other nodes' devices.
func (c *gossipCast) waitMeshes(nodes ...*nodeProc) {
	c.t.Helper()
	for _, a := range nodes {
		var want []string
		for _, b := range nodes {
			if b != a {
				want = append(want, c.devices[b])
			}
		}
		slices.Sort(want)
		a.eventually(20*time.Second, fmt.Sprintf("its mesh holds the %d others", len(want)), func() (bool, string) {
			got := slices.Sorted(slices.Values(c.gossipStatus(a).Meshes[c.g]))
			return slices.Equal(got, want), fmt.Sprintf("mesh %v, want %v", got, want)
		})
	}
}

// round has each of from send one message to the group, and returns
// their MsgIds.
func (c *gossipCast) round(label string, from ...*nodeProc) []string {
	c.t.Helper()
	var ids []string
	for _, n := range from {
		ids = append(ids, n.send(c.g, label+", from "+n.user))
	}
	c.sent = append(c.sent, ids...)
	return ids
}

// history is what n holds of the group, oldest first.
func (c *gossipCast) history(n *nodeProc) []node.HistoryEntry {
	c.t.Helper()
	return n.history(c.g)
}

// waitHeld waits until every node holds every one of ids, and returns
// each node's entries by MsgId.
func (c *gossipCast) waitHeld(ids []string, nodes ...*nodeProc) map[*nodeProc]map[string]node.HistoryEntry {
	c.t.Helper()
	out := make(map[*nodeProc]map[string]node.HistoryEntry)
	for _, n := range nodes {
		n.eventually(15*time.Second, fmt.Sprintf("it holds the %d messages", len(ids)), func() (bool, string) {
			byID := make(map[string]node.HistoryEntry)
			for _, m := range c.history(n) {
				byID[m.MsgId] = m
			}
			var missing []string
			for _, id := range ids {
				if _, ok := byID[id]; !ok {
					missing = append(missing, id)
				}
			}
			out[n] = byID
			return len(missing) == 0, fmt.Sprintf("missing %v", missing)
		})
	}
	return out
}

// waitVia waits until every node holds ids, and wants each of them there
// by gossip, but its own ("local").
func (c *gossipCast) waitVia(ids []string, nodes ...*nodeProc) {
	c.t.Helper()
	for n, byID := range c.waitHeld(ids, nodes...) {
		for _, id := range ids {
			m := byID[id]
			if want := "gossip"; m.From == n.user {
				if m.Via != "local" {
					c.t.Errorf("%s holds its own %s via %q, want local", n.user, id, m.Via)
				}
			} else if m.Via != want {
				c.t.Errorf("%s got %s from %s via %q with the server down, want %s", n.user, id, m.From, m.Via, want)
			}
		}
	}
}

// firstPaths counts how the members first got ids: a figure, not an
// assertion (the server's push and gossip race while both are up).
func (c *gossipCast) firstPaths(ids []string) map[string]int {
	out := make(map[string]int)
	for _, byID := range c.waitHeld(ids, c.members...) {
		for _, id := range ids {
			if via := byID[id].Via; via != "local" {
				out[via]++
			}
		}
	}
	return out
}

// waitServer waits until each node's link to the server is in state.
func (c *gossipCast) waitServer(state string, nodes ...*nodeProc) {
	c.t.Helper()
	for _, n := range nodes {
		n.eventually(30*time.Second, "its server link is "+state, func() (bool, string) {
			st := n.status()
			return st.Server == state, st.Server + " " + st.ServerError
		})
	}
}

// killMidBurst has victim and other send bursts to the group through
// their local APIs and kills victim with SIGKILL once each has sent a
// few; other's burst goes on past the kill. Every send that returned is
// recorded (it was durable). It returns the MsgIds of victim's and
// other's sends that returned.
func (c *gossipCast) killMidBurst(victim, other *nodeProc) (victims, others []string) {
	c.t.Helper()
	type burst struct {
		ids []string
		err error
	}
	run := func(n *nodeProc, stop <-chan struct{}, progress chan<- int) <-chan burst {
		cl, err := node.Dial(n.home)
		if err != nil {
			c.t.Fatalf("%s: dial the local API: %v", n.user, err)
		}
		done := make(chan burst, 1)
		go func() {
			var b burst
			defer func() { done <- b }()
			for i := range 1000 {
				select {
				case <-stop:
					return
				default:
				}
				res, err := cl.Send(c.t.Context(), node.SendRequest{To: c.g, Text: fmt.Sprintf("burst of %s, %d", n.user, i)})
				if err != nil {
					b.err = err
					return
				}
				b.ids = append(b.ids, res.MsgId)
				select {
				case progress <- len(b.ids):
				default:
				}
			}
		}()
		return done
	}
	stop := make(chan struct{})
	vProgress, oProgress := make(chan int, 1), make(chan int, 1)
	oDone := run(other, stop, oProgress)
	vDone := run(victim, nil, vProgress)
	// wait until each burst has sent at least n more than at from.
	wait := func(who string, progress <-chan int, done <-chan burst, n int) int {
		for got := 0; ; {
			select {
			case got = <-progress:
				if got >= n {
					return got
				}
			case b := <-done:
				c.t.Fatalf("%s's burst ended after %d: %v", who, len(b.ids), b.err)
			case <-time.After(20 * time.Second):
				c.t.Fatalf("%s's burst stalled at %d", who, got)
			}
		}
	}
	wait(victim.user, vProgress, vDone, 5)
	at := wait(other.user, oProgress, oDone, 5)
	victim.kill()
	wait(other.user, oProgress, oDone, at+10)
	close(stop)
	v, o := <-vDone, <-oDone
	if o.err != nil {
		c.t.Fatalf("%s's burst: %v", other.user, o.err)
	}
	if v.err == nil {
		c.t.Fatalf("%s's burst of 1000 ended before the kill", victim.user)
	}
	c.t.Logf("%s killed after %d of its sends returned, %d of %s's (then %s sent %d more)",
		victim.user, len(v.ids), at, other.user, other.user, len(o.ids)-at)
	c.sent = append(c.sent, v.ids...)
	c.sent = append(c.sent, o.ids...)
	return v.ids, o.ids
}

// holds counts the messages of ids that n holds.
func (c *gossipCast) holds(n *nodeProc, ids []string) int {
	held := 0
	for _, m := range c.history(n) {
		if slices.Contains(ids, m.MsgId) {
			held++
		}
	}
	return held
}

// converged waits until every node holds the same list of the group's
// messages, all sequenced, SeqIds 1, 2, 3 … in order, holding every
// message sent, each once.
func (c *gossipCast) converged(nodes ...*nodeProc) {
	c.t.Helper()
	var want []string
	nodes[0].eventually(40*time.Second, "every member holds one sequenced list with every message", func() (bool, string) {
		want = nil
		for _, n := range nodes {
			h := c.history(n)
			for i, m := range h {
				if m.SeqId != int64(i+1) {
					return false, fmt.Sprintf("%s: entry %d of %d has SeqId %d", n.user, i, len(h), m.SeqId)
				}
			}
			got := listOf(h)
			if want == nil {
				want = got
			} else if !slices.Equal(got, want) {
				return false, fmt.Sprintf("%s holds %d entries, %s %d", n.user, len(got), nodes[0].user, len(want))
			}
		}
		held := make(map[string]bool)
		for _, item := range want {
			held[strings.SplitN(item, "#", 2)[0]] = true
		}
		for _, id := range c.sent {
			if !held[id] {
				return false, "the list lacks " + id
			}
		}
		return true, ""
	})
	ids := make(map[string]bool)
	for _, item := range want {
		ids[strings.SplitN(item, "#", 2)[0]] = true
	}
	if len(ids) != len(want) {
		c.t.Errorf("the converged list holds %d entries of %d MsgIds", len(want), len(ids))
	}
	if extra := len(want) - len(c.sent); extra != 0 {
		c.t.Logf("the converged list holds %d messages more than the sends that returned (in flight at the kill)", extra)
	}
}
