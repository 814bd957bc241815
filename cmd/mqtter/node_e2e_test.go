package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/p2p"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// nodeProc is a running `mqtter node`, driven through the CLI as a user
// would.
type nodeProc struct {
	t          *testing.T
	user, pass string
	home       string
	server     string   // tcp://host:port
	offline    bool     // start waits only for the local API, not the server
	args       []string // more flags for mqtter node
	cmd        *exec.Cmd
	out        *syncBuffer
	exited     chan error
}

// startNode runs `mqtter node` for user on home and waits until its local
// API answers and it is connected to the server. Every node listens on
// 127.0.0.1 only, with mDNS off.
func startNode(t *testing.T, server, home, user, pass string) *nodeProc {
	t.Helper()
	return launch(t, &nodeProc{t: t, user: user, pass: pass, home: home, server: server})
}

// startNodeOffline starts a node whose server is not there: it serves its
// local API and keeps trying the server.
func startNodeOffline(t *testing.T, server, home, user, pass string) *nodeProc {
	t.Helper()
	return launch(t, &nodeProc{t: t, user: user, pass: pass, home: home, server: server, offline: true})
}

// launch starts n, and kills it when the test ends, showing its output if
// the test failed.
func launch(t *testing.T, n *nodeProc) *nodeProc {
	t.Helper()
	n.start()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("mqtter node %s output:\n%s", n.user, n.out.String())
		}
	})
	return n
}

func (n *nodeProc) start() {
	n.t.Helper()
	if n.out == nil {
		n.out = &syncBuffer{}
	}
	n.exited = make(chan error, 1)
	n.cmd = exec.Command(bin, "node", "--home", n.home, "--server", n.server, "--user", n.user,
		"--p2p", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--sync-interval", "300ms",
		"--direct-timeout", "1s", "--log-level", "debug")
	n.cmd.Args = append(n.cmd.Args, n.args...)
	n.cmd.Env = append(os.Environ(), "MQTTER_PASSWORD="+n.pass)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("start mqtter node %s: %v", n.user, err)
	}
	go func() { n.exited <- n.cmd.Wait() }()
	n.eventually(30*time.Second, "it is up and connected", func() (bool, string) {
		select {
		case err := <-n.exited:
			n.exited <- err
			n.t.Fatalf("mqtter node %s exited at start: %v\n%s", n.user, err, n.out.String())
		default:
		}
		code, out := n.cli("status", "--json")
		var st node.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			return false, out
		}
		return n.offline || st.Server == node.ServerConnected, st.Server + " " + st.ServerError
	})
}

// kill ends the node with SIGKILL, as a crash or a pulled plug would.
func (n *nodeProc) kill() {
	if n.cmd.ProcessState != nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.exited
}

// stop sends SIGTERM and wants a clean exit.
func (n *nodeProc) stop() {
	n.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		n.t.Fatalf("SIGTERM node %s: %v", n.user, err)
	}
	select {
	case err := <-n.exited:
		if err != nil {
			n.t.Errorf("mqtter node %s after SIGTERM: %v, want exit code 0\n%s", n.user, err, n.out.String())
		}
	case <-time.After(20 * time.Second):
		n.t.Fatalf("mqtter node %s still running 20s after SIGTERM:\n%s", n.user, n.out.String())
	}
	if _, err := os.Stat(filepath.Join(n.home, node.APIAddrFile)); !errors.Is(err, os.ErrNotExist) {
		n.t.Errorf("node %s left %s behind after a clean stop (stat: %v)", n.user, node.APIAddrFile, err)
	}
}

// cli runs a CLI verb against this node.
func (n *nodeProc) cli(args ...string) (int, string) {
	n.t.Helper()
	return mqtter(n.t, nil, "", append(args, "--home", n.home)...)
}

// must runs a CLI verb that has to succeed and returns its output.
func (n *nodeProc) must(args ...string) string {
	n.t.Helper()
	code, out := n.cli(args...)
	if code != 0 {
		n.t.Fatalf("%s: mqtter %s = exit %d: %s", n.user, strings.Join(args, " "), code, out)
	}
	return out
}

