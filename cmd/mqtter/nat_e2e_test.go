package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtter/mqtter/internal/natlab"
	"github.com/mqtter/mqtter/node"
)

// The NAT tests run in the network natlab builds (the same as the relay
// benchmark's): the server on a "public" segment, alice and bob each behind
// a router that masquerades. They reach each other through the server's
// relay, then hole-punch to a direct connection (over QUIC or TCP, and over
// TCP alone when that is all they listen on); behind a NAT that maps every
// connection to a new port (--random-fully, as a symmetric NAT does) they
// stay relayed or go through the server, and nothing is lost.

// natNet is the test network.
type natNet struct {
	*natlab.Net
	t     *testing.T
	nodes map[string]*natNode // by home
}

// natNode is how a node was started, to start it again.
type natNode struct {
	ns, name  string
	env, args []string
	proc      *nsProc
}

const natServerIP = natlab.ServerIP

func newNATNet(t *testing.T, symmetric bool) *natNet {
	t.Helper()
	lab, err := natlab.New(natlab.Options{Symmetric: symmetric})
	if errors.Is(err, natlab.ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Log(err)
		}
	})
	return &natNet{Net: lab, t: t, nodes: map[string]*natNode{}}
}

// nsProc is a process of the binary in a namespace.
type nsProc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan error
}

