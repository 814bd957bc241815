package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// peersOf counts the devices of user in cl's peers answer.
func peersOf(t *testing.T, cl *servertest.Client, user string) map[string]bool {
	t.Helper()
	var ps []wire.PeerInfo
	cl.OK("peers", wire.Empty{}, &ps)
	out := make(map[string]bool)
	for _, p := range ps {
		if p.User == user {
			out[p.Device] = true
		}
	}
	return out
}

// TestDeviceLimit connects 200 fresh client ids of one account: the store
// keeps at most the limit, retiring the stalest devices that are not
// connected; a friend's peers answer stays within the limit; the device
// that stayed connected keeps working; and a retired device that comes
// back is a new device (its cursors start at the present).
func TestDeviceLimit(t *testing.T) {
	const limit = 8
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.MaxDevices = limit }))
	people(t, inst, "alice", "bob")
	alice, bob := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	befriend(t, alice, bob)
	feeds := wire.DM("alice", "bob")
	send(t, bob, text(feeds, "before"))

	// alice-old is seen once, then misses a message.
	dial(t, inst, "alice", "alice-old").Close()
	missed := send(t, bob, text(feeds, "while alice-old is away"))

	for i := range 200 {
		dial(t, inst, "alice", fmt.Sprintf("alice-f%03d", i)).Close()
	}
	devices, err := inst.Store().Devices(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(devices) > limit {
		t.Errorf("alice has %d devices in the store, want at most %d", len(devices), limit)
	}
	current := false
	for _, d := range devices {
		current = current || d.ID == "alice-1"
	}
	if !current {
		t.Errorf("the connected device alice-1 was retired: %+v", devices)
	}
	if got := peersOf(t, bob, "alice"); len(got) > limit || !got["alice-1"] {
		t.Errorf("bob's peers list %d devices of alice (alice-1 among them: %v), want at most %d with alice-1", len(got), got["alice-1"], limit)
	}
	sent := send(t, alice, text(feeds, "alice-1 still works"))
	if n := bob.News(); n.Message.SeqId != sent.SeqId {
		t.Errorf("bob got news %d, want %d", n.Message.SeqId, sent.SeqId)
	}

	// Back as a new device: nothing from before it came back is replayed.
	old := dial(t, inst, "alice", "alice-old")
	old.NoPush(wire.PushNews, quiet)
	h := history(t, old, feeds, missed.SeqId-1, 1)
	if len(h.Messages) != 1 || h.Messages[0].SeqId != missed.SeqId {
		t.Errorf("alice-old's history = %v, want the missed message there by pull", seqIDs(h.Messages))
	}
}

// TestDeviceLimitAllConnected refuses a new device when every device of
// the account is connected, and takes it once one disconnects.
func TestDeviceLimitAllConnected(t *testing.T) {
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.MaxDevices = 2 }))
	people(t, inst, "alice")
	dial(t, inst, "alice", "alice-1")
	second := dial(t, inst, "alice", "alice-2")
	if _, err := servertest.TryDial(t, inst.MQTT, "alice", password("alice"), "alice-3"); err == nil {
		t.Fatal("a third device connected while both others were, want it refused")
	}
	second.Close()
	// The server sees the disconnect a moment after the client.
	deadline := time.Now().Add(servertest.Timeout)
	for {
		_, err := servertest.TryDial(t, inst.MQTT, "alice", password("alice"), "alice-3")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice-3 after alice-2 disconnected: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
