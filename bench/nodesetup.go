package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/wire"
)

// nodeWorld is everything a node benchmark talks to: a server, two nodes
// that talk directly (alice and bob, friends), two that talk through the
// server (carol and dave, in a group of two, listening nowhere so that
// they never connect to each other: the group would go by gossip),
// the bench's own device of alice, and a bare libp2p host.
type nodeWorld struct {
	server                  *broker
	alice, bob, carol, dave *nodeProc
	group                   string // carol and dave's feeds
	device                  *benchDevice
	bare                    *bareHost
	echo                    *echoClient
}

func (w *nodeWorld) nodes() []*nodeProc {
	var out []*nodeProc
	for _, n := range []*nodeProc{w.alice, w.bob, w.carol, w.dave} {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// startNodeWorld starts and connects everything. On error it returns what
// it started so far, for the caller to close.
func startNodeWorld(ctx context.Context, cfg NodeConfig, dir string) (*nodeWorld, error) {
	w := &nodeWorld{}
	server, err := startMQTTer(ctx, cfg.MQTTer, dir, "server", []string{"alice", "bob", "carol", "dave"})
	if err != nil {
		return nil, err
	}
	w.server = server
	for _, slot := range []struct {
		p      **nodeProc
		user   string
		listen string
	}{{&w.alice, "alice", "/ip4/127.0.0.1/tcp/0"}, {&w.bob, "bob", "/ip4/127.0.0.1/tcp/0"}, {&w.carol, "carol", node.ListenNone}, {&w.dave, "dave", node.ListenNone}} {
		n, err := startNodeProcAt(ctx, cfg.MQTTer, dir, slot.user, server.url(), slot.listen)
		if err != nil {
			return w, err
		}
		*slot.p = n
	}
	for _, n := range w.nodes() {
		if err := n.waitReady(ctx); err != nil {
			return w, err
		}
	}
	if err := befriend(ctx, w.alice, w.bob); err != nil {
		return w, err
	}
	if err := befriend(ctx, w.carol, w.dave); err != nil {
		return w, err
	}
	var group wire.FeedsReq
	if err := w.carol.api.Call(ctx, wire.MethodCreateFeeds, wire.CreateFeedsReq{Name: "nodebench", Members: []string{"dave"}}, &group); err != nil {
		return w, fmt.Errorf("create a group: %w", err)
	}
	w.group = group.Feeds
	if w.device, err = newBenchDevice(ctx, dir, server.url(), "alice", w.bob.user); err != nil {
		return w, err
	}
	device := w.device.id.String()
	if err := waitFor(ctx, 20*time.Second, "bob's node knows the bench's device of alice", func(ctx context.Context) (bool, string) {
		return w.bob.knows(ctx, device)
	}); err != nil {
		return w, err
	}
	bin, err := buildBareHost(ctx, cfg.BareHost, dir)
	if err != nil {
		return w, err
	}
	if w.bare, err = startBareHost(ctx, bin, dir); err != nil {
		return w, err
	}
	w.echo, err = newEchoClient(ctx, w.bare.addrs)
	return w, err
}

// close stops everything and returns what went wrong with the processes.
func (w *nodeWorld) close() []string {
	var problems []string
	if w.echo != nil {
		w.echo.close()
	}
	if w.device != nil {
		w.device.close()
	}
	procs := []*process{}
	for _, n := range w.nodes() {
		procs = append(procs, n.process)
	}
	if w.bare != nil {
		procs = append(procs, w.bare.process)
	}
	if w.server != nil {
		procs = append(procs, w.server.process)
	}
	for _, p := range procs {
		if msg := p.shutdown(); msg != "" {
			problems = append(problems, msg)
		}
	}
	return problems
}

// nodeProc is a running `mqtter node` and the means to drive it.
type nodeProc struct {
	*process
	user  string
	home  string
	api   *node.Client
	id    peer.ID
	addrs []multiaddr.Multiaddr

	apiBase, token string // for /metrics
	// dial reaches the node's local API; the default dialer when nil
	// (relaybench's nodes run in network namespaces).
	dial node.DialFunc
}

// startNodeProc starts `mqtter node` for user in dir/<user>, listening on
// 127.0.0.1 only, without mDNS, with history_push deferred, and the extra
// flags given (a thing's --thing-handler).
func startNodeProc(ctx context.Context, bin, dir, user, serverURL string, extra ...string) (*nodeProc, error) {
	return startNodeProcAt(ctx, bin, dir, user, serverURL, "/ip4/127.0.0.1/tcp/0", extra...)
}

// startNodeProcAt is startNodeProc listening on the libp2p address listen.
func startNodeProcAt(ctx context.Context, bin, dir, user, serverURL, listen string, extra ...string) (*nodeProc, error) {
	home := filepath.Join(dir, user)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	args := append([]string{"node", "--home", home, "--server", serverURL, "--user", user,
		"--p2p", listen, "--no-mdns", "--sync-interval", "1h"}, extra...)
	p, err := startProcess(user+"-node", dir, []string{"MQTTER_PASSWORD=" + benchPassword}, bin, args...)
	if err != nil {
		return nil, err
	}
	return &nodeProc{process: p, user: user, home: home}, nil
}

// waitReady waits until the node's local API answers and it is connected
// to the server, then learns its device id and addresses.
func (n *nodeProc) waitReady(ctx context.Context) error {
	var st node.Status
	err := waitFor(ctx, 30*time.Second, n.user+"'s node is up and connected to the server", func(ctx context.Context) (bool, string) {
		select {
		case <-n.done:
			return false, fmt.Sprintf("exited (%v)%s", n.err, n.tail())
		default:
		}
		if n.api == nil {
			c, err := node.DialWith(n.home, n.dial)
			if err != nil {
				return false, err.Error()
			}
			n.api = c
		}
		var err error
		if st, err = n.api.Status(ctx); err != nil {
			return false, err.Error()
		}
		return st.Server == node.ServerConnected, st.Server + " " + st.ServerError
	})
	if err != nil {
		return err
	}
	if n.id, err = peer.Decode(st.Device); err != nil {
		return fmt.Errorf("%s's device %q: %w", n.user, st.Device, err)
	}
	for _, a := range st.Addrs {
		ma, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			return fmt.Errorf("%s's address %q: %w", n.user, a, err)
		}
		n.addrs = append(n.addrs, ma)
	}
	addr, err := os.ReadFile(filepath.Join(n.home, node.APIAddrFile))
	if err != nil {
		return err
	}
	token, err := os.ReadFile(filepath.Join(n.home, node.APITokenFile))
	if err != nil {
		return err
	}
	n.apiBase, n.token = "http://"+strings.TrimSpace(string(addr)), strings.TrimSpace(string(token))
	return nil
}

// knows reports whether the node has device among its peers.
func (n *nodeProc) knows(ctx context.Context, device string) (bool, string) {
	rows, err := n.api.Peers(ctx)
	if err != nil {
		return false, err.Error()
	}
	var seen []string
	for _, r := range rows {
		if r.Device == device {
			return true, ""
		}
		seen = append(seen, r.User+"/"+r.Device)
	}
	return false, fmt.Sprintf("peers %v", seen)
}

// counter reads one of the node's delivery counters from its /metrics,
// which, unlike Status, costs the node nothing however much it stores.
func (n *nodeProc) counter(ctx context.Context, name string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.apiBase+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s's /metrics: %s", n.user, resp.Status)
	}
	return parseCounter(resp.Body, "mqtter_node_"+name+"_total")
}

