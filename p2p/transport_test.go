package p2p

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/wire"
)

// eventWait bounds how long a test waits for libp2p to report something
// that should come at once; reaching it fails the test instead of hanging.
const eventWait = 10 * time.Second

func quicOnly(c *Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"} }

func TestQUICRequest(t *testing.T) {
	client, server := pair(t, quicOnly)
	addrs := addrsOf(t, server)
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(multiaddr.P_QUIC_V1); err != nil {
			t.Fatalf("server listens on %s, want QUIC only", a)
		}
	}
	topic := wire.RequestTopic(server.ID().String(), "send", "1")
	answer, err := client.Request(t.Context(), server.ID(), addrs, topic, []byte("over quic"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, answer, topic, "over quic")

	conns := client.h.Network().ConnsToPeer(server.ID())
	if len(conns) == 0 {
		t.Fatal("no connection to the server after a Request")
	}
	for _, c := range conns {
		if tr := c.ConnState().Transport; tr != "quic-v1" {
			t.Errorf("connection %s uses transport %q, want quic-v1", c.RemoteMultiaddr(), tr)
		}
	}

	// A refusal crosses QUIC too: the stream reset code survives the transport.
	stranger := newTestHost(t, quicOnly)
	_, err = stranger.Request(t.Context(), server.ID(), addrs, topic, nil)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("stranger's Request over QUIC error = %v, want ErrRefused", err)
	}
}

// ConnAddrs names the transport of the connection a request took, as
// peers' conns shows it: the server's QUIC address, and nothing once the
// connection is gone or for a peer never reached.
func TestConnAddrs(t *testing.T) {
	client, server := pair(t, quicOnly)
	if got := client.ConnAddrs(server.ID()); len(got) != 0 {
		t.Fatalf("ConnAddrs before any connection = %q, want none", got)
	}
	addrs := addrsOf(t, server)
	topic := wire.RequestTopic(server.ID().String(), "send", "1")
	if _, err := client.Request(t.Context(), server.ID(), addrs, topic, nil); err != nil {
		t.Fatal(err)
	}
	want, _ := peer.SplitAddr(addrs[0])
	got := client.ConnAddrs(server.ID())
	if len(got) != 1 || got[0] != want.String() {
		t.Errorf("ConnAddrs after a QUIC request = %q, want [%s]", got, want)
	}
	if err := client.h.Network().ClosePeer(server.ID()); err != nil {
		t.Fatal(err)
	}
	if got := client.ConnAddrs(server.ID()); len(got) != 0 {
		t.Errorf("ConnAddrs after closing = %q, want none", got)
	}
}

// Hole punching waits for a public address of the host's own, which a
// host on loopback never has; without Config.Relay there is none at all.
func TestHolePunchingWaitsForAPublicAddress(t *testing.T) {
	relayed := newTestHost(t, func(c *Config) { c.Relay = true })
	plain := newTestHost(t, nil)
	time.Sleep(300 * time.Millisecond) // past go-libp2p's first look
	if relayed.HolePunching() || plain.HolePunching() {
		t.Errorf("HolePunching() = %v with Relay, %v without, on loopback: want false for both", relayed.HolePunching(), plain.HolePunching())
	}
	// The host holds go-libp2p's service, to punch the relayed
	// connections that opened before punching started (punch.go).
	if relayed.hps == nil || plain.hps != nil {
		t.Errorf("hole punching service %v with Relay, %v without: want one with Relay only", relayed.hps, plain.hps)
	}
}

func TestNilAuthorizeRefusesEveryone(t *testing.T) {
	server := newTestHost(t, nil) // Config.Authorize left nil
	client := newTestHost(t, nil)
	topic := wire.RequestTopic(server.ID().String(), "send", "1")
	_, err := client.Request(t.Context(), server.ID(), addrsOf(t, server), topic, nil)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Request to a host without Authorize error = %v, want ErrRefused", err)
	}
}

