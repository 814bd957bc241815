package server_test

import (
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func listsDevice(t *testing.T, cl *servertest.Client, device string) bool {
	t.Helper()
	var peers []wire.PeerInfo
	cl.OK("peers", wire.Empty{}, &peers)
	return slices.ContainsFunc(peers, func(p wire.PeerInfo) bool { return p.Device == device })
}

// An account that connects first with another device's peer id as its
// client id owns nothing: it cannot register the id without the key, the
// id is in nobody's peers, and the real device, connecting with its own
// account's password, takes the id over and binds it with its proof.
func TestPeerIDSquattingIsUndone(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "mallory", "bob")
	aliceKey, aliceID := servertest.NewDeviceKey(t)
	malloryKey, _ := servertest.NewDeviceKey(t)
	bob := dial(t, inst, "bob", "bob-1")
	mallory := dial(t, inst, "mallory", aliceID)
	befriend(t, mallory, bob)

	// Without a proof, or with one by another key, the id stays unbound.
	wantError(t, "register_device without proof", mallory.Fail("register_device", wire.RegisterDevice{PeerID: aliceID}), "forbidden")
	forged := mallory.Proof(malloryKey, nil) // signed by mallory's key …
	forged.PeerID = aliceID                  // … for alice's peer id
	forged.PubKey = ""
	wantError(t, "register_device signed by another key", mallory.Fail("register_device", forged), "forbidden")
	var ch wire.DeviceChallenge
	mallory.OK(wire.MethodDeviceChallenge, wire.Empty{}, &ch)
	junk := wire.RegisterDevice{PeerID: aliceID, Challenge: "x" + ch.Challenge, Sig: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	wantError(t, "register_device with a made-up challenge", mallory.Fail("register_device", junk), "forbidden")
	if listsDevice(t, bob, aliceID) {
		t.Error("bob's peers list the unproven device mallory connected")
	}
	// Nor does the server attest the unproven id as the Device of
	// mallory's unsigned messages.
	wantError(t, "unsigned send from the unproven device", mallory.Fail("send", text(wire.DM("bob", "mallory"), "as alice's device")), "forbidden")
	// alice's real device connects with alice's password: it is let in,
	// mallory's connection with the same client id is gone.
	alice := dial(t, inst, "alice", aliceID)
	deadline := time.Now().Add(servertest.Timeout)
	for mallory.Connected() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if mallory.Connected() {
		t.Error("mallory's connection with alice's peer id is still up after alice's CONNECT")
	}
	befriend(t, alice, bob)
	if listsDevice(t, bob, aliceID) {
		t.Error("bob's peers list alice's device before it proved its key")
	}
	alice.Register(aliceKey, []string{"/ip4/127.0.0.1/tcp/4001"})
	var peers []wire.PeerInfo
	bob.OK("peers", wire.Empty{}, &peers)
	i := slices.IndexFunc(peers, func(p wire.PeerInfo) bool { return p.Device == aliceID })
	if i < 0 || peers[i].User != "alice" {
		t.Fatalf("bob's peers = %+v, want %s as alice's", peers, aliceID)
	}

	// Now the id is alice's for good: mallory is refused.
	if cl, err := servertest.TryDial(t, inst.MQTT, "mallory", password("mallory"), aliceID); err == nil {
		cl.Close()
		t.Error("mallory connected with alice's proven peer id")
	}
	// And a signed message of alice's proven device goes through.
	hi := text(wire.DM("alice", "bob"), "hi")
	hi.From = "alice"
	if err := hi.Sign(aliceKey); err != nil {
		t.Fatal(err)
	}
	send(t, alice, hi)
}

// A signed message whose Device has not proven its key is refused, and
// accepted once the device registered with its proof.
func TestUnprovenDeviceSignsNothing(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob")
	key, id := servertest.NewDeviceKey(t)
	alice := dial(t, inst, "alice", id)
	bob := dial(t, inst, "bob", "bob-1")
	befriend(t, alice, bob)
	m := text(wire.DM("alice", "bob"), "signed")
	m.From = "alice"
	if err := m.Sign(key); err != nil {
		t.Fatal(err)
	}
	wantError(t, "signed send before the proof", alice.Fail("send", m), "forbidden")
	alice.Register(key, nil)
	send(t, alice, m)
	if n := bob.News(); n.Message.MsgId != m.MsgId {
		t.Errorf("bob's news = %s, want %s", n.Message.MsgId, m.MsgId)
	}
}

// A challenge is bound to the account and the client id it was given to,
// and a register_device proof to the account that signs it.
func TestDeviceChallengeBinding(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob")
	aliceKey, aliceID := servertest.NewDeviceKey(t)
	bobKey, bobID := servertest.NewDeviceKey(t)
	alice := dial(t, inst, "alice", aliceID)
	bob := dial(t, inst, "bob", bobID)
	// bob's challenge, signed by alice's key: not for alice's connection.
	var ch wire.DeviceChallenge
	bob.OK(wire.MethodDeviceChallenge, wire.Empty{}, &ch)
	if ch.Expires <= time.Now().UnixMilli() || len(ch.Challenge) > wire.MaxChallenge {
		t.Errorf("device_challenge = %+v, want one that expires later, at most %d bytes", ch, wire.MaxChallenge)
	}
	var req wire.RegisterDevice
	if err := wire.ProveDevice(&req, aliceKey, "alice", ch.Challenge); err != nil {
		t.Fatal(err)
	}
	wantError(t, "another connection's challenge", alice.Fail("register_device", req), "forbidden")
	// alice's challenge signed as if for account bob.
	alice.OK(wire.MethodDeviceChallenge, wire.Empty{}, &ch)
	if err := wire.ProveDevice(&req, aliceKey, "bob", ch.Challenge); err != nil {
		t.Fatal(err)
	}
	wantError(t, "proof signed for another account", alice.Fail("register_device", req), "forbidden")
	req.Sig = "%%%"
	wantError(t, "sig not base64", alice.Fail("register_device", req), "bad request")
	alice.Register(aliceKey, nil)
	bob.Register(bobKey, nil)
}