func (n *natNet) start(ns, name string, env []string, args ...string) *nsProc {
	n.t.Helper()
	p := &nsProc{out: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd = n.Command(context.Background(), ns, bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	n.t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
		if n.t.Failed() {
			n.t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// restart stops the node in home (as a user quits it) and starts it again.
func (n *natNet) restart(home string) {
	n.t.Helper()
	nd := n.nodes[home]
	if err := nd.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		n.t.Fatal(err)
	}
	select {
	case <-nd.proc.exited:
	case <-time.After(30 * time.Second):
		n.t.Fatalf("%s did not stop", nd.name)
	}
	nd.proc = n.start(nd.ns, nd.name+" (again)", nd.env, nd.args...)
}

// cli runs a CLI verb in ns against the node in home.
func (n *natNet) cli(ns, home string, args ...string) (string, error) {
	out, err := n.Command(context.Background(), ns, bin, append(args, "--home", home)...).CombinedOutput()
	return string(out), err
}

func (n *natNet) eventually(d time.Duration, what string, cond func() (bool, string)) {
	n.t.Helper()
	eventually(n.t, d, what, cond)
}

// natSetup shapes a NAT test's network and listeners.
type natSetup struct {
	symmetric bool // the routers map every connection to a new port
	tcpOnly   bool // the relay and the nodes listen on TCP alone, no QUIC
}

// natPair starts the server (with its relay) in pub and alice's and bob's
// nodes behind the routers, and makes them friends.
func natPair(t *testing.T, setup natSetup) (n *natNet, aliceHome, bobHome string) {
	t.Helper()
	n = newNATNet(t, setup.symmetric)
	relayListen := "/ip4/" + natServerIP + "/tcp/4001,/ip4/" + natServerIP + "/udp/4001/quic-v1"
	p2pListen := []string{"--p2p", "/ip4/0.0.0.0/tcp/4001", "--p2p", "/ip4/0.0.0.0/udp/4001/quic-v1"}
	if setup.tcpOnly {
		relayListen = "/ip4/" + natServerIP + "/tcp/4001"
		p2pListen = p2pListen[:2]
	}
	data := newAccounts(t, "alice", "bob")
	ready := filepath.Join(t.TempDir(), "ready.json")
	n.start(n.Pub, "mqtter server", nil, "server", "--data", data, "--mqtt", natServerIP+":1883",
		"--http", "127.0.0.1:0", "--ready-file", ready,
		"--relay-listen", relayListen)
	n.eventually(30*time.Second, "the server is ready", func() (bool, string) {
		_, err := os.Stat(ready)
		return err == nil, fmt.Sprint(err)
	})
	aliceHome, bobHome = t.TempDir(), t.TempDir()
	for _, u := range []struct{ ns, home, user string }{{n.A, aliceHome, "alice"}, {n.B, bobHome, "bob"}} {
		args := append([]string{"node", "--home", u.home,
			"--server", "tcp://" + natServerIP + ":1883", "--user", u.user, "--no-mdns"}, p2pListen...)
		// No history_push racing a direct frame to the other node: what
		// is measured is how the direct path went.
		args = append(args, "--direct-timeout", "3s", "--sync-interval", "1h", "--log-level", "debug")
		nd := &natNode{ns: u.ns, name: "mqtter node " + u.user, env: []string{"MQTTER_PASSWORD=" + u.user + "-pw"}, args: args}
		nd.proc = n.start(nd.ns, nd.name, nd.env, nd.args...)
		n.nodes[u.home] = nd
	}
	for _, u := range []struct{ ns, home string }{{n.A, aliceHome}, {n.B, bobHome}} {
		// Not until hole punching has started: a relayed connection
		// opened before is punched once it has.
		n.eventually(30*time.Second, "a node holds a relay slot", func() (bool, string) {
			st, out := n.status(u.ns, u.home)
			return st.Relay != nil && len(st.Relay.Addrs) > 0, out
		})
	}
	if out, err := n.cli(n.A, aliceHome, "friend", "add", "bob"); err != nil {
		t.Fatalf("friend add: %v: %s", err, out)
	}
	n.eventually(10*time.Second, "bob sees the request", func() (bool, string) {
		out, _ := n.cli(n.B, bobHome, "friend", "list")
		return strings.Contains(out, "alice"), out
	})
	if out, err := n.cli(n.B, bobHome, "friend", "accept", "alice"); err != nil {
		t.Fatalf("friend accept: %v: %s", err, out)
	}
	n.eventually(10*time.Second, "alice knows bob's relayed address", func() (bool, string) {
		out, _ := n.cli(n.A, aliceHome, "peers", "--json")
		return strings.Contains(out, "p2p-circuit"), out
	})
	return n, aliceHome, bobHome
}

func (n *natNet) status(ns, home string) (node.Status, string) {
	out, err := n.cli(ns, home, "status", "--json")
	var st node.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		return node.Status{}, out
	}
	return st, out
}

// send sends text from alice to bob and returns how bob stored it.
func (n *natNet) send(aliceHome, bobHome, text string) string {
	n.t.Helper()
	out, err := n.cli(n.A, aliceHome, "send", "bob", text)
	id := strings.TrimSpace(out)
	if err != nil || id == "" || strings.ContainsAny(id, " \n") {
		n.t.Fatalf("send: %v: %s", err, out)
	}
	var via string
	n.eventually(30*time.Second, "bob stores "+text, func() (bool, string) {
		out, _ := n.cli(n.B, bobHome, "history", "alice", "--json")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var m node.HistoryEntry
			if json.Unmarshal([]byte(line), &m) == nil && m.MsgId == id {
				via = m.Via
				return true, ""
			}
		}
		return false, out
	})
	return via
}

// relayThenPunch sends a first message, relayed (or direct if the punch
// was quick), then messages until one goes direct.
func (n *natNet) relayThenPunch(aliceHome, bobHome string) {
	n.t.Helper()
	first := n.send(aliceHome, bobHome, "hello through the NATs")
	n.t.Logf("first message came via %s", first)
	if first != "relayed" && first != "p2p" {
		n.t.Errorf("first message via %q, want relayed (or p2p once punched)", first)
	}
	// The hole punch follows the relayed connection: later messages go
	// direct.
	for i := range 30 {
		if n.send(aliceHome, bobHome, fmt.Sprintf("message %d", i)) == "p2p" {
			return
		}
		time.Sleep(time.Second)
	}
	n.t.Fatal("no message went direct: the hole punch never happened")
}

func TestNATRelayThenHolePunch(t *testing.T) {
	n, aliceHome, bobHome := natPair(t, natSetup{})
	n.relayThenPunch(aliceHome, bobHome)
}

// TestNATTCPHolePunch is the same with the relay and the nodes on TCP
// alone: the punch is a TCP simultaneous open through both routers, and
// the connection the message took (shown in peers' conns) is TCP.
func TestNATTCPHolePunch(t *testing.T) {
	n, aliceHome, bobHome := natPair(t, natSetup{tcpOnly: true})
	n.relayThenPunch(aliceHome, bobHome)
	out, err := n.cli(n.A, aliceHome, "peers", "--json")
	var rows []node.PeerRow
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil {
		t.Fatalf("peers --json: %v: %s", err, out)
	}
	var direct []string
	for _, r := range rows {
		for _, c := range r.Conns {
			if r.User == "bob" && !strings.Contains(c, "/p2p-circuit") {
				direct = append(direct, c)
			}
		}
	}
	t.Logf("alice's direct connections to bob: %q", direct)
	// The router's public side, the port mapped as the node's own.
	const bobsRouter = "/ip4/192.0.0.131/tcp/"
	if len(direct) == 0 || !strings.HasPrefix(direct[0], bobsRouter) {
		t.Errorf("alice's direct connections to bob %q, want one to %s…: %s", direct, bobsRouter, out)
	}
	if st, out := n.status(n.A, aliceHome); st.Counters["sent_p2p"] == 0 {
		t.Errorf("alice counted no direct message: %s", out)
	}
}

func TestNATSymmetricStaysRelayed(t *testing.T) {
	n, aliceHome, bobHome := natPair(t, natSetup{symmetric: true})
	seen := map[string]int{}
	for i := range 5 {
		seen[n.send(aliceHome, bobHome, fmt.Sprintf("message %d", i))]++
	}
	t.Logf("behind symmetric NATs the messages came via %v", seen)
	if seen["p2p"] > 0 {
		t.Errorf("a message went direct through symmetric NATs (%v): the test network does not map per connection", seen)
	}
	st, out := n.status(n.A, aliceHome)
	if st.Outbox != 0 {
		t.Errorf("alice's outbox holds %d: %s", st.Outbox, out)
	}
}

// TestNATEarlyRelayedConnectionIsPunched: a relayed connection that opens
// before hole punching has started (go-libp2p starts it only once a node
// knows a public address of its own) is punched once it has, well before
// the relay's limit ends it: on the node it reached ("reached": bob's
// punching starts, he punches), and on the node that dialled it
// ("dialled": bob's punch was refused while alice could not answer it; once
// she can, she says so and he punches again).
func TestNATEarlyRelayedConnectionIsPunched(t *testing.T) {
	t.Run("reached", func(t *testing.T) { earlyRelayed(t, false) })
	t.Run("dialled", func(t *testing.T) { earlyRelayed(t, true) })
}

// earlyRelayed starts bob's node (alice's when dialler) again while the
// server is out of its reach, so that by the time it reaches the server
// (and learns its public address from the relay) go-libp2p looks for one
// only every 5 s; alice reaches bob through the relay in between.
func earlyRelayed(t *testing.T, dialler bool) {
	n, aliceHome, bobHome := natPair(t, natSetup{})
	ns, home, who := n.B, bobHome, "bob"
	if dialler {
		ns, home, who = n.A, aliceHome, "alice"
	}
	block := []string{"OUTPUT", "-d", natServerIP, "-j", "REJECT"}
	early := false
	for try := 1; try <= 3 && !early; try++ {
		n.iptables(ns, append([]string{"-I"}, block...)...)
		n.restart(home)
		// go-libp2p looks at 0.25 s, then 0.75, 1.75, 3.75, 7.75, 12.75 s
		// after the start: let the node reach the server just after 7.75.
		time.Sleep(8 * time.Second)
		n.iptables(ns, append([]string{"-D"}, block...)...)
		var st node.Status
		n.eventually(30*time.Second, who+" holds a relay slot again", func() (bool, string) {
			var out string
			st, out = n.status(ns, home)
			return st.Relay != nil && len(st.Relay.Addrs) > 0, out
		})
		early = !st.Relay.HolePunch
		if !early {
			t.Logf("try %d: %s's hole punching started before the slot was there; again", try, who)
		}
	}
	if !early {
		t.Fatalf("%s's hole punching always started before the slot was there: the test cannot open a relayed connection first", who)
	}
	// Well within the relay's 2 minutes: the punch follows the start of
	// the node's punching (within 5 s), and takes a few seconds.
	start := time.Now()
	deadline := start.Add(45 * time.Second)
	for i := 0; ; i++ {
		via := n.send(aliceHome, bobHome, fmt.Sprintf("message %d", i))
		st, _ := n.status(ns, home)
		t.Logf("%v: message %d via %s; %s's hole punching started: %v", time.Since(start).Round(time.Millisecond), i, via, who, st.Relay.HolePunch)
		if i == 0 && via != "relayed" {
			t.Errorf("the first message went via %s, want relayed: %s could not punch yet", via, who)
		}
		if via == "p2p" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message went direct in %v: the relayed connection was not punched", deadline.Sub(start))
		}
		time.Sleep(time.Second)
	}
	for _, line := range strings.Split(n.nodes[bobHome].proc.out.String(), "\n") {
		if strings.Contains(line, "hole punch") || strings.Contains(line, "hole-punched") {
			t.Log(line)
		}
	}
}

func (n *natNet) iptables(ns string, args ...string) {
	n.t.Helper()
	if out, err := n.Command(context.Background(), ns, "iptables", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("iptables %q: %v: %s", args, err, out)
	}
}
