package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mqtter/mqtter/internal/natlab"
)

// natWorld is one relay benchmark setting: the natlab network (the NAT
// tests' own), `mqtter server` in its public namespace, and two nodes,
// one behind each router, friends.
type natWorld struct {
	lab      *natlab.Net
	server   *process
	from, to *nodeProc
	// ready is from the nodes' start until both held a relay slot.
	ready time.Duration
}

// natWorldSpec says how a world is made.
type natWorldSpec struct {
	name      string // its directory under the run's, and in progress lines
	symmetric bool   // the routers map every connection to a new port
	relay     bool   // the server runs its relay and the nodes listen
	tcpOnly   bool   // the relay and the nodes listen on TCP alone, no QUIC
}

// startNATWorld builds the network and starts everything in it. A
// network that cannot be made here is an error wrapping
// natlab.ErrUnavailable. On error it returns what it started so far, for
// the caller to close.
func startNATWorld(ctx context.Context, bin, dir string, spec natWorldSpec) (*natWorld, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("mqtter binary: %w (build it: make build)", err)
	}
	lab, err := natlab.New(natlab.Options{Symmetric: spec.symmetric})
	if err != nil {
		return nil, err
	}
	w := &natWorld{lab: lab}
	dir = filepath.Join(dir, spec.name)
	dataDir := filepath.Join(dir, "server-data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return w, err
	}
	if err := addUsers(ctx, bin, dataDir, []string{"alice", "bob"}); err != nil {
		return w, err
	}
	ready := filepath.Join(dir, "ready.json")
	args := []string{"server", "--data", dataDir, "--mqtt", natlab.ServerIP + ":1883", "--http", "127.0.0.1:0", "--ready-file", ready}
	relayListen := "/ip4/" + natlab.ServerIP + "/tcp/4001,/ip4/" + natlab.ServerIP + "/udp/4001/quic-v1"
	listen := []string{"--p2p", "/ip4/0.0.0.0/tcp/4001", "--p2p", "/ip4/0.0.0.0/udp/4001/quic-v1"}
	if spec.tcpOnly {
		relayListen, listen = "/ip4/"+natlab.ServerIP+"/tcp/4001", listen[:2]
	}
	if spec.relay {
		args = append(args, "--relay-listen", relayListen)
	} else {
		listen = []string{"--p2p", "none"}
	}
	if w.server, err = startProcess("server", dir, nil, "ip", append([]string{"netns", "exec", lab.Pub, bin}, args...)...); err != nil {
		return w, err
	}
	if err := waitFor(ctx, 30*time.Second, "the server is ready", func(context.Context) (bool, string) {
		select {
		case <-w.server.done:
			return false, fmt.Sprintf("exited (%v)%s", w.server.err, w.server.tail())
		default:
		}
		_, err := os.Stat(ready)
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		return w, err
	}
	started := time.Now()
	for _, slot := range []struct {
		p        **nodeProc
		user, ns string
	}{{&w.from, "alice", lab.A}, {&w.to, "bob", lab.B}} {
		n, err := startNodeIn(lab, slot.ns, bin, dir, slot.user, listen)
		if err != nil {
			return w, err
		}
		*slot.p = n
	}
	for _, n := range []*nodeProc{w.from, w.to} {
		if err := n.waitReady(ctx); err != nil {
			return w, err
		}
	}
	if !spec.relay {
		return w, befriend(ctx, w.from, w.to)
	}
	for _, n := range []*nodeProc{w.from, w.to} {
		if err := waitFor(ctx, 30*time.Second, n.user+"'s node holds a relay slot", func(ctx context.Context) (bool, string) {
			st, err := n.api.Status(ctx)
			if err != nil {
				return false, err.Error()
			}
			if st.Relay == nil {
				return false, "no relay named"
			}
			return len(st.Relay.Addrs) > 0, fmt.Sprintf("%+v", *st.Relay)
		}); err != nil {
			return w, err
		}
	}
	w.ready = time.Since(started)
	// Friends once both hold their slots, whether or not hole punching
	// has started yet: a relayed connection that opens before is punched
	// once it has.
	if err := befriend(ctx, w.from, w.to); err != nil {
		return w, err
	}
	err = waitFor(ctx, 30*time.Second, "alice's node knows bob's relayed address", func(ctx context.Context) (bool, string) {
		rows, err := w.from.api.Peers(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, r := range rows {
			for _, a := range r.Addrs {
				if r.User == "bob" && strings.Contains(a, "/p2p-circuit") {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("peers %+v", rows)
	})
	return w, err
}

// startNodeIn starts `mqtter node` for user in namespace ns, with the
// server's address in the public namespace and history_push deferred.
func startNodeIn(lab *natlab.Net, ns, bin, dir, user string, listen []string) (*nodeProc, error) {
	home := filepath.Join(dir, user)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	args := append([]string{"netns", "exec", ns, bin, "node", "--home", home, "--server", "tcp://" + natlab.ServerIP + ":1883",
		"--user", user, "--no-mdns", "--sync-interval", "1h", "--direct-timeout", "3s"}, listen...)
	p, err := startProcess(user+"-node", dir, []string{"MQTTER_PASSWORD=" + benchPassword}, "ip", args...)
	if err != nil {
		return nil, err
	}
	return &nodeProc{process: p, user: user, home: home, dial: lab.DialContext(ns)}, nil
}

// close stops the processes, then removes the network; it returns what
// went wrong.
func (w *natWorld) close() []string {
	var problems []string
	for _, p := range []*nodeProc{w.from, w.to} {
		if p != nil {
			if msg := p.shutdown(); msg != "" {
				problems = append(problems, msg)
			}
		}
	}
	if w.server != nil {
		if msg := w.server.shutdown(); msg != "" {
			problems = append(problems, msg)
		}
	}
	if err := w.lab.Close(); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}
