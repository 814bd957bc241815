package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// runNode runs a node in this process until stop is called, which returns
// Run's error.
func runNode(t *testing.T, srv *servertest.Instance, home, user string) (cl *node.Client, stop func() error) {
	t.Helper()
	return runNodeWith(t, srv, home, user, nil)
}

// runNodeWith is runNode with the config changed by edit first.
func runNodeWith(t *testing.T, srv *servertest.Instance, home, user string, edit func(*node.Config)) (cl *node.Client, stop func() error) {
	t.Helper()
	cfg := node.Config{Home: home, Server: srv.MQTT, User: user, Password: user + "-pw",
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, SyncInterval: 200 * time.Millisecond,
		Logger: servertest.TestLogger(t)}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- node.Run(ctx, cfg)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := node.Dial(home)
		if err == nil {
			if st, err := c.Status(t.Context()); err == nil && st.Server == node.ServerConnected {
				cl = c
				break
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("node %s ended at start: %v", user, err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("node %s not up after 20s", user)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cl, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatalf("node %s still running 20s after its context ended", user)
			return nil
		}
	}
}

// A node that stops leaves no goroutine behind, keeps its undelivered
// messages, and removes its api files. Not parallel, so no other test's
// goroutines are counted.
func TestStoppedNodeLeaksNoGoroutines(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser(t, "alice", "alice-pw", false)
	srv.AddUser(t, "bob", "bob-pw", false)
	aliceHome, bobHome := t.TempDir(), t.TempDir()
	round := func(final bool) {
		alice, stopAlice := runNode(t, srv, aliceHome, "alice")
		bob, stopBob := runNode(t, srv, bobHome, "bob")
		ctx := t.Context()
		if !final { // friends from the first round on
			if err := alice.Call(ctx, wire.MethodAddFriend, wire.UserReq{User: "bob"}, nil); err != nil {
				t.Fatalf("add_friend: %v", err)
			}
			if err := bob.Call(ctx, wire.MethodAcceptFriend, wire.UserReq{User: "alice"}, nil); err != nil {
				t.Fatalf("accept_friend: %v", err)
			}
		}
		res, err := alice.Send(ctx, node.SendRequest{To: "bob", Text: "hello"})
		for i := 0; err != nil && i < 100; i++ { // the friendship reaches alice's node a moment later
			time.Sleep(20 * time.Millisecond)
			res, err = alice.Send(ctx, node.SendRequest{To: "bob", Text: "hello"})
		}
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			h, err := bob.History(ctx, "alice", 0)
			if err == nil && len(h.Messages) > 0 && h.Messages[len(h.Messages)-1].MsgId == res.MsgId {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bob never got %s", res.MsgId)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var kept string
		if final {
			// Bob goes first: alice's next message stays in her outbox,
			// which must survive her stop.
			if err := stopBob(); err != nil {
				t.Errorf("bob's Run = %v after a stop, want nil", err)
			}
			srv.Stop(t)
			r, err := alice.Send(ctx, node.SendRequest{To: "bob", Text: "kept"})
			if err != nil {
				t.Fatalf("send with nobody reachable: %v", err)
			}
			kept = r.MsgId
		} else if err := stopBob(); err != nil {
			t.Errorf("bob's Run = %v after a stop, want nil", err)
		}
		if err := stopAlice(); err != nil {
			t.Errorf("alice's Run = %v after a stop, want nil", err)
		}
		for _, home := range []string{aliceHome, bobHome} {
			if _, err := os.Stat(filepath.Join(home, node.APIAddrFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left after a stop (stat: %v)", node.APIAddrFile, err)
			}
		}
		if kept != "" {
			srv.Restart(t)
			alice, stopAlice = runNode(t, srv, aliceHome, "alice")
			st, err := alice.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := alice.History(ctx, "bob", 0)
			if st.Outbox == 0 && (len(h.Messages) == 0 || h.Messages[len(h.Messages)-1].MsgId != kept) {
				t.Errorf("the undelivered %s is neither in the outbox nor the history after a restart", kept)
			}
			if err := stopAlice(); err != nil {
				t.Errorf("alice's Run = %v, want nil", err)
			}
			srv.Stop(t)
		}
	}
	round(false) // warm up libp2p's and paho's process-wide goroutines
	before := runtime.NumGoroutine()
	round(true)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			var ours []string
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "mqtter/node") || strings.Contains(g, "mqtter/sync") || strings.Contains(g, "mqtter/p2p") || strings.Contains(g, "mqttlink") {
					ours = append(ours, g)
				}
			}
			t.Fatalf("goroutines: %d before, %d after the nodes stopped; ours:\n%s", before, runtime.NumGoroutine(), strings.Join(ours, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
