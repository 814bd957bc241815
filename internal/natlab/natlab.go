// Package natlab builds, in network namespaces of its own, a small
// internet for the relay and hole-punching tests and benchmark: a "public"
// segment (192.0.0.128/26, a range go-libp2p counts as public, routed
// nowhere) with the server on a bridge, and two private networks, each
// behind a router namespace that masquerades (iptables) and drops what
// comes from outside unasked, as home routers do. Nothing leaves the
// namespaces. It needs root, ip and iptables; without them New returns an
// error wrapping ErrUnavailable.
//
//	pub: br0 192.0.0.129 (the server)
//	 ├── ra: wan 192.0.0.130 ── lan 10.77.1.1 ── a: eth0 10.77.1.2
//	 └── rb: wan 192.0.0.131 ── lan 10.77.2.1 ── b: eth0 10.77.2.2
package natlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ServerIP is the address of the public namespace, where the server runs.
const ServerIP = "192.0.0.129"

// ErrUnavailable says that namespaces cannot be made here (not root, no
// ip or iptables, no permission): callers skip rather than fail.
var ErrUnavailable = errors.New("natlab: network namespaces unavailable")

// Options shape the network.
type Options struct {
	// Symmetric makes the routers map every connection to a new port
	// (MASQUERADE --random-fully), as a symmetric NAT does: hole punching
	// cannot pass it.
	Symmetric bool
}

// Net is a built network. Pub, A and B are the namespaces of the server
// and of the two hosts behind the routers.
type Net struct {
	Pub, A, B string
	created   []string
}

// seq tells apart the networks one process builds.
var seq atomic.Int64

// New builds the network. On error nothing it made is left behind.
func New(opts Options) (n *Net, err error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: needs root to create network namespaces", ErrUnavailable)
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%w: needs %s (apt-get install -y iproute2 iptables)", ErrUnavailable, tool)
		}
	}
	prefix := fmt.Sprintf("mqn%d-%d", os.Getpid()%100000, seq.Add(1))
	n = &Net{Pub: prefix + "pub", A: prefix + "a", B: prefix + "b"}
	ra, rb := prefix+"ra", prefix+"rb"
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	for i, ns := range []string{n.Pub, ra, rb, n.A, n.B} {
		if err := run("ip", "netns", "add", ns); err != nil {
			if i == 0 {
				return nil, fmt.Errorf("%w: cannot create a network namespace here: %v", ErrUnavailable, err)
			}
			return nil, err
		}
		n.created = append(n.created, ns)
	}
	var steps [][]string
	do := func(args ...string) { steps = append(steps, args) }
	for _, ns := range n.created {
		do("ip", "-n", ns, "link", "set", "lo", "up")
	}
	veth := func(nsA, ifA, nsB, ifB string) {
		do("ip", "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB)
		do("ip", "-n", nsA, "link", "set", ifA, "up")
		do("ip", "-n", nsB, "link", "set", ifB, "up")
	}
	// The public segment: a bridge in pub, the routers' outer sides on it.
	do("ip", "-n", n.Pub, "link", "add", "br0", "type", "bridge")
	do("ip", "-n", n.Pub, "link", "set", "br0", "up")
	do("ip", "-n", n.Pub, "addr", "add", ServerIP+"/26", "dev", "br0")
	for i, r := range []string{ra, rb} {
		veth(n.Pub, fmt.Sprintf("p%d", i), r, "wan")
		do("ip", "-n", n.Pub, "link", "set", fmt.Sprintf("p%d", i), "master", "br0")
		do("ip", "-n", r, "addr", "add", fmt.Sprintf("192.0.0.%d/26", 130+i), "dev", "wan")
	}
	// The private sides.
	for i, pair := range [][2]string{{ra, n.A}, {rb, n.B}} {
		r, host := pair[0], pair[1]
		veth(r, "lan", host, "eth0")
		do("ip", "-n", r, "addr", "add", fmt.Sprintf("10.77.%d.1/24", i+1), "dev", "lan")
		do("ip", "-n", host, "addr", "add", fmt.Sprintf("10.77.%d.2/24", i+1), "dev", "eth0")
		do("ip", "-n", host, "route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", i+1))
		do("ip", "netns", "exec", r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
		masq := []string{"ip", "netns", "exec", r, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
		if opts.Symmetric {
			masq = append(masq, "--random-fully")
		}
		do(masq...)
		// As home routers do: what comes from outside unasked is dropped
		// (not answered, and not let into the connection table, where it
		// would take the port a hole punch is about to map).
		do("ip", "netns", "exec", r, "iptables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Close deletes the namespaces (and with them every interface and rule);
// processes still running in them keep only their loopback.
func (n *Net) Close() error {
	var errs []error
	for _, ns := range n.created {
		errs = append(errs, run("ip", "netns", "del", ns))
	}
	n.created = nil
	return errors.Join(errs...)
}

// Command returns a command that runs name with args in namespace ns.
func (n *Net) Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// DialContext returns a dialer whose connections are made from inside
// namespace ns (a socket keeps the namespace it was made in), so that a
// process outside reaches a program listening on the namespace's
// loopback, such as a node's local API.
func (n *Net) DialContext(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := dialIn(ctx, ns, network, addr)
			done <- result{c, err}
		}()
		r := <-done
		return r.c, r.err
	}
}

// dialIn dials from namespace ns on a thread of its own: the thread
// enters ns, makes the socket and goes back. A thread that cannot go back
// is never unlocked, so the runtime ends it with the goroutine.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("natlab: own namespace: %w", err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("natlab: namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("natlab: enter %s: %w", ns, err)
	}
	c, dialErr := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("natlab: leave %s: %w", ns, err) // the thread stays locked and dies
	}
	runtime.UnlockOSThread()
	if dialErr != nil {
		return nil, fmt.Errorf("natlab: dial %s in %s: %w", addr, ns, dialErr)
	}
	return c, nil
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("natlab: %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
