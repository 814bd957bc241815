package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// cliResult is how a CLI run ended.
type cliResult struct {
	code   int
	stdout string
	stderr string
	took   time.Duration
}

// runCLI runs a CLI verb against n to completion, safe to call from any
// goroutine (it reports failures in its result, not through t).
func (n *nodeProc) runCLI(args ...string) cliResult {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--home", n.home)...)
	cmd.Env = os.Environ()
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	r := cliResult{stdout: out.String(), stderr: errOut.String(), took: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		r.code, r.stderr = -1, err.Error()
	}
	return r
}

// playThing dials a thing's node, whose test code plays the device.
func playThing(t *testing.T, n *nodeProc) *node.Client {
	t.Helper()
	cl, err := node.Dial(n.home)
	if err != nil {
		t.Fatalf("dial %s: %v", n.user, err)
	}
	return cl
}

// nextCommand waits until the thing holds a command from person that is
// not in seen, and returns its MsgId and payload.
func nextCommand(t *testing.T, th *nodeProc, person string, seen map[string]bool) (string, thing.Command) {
	t.Helper()
	var id string
	var cmd thing.Command
	th.eventually(20*time.Second, "a new command from "+person+" arrives", func() (bool, string) {
		for _, m := range th.history(person) {
			if m.MsgType == wire.MsgTypeCommand && !seen[m.MsgId] {
				c, err := thing.ParseCommand(m.Payload)
				if err != nil {
					t.Fatalf("%s got a command it cannot parse: %v", th.user, err)
				}
				id, cmd = m.MsgId, c
				seen[id] = true
				return true, ""
			}
		}
		return false, "none yet"
	})
	return id, cmd
}

// sendFeedback sends feedback f from the thing's node to person.
func sendFeedback(t *testing.T, cl *node.Client, person string, f thing.Feedback) {
	t.Helper()
	p, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Send(t.Context(), node.SendRequest{To: person, MsgType: wire.MsgTypeFeedback, Payload: p}); err != nil {
		t.Fatalf("feedback %s: %v", f.Kind, err)
	}
}

