package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/node"
)

// The NAT tests build, in network namespaces of their own, a "public"
// segment (192.0.0.128/26, the range go-libp2p counts as public, routed
// nowhere) with the server on a bridge, and two private networks each
// behind a router namespace that masquerades (iptables). Nothing leaves the
// namespaces. alice and bob sit behind the two routers: they reach each
// other through the server's relay, then hole-punch to a direct
// connection; behind a NAT that maps every connection to a new port
// (--random-fully, as a symmetric NAT does) they stay relayed or go
// through the server, and nothing is lost.

// natNet is the test network.
type natNet struct {
	t       *testing.T
	pub     string // the namespace of the server
	a, b    string // alice's and bob's namespaces
	created []string
}

const natServerIP = "192.0.0.129"

func newNATNet(t *testing.T, symmetric bool) *natNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make test installs iptables with apt-get)", tool)
		}
	}
	id := os.Getpid() % 100000
	n := &natNet{t: t}
	name := func(s string) string { return fmt.Sprintf("mqn%d%s", id, s) }
	n.pub, n.a, n.b = name("pub"), name("a"), name("b")
	ra, rb := name("ra"), name("rb")
	t.Cleanup(func() {
		for _, ns := range n.created {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for i, ns := range []string{n.pub, ra, rb, n.a, n.b} {
		if err := run("ip", "netns", "add", ns); err != nil {
			if i == 0 {
				t.Skipf("cannot create a network namespace here: %v", err)
			}
			t.Fatal(err)
		}
		n.created = append(n.created, ns)
		n.must("ip", "-n", ns, "link", "set", "lo", "up")
	}
	veth := func(nsA, ifA, nsB, ifB string) {
		n.must("ip", "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB)
		n.must("ip", "-n", nsA, "link", "set", ifA, "up")
		n.must("ip", "-n", nsB, "link", "set", ifB, "up")
	}
	// The public segment: a bridge in pub, the routers' outer sides on it.
	n.must("ip", "-n", n.pub, "link", "add", "br0", "type", "bridge")
	n.must("ip", "-n", n.pub, "link", "set", "br0", "up")
	n.must("ip", "-n", n.pub, "addr", "add", natServerIP+"/26", "dev", "br0")
	for i, r := range []string{ra, rb} {
		veth(n.pub, fmt.Sprintf("p%d", i), r, "wan")
		n.must("ip", "-n", n.pub, "link", "set", fmt.Sprintf("p%d", i), "master", "br0")
		n.must("ip", "-n", r, "addr", "add", fmt.Sprintf("192.0.0.%d/26", 130+i), "dev", "wan")
	}
	// The private sides.
	for i, pair := range [][2]string{{ra, n.a}, {rb, n.b}} {
		r, host := pair[0], pair[1]
		veth(r, "lan", host, "eth0")
		n.must("ip", "-n", r, "addr", "add", fmt.Sprintf("10.77.%d.1/24", i+1), "dev", "lan")
		n.must("ip", "-n", host, "addr", "add", fmt.Sprintf("10.77.%d.2/24", i+1), "dev", "eth0")
		n.must("ip", "-n", host, "route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", i+1))
		n.must("ip", "netns", "exec", r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
		masq := []string{"ip", "netns", "exec", r, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
		if symmetric {
			masq = append(masq, "--random-fully")
		}
		n.must(masq...)
		// As home routers do: what comes from outside unasked is dropped
		// (not answered, and not let into the connection table, where it
		// would take the port a hole punch is about to map).
		n.must("ip", "netns", "exec", r, "iptables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
	}
	return n
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (n *natNet) must(args ...string) {
	n.t.Helper()
	if err := run(args...); err != nil {
		n.t.Fatal(err)
	}
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
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
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

// cli runs a CLI verb in ns against the node in home.
func (n *natNet) cli(ns, home string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, append(args, "--home", home)...)...).CombinedOutput()
	return string(out), err
}

func (n *natNet) eventually(d time.Duration, what string, cond func() (bool, string)) {
	n.t.Helper()
	eventually(n.t, d, what, cond)
}

// natPair starts the server (with its relay) in pub and alice's and bob's
// nodes behind the routers, and makes them friends.
func natPair(t *testing.T, symmetric bool) (n *natNet, aliceHome, bobHome string) {
	t.Helper()
	n = newNATNet(t, symmetric)
	data := newAccounts(t, "alice", "bob")
	ready := filepath.Join(t.TempDir(), "ready.json")
	n.start(n.pub, "mqtter server", nil, "server", "--data", data, "--mqtt", natServerIP+":1883",
		"--http", "127.0.0.1:0", "--ready-file", ready,
		"--relay-listen", "/ip4/"+natServerIP+"/tcp/4001,/ip4/"+natServerIP+"/udp/4001/quic-v1")
	n.eventually(30*time.Second, "the server is ready", func() (bool, string) {
		_, err := os.Stat(ready)
		return err == nil, fmt.Sprint(err)
	})
	aliceHome, bobHome = t.TempDir(), t.TempDir()
	for _, u := range []struct{ ns, home, user string }{{n.a, aliceHome, "alice"}, {n.b, bobHome, "bob"}} {
		n.start(u.ns, "mqtter node "+u.user, []string{"MQTTER_PASSWORD=" + u.user + "-pw"}, "node", "--home", u.home,
			"--server", "tcp://"+natServerIP+":1883", "--user", u.user, "--no-mdns",
			"--p2p", "/ip4/0.0.0.0/tcp/4001", "--p2p", "/ip4/0.0.0.0/udp/4001/quic-v1",
			// No history_push racing a direct frame to the other node:
			// what is measured is how the direct path went.
			"--direct-timeout", "3s", "--sync-interval", "1h", "--log-level", "debug")
	}
	for _, u := range []struct{ ns, home string }{{n.a, aliceHome}, {n.b, bobHome}} {
		n.eventually(30*time.Second, "a node holds a relay slot", func() (bool, string) {
			st, out := n.status(u.ns, u.home)
			return st.Relay != nil && len(st.Relay.Addrs) > 0, out
		})
	}
	if out, err := n.cli(n.a, aliceHome, "friend", "add", "bob"); err != nil {
		t.Fatalf("friend add: %v: %s", err, out)
	}
	n.eventually(10*time.Second, "bob sees the request", func() (bool, string) {
		out, _ := n.cli(n.b, bobHome, "friend", "list")
		return strings.Contains(out, "alice"), out
	})
	if out, err := n.cli(n.b, bobHome, "friend", "accept", "alice"); err != nil {
		t.Fatalf("friend accept: %v: %s", err, out)
	}
	n.eventually(10*time.Second, "alice knows bob's relayed address", func() (bool, string) {
		out, _ := n.cli(n.a, aliceHome, "peers", "--json")
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
	out, err := n.cli(n.a, aliceHome, "send", "bob", text)
	id := strings.TrimSpace(out)
	if err != nil || id == "" || strings.ContainsAny(id, " \n") {
		n.t.Fatalf("send: %v: %s", err, out)
	}
	var via string
	n.eventually(30*time.Second, "bob stores "+text, func() (bool, string) {
		out, _ := n.cli(n.b, bobHome, "history", "alice", "--json")
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

func TestNATRelayThenHolePunch(t *testing.T) {
	n, aliceHome, bobHome := natPair(t, false)
	first := n.send(aliceHome, bobHome, "hello through the NATs")
	t.Logf("first message came via %s", first)
	if first != "relayed" && first != "p2p" {
		t.Errorf("first message via %q, want relayed (or p2p once punched)", first)
	}
	// The hole punch follows the relayed connection: later messages go
	// direct.
	direct := false
	for i := 0; i < 30 && !direct; i++ {
		via := n.send(aliceHome, bobHome, fmt.Sprintf("message %d", i))
		direct = via == "p2p"
		if !direct {
			time.Sleep(time.Second)
		}
	}
	if !direct {
		t.Error("no message went direct: the hole punch never happened")
	}
}

func TestNATSymmetricStaysRelayed(t *testing.T) {
	n, aliceHome, bobHome := natPair(t, true)
	seen := map[string]int{}
	for i := range 5 {
		seen[n.send(aliceHome, bobHome, fmt.Sprintf("message %d", i))]++
	}
	t.Logf("behind symmetric NATs the messages came via %v", seen)
	if seen["p2p"] > 0 {
		t.Errorf("a message went direct through symmetric NATs (%v): the test network does not map per connection", seen)
	}
	st, out := n.status(n.a, aliceHome)
	if st.Outbox != 0 {
		t.Errorf("alice's outbox holds %d: %s", st.Outbox, out)
	}
}