// freeTCPAddr returns a loopback TCP address nothing listens on now.
func freeTCPAddr(t *testing.T) multiaddr.Multiaddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := multiaddr.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAddAddrsClearsDialBackoff(t *testing.T) {
	client, server := pair(t, nil)
	sw := client.h.Network().(*swarm.Swarm)
	later := freeTCPAddr(t) // where the server will listen once it "comes back"
	full := later.Encapsulate(multiaddr.StringCast("/p2p/" + server.ID().String()))
	topic := wire.RequestTopic(server.ID().String(), "send", "1")

	failedAt := time.Now()
	if _, err := client.Request(t.Context(), server.ID(), []multiaddr.Multiaddr{full}, topic, nil); err == nil {
		t.Fatalf("Request to %s succeeded before the server listens there", later)
	}
	if !sw.Backoff().Backoff(server.ID(), later) {
		t.Fatalf("no dial backoff for %s after the failed dial; the test cannot show AddAddrs clears it", later)
	}

	if err := server.h.Network().Listen(later); err != nil {
		t.Fatalf("server Listen(%s): %v", later, err)
	}
	// Without AddAddrs the swarm would not even try: the address is backed off.
	_, err := client.h.Network().DialPeer(t.Context(), server.ID())
	switch {
	case errors.Is(err, swarm.ErrDialBackoff):
	case time.Since(failedAt) >= swarm.BackoffBase:
		t.Logf("backoff expired before the control dial (slow machine): %v", err)
	default:
		t.Fatalf("DialPeer during the backoff = %v, want ErrDialBackoff", err)
	}

	// An address naming another peer is not taken for this one.
	other := newTestHost(t, nil)
	foreign := multiaddr.StringCast("/ip4/127.0.0.1/tcp/1")
	client.AddAddrs(server.ID(), []multiaddr.Multiaddr{foreign.Encapsulate(multiaddr.StringCast("/p2p/" + other.ID().String()))})
	if slices.ContainsFunc(client.h.Peerstore().Addrs(server.ID()), foreign.Equal) {
		t.Errorf("AddAddrs(server, address of %s) stored it for the server", other.ID())
	}

	client.AddAddrs(server.ID(), []multiaddr.Multiaddr{full})
	if sw.Backoff().Backoff(server.ID(), later) {
		t.Fatalf("dial backoff for %s still set after AddAddrs", later)
	}
	answer, err := client.Request(t.Context(), server.ID(), nil, topic, []byte("back"))
	if err != nil {
		t.Fatalf("Request after AddAddrs: %v", err)
	}
	wantEcho(t, answer, topic, "back")
	if !slices.ContainsFunc(client.h.Network().ConnsToPeer(server.ID()), func(c network.Conn) bool {
		return c.RemoteMultiaddr().Equal(later)
	}) {
		t.Errorf("client not connected to the server at %s", later)
	}
}

// connEvent is one OnConnectedness call.
type connEvent struct {
	id        peer.ID
	connected bool
}

// connRecorder collects OnConnectedness calls without blocking libp2p.
type connRecorder struct {
	mu      sync.Mutex
	events  []connEvent
	changed chan struct{}
}

func newConnRecorder() *connRecorder { return &connRecorder{changed: make(chan struct{}, 1)} }

func (r *connRecorder) note(id peer.ID, connected bool) {
	r.mu.Lock()
	r.events = append(r.events, connEvent{id, connected})
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until the callback was called with (id, connected).
func (r *connRecorder) waitFor(t *testing.T, id peer.ID, connected bool) {
	t.Helper()
	timeout := time.NewTimer(eventWait)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		found := slices.Contains(r.events, connEvent{id, connected})
		r.mu.Unlock()
		if found {
			return
		}
		select {
		case <-r.changed:
		case <-timeout.C:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("OnConnectedness(%s, %v) not called; calls: %v", id, connected, r.events)
		}
	}
}

func (r *connRecorder) has(id peer.ID, connected bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.events, connEvent{id, connected})
}

func TestConnectedness(t *testing.T) {
	var auth authorizeLater
	serverEvents, clientEvents := newConnRecorder(), newConnRecorder()
	server := newTestHost(t, func(c *Config) {
		c.Authorize = auth.authorize
		c.OnConnectedness = serverEvents.note
	})
	client := newTestHost(t, func(c *Config) { c.OnConnectedness = clientEvents.note })
	other := newTestHost(t, nil)
	auth.set(client, other)

	if got := server.ConnectedPeers(); len(got) != 0 {
		t.Fatalf("ConnectedPeers() before any dial = %v, want none", got)
	}
	if client.IsConnected(server.ID()) {
		t.Fatal("IsConnected(server) before any dial = true")
	}

	for _, h := range []*Host{client, other} {
		topic := wire.RequestTopic(server.ID().String(), "send", "1")
		if _, err := h.Request(t.Context(), server.ID(), addrsOf(t, server), topic, nil); err != nil {
			t.Fatal(err)
		}
	}
	clientEvents.waitFor(t, server.ID(), true)
	serverEvents.waitFor(t, client.ID(), true)
	serverEvents.waitFor(t, other.ID(), true)
	if !client.IsConnected(server.ID()) {
		t.Error("client.IsConnected(server) = false after a Request")
	}
	if !server.IsConnected(client.ID()) {
		t.Error("server.IsConnected(client) = false after the client's Request")
	}
	want := []peer.ID{client.ID(), other.ID()}
	slices.Sort(want)
	if got := server.ConnectedPeers(); !slices.Equal(got, want) {
		t.Errorf("server.ConnectedPeers() = %v, want %v (sorted)", got, want)
	}
	if got := client.ConnectedPeers(); !slices.Equal(got, []peer.ID{server.ID()}) {
		t.Errorf("client.ConnectedPeers() = %v, want [%s]", got, server.ID())
	}
	if clientEvents.has(server.ID(), false) {
		t.Errorf("OnConnectedness(server, false) called while connected: %v", clientEvents.events)
	}

	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	clientEvents.waitFor(t, server.ID(), false)
	if client.IsConnected(server.ID()) {
		t.Error("client.IsConnected(server) = true after the server closed")
	}
	if got := client.ConnectedPeers(); len(got) != 0 {
		t.Errorf("client.ConnectedPeers() after the server closed = %v, want none", got)
	}
}
