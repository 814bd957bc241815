package p2p

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"
)

// gossipPeer is a host with GossipSub, its members list (who MayJoin the
// test topic) and what it was delivered.
type gossipPeer struct {
	h *Host
	g *Gossip

	mu      sync.Mutex
	members map[peer.ID]bool
	got     []string
	gotCh   chan string
}

const testTopic = "/mqtter/test/g:team"

func newGossipPeer(t *testing.T) *gossipPeer {
	t.Helper()
	p := &gossipPeer{members: make(map[peer.ID]bool), gotCh: make(chan string, 64)}
	p.h = newTestHost(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	g, err := p.h.StartGossip(GossipConfig{
		MayJoin: func(id peer.ID, topic string) bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return topic == testTopic && p.members[id]
		},
		// Data starting "forged" is what a real check would refuse;
		// "later" is what it cannot judge yet.
		Validate: func(_ context.Context, _ peer.ID, _ string, data []byte) (any, Verdict) {
			switch {
			case strings.HasPrefix(string(data), "forged"):
				return nil, Reject
			case strings.HasPrefix(string(data), "later"):
				return nil, Ignore
			}
			return string(data), Accept
		},
		Deliver: func(_ peer.ID, _ string, val any) {
			s := val.(string)
			p.mu.Lock()
			p.got = append(p.got, s)
			p.mu.Unlock()
			p.gotCh <- s
		},
		HeartbeatInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	p.g = g
	return p
}

func (p *gossipPeer) setMembers(ps ...*gossipPeer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.members = make(map[peer.ID]bool)
	for _, q := range ps {
		p.members[q.h.ID()] = true
	}
}

func (p *gossipPeer) connect(t *testing.T, q *gossipPeer) {
	t.Helper()
	ai := peer.AddrInfo{ID: q.h.ID(), Addrs: q.h.h.Addrs()}
	if err := p.h.h.Connect(t.Context(), ai); err != nil {
		t.Fatal(err)
	}
}

// waitMesh waits until p's mesh of the test topic is exactly want.
func (p *gossipPeer) waitMesh(t *testing.T, want ...*gossipPeer) {
	t.Helper()
	ids := make([]peer.ID, len(want))
	for i, q := range want {
		ids[i] = q.h.ID()
	}
	slices.Sort(ids)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(p.g.MeshPeers(testTopic), ids) {
		if time.Now().After(deadline) {
			t.Fatalf("mesh of %s = %v, want %v", p.h.ID(), p.g.MeshPeers(testTopic), ids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expect waits for want at p, in order, and fails on anything else.
func (p *gossipPeer) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-p.gotCh:
			if got != w {
				t.Fatalf("%s got %q, want %q", p.h.ID(), got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never got %q", p.h.ID(), w)
		}
	}
}

// nothing fails if p is delivered anything within a while.
func (p *gossipPeer) nothing(t *testing.T) {
	t.Helper()
	select {
	case got := <-p.gotCh:
		t.Fatalf("%s got %q, want nothing", p.h.ID(), got)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestGossipMembersOnly(t *testing.T) {
	a, b, c, stranger := newGossipPeer(t), newGossipPeer(t), newGossipPeer(t), newGossipPeer(t)
	for _, p := range []*gossipPeer{a, b, c} {
		p.setMembers(a, b, c)
	}
	stranger.setMembers(a, b, c, stranger) // it thinks it belongs
	for _, p := range []*gossipPeer{a, b, c, stranger} {
		if err := p.g.Join(testTopic); err != nil {
			t.Fatal(err)
		}
	}
	a.connect(t, b)
	b.connect(t, c)
	a.connect(t, c)
	stranger.connect(t, a)
	stranger.connect(t, b)
	a.waitMesh(t, b, c)
	b.waitMesh(t, a, c)
	c.waitMesh(t, a, b)

	// Everyone in the topic gets each message once; its sender does not.
	if n, err := a.g.Publish(t.Context(), testTopic, []byte("hello")); err != nil || n != 2 {
		t.Fatalf("Publish = %d, %v; want 2 mesh peers", n, err)
	}
	b.expect(t, "hello")
	c.expect(t, "hello")
	a.nothing(t)
	stranger.nothing(t)

	// A stranger that joined the topic is in no member's mesh (they
	// ignore its GRAFT, though it thinks them grafted), and what it
	// publishes is refused and held against it.
	for _, p := range []*gossipPeer{a, b, c} {
		if slices.Contains(p.g.MeshPeers(testTopic), stranger.h.ID()) {
			t.Errorf("stranger in the mesh of %s", p.h.ID())
		}
	}
	if _, err := stranger.g.Publish(t.Context(), testTopic, []byte("let me in")); err != nil {
		t.Fatal(err)
	}
	a.nothing(t)
	b.nothing(t)
	c.nothing(t)
	deadline := time.Now().Add(5 * time.Second)
	for a.g.Score(stranger.h.ID()) >= 0 || b.g.Score(stranger.h.ID()) >= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("score of the stranger at a = %v, at b = %v; want below 0", a.g.Score(stranger.h.ID()), b.g.Score(stranger.h.ID()))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// c leaves the group: a evicts it, and nothing published after that
	// reaches it, whoever forwards.
	a.setMembers(a, b)
	b.setMembers(a, b)
	// Evict drops every peer in the topic the member list leaves out:
	// c, and the stranger that subscribed.
	want := []peer.ID{c.h.ID(), stranger.h.ID()}
	slices.Sort(want)
	for _, p := range []*gossipPeer{a, b} {
		gone := p.g.Evict(t.Context(), testTopic)
		slices.Sort(gone)
		if !slices.Equal(gone, want) {
			t.Fatalf("Evict at %s = %v, want c and the stranger %v", p.h.ID(), gone, want)
		}
	}
	a.connect(t, c) // still a friend, say: connected again, but not in the mesh
	if _, err := a.g.Publish(t.Context(), testTopic, []byte("after c left")); err != nil {
		t.Fatal(err)
	}
	b.expect(t, "after c left")
	c.nothing(t)
	time.Sleep(300 * time.Millisecond) // a few heartbeats: c is not grafted again
	if slices.Contains(a.g.MeshPeers(testTopic), c.h.ID()) {
		t.Error("c grafted back into a's mesh")
	}

	// A forged message (the validator rejects it) reaches no one and
	// lowers its sender's score; an unjudged one is dropped without blame.
	if _, err := b.g.Publish(t.Context(), testTopic, []byte("forged 1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.g.Publish(t.Context(), testTopic, []byte("later 1")); err != nil {
		t.Fatal(err)
	}
	a.nothing(t)
	deadline = time.Now().Add(5 * time.Second)
	for a.g.Score(b.h.ID()) >= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("score of the forger at a = %v, want below 0", a.g.Score(b.h.ID()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := a.g.Stats(); s.Rejected < 1 || s.Ignored < 1 {
		t.Errorf("a's stats = %+v, want a rejected and an ignored message", s)
	}
}

// A message from a peer outside the topic is refused even when it comes
// straight at a member (here: a host whose member list says otherwise,
// and which grafted the outsider itself).
func TestGossipRefusesOutsiderMessages(t *testing.T) {
	a, outsider := newGossipPeer(t), newGossipPeer(t)
	a.setMembers(a)
	outsider.setMembers(a, outsider)
	for _, p := range []*gossipPeer{a, outsider} {
		if err := p.g.Join(testTopic); err != nil {
			t.Fatal(err)
		}
	}
	outsider.connect(t, a)
	outsider.waitMeshHas(t, a) // it grafted a, a ignored that
	if _, err := outsider.g.Publish(t.Context(), testTopic, []byte("inject")); err != nil {
		t.Fatal(err)
	}
	a.nothing(t)
	deadline := time.Now().Add(5 * time.Second)
	for a.g.Stats().Rejected < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a's stats = %+v, want the injected message rejected", a.g.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := a.g.MeshPeers(testTopic); len(got) != 0 {
		t.Errorf("a's mesh = %v, want none", got)
	}
}

func (p *gossipPeer) waitMeshHas(t *testing.T, q *gossipPeer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(p.g.MeshPeers(testTopic), q.h.ID()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never grafted %s", p.h.ID(), q.h.ID())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGossipPublishNotJoined(t *testing.T) {
	a := newGossipPeer(t)
	if _, err := a.g.Publish(t.Context(), testTopic, []byte("x")); err == nil {
		t.Fatal("Publish to a topic not joined succeeded")
	}
	if err := a.g.Join(testTopic); err != nil {
		t.Fatal(err)
	}
	if err := a.g.Join(testTopic); err != nil {
		t.Fatalf("second Join: %v", err)
	}
	if _, err := a.g.Publish(t.Context(), testTopic, []byte("x")); err == nil {
		t.Fatal("Publish with no mesh peer said it reached someone")
	}
	if s := a.g.Stats(); s.Published != 1 || s.Unreached != 1 {
		t.Errorf("stats = %+v, want 1 published, 1 unreached", s)
	}
	a.g.Leave(testTopic)
	if got := a.g.Joined(); len(got) != 0 {
		t.Errorf("Joined after Leave = %v", got)
	}
}

// A relayed address waits behind a direct one, private ones included; a
// peer with relayed addresses only is dialled through the relay at once.
func TestPreferDirect(t *testing.T) {
	direct := multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001")
	relayed := multiaddr.StringCast("/ip4/127.0.0.1/tcp/4002/p2p/12D3KooWLRNdMTLSZxPm59yr8HWfSfpHyjmKVsGWPbuL1C9hfmpL/p2p-circuit")
	delays := func(addrs ...multiaddr.Multiaddr) map[string]time.Duration {
		out := make(map[string]time.Duration)
		for _, d := range preferDirect(addrs) {
			out[d.Addr.String()] = d.Delay
		}
		return out
	}
	both := delays(direct, relayed)
	if both[relayed.String()] < swarm.RelayDelay || both[direct.String()] != 0 {
		t.Errorf("delays with a private direct address = %v, want the relay %v behind it", both, swarm.RelayDelay)
	}
	if only := delays(relayed); only[relayed.String()] >= swarm.RelayDelay {
		t.Errorf("delay of a relay alone = %v, want it dialled at once", only)
	}
}
