package p2p

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/wire"
)

// The mDNS test runs two helper processes, one in each of two network
// namespaces joined by a veth pair, so that the multicast traffic never
// leaves the machine nor touches its real interfaces. The parent passes
// each helper its identity, the peer it should find and where to listen.
const (
	envMDNSKey    = "MQTTER_MDNS_TEST_KEY"    // base64 of the helper's marshalled private key
	envMDNSPeer   = "MQTTER_MDNS_TEST_PEER"   // peer id the helper must find and send to
	envMDNSListen = "MQTTER_MDNS_TEST_LISTEN" // the helper's listen multiaddr
)

// Lines a helper prints on stdout for the parent; everything else it
// writes (logs, the testing package's own lines) is ignored.
const (
	mdnsFound     = "MDNS-FOUND"      // MDNS-FOUND <peer id> <addr>…
	mdnsRequestOK = "MDNS-REQUEST-OK" // MDNS-REQUEST-OK <peer id>
)

// mdnsWait bounds each helper's wait for discovery and for the parent.
const mdnsWait = 30 * time.Second

// netnsSide is one end of the test network.
type netnsSide struct {
	ns, veth, ip string
	key          crypto.PrivKey
	id           peer.ID
}

func TestMDNSInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	ipTool, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs the ip tool (iproute2) to create network namespaces")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ip := func(args ...string) error {
		out, err := exec.Command(ipTool, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}

	pid := os.Getpid()
	sides := [2]*netnsSide{
		{ns: fmt.Sprintf("mqtter-mdns-%d-a", pid), veth: fmt.Sprintf("mqa%d", pid), ip: "10.203.0.1"},
		{ns: fmt.Sprintf("mqtter-mdns-%d-b", pid), veth: fmt.Sprintf("mqb%d", pid), ip: "10.203.0.2"},
	}
	for i, s := range sides {
		if err := ip("netns", "add", s.ns); err != nil {
			if i == 0 {
				t.Skipf("cannot create a network namespace here: %v", err)
			}
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// Deleting the namespace also destroys its end of the veth pair.
			if err := ip("netns", "del", s.ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	// The pair is made inside the first namespace and its peer end moved
	// to the second at once: it never exists in the machine's namespace.
	a, b := sides[0], sides[1]
	setup := [][]string{
		{"-n", a.ns, "link", "add", a.veth, "type", "veth", "peer", "name", b.veth, "netns", b.ns},
	}
	for _, s := range sides {
		setup = append(setup,
			[]string{"-n", s.ns, "addr", "add", s.ip + "/24", "dev", s.veth},
			[]string{"-n", s.ns, "link", "set", "lo", "up"},
			[]string{"-n", s.ns, "link", "set", s.veth, "up"},
			[]string{"-n", s.ns, "route", "add", "224.0.0.0/4", "dev", s.veth},
		)
	}
	for _, args := range setup {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}

	for _, s := range sides {
		s.key, _, err = crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if s.id, err = peer.IDFromPrivateKey(s.key); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*mdnsWait)
	defer cancel()
	helpers := [2]*mdnsHelper{
		startMDNSHelper(ctx, t, ipTool, self, a, b),
		startMDNSHelper(ctx, t, ipTool, self, b, a),
	}
	for _, h := range helpers {
		h.waitRequestOK(t)
	}
	for _, h := range helpers {
		h.finish(t)
	}

	// Each side found the other on its veth address, and only there.
	for i, h := range helpers {
		other := sides[1-i]
		found := h.line(mdnsFound)
		t.Logf("%s: %s", h.side.ns, found)
		fields := strings.Fields(found)
		if len(fields) < 3 || fields[1] != other.id.String() {
			t.Errorf("%s: found %q, want %s with its addresses", h.side.ns, found, other.id)
			continue
		}
		for _, addr := range fields[2:] {
			if !strings.HasPrefix(addr, "/ip4/"+other.ip+"/") {
				t.Errorf("%s: mDNS gave address %s for %s, want only its veth address %s", h.side.ns, addr, other.id, other.ip)
			}
		}
		if got, want := h.line(mdnsRequestOK), mdnsRequestOK+" "+other.id.String(); got != want {
			t.Errorf("%s: %q, want %q", h.side.ns, got, want)
		}
	}
}

// mdnsHelper is a running TestMDNSHelperProcess.
type mdnsHelper struct {
	side   *netnsSide
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr lockedBuffer
	lines  chan string // stdout lines, closed at EOF

	mu   sync.Mutex
	seen []string
}

func startMDNSHelper(ctx context.Context, t *testing.T, ipTool, self string, side, other *netnsSide) *mdnsHelper {
	t.Helper()
	key, err := crypto.MarshalPrivateKey(side.key)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, ipTool, "netns", "exec", side.ns,
		self, "-test.run=^TestMDNSHelperProcess$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(),
		envMDNSKey+"="+base64.StdEncoding.EncodeToString(key),
		envMDNSPeer+"="+other.id.String(),
		envMDNSListen+"=/ip4/"+side.ip+"/tcp/0",
	)
	h := &mdnsHelper{side: side, cmd: cmd, lines: make(chan string, 64)}
	cmd.Stderr = &h.stderr
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // a failed test left it running
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	return h
}

// lockedBuffer is a bytes.Buffer that exec's copying goroutine may write
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitRequestOK waits until the helper reports its Request answered.
func (h *mdnsHelper) waitRequestOK(t *testing.T) {
	t.Helper()
	timeout := time.NewTimer(mdnsWait)
	defer timeout.Stop()
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				h.fail(t, "exited before its Request was answered")
			}
			h.mu.Lock()
			h.seen = append(h.seen, l)
			h.mu.Unlock()
			if strings.HasPrefix(l, mdnsRequestOK) {
				return
			}
		case <-timeout.C:
			h.fail(t, "no answered Request")
		}
	}
}

