package main_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqtter/mqtter/node"
)

// TestConverge has the devices of three accounts (alice on two homes, bob on
// one or two, carol on one) send at once to their dms and a group, while the
// server stops and comes back, a node is stopped and restarted and a new
// device joins late, so that messages go directly, through the server and
// through history sync. Once every device has synced, every device of a
// conversation must hold the same history: each sent message exactly once,
// SeqIds 1..N without gaps, each device's messages in its sending order, and
// nothing left in any outbox.
//
// Each seed (a subtest) draws the devices, the victim node and every send
// from math/rand/v2; $MQTTER_CONVERGE_SEEDS (e.g. "7,8,random", "random"
// being a fresh seed from the clock) picks other seeds than the default
// 1,2,3, and a failing seed replays with MQTTER_CONVERGE_SEEDS=N.
func TestConverge(t *testing.T) {
	// Not parallel: up to six nodes per seed are enough for a 2-core machine.
	for _, seed := range seeds(t, "MQTTER_CONVERGE_SEEDS", 1, 2, 3) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("replay: MQTTER_CONVERGE_SEEDS=%d go test -run TestConverge ./cmd/mqtter/", seed)
			runConverge(t, seed)
		})
	}
}

// parseSeeds reads a list of seeds such as "7,8,random", "random" being a
// fresh seed from the clock; env names where the list came from.
func parseSeeds(t *testing.T, env, spec string) []uint64 {
	var seeds []uint64
	for _, f := range strings.Split(spec, ",") {
		switch f = strings.TrimSpace(f); f {
		case "":
		case "random":
			seeds = append(seeds, uint64(rand.Uint32()))
		default:
			s, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				t.Fatalf("%s=%q: %q is not a seed", env, spec, f)
			}
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// convDevice is one node of the convergence test.
type convDevice struct {
	*nodeProc
	name string // account/index, as in the logs: "alice/2"
	id   string // peer id, kept across restarts
	sent int    // how many messages it has sent so far
}

// convo is a conversation of the test and the accounts in it.
type convo struct {
	feeds   string
	members []string
}

// sentMsg is a message a device's Send accepted.
type sentMsg struct {
	id, feeds, device string
	n                 int // the device's nth send
}

// sendPlan is what one device sends in a phase, drawn before the phase
// starts so that a seed replays the same sends whatever the timing.
type sendPlan struct {
	dev   *convDevice
	to    []string        // feeds, in sending order
	pause []time.Duration // before each send
}

type convergeRun struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	data    string
	srv     *serverProc
	devices []*convDevice
	convos  []convo
	sent    map[string][]sentMsg // by feeds
	byID    map[string]sentMsg
}

func newConvergeRun(t *testing.T, seed uint64) *convergeRun {
	return &convergeRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x6d717474)),
		sent: make(map[string][]sentMsg), byID: make(map[string]sentMsg)}
}

func runConverge(t *testing.T, seed uint64) {
	start := time.Now()
	r := newConvergeRun(t, seed)
	r.setUp(1 + r.rng.IntN(2))
	victim := r.devices[r.rng.IntN(len(r.devices))]
	crash := r.rng.IntN(2) == 0
	early := r.rng.IntN(2) == 0 // the victim goes down before the server is back
	t.Logf("seed %d: devices %s; %s will be %s %s the server is back; set up in %v", seed, r.names(r.devices), victim.name,
		map[bool]string{true: "killed (SIGKILL)", false: "stopped (SIGTERM)"}[crash],
		map[bool]string{true: "before", false: "once"}[early], time.Since(start).Round(time.Millisecond))
	var others []*convDevice
	for _, d := range r.devices {
		if d != victim {
			others = append(others, d)
		}
	}
	// The victim goes down the moment its last send returns, whatever it
	// still had to deliver.
	stopVictim := func() {
		if crash {
			victim.kill()
		} else {
			victim.stop()
		}
	}

	r.phase("all up", r.plan(r.devices, 8, 16, 10, "", 0), nil)

	// SIGTERM to the server while the devices send.
	r.phase("server stopping", r.plan(r.devices, 8, 16, 10, "", 0), func() {
		time.Sleep(time.Duration(r.rng.IntN(80)) * time.Millisecond)
		if err := r.srv.stop(t); err != nil {
			t.Errorf("mqtter server after SIGTERM: %v, want exit code 0", err)
		}
	})
	r.waitServer(r.devices, node.ServerDisconnected)

	// Only the direct path: dms reach the devices that are up, group
	// messages wait in the outboxes.
	r.phase("server down", r.plan(r.devices, 8, 16, 40, "", 0), nil)

	// The server comes back on the same ports while the devices send.
	back := r.devices
	if early {
		stopVictim()
		back = others
	}
	r.phase("server back", r.plan(back, 8, 16, 20, victim.user, 2), func() {
		time.Sleep(time.Duration(r.rng.IntN(150)) * time.Millisecond)
		r.srv = startServerAt(t, r.data, r.srv.mqtt, r.srv.http)
	})
	if !early {
		stopVictim()
	}
	r.phase(victim.name+" down", r.plan(others, 8, 16, 20, victim.user, 4), nil)

	// The victim comes back, and a new device of some account joins: it
	// restores the history by sync, as no push carries what came before it.
	victim.start()
	newcomer := r.addDevice([]string{"alice", "bob", "carol"}[r.rng.IntN(3)])
	r.hello(newcomer)
	r.phase(victim.name+" back, "+newcomer.name+" new", r.plan(r.devices, 3, 8, 10, "", 0), nil)
	r.waitServer(r.devices, node.ServerConnected)

	r.converge(45 * time.Second)
	t.Logf("seed %d: %d messages in %d conversations converged; %v in all", seed, len(r.byID), len(r.convos),
		time.Since(start).Round(time.Millisecond))
}

