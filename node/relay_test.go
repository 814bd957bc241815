package node

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// relayedPair starts a server with a relay (edit changes its config),
// alice's node and bob's, which listens nowhere, makes them friends, and
// waits until bob holds a slot and alice knows his relayed address.
func relayedPair(t *testing.T, edit func(*server.Config)) (alice, bob *testNode) {
	t.Helper()
	srv := servertest.Start(t, servertest.WithConfig(func(c *server.Config) {
		c.RelayListen = []string{"/ip4/127.0.0.1/tcp/0"}
		if edit != nil {
			edit(c)
		}
	}))
	srv.AddUser(t, "alice", "alice-pw", false)
	srv.AddUser(t, "bob", "bob-pw", false)
	// alice's sync waits: a history_push of her message would race the
	// relayed frame to bob's node (the server's push winning it).
	alice = startTestNode(t, srv, t.TempDir(), "alice", func(c *Config) { c.SyncInterval = time.Hour })
	bob = startTestNode(t, srv, t.TempDir(), "bob", func(c *Config) { c.ListenAddrs = []string{ListenNone} })
	ctx := t.Context()
	if err := alice.cl.Call(ctx, wire.MethodAddFriend, wire.UserReq{User: "bob"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := bob.cl.Call(ctx, wire.MethodAcceptFriend, wire.UserReq{User: "alice"}, nil); err != nil {
		t.Fatal(err)
	}

	var relayed string
	waitFor(t, "bob holding a relay slot", func() bool {
		st, err := bob.cl.Status(ctx)
		if err != nil || st.Relay == nil || len(st.Relay.Addrs) == 0 {
			return false
		}
		relayed = st.Relay.Addrs[0]
		return true
	})
	if !strings.Contains(relayed, "/p2p-circuit/p2p/"+bob.n.self.String()) {
		t.Fatalf("bob's relayed address %q does not name his device behind the relay", relayed)
	}
	if addrs := bob.n.host.Addrs(); len(addrs) != 0 {
		t.Fatalf("bob listens at %v, want nowhere", addrs)
	}
	waitFor(t, "alice knowing bob's relayed address", func() bool {
		alice.n.book.mu.RLock()
		defer alice.n.book.mu.RUnlock()
		return slices.Contains(alice.n.book.devices[bob.n.self.String()].Addrs, relayed)
	})
	return alice, bob
}

// A node that listens nowhere (behind a NAT, say) holds a slot on the
// server's relay and registers its relayed address; a friend's node
// reaches it there: the messages go directly, over the relayed
// connection, and both sides say so (the receipt's path and Via).
func TestRelayedPath(t *testing.T) {
	alice, bob := relayedPair(t, nil)
	ctx := t.Context()

	res, err := alice.cl.Send(ctx, SendRequest{To: "bob", Text: "through the relay"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			st, _ := alice.cl.Status(ctx)
			t.Logf("alice's failures: %+v", st.Failures)
		}
	}()
	if via := waitStored(t, bob, wire.DM("alice", "bob"), res.MsgId); via != localdb.ViaRelayed {
		t.Errorf("bob stored it via %q, want relayed", via)
	}
	waitFor(t, "alice's outbox empty", func() bool {
		st, err := alice.cl.Status(ctx)
		return err == nil && st.Outbox == 0
	})
	if got := alice.n.counts.sentServer.Load(); got != 0 {
		t.Errorf("alice's sent_server = %d, want 0: the relayed path took it", got)
	}
	if got := alice.n.counts.sentRelayed.Load(); got != 1 {
		t.Errorf("alice's sent_relayed = %d, want 1", got)
	}
	if got := bob.n.counts.recvRelayed.Load(); got != 1 {
		t.Errorf("bob's received_relayed = %d, want 1", got)
	}
}

// A message bigger than what a circuit may carry ends the circuit: the
// failure shows, and the message goes through the server; nothing is lost.
func TestRelayLimitFallsBackToServer(t *testing.T) {
	alice, bob := relayedPair(t, func(c *server.Config) { c.RelayLimitData = 16 << 10 })
	ctx := t.Context()
	big := strings.Repeat("a long story ", 4<<10) // 52 KiB, past the circuit's 16 KiB
	res, err := alice.cl.Send(ctx, SendRequest{To: "bob", Text: big})
	if err != nil {
		t.Fatal(err)
	}
	if via := waitStored(t, bob, wire.DM("alice", "bob"), res.MsgId); via != localdb.ViaServer {
		t.Errorf("bob stored the big message via %q, want server", via)
	}
	st, err := alice.cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failed := slices.ContainsFunc(st.Failures, func(f PathFailure) bool {
		return f.Path == localdb.ViaP2P && f.MsgId == res.MsgId && f.Peer == bob.n.self.String()
	})
	if !failed {
		t.Errorf("alice's failures %+v name no failed direct attempt of %s", st.Failures, res.MsgId)
	}
	waitFor(t, "alice's outbox empty (the server took it)", func() bool {
		st, err := alice.cl.Status(ctx)
		return err == nil && st.Outbox == 0
	})
}