func (n *nodeProc) status() node.Status {
	n.t.Helper()
	var st node.Status
	if err := json.Unmarshal([]byte(n.must("status", "--json")), &st); err != nil {
		n.t.Fatalf("%s: status --json: %v", n.user, err)
	}
	return st
}

func (n *nodeProc) history(with string) []node.HistoryEntry {
	n.t.Helper()
	var h []node.HistoryEntry
	for _, line := range strings.Split(strings.TrimSpace(n.must("history", with, "--json")), "\n") {
		if line == "" {
			continue
		}
		var m node.HistoryEntry
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			n.t.Fatalf("%s: history line %q: %v", n.user, line, err)
		}
		h = append(h, m)
	}
	return h
}

// send sends text to whom and returns the MsgId the CLI printed.
func (n *nodeProc) send(whom, text string) string {
	n.t.Helper()
	id := strings.TrimSpace(n.must("send", whom, text))
	if id == "" || strings.ContainsAny(id, " \n") {
		n.t.Fatalf("%s: mqtter send printed %q, want a MsgId", n.user, id)
	}
	return id
}

// received waits until the node holds msgID in its conversation with whom,
// and returns it.
func (n *nodeProc) received(whom, msgID string) node.HistoryEntry {
	n.t.Helper()
	var got node.HistoryEntry
	n.eventually(20*time.Second, "message "+msgID+" from "+whom+" arrives", func() (bool, string) {
		h := n.history(whom)
		for _, m := range h {
			if m.MsgId == msgID {
				got = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("history has %d messages", len(h))
	})
	return got
}

// eventually polls cond until it holds or d passes; what says what is awaited.
func (n *nodeProc) eventually(d time.Duration, what string, cond func() (bool, string)) {
	n.t.Helper()
	eventually(n.t, d, n.user+": "+what, cond)
}

// eventually polls cond for up to d and fails the test with cond's last
// word if it never holds.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v until %s; last: %s", d, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// befriend makes a and b friends through the CLI and waits until each node
// knows a device of the other.
func befriend(t *testing.T, a, b *nodeProc) {
	t.Helper()
	if out := a.must("friend", "add", b.user); !strings.Contains(out, b.user) {
		t.Errorf("friend add %s printed %q", b.user, out)
	}
	b.eventually(10*time.Second, "a friend request from "+a.user+" shows", func() (bool, string) {
		out := b.must("friend", "list")
		return strings.Contains(out, a.user), out
	})
	b.must("friend", "accept", a.user)
	knows := func(n *nodeProc, other string) {
		n.eventually(10*time.Second, "it knows a device of "+other, func() (bool, string) {
			var rows []node.PeerRow
			out := n.must("peers", "--json")
			if err := json.Unmarshal([]byte(out), &rows); err != nil {
				t.Fatalf("peers --json: %v: %s", err, out)
			}
			for _, r := range rows {
				if r.User == other && len(r.Addrs) > 0 {
					return true, ""
				}
			}
			return false, out
		})
	}
	knows(a, b.user)
	knows(b, a.user)
}

// newAccounts makes a server data directory with the given accounts (the
// password of each is its name + "-pw").
func newAccounts(t *testing.T, names ...string) string {
	t.Helper()
	data := t.TempDir()
	for _, name := range names {
		addUser(t, data, name, name+"-pw")
	}
	return data
}

// aliceAndBob starts a server with accounts alice and bob, a node each,
// and makes them friends; data is the server's directory.
func aliceAndBob(t *testing.T) (srv *serverProc, data string, alice, bob *nodeProc) {
	t.Helper()
	data = newAccounts(t, "alice", "bob")
	srv = startServer(t, data)
	broker := "tcp://" + srv.mqtt
	alice = startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	bob = startNode(t, broker, t.TempDir(), "bob", "bob-pw")
	befriend(t, alice, bob)
	return srv, data, alice, bob
}

func TestNodeDirectAndServerDown(t *testing.T) {
	t.Parallel()
	srv, data, alice, bob := aliceAndBob(t)

	hello := alice.send("bob", "hello, directly")
	if m := bob.received("alice", hello); m.Via != "p2p" || m.From != "alice" || m.Device != alice.status().Device {
		t.Errorf("bob got %+v, want it from alice's device via p2p", m)
	}

	// With the server gone, the two nodes keep talking directly.
	if err := srv.stop(t); err != nil {
		t.Fatalf("server after SIGTERM: %v", err)
	}
	for _, n := range []*nodeProc{alice, bob} {
		n.eventually(15*time.Second, "it sees the server gone", func() (bool, string) {
			st := n.status()
			return st.Server == node.ServerDisconnected, st.Server
		})
	}
	down := alice.send("bob", "the server is down")
	if m := bob.received("alice", down); m.Via != "p2p" {
		t.Errorf("bob got %s via %q with the server down, want p2p", down, m.Via)
	}
	reply := bob.send("alice", "still here")
	if m := alice.received("bob", reply); m.Via != "p2p" {
		t.Errorf("alice got %s via %q with the server down, want p2p", reply, m.Via)
	}
	if st := alice.status(); st.Outbox != 0 {
		t.Errorf("alice's outbox = %d with the server down, want 0: direct delivery is enough", st.Outbox)
	}

	// The server comes back on the same address: the nodes reconnect by
	// themselves and sync sequences everything.
	srv = startServerAt(t, data, srv.mqtt, srv.http)
	for _, n := range []*nodeProc{alice, bob} {
		n.eventually(30*time.Second, "it reconnects", func() (bool, string) {
			st := n.status()
			return st.Server == node.ServerConnected, st.Server + " " + st.ServerError
		})
	}
	want := []string{hello, down, reply}
	for _, n := range []*nodeProc{alice, bob} {
		other := map[string]string{"alice": "bob", "bob": "alice"}[n.user]
		n.eventually(20*time.Second, "its history is sequenced", func() (bool, string) {
			n.must("sync")
			h := n.history(other)
			var ids []string
			var seqs []int64
			for _, m := range h {
				ids = append(ids, m.MsgId)
				seqs = append(seqs, m.SeqId)
			}
			return slices.Equal(ids, want) && slices.Equal(seqs, []int64{1, 2, 3}), fmt.Sprintf("ids %v seqs %v", ids, seqs)
		})
	}
}

func TestNodeRelaysToOfflineNode(t *testing.T) {
	t.Parallel()
	_, _, alice, bob := aliceAndBob(t)

	bob.stop()
	id := alice.send("bob", "for when you are back")
	alice.eventually(20*time.Second, "the server took the message", func() (bool, string) {
		st := alice.status()
		return st.Outbox == 0, fmt.Sprintf("outbox %d, failures %+v", st.Outbox, st.Failures)
	})
	bob.start()
	m := bob.received("alice", id)
	if m.Via != "server" || m.SeqId == 0 {
		t.Errorf("bob got %+v after a restart, want it via server with a SeqId", m)
	}
	if got := bob.history("alice"); len(got) != 1 {
		t.Errorf("bob's history with alice = %d messages, want 1", len(got))
	}
}

func TestNodeKilledRightAfterSend(t *testing.T) {
	t.Parallel()
	_, _, alice, bob := aliceAndBob(t)

	// A burst through the local API, and SIGKILL the moment the last send
	// returns: first the sender, mid-delivery, then the receiver.
	const n = 200
	var sent []string
	for round, victim := range []*nodeProc{alice, bob} {
		ids := alice.burst("bob", n, fmt.Sprintf("round %d", round))
		victim.kill()
		if victim == alice {
			t.Logf("round %d: alice killed when bob held %d of %d", round, len(bob.history("alice"))-len(sent), n)
		}
		sent = append(sent, ids...)
		victim.start()
	}

	bob.eventually(30*time.Second, "every message arrived", func() (bool, string) {
		h := bob.history("alice")
		return len(h) >= len(sent), fmt.Sprintf("%d of %d", len(h), len(sent))
	})
	alice.eventually(20*time.Second, "alice's outbox is empty", func() (bool, string) {
		st := alice.status()
		return st.Outbox == 0, fmt.Sprintf("outbox %d, failures %+v", st.Outbox, st.Failures)
	})
	// Once both have synced, SeqId order is the sending order, whichever
	// path each message took.
	bob.eventually(20*time.Second, "bob's history is sequenced", func() (bool, string) {
		alice.must("sync")
		bob.must("sync")
		h := bob.history("alice")
		if len(h) == 0 {
			return false, "empty"
		}
		last := h[len(h)-1].SeqId
		return last == int64(len(h)), fmt.Sprintf("the last of %d has SeqId %d", len(h), last)
	})
	seen := map[string]int{}
	var order []string
	for _, m := range bob.history("alice") {
		seen[m.MsgId]++
		order = append(order, m.MsgId)
	}
	for _, id := range sent {
		if seen[id] != 1 {
			t.Errorf("bob holds %s %d times, want once", id, seen[id])
		}
	}
	if len(order) != len(sent) {
		t.Errorf("bob's history has %d messages, want %d", len(order), len(sent))
	} else if !slices.Equal(order, sent) {
		pos := map[string]int{}
		for i, id := range sent {
			pos[id] = i
		}
		var desc []string
		for _, m := range bob.history("alice") {
			desc = append(desc, fmt.Sprintf("%d:%d/%s", pos[m.MsgId], m.SeqId, m.Via))
		}
		t.Errorf("bob's history is not in the sending order: sent index:SeqId/via %v", desc)
	}
}

// burst sends count messages to whom through the local API as fast as it
// takes them, and returns their MsgIds in sending order.
func (n *nodeProc) burst(whom string, count int, label string) []string {
	n.t.Helper()
	cl, err := node.Dial(n.home)
	if err != nil {
		n.t.Fatalf("%s: dial the local API: %v", n.user, err)
	}
	ids := make([]string, 0, count)
	for i := range count {
		res, err := cl.Send(n.t.Context(), node.SendRequest{To: whom, Text: fmt.Sprintf("%s, message %d", label, i)})
		if err != nil {
			n.t.Fatalf("%s: send %d: %v", n.user, i, err)
		}
		ids = append(ids, res.MsgId)
	}
	return ids
}

func TestNodeRefusesStrangersAndForgeries(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice", "bob")
	srv := startServer(t, data)
	broker := "tcp://" + srv.mqtt
	alice := startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	st := alice.status()
	aliceID, err := peer.Decode(st.Device)
	if err != nil {
		t.Fatalf("alice's device %q: %v", st.Device, err)
	}
	var aliceAddrs []multiaddr.Multiaddr
	for _, a := range st.Addrs {
		ma, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			t.Fatalf("alice's address %q: %v", a, err)
		}
		aliceAddrs = append(aliceAddrs, ma)
	}

	// A device of an account alice has no relation with is refused at
	// the stream.
	stranger := newDevice(t, nil)
	sm := signed(t, stranger.key, wire.DM("alice", "mallory"), "mallory", "let me in")
	if _, err := stranger.host.Request(t.Context(), aliceID, aliceAddrs, sendTopic(aliceID, sm.MsgId), mustJSON(t, sm)); !errors.Is(err, p2p.ErrRefused) {
		t.Errorf("a stranger's request = %v, want p2p.ErrRefused", err)
	}

	// Bob's device, registered through the server, is let in: its signed
	// message is stored, while anything whose signature or sender does not
	// check out is refused with an Error answer.
	bob := newDevice(t, nil)
	bobLink, err := servertest.TryDial(t, broker, "bob", "bob-pw", bob.host.ID().String())
	if err != nil {
		t.Fatalf("bob CONNECT: %v", err)
	}
	defer bobLink.Close()
	bobLink.Register(bob.key, bob.host.Addrs())
	alice.must("friend", "add", "bob")
	bobLink.OK(wire.MethodAcceptFriend, wire.UserReq{User: "alice"}, nil)
	alice.eventually(10*time.Second, "alice knows bob's device", func() (bool, string) {
		out := alice.must("peers", "--json")
		return strings.Contains(out, bob.host.ID().String()), out
	})

	dm := wire.DM("alice", "bob")
	forged := signed(t, bob.key, dm, "bob", "signed, then changed")
	forged.Payload = json.RawMessage(`{"text":"changed after signing"}`)
	otherSender := signed(t, bob.key, dm, "alice", "bob's device speaking for alice")
	unsigned := wire.Message{MsgId: wire.NewMsgID(), Feeds: dm, From: "bob", MsgType: wire.MsgTypeText,
		Payload: json.RawMessage(`{"text":"no signature"}`), TimeCreate: time.Now().UnixMilli()}
	garbage := []byte(`{"MsgId":`)
	for _, tc := range []struct {
		name string
		body []byte
		id   string
	}{
		{"a forged signature", mustJSON(t, forged), forged.MsgId},
		{"another sender", mustJSON(t, otherSender), otherSender.MsgId},
		{"no signature", mustJSON(t, unsigned), unsigned.MsgId},
		{"a malformed body", garbage, wire.NewMsgID()},
	} {
		raw, err := bob.host.Request(t.Context(), aliceID, aliceAddrs, sendTopic(aliceID, tc.id), tc.body)
		if err != nil {
			t.Errorf("%s: request = %v, want an Error answer", tc.name, err)
			continue
		}
		ans, err := wire.ParseAnswer(raw)
		if err != nil || ans.Err() == nil {
			t.Errorf("%s: answer %s (%v), want an Error answer", tc.name, raw, err)
		}
	}
	good := signed(t, bob.key, dm, "bob", "properly signed")
	raw, err := bob.host.Request(t.Context(), aliceID, aliceAddrs, sendTopic(aliceID, good.MsgId), mustJSON(t, good))
	if err != nil {
		t.Fatalf("bob's signed message: %v", err)
	}
	if ans, err := wire.ParseAnswer(raw); err != nil || ans.Err() != nil {
		t.Fatalf("bob's signed message answered %s (%v), want OK", raw, err)
	}
	h := alice.history("bob")
	if len(h) != 1 || h[0].MsgId != good.MsgId || h[0].Via != "p2p" {
		t.Errorf("alice's history with bob = %+v, want only the properly signed message, via p2p", h)
	}
	if st := alice.status(); st.Counters["refused"] < 3 {
		t.Errorf("alice counts %d refused messages, want at least the 3 that did not check out", st.Counters["refused"])
	}

	// The same written back to back, among good ones: the burst's
	// signatures are checked together, and still each bad one alone is
	// refused while the good ones are stored, in order.
	var topics []string
	var bodies [][]byte
	var want []string // the good ones, in order
	add := func(id string, body []byte, ok bool) {
		topics, bodies = append(topics, sendTopic(aliceID, id)), append(bodies, body)
		if ok {
			want = append(want, id)
		}
	}
	for i := range 6 {
		g := signed(t, bob.key, dm, "bob", fmt.Sprintf("burst %d", i))
		add(g.MsgId, mustJSON(t, g), true)
		switch i {
		case 1:
			f := signed(t, bob.key, dm, "bob", "signed, then changed")
			f.Payload = json.RawMessage(`{"text":"changed in a burst"}`)
			add(f.MsgId, mustJSON(t, f), false)
		case 3:
			o := signed(t, bob.key, dm, "alice", "speaking for alice in a burst")
			add(o.MsgId, mustJSON(t, o), false)
		case 4:
			add(wire.NewMsgID(), garbage, false)
		}
	}
	answers, errs := bob.host.RequestAll(t.Context(), aliceID, aliceAddrs, topics, bodies)
	good2 := map[string]bool{}
	for _, id := range want {
		good2[id] = true
	}
	for i := range topics {
		if errs[i] != nil {
			t.Fatalf("burst request %d: %v", i, errs[i])
		}
		ans, err := wire.ParseAnswer(answers[i])
		if err != nil {
			t.Fatalf("burst request %d: answer %s: %v", i, answers[i], err)
		}
		id := strings.TrimPrefix(topics[i][strings.LastIndex(topics[i], "msg_id="):], "msg_id=")
		if ok := ans.Err() == nil; ok != good2[id] {
			t.Errorf("burst request %d: answered %s, want ok=%v", i, answers[i], good2[id])
		}
	}
	h = alice.history("bob")
	var got []string
	for _, e := range h[1:] {
		got = append(got, e.MsgId)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("alice's history after the burst = %v, want the good ones in order %v", got, want)
	}
}

// device is a bare libp2p device made in the test, with its own key.
type device struct {
	key  crypto.PrivKey
	host *p2p.Host
}

func newDevice(t *testing.T, handler p2p.Handler) device {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	if handler == nil {
		handler = p2p.HandlerFunc(func(_ context.Context, _ peer.ID, _ string, _ []byte) []byte {
			return wire.Fail("", "this test device takes no requests")
		})
	}
	h, err := p2p.New(t.Context(), p2p.Config{Key: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Handler: handler, Authorize: func(peer.ID) bool { return true }})
	if err != nil {
		t.Fatalf("p2p host: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return device{key: key, host: h}
}

// signed returns a text message from from in feeds, signed with key.
func signed(t *testing.T, key crypto.PrivKey, feeds, from, text string) wire.Message {
	t.Helper()
	m := wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds, From: from, MsgType: wire.MsgTypeText,
		Payload: mustJSON(t, map[string]string{"text": text}), TimeCreate: time.Now().UnixMilli()}
	if err := m.Sign(key); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return m
}

func sendTopic(to peer.ID, msgID string) string {
	return wire.RequestTopic(to.String(), wire.MethodSend, msgID)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A friend or a group that one device of an account adds is known at once
// to that device, and soon to the account's other devices.
func TestNodeOtherDeviceLearnsRelations(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice", "bob", "carol")
	srv := startServer(t, data)
	broker := "tcp://" + srv.mqtt
	desk := startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	laptop := startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	bob := startNode(t, broker, t.TempDir(), "bob", "bob-pw")
	carol := startNode(t, broker, t.TempDir(), "carol", "carol-pw")
	befriend(t, desk, bob)

	carol.must("friend", "add", "alice")
	desk.eventually(10*time.Second, "carol's request shows", func() (bool, string) {
		out := desk.must("friend", "list")
		return strings.Contains(out, "carol"), out
	})
	desk.must("friend", "accept", "carol")
	desk.send("carol", "right away") // the accepting device knows before the CLI returns
	feeds := strings.TrimSpace(desk.must("group", "create", "team", "bob", "carol"))
	desk.send(feeds, "the group, right away")
	for _, to := range []string{"carol", feeds} {
		laptop.eventually(10*time.Second, "the laptop may send to "+to, func() (bool, string) {
			code, out := laptop.cli("send", to, "from the laptop")
			return code == 0, out
		})
	}
}

// linkedDevice is a bare libp2p device of user, registered through the
// server by a test MQTT link.
type linkedDevice struct {
	device
	link *servertest.Client
}

func newLinkedDevice(t *testing.T, broker, user string) linkedDevice {
	t.Helper()
	d := newDevice(t, nil)
	link, err := servertest.TryDial(t, broker, user, user+"-pw", d.host.ID().String())
	if err != nil {
		t.Fatalf("%s CONNECT: %v", user, err)
	}
	t.Cleanup(link.Close)
	link.Register(d.key, d.host.Addrs())
	return linkedDevice{device: d, link: link}
}

// deliver sends m directly to the node's device and returns the Error of
// its answer (nil for OK); a stream refused outright fails the test, since
// the device is meant to be known to the node.
func (d linkedDevice) deliver(t *testing.T, to peer.ID, addrs []multiaddr.Multiaddr, m wire.Message) error {
	t.Helper()
	raw, err := d.host.Request(t.Context(), to, addrs, sendTopic(to, m.MsgId), mustJSON(t, m))
	if err != nil {
		t.Fatalf("deliver %s: request = %v, want an answer", m.MsgId, err)
	}
	ans, err := wire.ParseAnswer(raw)
	if err != nil {
		t.Fatalf("deliver %s: answer %s: %v", m.MsgId, raw, err)
	}
	return ans.Err()
}

// nodeAddrs returns a node's device and addresses from its status.
func nodeAddrs(t *testing.T, n *nodeProc) (peer.ID, []multiaddr.Multiaddr) {
	t.Helper()
	st := n.status()
	id, err := peer.Decode(st.Device)
	if err != nil {
		t.Fatalf("device %q: %v", st.Device, err)
	}
	var addrs []multiaddr.Multiaddr
	for _, a := range st.Addrs {
		ma, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			t.Fatalf("address %q: %v", a, err)
		}
		addrs = append(addrs, ma)
	}
	return id, addrs
}

// A direct dm is held to the server's write rule (wire.MayWrite): a group
// co-member who was never a friend, and a friend once removed, reach the
// node's stream (a shared group makes their devices known) but their
// correctly signed dms are refused with an Error answer, not stored and
// counted, while their group messages still go through.
func TestNodeRefusesDMsFromNonFriends(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice", "bob", "mallory")
	srv := startServer(t, data)
	broker := "tcp://" + srv.mqtt
	alice := startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	aliceID, aliceAddrs := nodeAddrs(t, alice)
	bob := newLinkedDevice(t, broker, "bob")
	mallory := newLinkedDevice(t, broker, "mallory")

	alice.must("friend", "add", "bob")
	bob.link.OK(wire.MethodAcceptFriend, wire.UserReq{User: "alice"}, nil)
	alice.eventually(10*time.Second, "alice may send to bob", func() (bool, string) {
		code, out := alice.cli("send", "bob", "hello bob")
		return code == 0, out
	})
	feeds := strings.TrimSpace(alice.must("group", "create", "team", "bob"))
	mallory.link.OK(wire.MethodApplyJoinFeeds, wire.FeedsReq{Feeds: feeds}, nil)
	alice.must("group", "agree", feeds, "mallory")
	alice.eventually(10*time.Second, "alice knows mallory's device", func() (bool, string) {
		out := alice.must("peers", "--json")
		return strings.Contains(out, mallory.host.ID().String()), out
	})
	if code, out := alice.cli("send", "mallory", "not a friend"); code == 0 || !strings.Contains(out, "not a friend") {
		t.Errorf("alice's send to mallory = exit %d: %s, want refused as not a friend", code, out)
	}
	refused := alice.status().Counters["refused"]

	// Mallory's group message goes through: her device is let in.
	inGroup := signed(t, mallory.key, feeds, "mallory", "hi team")
	if err := mallory.deliver(t, aliceID, aliceAddrs, inGroup); err != nil {
		t.Fatalf("mallory's group message: %v, want OK", err)
	}
	strangerDM := signed(t, mallory.key, wire.DM("alice", "mallory"), "mallory", "a dm from a non-friend")
	if err := mallory.deliver(t, aliceID, aliceAddrs, strangerDM); err == nil || !strings.HasPrefix(err.Error(), "forbidden") {
		t.Errorf("mallory's dm: %v, want a forbidden Error answer", err)
	}

	// Bob's dm goes through while he is a friend, not once removed.
	before := signed(t, bob.key, wire.DM("alice", "bob"), "bob", "while a friend")
	if err := bob.deliver(t, aliceID, aliceAddrs, before); err != nil {
		t.Fatalf("bob's dm as a friend: %v, want OK", err)
	}
	alice.must("friend", "remove", "bob")
	alice.eventually(10*time.Second, "alice may no longer send to bob", func() (bool, string) {
		code, out := alice.cli("send", "bob", "still there?")
		return code != 0, out
	})
	after := signed(t, bob.key, wire.DM("alice", "bob"), "bob", "after removal")
	if err := bob.deliver(t, aliceID, aliceAddrs, after); err == nil || !strings.HasPrefix(err.Error(), "forbidden") {
		t.Errorf("former friend bob's dm: %v, want a forbidden Error answer", err)
	}
	stillInGroup := signed(t, bob.key, feeds, "bob", "still in the team")
	if err := bob.deliver(t, aliceID, aliceAddrs, stillInGroup); err != nil {
		t.Errorf("bob's group message after removal: %v, want OK", err)
	}

	has := func(with, msgID string) bool {
		return slices.ContainsFunc(alice.history(with), func(e node.HistoryEntry) bool { return e.MsgId == msgID })
	}
	if has("mallory", strangerDM.MsgId) {
		t.Errorf("alice stored mallory's dm")
	}
	if has("bob", after.MsgId) {
		t.Errorf("alice stored former friend bob's dm")
	}
	if !has("bob", before.MsgId) || !has(feeds, inGroup.MsgId) || !has(feeds, stillInGroup.MsgId) {
		t.Errorf("alice lacks a message she accepted")
	}
	if got := alice.status().Counters["refused"] - refused; got != 2 {
		t.Errorf("alice counted %d more refused messages, want 2", got)
	}
}

// A node started with --p2p-announce tells that address, and only it, in
// its status and to its friends through the server; a malformed one stops
// the node at start with the reason.
func TestNodeAnnouncesAddrs(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice", "bob")
	srv := startServer(t, data)
	broker := "tcp://" + srv.mqtt
	announce := "/ip4/127.0.0.1/tcp/" + strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	alice := launch(t, &nodeProc{t: t, user: "alice", pass: "alice-pw", home: t.TempDir(), server: broker,
		args: []string{"--p2p-announce", announce}})
	bob := startNode(t, broker, t.TempDir(), "bob", "bob-pw")
	befriend(t, alice, bob)
	st := alice.status()
	if want := []string{announce + "/p2p/" + st.Device}; !slices.Equal(st.Addrs, want) {
		t.Errorf("alice's status addrs = %v, want only %v", st.Addrs, want)
	}
	bob.eventually(10*time.Second, "bob sees alice's announced address", func() (bool, string) {
		var rows []node.PeerRow
		out := bob.must("peers", "--json")
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return false, out
		}
		for _, r := range rows {
			if r.Device == st.Device {
				return slices.Equal(r.Addrs, []string{announce + "/p2p/" + st.Device}) ||
					slices.Equal(r.Addrs, []string{announce}), out
			}
		}
		return false, out
	})

	// A host that cannot start stops the node with the reason (it used to
	// hang: its cleanup waited for a goroutine that waits for the stop).
	for _, bad := range [][]string{{"--p2p", "/ip4/127.0.0.1/tcp/0", "--p2p-announce", "/ip4/nowhere"}, {"--p2p", "/ip4/nowhere"}} {
		args := append([]string{"node", "--home", t.TempDir(), "--server", broker, "--user", "alice", "--no-mdns"}, bad...)
		code, out := mqtter(t, []string{"MQTTER_PASSWORD=alice-pw"}, "", args...)
		if code != 1 || !strings.Contains(out, bad[len(bad)-1]) {
			t.Errorf("node %v = exit %d: %s, want exit 1 naming the address", bad, code, out)
		}
	}
}

// A node started with --cpuprofile writes a CPU profile (gzipped protobuf)
// when it stops.
func TestNodeCPUProfile(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice")
	srv := startServer(t, data)
	prof := filepath.Join(t.TempDir(), "node.pprof")
	alice := launch(t, &nodeProc{t: t, user: "alice", pass: "alice-pw", home: t.TempDir(), server: "tcp://" + srv.mqtt,
		args: []string{"--cpuprofile", prof}})
	alice.stop()
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("the profile (%d bytes) is not gzipped", len(b))
	}
}