// setUp starts the server and the nodes, makes the accounts friends and a
// group of all three, and waits until every device knows every other.
func (r *convergeRun) setUp(bobDevices int) {
	t := r.t
	r.data = newAccounts(t, "alice", "bob", "carol")
	r.srv = startServer(t, r.data)
	alice, bob, carol := r.addDevice("alice"), r.addDevice("bob"), r.addDevice("carol")
	befriend(t, alice.nodeProc, bob.nodeProc)
	befriend(t, alice.nodeProc, carol.nodeProc)
	befriend(t, bob.nodeProc, carol.nodeProc)
	group := strings.TrimSpace(alice.must("group", "create", "converge", "bob", "carol"))
	if !strings.HasPrefix(group, "g:") {
		t.Fatalf("group create printed %q, want a feeds id", group)
	}
	// The second devices start once the relations and the group are made:
	// a device hears of a change made on another device of its own account
	// only at its next refresh (the server pushes relation events to the
	// other side only), which a test has no way to ask for.
	r.addDevice("alice")
	for range bobDevices - 1 {
		r.addDevice("bob")
	}
	r.convos = []convo{
		{"dm:alice:bob", []string{"alice", "bob"}},
		{"dm:alice:carol", []string{"alice", "carol"}},
		{"dm:bob:carol", []string{"bob", "carol"}},
		{group, []string{"alice", "bob", "carol"}},
	}
	r.knowEachOther()
	for _, d := range r.devices {
		r.hello(d)
	}
}

// addDevice starts a node on a new home for user.
func (r *convergeRun) addDevice(user string) *convDevice {
	i := 1
	for _, d := range r.devices {
		if d.user == user {
			i++
		}
	}
	d := &convDevice{nodeProc: startNode(r.t, "tcp://"+r.srv.mqtt, r.t.TempDir(), user, user+"-pw"),
		name: fmt.Sprintf("%s/%d", user, i)}
	d.id = d.status().Device
	r.devices = append(r.devices, d)
	// Runs just before startNode's cleanup prints the node's output, which
	// names only the account.
	r.t.Cleanup(func() {
		if r.t.Failed() {
			r.t.Logf("the next output is %s's, device %s", d.name, d.id)
		}
	})
	return d
}

// hello has d say hello to the group as soon as its node lets it: then
// it knows the group and its relations, and the hello is part of the
// history.
func (r *convergeRun) hello(d *convDevice) {
	group := r.convos[len(r.convos)-1].feeds
	cl := r.dial(d)
	d.eventually(15*time.Second, "it may send to the group", func() (bool, string) {
		res, err := cl.Send(r.t.Context(), node.SendRequest{To: group, Text: "hello from " + d.name})
		if err != nil {
			return false, err.Error()
		}
		r.record([]sentMsg{{id: res.MsgId, feeds: group, device: d.name, n: d.sent}})
		d.sent++
		return true, ""
	})
}

// knowEachOther waits until every device has an address of every other
// device, of its own account too.
func (r *convergeRun) knowEachOther() {
	for _, d := range r.devices {
		d.eventually(15*time.Second, "it knows every other device", func() (bool, string) {
			var rows []node.PeerRow
			out := d.must("peers", "--json")
			if err := json.Unmarshal([]byte(out), &rows); err != nil {
				r.t.Fatalf("%s: peers --json: %v: %s", d.name, err, out)
			}
			known := make(map[string]bool)
			for _, row := range rows {
				if len(row.Addrs) > 0 {
					known[row.Device] = true
				}
			}
			var missing []string
			for _, o := range r.devices {
				if o != d && !known[o.id] {
					missing = append(missing, o.name)
				}
			}
			return len(missing) == 0, "no address of " + strings.Join(missing, ", ")
		})
	}
}