// parseCounter finds a sample line "name value" in Prometheus text.
func parseCounter(r io.Reader, name string) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", name, err)
		}
		return int64(v), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no metric %s", name)
}

// befriend makes a and b friends and waits until each node knows the
// other's device.
func befriend(ctx context.Context, a, b *nodeProc) error {
	if err := a.api.Call(ctx, wire.MethodAddFriend, wire.UserReq{User: b.user}, nil); err != nil {
		return fmt.Errorf("%s add_friend %s: %w", a.user, b.user, err)
	}
	if err := b.api.Call(ctx, wire.MethodAcceptFriend, wire.UserReq{User: a.user}, nil); err != nil {
		return fmt.Errorf("%s accept_friend %s: %w", b.user, a.user, err)
	}
	for _, pair := range [][2]*nodeProc{{a, b}, {b, a}} {
		who, whom := pair[0], pair[1]
		if err := waitFor(ctx, 20*time.Second, who.user+"'s node knows "+whom.user+"'s device", func(ctx context.Context) (bool, string) {
			return who.knows(ctx, whom.id.String())
		}); err != nil {
			return err
		}
	}
	return nil
}

// waitFor polls cond every 50 ms until it holds, for at most d.
func waitFor(ctx context.Context, d time.Duration, what string, cond func(ctx context.Context) (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	last := ""
	for {
		ok, state := cond(ctx)
		if ok {
			return nil
		}
		if state != "" {
			last = state
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting until %s: %w (last: %s)", what, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// bareHost is the barehost process: a libp2p host with the nodes'
// transports and nothing else, echoing raw streams.
type bareHost struct {
	*process
	addrs []multiaddr.Multiaddr
}

// buildBareHost returns the path of a barehost binary: bin when it exists,
// otherwise one built with `go build` into dir.
func buildBareHost(ctx context.Context, bin, dir string) (string, error) {
	if bin != "" {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	out := filepath.Join(dir, "barehost")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/mqtter/mqtter/bench/cmd/nodebench/barehost")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build barehost: %w\n%s", err, msg)
	}
	return out, nil
}

// startBareHost starts barehost on 127.0.0.1 and reads the addresses it
// prints ("addr <multiaddr>").
func startBareHost(ctx context.Context, bin, dir string) (*bareHost, error) {
	p, err := startProcess("barehost", dir, nil, bin, "--listen", "/ip4/127.0.0.1/tcp/0")
	if err != nil {
		return nil, err
	}
	b := &bareHost{process: p}
	err = waitFor(ctx, 20*time.Second, "barehost prints its addresses", func(context.Context) (bool, string) {
		select {
		case <-p.done:
			return false, fmt.Sprintf("exited (%v)%s", p.err, p.tail())
		default:
		}
		data, err := os.ReadFile(p.log)
		if err != nil {
			return false, err.Error()
		}
		b.addrs = nil
		for line := range strings.Lines(string(data)) {
			s, ok := strings.CutPrefix(strings.TrimSpace(line), "addr ")
			if !ok {
				continue
			}
			if ma, err := multiaddr.NewMultiaddr(s); err == nil {
				b.addrs = append(b.addrs, ma)
			}
		}
		return len(b.addrs) > 0 && strings.Contains(string(data), "ready"), ""
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	return b, nil
}

// readMemory reads VmRSS and VmHWM of pid from /proc/<pid>/status.
func readMemory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fields, err := parseStatusKB(f, "VmRSS", "VmHWM")
	return fields["VmRSS"], fields["VmHWM"], err
}

// parseStatusKB reads the "Name:  1234 kB" lines of a /proc status file
// for the given names and returns them in bytes; a missing name is an
// error.
func parseStatusKB(r io.Reader, names ...string) (map[string]int64, error) {
	out := make(map[string]int64, len(names))
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return out, fmt.Errorf("odd %s line %q", name, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return out, fmt.Errorf("odd %s line %q: %w", name, sc.Text(), err)
		}
		out[name] = kb << 10
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	for _, name := range names {
		if _, ok := out[name]; !ok {
			return out, errors.New("no " + name + " line")
		}
	}
	return out, nil
}

// selfCPU returns the CPU time this process has used so far, or 0.
func selfCPU() time.Duration {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	d, _ := parseStatCPU(string(data))
	return d
}
