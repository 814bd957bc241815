package main_test

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/wire"
)

// TestFaults is the randomized fault run: the devices of three accounts
// send at once to their dms and a group while a schedule drawn from the
// seed strikes, one fault a step: the server killed (SIGKILL) or stopped
// (SIGTERM) and brought back, a node killed or stopped and restarted, a
// node paused (SIGSTOP) and resumed, a new device joining. Afterwards every
// device of a conversation holds every acknowledged message exactly once,
// SeqIds 1..N, in the same order, each device's messages in its sending
// order, and the server's history of the conversation is the same list.
//
// $MQTTER_FAULT_SEEDS picks the seeds ("7,8", "random"; `make faults` runs
// many); a failing seed replays with MQTTER_FAULT_SEEDS=N.
func TestFaults(t *testing.T) {
	for _, seed := range seeds(t, "MQTTER_FAULT_SEEDS", 11, 12) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("replay: MQTTER_FAULT_SEEDS=%d go test -run TestFaults ./cmd/mqtter/", seed)
			runFaults(t, seed)
		})
	}
}

// A fault is one kind of trouble a step of the schedule brings.
type fault int

const (
	serverKilled fault = iota
	serverStopped
	nodeKilled
	nodeStopped
	nodePaused
	deviceJoins
	faultKinds
)

func (f fault) String() string {
	return [...]string{"server killed", "server stopped", "node killed", "node stopped", "node paused", "new device"}[f]
}

func runFaults(t *testing.T, seed uint64) {
	start := time.Now()
	r := newConvergeRun(t, seed)
	r.setUp(1 + r.rng.IntN(2))
	steps := 5 + r.rng.IntN(4)
	counts := make(map[fault]int)
	for step := range steps {
		f := fault(r.rng.IntN(int(faultKinds)))
		counts[f]++
		target := r.devices[r.rng.IntN(len(r.devices))]
		senders := r.devices
		if f == nodeKilled || f == nodeStopped || f == nodePaused {
			// The target's own API is away for the step: the others send.
			senders = slices.DeleteFunc(slices.Clone(r.devices), func(d *convDevice) bool { return d == target })
		}
		before := time.Duration(r.rng.IntN(100)) * time.Millisecond
		down := time.Duration(200+r.rng.IntN(1300)) * time.Millisecond
		name := fmt.Sprintf("step %d: %s", step+1, f)
		if f >= nodeKilled && f <= nodePaused {
			name += " (" + target.name + ")"
		}
		r.phase(name, r.plan(senders, 4, 12, 15, "", 0), func() {
			time.Sleep(before)
			r.strike(f, target, down)
		})
		if f == serverKilled || f == serverStopped {
			r.waitServer(r.devices, node.ServerConnected)
		}
	}
	r.waitServer(r.devices, node.ServerConnected)
	r.converge(60 * time.Second)
	r.checkServer()
	t.Logf("seed %d: %d steps %v, %d messages converged; %v in all", seed, steps, counts, len(r.byID),
		time.Since(start).Round(time.Millisecond))
}

// strike brings fault f (on target, for a node fault) and, after down,
// undoes it.
func (r *convergeRun) strike(f fault, target *convDevice, down time.Duration) {
	t := r.t
	switch f {
	case serverKilled, serverStopped:
		if f == serverKilled {
			r.srv.kill()
		} else if err := r.srv.stop(t); err != nil {
			t.Errorf("mqtter server after SIGTERM: %v, want exit code 0", err)
		}
		time.Sleep(down)
		r.srv = startServerAt(t, r.data, r.srv.mqtt, r.srv.http)
	case nodeKilled, nodeStopped:
		if f == nodeKilled {
			target.kill()
		} else {
			target.stop()
		}
		time.Sleep(down)
		target.start()
	case nodePaused:
		if err := target.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP %s: %v", target.name, err)
		}
		time.Sleep(down)
		if err := target.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatalf("SIGCONT %s: %v", target.name, err)
		}
	case deviceJoins:
		d := r.addDevice([]string{"alice", "bob", "carol"}[r.rng.IntN(3)])
		r.hello(d)
	}
}

// checkServer compares the server's history of every conversation, read
// over its HTTP API as a member, with what the devices hold.
func (r *convergeRun) checkServer() {
	t := r.t
	for _, c := range r.convos {
		var ref []node.HistoryEntry
		for _, d := range r.devices {
			if slices.Contains(c.members, d.user) {
				ref = d.history(c.feeds)
				break
			}
		}
		u := "http://" + r.srv.http + "/v1/history?limit=1000&feeds=" + url.QueryEscape(c.feeds)
		status, body := get(t, u, c.members[0]+":"+c.members[0]+"-pw")
		if status != 200 {
			t.Fatalf("GET %s = %d %s", u, status, body)
		}
		var page wire.HistoryResult
		if err := wire.DecodeAnswer([]byte(body), &page); err != nil {
			t.Fatalf("GET %s: %v: %.200s", u, err, body)
		}
		if len(page.Messages) != len(ref) {
			t.Errorf("server holds %d messages of %s, the devices %d", len(page.Messages), c.feeds, len(ref))
			continue
		}
		for i, m := range page.Messages {
			if m.MsgId != ref[i].MsgId || m.SeqId != ref[i].SeqId || m.From != ref[i].From {
				t.Errorf("%s position %d: server has %s %s SeqId %d, the devices %s %s SeqId %d",
					c.feeds, i, m.From, m.MsgId, m.SeqId, ref[i].From, ref[i].MsgId, ref[i].SeqId)
				break
			}
		}
	}
}

// kill ends the server with SIGKILL, as a crash would.
func (p *serverProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// seeds returns the seeds named by the environment variable env ("7,8",
// "random" for a fresh one), or defaults.
func seeds(t *testing.T, env string, defaults ...uint64) []uint64 {
	spec := strings.TrimSpace(os.Getenv(env))
	if spec == "" {
		return defaults
	}
	return parseSeeds(t, env, spec)
}