func (r *convergeRun) dial(d *convDevice) *node.Client {
	r.t.Helper()
	cl, err := node.Dial(d.home)
	if err != nil {
		r.t.Fatalf("%s: dial the local API: %v", d.name, err)
	}
	return cl
}

// plan draws what each of devs sends: lo..hi messages to conversations of
// its account, each after a pause of up to maxPause milliseconds, the first
// preferFirst of them to conversations with prefer (when not "").
func (r *convergeRun) plan(devs []*convDevice, lo, hi, maxPause int, prefer string, preferFirst int) []sendPlan {
	plans := make([]sendPlan, 0, len(devs))
	for _, d := range devs {
		var mine, preferred []string
		for _, c := range r.convos {
			if slices.Contains(c.members, d.user) {
				mine = append(mine, c.feeds)
				if slices.Contains(c.members, prefer) {
					preferred = append(preferred, c.feeds)
				}
			}
		}
		p := sendPlan{dev: d}
		for i := range lo + r.rng.IntN(hi-lo+1) {
			from := mine
			if i < preferFirst && len(preferred) > 0 {
				from = preferred
			}
			p.to = append(p.to, from[r.rng.IntN(len(from))])
			p.pause = append(p.pause, time.Duration(r.rng.IntN(maxPause+1))*time.Millisecond)
		}
		plans = append(plans, p)
	}
	return plans
}

// phase runs plans at once, one goroutine a device sending through its
// local API, while during (if set) runs on the test's goroutine.
func (r *convergeRun) phase(name string, plans []sendPlan, during func()) {
	t := r.t
	start := time.Now()
	results := make([][]sentMsg, len(plans))
	var wg sync.WaitGroup
	for i, p := range plans {
		cl := r.dial(p.dev)
		first := p.dev.sent
		wg.Go(func() {
			for j, feeds := range p.to {
				time.Sleep(p.pause[j])
				text := fmt.Sprintf("seed %d, %s, %s message %d", r.seed, name, p.dev.name, first+j)
				res, err := cl.Send(t.Context(), node.SendRequest{To: feeds, Text: text})
				if err != nil {
					t.Errorf("%s: %s: send %d to %s: %v", name, p.dev.name, first+j, feeds, err)
					return
				}
				results[i] = append(results[i], sentMsg{id: res.MsgId, feeds: feeds, device: p.dev.name, n: first + j})
			}
		})
	}
	if during != nil {
		during()
	}
	wg.Wait()
	var counts []string
	for i, p := range plans {
		r.record(results[i])
		p.dev.sent += len(results[i])
		counts = append(counts, fmt.Sprintf("%s %d", p.dev.name, len(results[i])))
	}
	t.Logf("phase %q: sent %s in %v", name, strings.Join(counts, ", "), time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}
}

func (r *convergeRun) record(msgs []sentMsg) {
	for _, m := range msgs {
		if _, dup := r.byID[m.id]; dup {
			r.t.Errorf("%s: Send returned MsgId %s a second time", m.device, m.id)
		}
		r.byID[m.id] = m
		r.sent[m.feeds] = append(r.sent[m.feeds], m)
	}
}

// waitServer waits until each of devs reports the server in state.
func (r *convergeRun) waitServer(devs []*convDevice, state string) {
	for _, d := range devs {
		d.eventually(30*time.Second, "the server is "+state, func() (bool, string) {
			st := d.status()
			return st.Server == state, st.Server + " " + st.ServerError
		})
	}
}

