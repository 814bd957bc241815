package server_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func TestPresencePushes(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)
	bob2 := dial(t, inst, "bob", "bob-2")
	alice.Close()

	// bob's devices see alice go offline, come online, go away, leave.
	for _, cl := range []*servertest.Client{bob, bob2} {
		if p := presenceOf(t, cl, "alice-1"); p.Status != wire.StatusOffline {
			t.Errorf("%s presence after alice's DISCONNECT = %+v, want offline", cl.Device, p)
		}
	}
	before := time.Now().UnixMilli()
	alice = dial(t, inst, "alice", "alice-1")
	for _, cl := range []*servertest.Client{bob, bob2} {
		if p := presenceOf(t, cl, "alice-1"); p.User != "alice" || p.Status != wire.StatusOnline {
			t.Errorf("%s presence after alice's CONNECT = %+v, want alice online", cl.Device, p)
		}
	}
	alice.OK("presence", wire.PresenceReq{Status: wire.StatusAway}, nil)
	if p := presenceOf(t, bob, "alice-1"); p.Status != wire.StatusAway {
		t.Errorf("presence after presence(away) = %+v, want away", p)
	}
	wantPeerStatus(t, bob, "alice-1", wire.StatusAway)
	alice.OK("presence", wire.PresenceReq{Status: wire.StatusOnline}, nil)
	if p := presenceOf(t, bob, "alice-1"); p.Status != wire.StatusOnline {
		t.Errorf("presence after presence(online) = %+v, want online", p)
	}
	wantPeerStatus(t, bob, "alice-1", wire.StatusOnline)
	alice.Close()
	p := presenceOf(t, bob, "alice-1")
	if p.Status != wire.StatusOffline || p.LastSeen < before || p.LastSeen > time.Now().UnixMilli() {
		t.Errorf("presence after DISCONNECT = %+v, want offline with last_seen in [%d, now]", p, before)
	}
	wantPeerStatus(t, bob, "alice-1", wire.StatusOffline)

	// The account's own other devices are told too; unrelated accounts not.
	bob2.Close()
	if p := presenceOf(t, bob, "bob-2"); p.Status != wire.StatusOffline {
		t.Errorf("bob-1's presence push about bob-2 = %+v, want offline", p)
	}
	carol.NoPush(wire.PushPresence, quiet)

	wantError(t, "presence busy", bob.Fail("presence", wire.PresenceReq{Status: "busy"}), "bad request")
	wantError(t, "presence offline", bob.Fail("presence", wire.PresenceReq{Status: wire.StatusOffline}), "bad request")
	wantError(t, "presence without status", bob.Fail("presence", wire.Empty{}), "bad request")
}