// The person's thing verbs, driven as a user would: do waits for the
// result and exits 0 only when the thing did it; state, describe and
// commands show what the thing reported; a refusal and a timeout exit
// non-zero with a clear message.
func TestThingCLI(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice")
	pairing := regexp.MustCompile(`pairing code: (\S+)`)
	code := pairing.FindStringSubmatch(addUser(t, data, "lamp", "lamp-pw", "--thing"))
	if code == nil {
		t.Fatal("user add --thing printed no pairing code")
	}
	addUser(t, data, "kettle", "kettle-pw", "--thing")
	srv := startServer(t, data)
	broker := "tcp://" + srv.mqtt
	alice := startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	lamp := startNode(t, broker, t.TempDir(), "lamp", "lamp-pw")
	alice.must("thing", "bind", "lamp", code[1])
	for _, pair := range [][2]*nodeProc{{alice, lamp}, {lamp, alice}} {
		n, other := pair[0], pair[1]
		n.eventually(15*time.Second, "it knows a device of "+other.user, func() (bool, string) {
			var rows []node.PeerRow
			out := n.must("peers", "--json")
			json.Unmarshal([]byte(out), &rows)
			for _, r := range rows {
				if r.User == other.user && len(r.Addrs) > 0 {
					return true, ""
				}
			}
			return false, out
		})
	}
	device := playThing(t, lamp)
	seen := map[string]bool{}

	// done: exit 0, the status and the output printed.
	got := make(chan cliResult, 1)
	go func() { got <- alice.runCLI("thing", "do", "lamp", "toggle", `{"on":true}`, "--timeout", "20s") }()
	id, cmd := nextCommand(t, lamp, "alice", seen)
	if cmd.Action != "toggle" || string(cmd.Input) != `{"on":true}` || cmd.Trace.OriginMsg != id || cmd.Trace.Origin != "alice" {
		t.Errorf("lamp got %+v as %s, want toggle {\"on\":true} with a trace starting at it", cmd, id)
	}
	sendFeedback(t, device, "alice", thing.Feedback{Kind: thing.KindAck, Cmd: id, Status: thing.AckAccepted, Trace: &cmd.Trace})
	sendFeedback(t, device, "alice", thing.Feedback{Kind: thing.KindState, Props: map[string]json.RawMessage{"on": json.RawMessage(`true`)},
		Rev: 3, Cause: id, Trace: &cmd.Trace})
	sendFeedback(t, device, "alice", thing.Feedback{Kind: thing.KindResult, Cmd: id, Status: thing.ResultDone,
		Output: json.RawMessage(`{"on": true}`), Trace: &cmd.Trace})
	r := <-got
	if r.code != 0 || !strings.Contains(r.stdout, "done") || !strings.Contains(r.stdout, `output: {"on":true}`) {
		t.Errorf("thing do (done) = exit %d\n%s%s\nwant exit 0 with done and the output", r.code, r.stdout, r.stderr)
	}

	// failed, with --json: exit 1, the JSON row on stdout, the reason said.
	go func() { got <- alice.runCLI("thing", "do", "lamp", "brew", "--json", "--timeout", "20s") }()
	id, cmd = nextCommand(t, lamp, "alice", seen)
	sendFeedback(t, device, "alice", thing.Feedback{Kind: thing.KindResult, Cmd: id, Status: thing.ResultFailed, Error: "jammed", Trace: &cmd.Trace})
	r = <-got
	var row node.CommandRow
	if err := json.Unmarshal([]byte(r.stdout), &row); err != nil || row.State != thing.ResultFailed || row.MsgId != id {
		t.Errorf("thing do --json (failed) printed %q (%v), want the failed command %s", r.stdout, err, id)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "jammed") {
		t.Errorf("thing do (failed) = exit %d, stderr %q; want 1 and the reason", r.code, r.stderr)
	}

	// rejected: exit 1.
	go func() { got <- alice.runCLI("thing", "do", "lamp", "--set", "level=200", "--timeout", "20s") }()
	id, cmd = nextCommand(t, lamp, "alice", seen)
	if string(cmd.Write["level"]) != "200" || cmd.Action != "" {
		t.Errorf("--set level=200 sent %+v, want a write of level", cmd)
	}
	sendFeedback(t, device, "alice", thing.Feedback{Kind: thing.KindAck, Cmd: id, Status: thing.AckRejected, Error: "level over 100", Trace: &cmd.Trace})
	if r = <-got; r.code != 1 || !strings.Contains(r.stdout, "rejected") || !strings.Contains(r.stderr, "level over 100") {
		t.Errorf("thing do (rejected) = exit %d\n%s%s\nwant exit 1, rejected and the reason", r.code, r.stdout, r.stderr)
	}

	// No answer, the lamp's node being gone (a running one answers
	// timeout itself at expiry): timeout after the expiry and the grace.
	lamp.stop()
	r = alice.runCLI("thing", "do", "lamp", "toggle", "--timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stdout, "timeout") || !strings.Contains(r.stderr, "timeout") {
		t.Errorf("thing do (no answer) = exit %d\n%s%s\nwant exit 1 and timeout", r.code, r.stdout, r.stderr)
	}
	if min := time.Second + node.CommandGrace - 500*time.Millisecond; r.took < min {
		t.Errorf("the timeout came after %v, want at least %v", r.took, min)
	}

	lamp.start()
	device = playThing(t, lamp)

	// Refused at once: a thing not bound, and usage errors.
	r = alice.runCLI("thing", "do", "kettle", "toggle")
	if r.code != 1 || !strings.Contains(r.stderr, "not a thing bound to alice") || r.took > 10*time.Second {
		t.Errorf("thing do kettle = exit %d after %v, stderr %q; want a refusal at once", r.code, r.took, r.stderr)
	}
	for _, args := range [][]string{
		{"thing", "do", "lamp"},
		{"thing", "do", "lamp", "toggle", "{not json"},
		{"thing", "do", "lamp", "--set", "on"},
		{"thing", "rule", "add", "lamp", "kettle", "--then", "toggle"},
		{"thing", "rule", "add", "lamp", "kettle", "--when", "event:pressed", "--then", "toggle", "--if", "count like 3"},
	} {
		if r := alice.runCLI(args...); r.code != 2 {
			t.Errorf("mqtter %s = exit %d, want 2 (usage)\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}

	// state: what the thing reported, with its rev and age.
	out := alice.must("thing", "state", "lamp")
	if !regexp.MustCompile(`on = true  \(rev 3, \d+s ago\)`).MatchString(out) {
		t.Errorf("thing state = %q, want on = true  (rev 3, Ns ago)", out)
	}

	// describe: the server has none (or no such method), the cache answers.
	sendFeedback(t, device, "alice", thing.Feedback{Kind: thing.KindDescription, Description: &thing.Description{
		Thing: "lamp", Version: 1, Title: "Desk lamp",
		Properties: map[string]*thing.Property{
			"on":    {Schema: thing.Schema{Type: "boolean"}, Observable: true},
			"power": {Schema: thing.Schema{Type: "number", Unit: "W"}, ReadOnly: true}},
		Actions: map[string]*thing.Action{"toggle": {Idempotent: true, Output: &thing.Schema{Type: "object"}}},
		Events:  map[string]*thing.Event{"overheat": {Data: &thing.Schema{Type: "number"}}},
	}})
	alice.eventually(15*time.Second, "describe shows the lamp", func() (bool, string) {
		r := alice.runCLI("thing", "describe", "lamp")
		return r.code == 0, r.stdout + r.stderr
	})
	out = alice.must("thing", "describe", "lamp")
	for _, want := range []string{"lamp (version 1) Desk lamp", "on", "boolean", "writable", "observable",
		"power", "number (W)", "read-only", "toggle", "output: object", "idempotent", "overheat"} {
		if !strings.Contains(out, want) {
			t.Errorf("thing describe = %q, want %q in it", out, want)
		}
	}

	// commands: newest first, each with its state.
	var rows []node.CommandRow
	if err := json.Unmarshal([]byte(alice.must("thing", "commands", "lamp", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, r := range rows {
		states = append(states, r.State)
	}
	if got := strings.Join(states, ","); got != "timeout,rejected,failed,done" {
		t.Errorf("thing commands --json states = %s, want timeout,rejected,failed,done", got)
	}
	if out := alice.must("thing", "commands", "lamp"); strings.Count(out, "\n") < 4 || !strings.Contains(out, "jammed") {
		t.Errorf("thing commands = %q, want the four commands and the failure's reason", out)
	}

	// A rule needs alice bound to both things: the server refuses one
	// for the kettle, which is not hers.
	r = alice.runCLI("thing", "rule", "add", "lamp", "kettle", "--when", "event:overheat", "--if", "gt 70", "--then", "toggle", "--id", "cool-down")
	if r.code != 1 || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("thing rule add for a thing not bound = exit %d %q, want the server's refusal", r.code, r.stderr)
	}
}
