// Package demo is the script of `mqtter demo`: it runs a real server and
// real nodes from the mqtter binary, in a temporary directory, on
// 127.0.0.1 only with mDNS off, drives them with the CLI as a user would,
// and prints each command with what it printed.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/wire"
)

// The demo runs the real thing: a `mqtter server` and `mqtter node`
// processes started from this binary, in a temporary directory, on
// 127.0.0.1 only and with mDNS off, so that nothing leaves the machine.
// It drives the nodes with the CLI verbs as a user would and prints each
// command, run from that directory, with what it printed.

// Timeouts of the demo's steps: a step waits at most demoWait for what it
// expects, a process gets demoStop to exit after SIGTERM.
const (
	demoWait = 20 * time.Second
	demoStop = 10 * time.Second
	demoTail = 15 // log lines shown when a step fails
)

// Run runs the demo with the mqtter binary exe and removes its processes
// and files on the way out, whether it succeeded, failed or was
// interrupted.
func Run(ctx context.Context, stdout io.Writer, exe string) error {
	root, err := os.MkdirTemp("", "mqtter-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d := &demo{out: stdout, exe: exe, root: root}
	defer os.RemoveAll(root)
	defer d.stopAll()
	began := time.Now()
	err = d.run(ctx)
	if ctx.Err() != nil {
		return errors.New("demo interrupted; processes stopped and files removed")
	}
	if err != nil {
		return fmt.Errorf("demo failed at step %s: %w", d.current, err)
	}
	d.say("\ndemo done in %.1fs; stopping the processes and removing %s", time.Since(began).Seconds(), root)
	return nil
}

// demo is one run: its output, its directory and the processes it
// started, in start order.
type demo struct {
	out   io.Writer
	exe   string
	root  string
	mqtt  string // 127.0.0.1:port of the server, the same after a restart
	http  string
	relay string // the server's libp2p relay, a TCP multiaddr on loopback
	procs []*proc
	// current is the step running, for the error of a failed one.
	current string
}

// proc is a server or node process of the demo. A restart is a new proc
// that shares the log of the old one.
type proc struct {
	name string // "server", "node alice"
	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{} // closed when the process has exited; then err is set
	err  error
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the exit, killing the process when it
// takes longer than demoStop. It returns the exit error (nil: status 0).
func (p *proc) stop() error {
	if !p.running() {
		return p.err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(demoStop):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s still running %v after SIGTERM, killed", p.name, demoStop)
	}
}

// logBuffer keeps what a process writes, for the tail shown on failure.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tail returns the last n lines.
func (l *logBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.b.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// stepError is a failed step with the processes whose logs explain it.
type stepError struct {
	err   error
	procs []*proc
}

func (e *stepError) Unwrap() error { return e.err }

func (e *stepError) Error() string {
	var b strings.Builder
	b.WriteString(e.err.Error())
	for _, p := range e.procs {
		state := "running"
		if !p.running() {
			state = fmt.Sprintf("exited: %v", p.err)
			if p.err == nil {
				state = "exited: status 0"
			}
		}
		fmt.Fprintf(&b, "\n--- last lines of the log of %s (%s):\n%s", p.name, state, p.log.tail(demoTail))
	}
	return b.String()
}

// fail wraps err with the logs of procs.
func fail(err error, procs ...*proc) error { return &stepError{err: err, procs: procs} }

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

// step prints the heading of a step.
func (d *demo) step(n int, title string) {
	d.current = fmt.Sprintf("%d (%s)", n, title)
	d.say("\n%d. %s", n, title)
}

// prompt prints a command line as a user would type it in d.root; a
// trailing "&" runs it in the background.
func (d *demo) prompt(env string, args []string) {
	bg := ""
	if len(args) > 0 && args[len(args)-1] == "&" {
		args, bg = args[:len(args)-1], " &"
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if a == "" || strings.ContainsAny(a, " '\"$&;,?!") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	if env != "" {
		env += " "
	}
	d.say("$ %smqtter %s%s", env, strings.Join(q, " "), bg)
}

// peerIDs matches libp2p Ed25519 peer ids, which the transcript shortens.
var peerIDs = regexp.MustCompile(`12D3KooW[1-9A-HJ-NP-Za-km-z]{44}`)

func shortID(id string) string { return id[:12] + "…" + id[len(id)-4:] }

// show prints a command's output indented, peer ids shortened and
// tables aligned again; with prefixes, only the lines that start with one
// of them.
func (d *demo) show(out string, prefixes ...string) {
	if short := peerIDs.ReplaceAllStringFunc(out, shortID); short != out {
		out = realign(short)
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if len(prefixes) == 0 || slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(line, p) }) {
			d.say("  %s", line)
		}
	}
}

// tableGap separates the columns of a table the CLI printed.
var tableGap = regexp.MustCompile(` {2,}`)

// realign aligns the columns of a table whose cells got shorter; other
// text is returned as it is. A table is a header of capitals and lines
// with as many columns, separated by two spaces or more.
func realign(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 2 || strings.ToUpper(lines[0]) != lines[0] || !strings.Contains(lines[0], "  ") {
		return out
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, line := range lines {
		fmt.Fprintln(tw, strings.Join(tableGap.Split(strings.TrimRight(line, " "), -1), "\t"))
	}
	tw.Flush()
	return b.String()
}

// start runs `mqtter args...` in d.root in the background, in its own
// process group so that a Ctrl-C reaches only the demo, which then stops
// it in order.
func (d *demo) start(ctx context.Context, name, env string, log *logBuffer, args ...string) (*proc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.prompt(env, append(args, "&"))
	if log == nil {
		log = &logBuffer{}
	} else {
		fmt.Fprintf(log, "--- restarted ---\n")
	}
	p := &proc{name: name, log: log, done: make(chan struct{})}
	p.cmd = exec.Command(d.exe, args...)
	p.cmd.Dir = d.root
	p.cmd.Env = os.Environ()
	if env != "" {
		p.cmd.Env = append(p.cmd.Env, env)
	}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d.procs = append(d.procs, p)
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stopAll stops every process still running: the nodes together, then
// the server.
func (d *demo) stopAll() {
	var wg sync.WaitGroup
	for _, p := range d.procs {
		if p.name != "server" {
			wg.Go(func() { p.stop() })
		}
	}
	wg.Wait()
	for _, p := range d.procs {
		p.stop()
	}
}

// run1 runs `mqtter args...` to completion in d.root, prints the command
// and returns what it printed; a failure carries the logs of procs.
func (d *demo) run1(ctx context.Context, env string, procs []*proc, args ...string) (string, error) {
	d.prompt(env, args)
	cctx, cancel := context.WithTimeout(ctx, demoWait)
	defer cancel()
	cmd := exec.CommandContext(cctx, d.exe, args...)
	cmd.Dir = d.root
	cmd.Env = os.Environ()
	if env != "" {
		cmd.Env = append(cmd.Env, env)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fail(fmt.Errorf("mqtter %s: %v\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(out))), procs...)
	}
	return string(out), nil
}

// must runs a command and shows its output.
func (d *demo) must(ctx context.Context, env string, procs []*proc, args ...string) (string, error) {
	out, err := d.run1(ctx, env, procs, args...)
	if err == nil {
		d.show(out)
	}
	return out, err
}

// waitFor polls cond until it holds; a process of procs exiting, ctx
// ending or demoWait passing fails the wait, with what cond said last.
func (d *demo) waitFor(ctx context.Context, what string, procs []*proc, cond func(context.Context) (bool, string)) error {
	deadline := time.Now().Add(demoWait)
	for {
		ok, last := cond(ctx)
		if ok {
			return nil
		}
		for _, p := range procs {
			if !p.running() {
				return fail(fmt.Errorf("%s exited while waiting until %s", p.name, what), procs...)
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("waited %v until %s; last: %s", demoWait, what, last), procs...)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePort returns a loopback address whose port was free just now; the
// server is started on it, and restarted on the same one.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// server starts `mqtter server` on d.root/server and waits for /healthz.
func (d *demo) server(ctx context.Context, log *logBuffer) (*proc, error) {
	p, err := d.start(ctx, "server", "", log, "server", "--data", "server", "--mqtt", d.mqtt, "--http", d.http, "--relay-listen", d.relay)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: time.Second}
	err = d.waitFor(ctx, "the server answers /healthz", []*proc{p}, func(ctx context.Context) (bool, string) {
		if !p.running() {
			return false, "exited"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.http+"/healthz", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if err == nil && !p.running() {
		err = fail(errors.New("the server exited at start"), p)
	}
	if err != nil {
		return nil, err
	}
	d.say("  (the server is up: GET http://%s/healthz = 200)", d.http)
	return p, nil
}

// nodeProc is a running node of the demo and the account it logs in as.
type nodeProc struct {
	*proc
	user string
	home string // relative to d.root, as shown
	abs  string
	api  *node.Client
}

// node starts `mqtter node` for user in d.root/home and waits until its
// local API answers and it is connected to the server.
// Extra flags (a thing's --thing-handler, a --p2p of its own) go at the
// end of its command line.
func (d *demo) node(ctx context.Context, user, home string, log *logBuffer, extra ...string) (*nodeProc, error) {
	args := []string{"node", "--home", home, "--server", "tcp://" + d.mqtt, "--user", user, "--no-mdns", "--sync-interval", "1s"}
	if !slices.Contains(extra, "--p2p") {
		args = append(args, "--p2p", "/ip4/127.0.0.1/tcp/0")
	}
	args = append(args, extra...)
	p, err := d.start(ctx, "node "+home, "MQTTER_PASSWORD="+user+"-pw", log, args...)
	if err != nil {
		return nil, err
	}
	n := &nodeProc{proc: p, user: user, home: home, abs: filepath.Join(d.root, home)}
	var st node.Status
	err = d.waitFor(ctx, home+"'s node is ready and connected to the server", []*proc{p}, func(ctx context.Context) (bool, string) {
		if n.api == nil {
			c, err := node.Dial(n.abs)
			if err != nil {
				return false, err.Error()
			}
			n.api = c
		}
		st, err = n.api.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.Server == node.ServerConnected, st.Server + " " + st.ServerError
	})
	if err != nil {
		return nil, err
	}
	d.say("  (%s's node is ready: device %s, local API in %s/api.addr, server connected)", home, shortID(st.Device), home)
	return n, nil
}

// cli runs a CLI verb against n and shows its output.
func (d *demo) cli(ctx context.Context, n *nodeProc, args ...string) (string, error) {
	return d.must(ctx, "", []*proc{n.proc}, append([]string{"--home", n.home}, args...)...)
}

// send sends text from n to whom through the CLI and returns the MsgId.
func (d *demo) send(ctx context.Context, n *nodeProc, whom, text string) (string, error) {
	out, err := d.cli(ctx, n, "send", whom, text)
	id := strings.TrimSpace(out)
	if err == nil && (id == "" || strings.ContainsAny(id, " \n")) {
		err = fail(fmt.Errorf("mqtter send printed %q, want a MsgId", out), n.proc)
	}
	return id, err
}

// received waits until n holds msgID in its conversation with whom and
// checks how it first got it: via names one path, or several separated by
// "|" when either may win (a reconnecting node's offline push races its
// history pull, and both came through the server).
func (d *demo) received(ctx context.Context, n *nodeProc, whom, msgID, via string, procs ...*proc) error {
	procs = append([]*proc{n.proc}, procs...)
	var got node.HistoryEntry
	err := d.waitFor(ctx, n.home+" holds message "+msgID, procs, func(ctx context.Context) (bool, string) {
		h, err := n.api.History(ctx, whom, 1000)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range h.Messages {
			if m.MsgId == msgID {
				got = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d messages with %s", len(h.Messages), whom)
	})
	if err != nil {
		return err
	}
	if !slices.Contains(strings.Split(via, "|"), got.Via) {
		return fail(fmt.Errorf("%s got %s via %q, want %q", n.home, msgID, got.Via, via), procs...)
	}
	return nil
}

// counted waits until n's node has counted at least one of counter.
func (d *demo) counted(ctx context.Context, n *nodeProc, counter string, procs ...*proc) error {
	return d.waitFor(ctx, n.home+"'s node counts "+counter, procs, func(ctx context.Context) (bool, string) {
		st, err := n.api.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.Counters[counter] >= 1, fmt.Sprintf("counters %v, failures %+v", st.Counters, st.Failures)
	})
}

// sequenced waits until every message n holds with whom has a SeqId.
func (d *demo) sequenced(ctx context.Context, n *nodeProc, whom string, count int, procs ...*proc) error {
	return d.waitFor(ctx, fmt.Sprintf("%s holds %d messages with %s, all with a SeqId", n.home, count, whom),
		append([]*proc{n.proc}, procs...), func(ctx context.Context) (bool, string) {
			h, err := n.api.History(ctx, whom, 1000)
			if err != nil {
				return false, err.Error()
			}
			var seqs []int64
			for _, m := range h.Messages {
				seqs = append(seqs, m.SeqId)
			}
			return len(seqs) == count && !slices.Contains(seqs, 0), fmt.Sprintf("SeqIds %v", seqs)
		})
}

// knows waits until n knows an address of a device of user.
func (d *demo) knows(ctx context.Context, n *nodeProc, user string) error {
	return d.waitFor(ctx, n.home+" knows a device of "+user, []*proc{n.proc}, func(ctx context.Context) (bool, string) {
		rows, err := n.api.Peers(ctx)
		if err != nil {
			return false, err.Error()
		}
		return slices.ContainsFunc(rows, func(r node.PeerRow) bool { return r.User == user && len(r.Addrs) > 0 }),
			fmt.Sprintf("%d peers", len(rows))
	})
}

// serverState waits until n's node says it is connected or disconnected.
func (d *demo) serverState(ctx context.Context, n *nodeProc, want string, procs ...*proc) error {
	return d.waitFor(ctx, n.home+"'s node is "+want, append([]*proc{n.proc}, procs...), func(ctx context.Context) (bool, string) {
		st, err := n.api.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.Server == want, st.Server + " " + st.ServerError
	})
}

// stopProc stops p with SIGTERM, as `kill PID` would, and wants status 0.
func (d *demo) stopProc(p *proc, why string) error {
	d.say("$ kill %d   # %s", p.cmd.Process.Pid, why)
	if err := p.stop(); err != nil {
		return fail(fmt.Errorf("%s after SIGTERM: %w", p.name, err), p)
	}
	d.say("  (%s exited with status 0)", p.name)
	return nil
}

// run is the demo's script.
func (d *demo) run(ctx context.Context) error {
	var err error
	if d.mqtt, err = freePort(); err != nil {
		return err
	}
	if d.http, err = freePort(); err != nil {
		return err
	}
	relayAddr, err := freePort()
	if err != nil {
		return err
	}
	d.relay = "/ip4/127.0.0.1/tcp/" + relayAddr[strings.LastIndex(relayAddr, ":")+1:]
	d.current = "0 (setup)"
	d.say("MQTTER demo: a server, three nodes of two people and two things, all on 127.0.0.1 with mDNS off.")
	d.say("Commands run in %s (removed at the end); peer ids are shortened.", d.root)

	d.step(1, "The server, and an account each for alice and bob")
	serverLog := &logBuffer{}
	srv, err := d.server(ctx, serverLog)
	if err != nil {
		return err
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := d.must(ctx, "MQTTER_PASSWORD="+u+"-pw", []*proc{srv}, "user", "add", u, "--data", "server"); err != nil {
			return err
		}
	}

	d.step(2, "A node each: a libp2p host on loopback, its own SQLite history, a link to the server")
	alice, err := d.node(ctx, "alice", "alice", nil)
	if err != nil {
		return err
	}
	bob, err := d.node(ctx, "bob", "bob", nil)
	if err != nil {
		return err
	}
	both := []*proc{alice.proc, bob.proc}

	d.step(3, "alice asks bob to be friends, bob accepts; each node learns the other's addresses")
	if _, err := d.cli(ctx, alice, "friend", "add", "bob"); err != nil {
		return err
	}
	err = d.waitFor(ctx, "bob sees alice's request", both, func(ctx context.Context) (bool, string) {
		var rels []wire.Relation
		if err := bob.api.Call(ctx, wire.MethodListRelations, wire.Empty{}, &rels); err != nil {
			return false, err.Error()
		}
		return slices.ContainsFunc(rels, func(r wire.Relation) bool { return r.User == "alice" }), fmt.Sprintf("%+v", rels)
	})
	if err != nil {
		return err
	}
	if _, err := d.cli(ctx, bob, "friend", "list"); err != nil {
		return err
	}
	if _, err := d.cli(ctx, bob, "friend", "accept", "alice"); err != nil {
		return err
	}
	if err := d.knows(ctx, alice, "bob"); err != nil {
		return err
	}
	if err := d.knows(ctx, bob, "alice"); err != nil {
		return err
	}
	if _, err := d.cli(ctx, alice, "peers"); err != nil {
		return err
	}

	d.step(4, "A direct message: node to node over libp2p")
	hello, err := d.send(ctx, alice, "bob", "hi bob, straight to you")
	if err != nil {
		return err
	}
	// alice's sync may push it to the server a moment before the direct
	// frame lands (the first one waits for the dial), and the server's
	// push then reaches bob first; the direct delivery happens all the
	// same, and alice's node counts it.
	if err := d.received(ctx, bob, "alice", hello, "p2p|server", alice.proc); err != nil {
		return err
	}
	if err := d.counted(ctx, alice, "sent_p2p", alice.proc, bob.proc); err != nil {
		return err
	}
	if _, err := d.cli(ctx, bob, "history", "alice"); err != nil {
		return err
	}

	d.step(5, "The server stops; alice and bob still talk directly")
	if err := d.stopProc(srv, "stop the server"); err != nil {
		return err
	}
	for _, n := range []*nodeProc{alice, bob} {
		if err := d.serverState(ctx, n, node.ServerDisconnected); err != nil {
			return err
		}
	}
	out, err := d.run1(ctx, "", both, "--home", "alice", "status")
	if err != nil {
		return err
	}
	d.show(out, "server:", "direct:")
	down, err := d.send(ctx, alice, "bob", "the server is down, still direct")
	if err != nil {
		return err
	}
	if err := d.received(ctx, bob, "alice", down, "p2p", alice.proc); err != nil {
		return err
	}
	if _, err := d.cli(ctx, bob, "history", "alice"); err != nil {
		return err
	}
	d.say("  (#- is a message without a SeqId yet: only the server hands those out)")

	d.step(6, "The server comes back on the same data and port; sync sequences the direct messages")
	if srv, err = d.server(ctx, serverLog); err != nil {
		return err
	}
	withSrv := append(slices.Clone(both), srv)
	for _, n := range []*nodeProc{alice, bob} {
		if err := d.serverState(ctx, n, node.ServerConnected, srv); err != nil {
			return err
		}
	}
	if out, err := d.cli(ctx, alice, "sync"); err != nil {
		return err
	} else if strings.HasPrefix(out, "pushed 0") {
		d.say("  (nothing left to push: the node pushes by itself on reconnect and every --sync-interval)")
	}
	for _, n := range []*nodeProc{alice, bob} {
		if err := d.sequenced(ctx, n, map[string]string{"alice": "bob", "bob": "alice"}[n.user], 2, withSrv...); err != nil {
			return err
		}
	}
	if _, err := d.cli(ctx, bob, "history", "alice"); err != nil {
		return err
	}

	d.step(7, "bob's node stops; alice's message waits on the server and arrives when bob is back")
	if err := d.stopProc(bob.proc, "stop bob's node"); err != nil {
		return err
	}
	later, err := d.send(ctx, alice, "bob", "for when you are back")
	if err != nil {
		return err
	}
	err = d.waitFor(ctx, "alice's outbox is empty (the server took the message)", []*proc{alice.proc, srv},
		func(ctx context.Context) (bool, string) {
			st, err := alice.api.Status(ctx)
			if err != nil {
				return false, err.Error()
			}
			return st.Outbox == 0, fmt.Sprintf("outbox %d, failures %+v", st.Outbox, st.Failures)
		})
	if err != nil {
		return err
	}
	if out, err = d.run1(ctx, "", []*proc{alice.proc}, "--home", "alice", "status"); err != nil {
		return err
	}
	d.show(out, "outbox:")
	if bob, err = d.node(ctx, "bob", "bob", bob.log); err != nil {
		return err
	}
	if err := d.received(ctx, bob, "alice", later, "server|sync", srv); err != nil {
		return err
	}
	if _, err := d.cli(ctx, bob, "history", "alice"); err != nil {
		return err
	}

	d.step(8, "A second device of bob starts empty and pulls the history: the same SeqIds")
	laptop, err := d.node(ctx, "bob", "bob-laptop", nil)
	if err != nil {
		return err
	}
	if out, err := d.cli(ctx, laptop, "sync"); err != nil {
		return err
	} else if strings.HasSuffix(strings.TrimSpace(out), "pulled 0") {
		d.say("  (nothing new: a node pulls by itself when it connects)")
	}
	if err := d.sequenced(ctx, laptop, "alice", 3, srv); err != nil {
		return err
	}
	if _, err = d.cli(ctx, laptop, "history", "alice"); err != nil {
		return err
	}
	return d.things(ctx, srv, alice)
}