// eventuallyPeerStatus waits until cl's peers answer shows device with
// status (a DISCONNECT is handled after the client has gone), and fails
// after the timeout.
func eventuallyPeerStatus(t *testing.T, cl *servertest.Client, device, status string) {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for {
		var peers []wire.PeerInfo
		cl.OK("peers", wire.Empty{}, &peers)
		i := slices.IndexFunc(peers, func(p wire.PeerInfo) bool { return p.Device == device })
		if i >= 0 && peers[i].Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s peers = %+v, want %s %s", cl.Device, peers, device, status)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantPeerStatus checks the status of device in cl's peers answer.
func wantPeerStatus(t *testing.T, cl *servertest.Client, device, status string) {
	t.Helper()
	var peers []wire.PeerInfo
	cl.OK("peers", wire.Empty{}, &peers)
	for _, p := range peers {
		if p.Device == device {
			if p.Status != status {
				t.Errorf("%s peers[%s].status = %q, want %q", cl.Device, device, p.Status, status)
			}
			return
		}
	}
	t.Errorf("%s peers = %+v, want %s listed", cl.Device, peers, device)
}

func pubkeyOf(t *testing.T, key crypto.PrivKey) string {
	t.Helper()
	raw, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

func TestRegisterDeviceAndPeers(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob", "carol", "dave")
	alice, aliceKey := signedUser(t, inst, "alice")
	bob := dial(t, inst, "bob", "bob-1")
	carol := dial(t, inst, "carol", "carol-1")
	dave := dial(t, inst, "dave", "dave-1")
	befriend(t, alice, bob)
	befriend(t, carol, dave)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g"}, &g)
	carol.OK("apply_join_feeds", g, nil)
	alice.OK("agree_join_feeds", wire.AgreeJoinReq{Applicant: "carol", Feeds: g.Feeds}, nil)

	addrs := []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"}
	alice.Register(aliceKey, addrs)

	// A friend and a fellow group member see alice's device; dave does not.
	for _, cl := range []*servertest.Client{bob, carol} {
		var peers []wire.PeerInfo
		cl.OK("peers", wire.Empty{}, &peers)
		i := slices.IndexFunc(peers, func(p wire.PeerInfo) bool { return p.Device == alice.Device })
		if i < 0 {
			t.Errorf("%s peers = %+v, want alice's device %s", cl.User, peers, alice.Device)
			continue
		}
		if p := peers[i]; p.User != "alice" || p.Status != wire.StatusOnline || !slices.Equal(p.Addrs, addrs) {
			t.Errorf("%s peers[%s] = %+v, want alice online at %v", cl.User, alice.Device, p, addrs)
		}
		for _, p := range peers {
			if p.Device == cl.Device || (p.User != "alice" && p.User != cl.User && !(cl.User == "carol" && p.User == "dave")) {
				t.Errorf("%s peers lists %+v, want only related accounts' and its own other devices", cl.User, p)
			}
		}
	}
	var peers []wire.PeerInfo
	dave.OK("peers", wire.Empty{}, &peers)
	if slices.ContainsFunc(peers, func(p wire.PeerInfo) bool { return p.User == "alice" }) {
		t.Errorf("dave peers = %+v, want no device of alice (not related)", peers)
	}
	// bob's peers include his own other devices.
	dial(t, inst, "bob", "bob-2")
	wantPeerStatus(t, bob, "bob-2", wire.StatusOnline)

	// Registering again replaces the addrs; the pubkey may be left out.
	again := alice.Proof(aliceKey, addrs[:1])
	again.PubKey = ""
	alice.OK("register_device", again, nil)
	bob.OK("peers", wire.Empty{}, &peers)
	if i := slices.IndexFunc(peers, func(p wire.PeerInfo) bool { return p.Device == alice.Device }); i < 0 || !slices.Equal(peers[i].Addrs, addrs[:1]) {
		t.Errorf("bob peers after re-register = %+v, want alice at %v", peers, addrs[:1])
	}

	otherKey, otherID := servertest.NewDeviceKey(t)
	tests := []struct {
		name string
		cl   *servertest.Client
		req  wire.RegisterDevice
		want string
	}{
		{"peer id of another key", alice, wire.RegisterDevice{PeerID: otherID, PubKey: pubkeyOf(t, otherKey)}, "forbidden"},
		{"pubkey of another key", alice, wire.RegisterDevice{PeerID: alice.Device, PubKey: pubkeyOf(t, otherKey)}, "bad request"},
		{"pubkey not base64", alice, wire.RegisterDevice{PeerID: alice.Device, PubKey: "%%%"}, "bad request"},
		{"pubkey not a key", alice, wire.RegisterDevice{PeerID: alice.Device, PubKey: base64.StdEncoding.EncodeToString([]byte("junk"))}, "bad request"},
		{"bad addr", alice, wire.RegisterDevice{PeerID: alice.Device, Addrs: []string{"127.0.0.1:4001"}}, "bad request"},
		{"empty addr", alice, wire.RegisterDevice{PeerID: alice.Device, Addrs: []string{""}}, "bad request"},
		{"no peer id", alice, wire.RegisterDevice{Addrs: addrs}, "missing field"},
		{"client id is not a peer id", bob, wire.RegisterDevice{PeerID: "bob-1"}, "bad request"},
		{"peer id that is not this client", bob, wire.RegisterDevice{PeerID: alice.Device}, "forbidden"},
	}
	for _, tt := range tests {
		wantError(t, "register_device "+tt.name, tt.cl.Fail("register_device", tt.req), tt.want)
	}
	bob.OK("peers", wire.Empty{}, &peers)
	if i := slices.IndexFunc(peers, func(p wire.PeerInfo) bool { return p.Device == alice.Device }); i < 0 || !slices.Equal(peers[i].Addrs, addrs[:1]) {
		t.Errorf("bob peers after refused registers = %+v, want alice still at %v", peers, addrs[:1])
	}
	alice.Close()
	eventuallyPeerStatus(t, bob, alice.Device, wire.StatusOffline)
}

// peers lists the devices of accounts that share a group; those accounts are
// related, and get the devices' presence pushes too.
func TestPresenceToGroupCoMembers(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "carol")
	alice, carol := c[0], c[1]
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g"}, &g)
	carol.OK("apply_join_feeds", g, nil)
	alice.OK("agree_join_feeds", wire.AgreeJoinReq{Applicant: "carol", Feeds: g.Feeds}, nil)
	wantPeerStatus(t, carol, "alice-1", wire.StatusOnline)

	alice2 := dial(t, inst, "alice", "alice-2")
	var pr wire.Presence
	select {
	case <-pushOf(carol, wire.PushPresence, &pr):
		if pr.Device != "alice-2" || pr.Status != wire.StatusOnline {
			t.Errorf("carol's presence push = %+v, want alice-2 online", pr)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("carol (in a group with alice, listed by peers) got no presence push when alice-2 connected")
	}
	alice2.Close()
	eventuallyPeerStatus(t, carol, "alice-2", wire.StatusOffline)
}

// pushOf waits in the background for cl's next push on topic and decodes it
// into v; the channel closes when it has.
func pushOf(cl *servertest.Client, topic string, v any) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for _, p := range cl.Drain(time.Second) {
			if p.Topic == topic {
				json.Unmarshal(p.Body, v)
				close(done)
				return
			}
		}
	}()
	return done
}

// A device that connects again while its old connection is still up takes
// over: pushes go to the new connection and it stays online.
func TestSameDeviceTakesOver(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	again := dial(t, inst, "bob", "bob-1")
	deadline := time.Now().Add(servertest.Timeout)
	for bob.Connected() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if bob.Connected() {
		t.Errorf("old connection of bob-1 still up after a new CONNECT with its client id")
	}
	m := text(wire.DM("alice", "bob"), "to the new one")
	send(t, alice, m)
	if n := again.News(); n.Message.MsgId != m.MsgId {
		t.Errorf("new connection's news = %s, want %s", n.Message.MsgId, m.MsgId)
	}
	time.Sleep(quiet)
	wantPeerStatus(t, alice, "bob-1", wire.StatusOnline)
	stillUp(t, again, "taking over")
}

// connectRaw opens a bare MQTT 3.1.1 connection with the given keep-alive
// and returns it once the CONNACK accepted it; it never sends PINGREQ.
func connectRaw(t *testing.T, inst *servertest.Instance, user, device string, keepalive uint16) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(inst.MQTT, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(servertest.Timeout))
	if _, err := c.Write(servertest.ConnectPacket(device, user, password(user), keepalive)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK = %x (%v), want accepted", ack, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// A device that stops talking (no PINGREQ within the keep-alive) or whose
// connection just drops goes offline, with its last-seen time.
func TestPresenceOfflineWithoutDisconnect(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)

	before := time.Now().UnixMilli()
	connectRaw(t, inst, "alice", "alice-silent", 1)
	if p := presenceOf(t, bob, "alice-silent"); p.Status != wire.StatusOnline {
		t.Errorf("presence after CONNECT = %+v, want online", p)
	}
	start := time.Now()
	p := presenceOf(t, bob, "alice-silent")
	if p.Status != wire.StatusOffline || p.LastSeen < before || p.LastSeen > time.Now().UnixMilli() {
		t.Errorf("presence of a device silent past its keep-alive = %+v, want offline with last_seen >= %d", p, before)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("offline %v after the last packet with a 1s keep-alive, want within 1.5 keep-alives", took)
	}
	wantPeerStatus(t, bob, "alice-silent", wire.StatusOffline)

	conn := connectRaw(t, inst, "alice", "alice-dropped", 60)
	presenceOf(t, bob, "alice-dropped")
	conn.Close() // no DISCONNECT
	if p := presenceOf(t, bob, "alice-dropped"); p.Status != wire.StatusOffline || p.LastSeen == 0 {
		t.Errorf("presence after the connection dropped = %+v, want offline with last_seen", p)
	}
}