// converge runs `mqtter sync` on every device until every conversation
// checks out on every device of its members, or d passes.
func (r *convergeRun) converge(d time.Duration) {
	t := r.t
	start := time.Now()
	deadline := start.Add(d)
	for round := 1; ; round++ {
		for _, dev := range r.devices {
			dev.cli("sync") // a failure shows in the check
		}
		problems := r.check()
		if len(problems) == 0 {
			t.Logf("converged after %d sync rounds, %v", round, time.Since(start).Round(time.Millisecond))
			r.logVia()
			return
		}
		if time.Now().After(deadline) {
			const most = 60
			if len(problems) > most {
				problems = append(problems[:most], fmt.Sprintf("… and %d more", len(problems)-most))
			}
			t.Fatalf("seed %d: not converged %v after the last phase (%d sync rounds):\n%s\n(replay: MQTTER_CONVERGE_SEEDS=%d)",
				r.seed, d, round, strings.Join(problems, "\n"), r.seed)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// check compares every member device's history of every conversation with
// what was sent and with the first member device's, and returns what is
// wrong, one line each.
func (r *convergeRun) check() []string {
	var problems []string
	for _, c := range r.convos {
		want := r.sent[c.feeds]
		var ref []node.HistoryEntry
		var refName string
		for _, d := range r.devices {
			if !slices.Contains(c.members, d.user) {
				continue
			}
			h := d.history(c.feeds)
			for _, p := range r.checkHistory(h, want) {
				problems = append(problems, fmt.Sprintf("%s %s: %s", d.name, c.feeds, p))
			}
			if ref == nil {
				ref, refName = h, d.name
				continue
			}
			if i := firstDiff(ref, h); i >= 0 {
				problems = append(problems, fmt.Sprintf("%s %s: differs from %s at position %d of %d/%d: %s has %s, %s has %s",
					d.name, c.feeds, refName, i, len(h), len(ref), d.name, r.entryAt(h, i), refName, r.entryAt(ref, i)))
			}
		}
	}
	for _, d := range r.devices {
		if st := d.status(); st.Outbox != 0 || st.Server != node.ServerConnected {
			problems = append(problems, fmt.Sprintf("%s: outbox %d (want 0), unsynced %d, server %s %s, failures %+v",
				d.name, st.Outbox, st.Unsynced, st.Server, st.ServerError, st.Failures))
		}
	}
	return problems
}

// checkHistory checks one device's history against the messages sent to
// the conversation.
func (r *convergeRun) checkHistory(h []node.HistoryEntry, want []sentMsg) []string {
	var problems []string
	if len(h) != len(want) {
		problems = append(problems, fmt.Sprintf("%d messages, want %d", len(h), len(want)))
	}
	count := make(map[string]int, len(h))
	for _, m := range h {
		count[m.MsgId]++
	}
	var missing, dups, strangers []string
	for _, w := range want {
		if count[w.id] == 0 {
			missing = append(missing, fmt.Sprintf("%s (%s message %d)", w.id, w.device, w.n))
		}
	}
	for id, n := range count {
		if _, ok := r.byID[id]; !ok {
			strangers = append(strangers, id)
		}
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s ×%d", id, n))
		}
	}
	slices.Sort(dups)
	slices.Sort(strangers)
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("lacks %d sent messages: %s", len(missing), firstFew(missing)))
	}
	if len(dups) > 0 {
		problems = append(problems, "holds more than once: "+firstFew(dups))
	}
	if len(strangers) > 0 {
		problems = append(problems, "holds messages nobody sent: "+firstFew(strangers))
	}
	for i, m := range h {
		if m.SeqId != int64(i+1) {
			problems = append(problems, fmt.Sprintf("position %d: %s, want SeqId %d (SeqIds 1..N without gaps)", i, r.entryAt(h, i), i+1))
			break
		}
	}
	last := make(map[string]int) // by device: the index of its last message so far
	for i, m := range h {
		s, ok := r.byID[m.MsgId]
		if !ok {
			continue
		}
		if prev, seen := last[s.device]; seen && r.byID[h[prev].MsgId].n > s.n {
			problems = append(problems, fmt.Sprintf("%s's messages out of sending order: position %d %s comes after position %d %s",
				s.device, i, r.entryAt(h, i), prev, r.entryAt(h, prev)))
			break
		}
		last[s.device] = i
	}
	return problems
}

// firstDiff returns the first position where a and b hold different
// messages or SeqIds, or -1.
func firstDiff(a, b []node.HistoryEntry) int {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i].MsgId != b[i].MsgId || a[i].SeqId != b[i].SeqId {
			return i
		}
	}
	return -1
}

// entryAt describes h[i]: MsgId, SeqId, Via and who sent it.
func (r *convergeRun) entryAt(h []node.HistoryEntry, i int) string {
	if i >= len(h) {
		return "(the end)"
	}
	m := h[i]
	who := "nobody's"
	if s, ok := r.byID[m.MsgId]; ok {
		who = fmt.Sprintf("%s message %d", s.device, s.n)
	}
	return fmt.Sprintf("%s SeqId %d Via %s (%s)", m.MsgId, m.SeqId, m.Via, who)
}

func firstFew(items []string) string {
	const few = 5
	if len(items) > few {
		return strings.Join(items[:few], ", ") + fmt.Sprintf(", … (%d in all)", len(items))
	}
	return strings.Join(items, ", ")
}

// logVia logs how each device first got the messages it holds, and fails
// when no message took the direct path, which the server's downtime is
// there to exercise.
func (r *convergeRun) logVia() {
	total := make(map[string]int)
	for _, d := range r.devices {
		via := make(map[string]int)
		for _, c := range r.convos {
			if !slices.Contains(c.members, d.user) {
				continue
			}
			for _, m := range d.history(c.feeds) {
				via[m.Via]++
				total[m.Via]++
			}
		}
		r.t.Logf("%s holds %v", d.name, via)
	}
	if total["p2p"] == 0 {
		r.t.Errorf("no device got a message directly (via p2p): %v", total)
	}
}

func (r *convergeRun) names(devs []*convDevice) string {
	var names []string
	for _, d := range devs {
		names = append(names, d.name)
	}
	return strings.Join(names, ", ")
}