// finish lets the helper stop (it keeps serving until its stdin closes)
// and checks that it passed.
func (h *mdnsHelper) finish(t *testing.T) {
	t.Helper()
	_ = h.stdin.Close()
	for l := range h.lines {
		h.mu.Lock()
		h.seen = append(h.seen, l)
		h.mu.Unlock()
	}
	if err := h.cmd.Wait(); err != nil {
		h.fail(t, fmt.Sprintf("failed: %v", err))
	}
}

// line returns the first stdout line starting with prefix, or "".
func (h *mdnsHelper) line(prefix string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.seen {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func (h *mdnsHelper) fail(t *testing.T, what string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	t.Fatalf("helper in %s %s\nstdout:\n%s\nstderr (may be partial):\n%s", h.side.ns, what, strings.Join(h.seen, "\n"), h.stderr.String())
}

// TestMDNSHelperProcess is one side of TestMDNSInNetns, run inside a
// network namespace; on its own it skips. It finds the peer by mDNS, sends
// it a Request, reports, and serves the peer's Request until stdin closes.
func TestMDNSHelperProcess(t *testing.T) {
	rawKey := os.Getenv(envMDNSKey)
	if rawKey == "" {
		t.Skip("run by TestMDNSInNetns")
	}
	b, err := base64.StdEncoding.DecodeString(rawKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	other, err := peer.Decode(os.Getenv(envMDNSPeer))
	if err != nil {
		t.Fatal(err)
	}
	found := make(chan peer.AddrInfo, 1)
	h, err := New(t.Context(), Config{
		Key:         key,
		ListenAddrs: []string{os.Getenv(envMDNSListen)},
		Authorize:   func(id peer.ID) bool { return id == other },
		Handler:     echoHandler,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MDNS:        true,
		OnPeerFound: func(ai peer.AddrInfo) {
			if ai.ID != other {
				return
			}
			select {
			case found <- ai:
			default: // found again: the first is enough
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	var ai peer.AddrInfo
	select {
	case ai = <-found:
	case <-time.After(mdnsWait):
		t.Fatalf("mDNS did not find %s", other)
	}
	addrs := make([]string, len(ai.Addrs))
	for i, a := range ai.Addrs {
		addrs[i] = a.String()
	}
	fmt.Println(mdnsFound, ai.ID, strings.Join(addrs, " "))

	// As the node does: take the found addresses, then send with none.
	h.AddAddrs(ai.ID, ai.Addrs)
	topic := wire.RequestTopic(other.String(), "send", "1")
	body := "hello from " + h.ID().String()
	// Both sides find each other at once and dial at once; a first dial
	// can lose that race (seen under load: the security handshake reset),
	// and a node's outbox then tries again, as this does.
	var answer []byte
	for attempt := 1; ; attempt++ {
		answer, err = h.Request(t.Context(), other, nil, topic, []byte(body))
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("Request to the found peer, %d tries: %v", attempt, err)
		}
		fmt.Fprintf(os.Stderr, "request %d to the found peer: %v; again\n", attempt, err)
		time.Sleep(200 * time.Millisecond)
	}
	wantEcho(t, answer, topic, body)
	fmt.Println(mdnsRequestOK, other)

	// Keep serving the peer until the parent has seen both sides done.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, os.Stdin)
	}()
	select {
	case <-done:
	case <-time.After(2 * mdnsWait):
		t.Fatal("parent never closed stdin")
	}
}
