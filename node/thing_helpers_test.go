package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// The test binary doubles as a device program: started with envDevice
// set, it plays that device instead of running tests.
const (
	envDevice  = "MQTTER_TEST_DEVICE"  // lamp, sensor or hang (takes commands, never answers)
	envRan     = "MQTTER_TEST_RAN"     // a file each invocation is appended to, "cmd action"
	envGarbage = "MQTTER_TEST_GARBAGE" // "1": write lines that are not feedback first
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envDevice); mode != "" {
		os.Exit(testDevice(mode))
	}
	os.Exit(m.Run())
}

// testDevice is a device program: a lamp (on, brightness; toggle, set), a
// door sensor (open; event opened; open, close) or one that hangs.
func testDevice(mode string) int {
	out := bufio.NewWriter(os.Stdout)
	emit := func(v any) {
		b, _ := json.Marshal(v)
		out.Write(append(b, '\n'))
		out.Flush()
	}
	if os.Getenv(envGarbage) == "1" {
		out.WriteString("this is not json\n")
		out.WriteString(`{"kind":"ack","cmd":"x","status":"accepted"}` + "\n")
		out.WriteString(`{"kind":"state","props":{}}` + "\n")
		out.WriteString(strings.Repeat("x", maxProgramLine+10) + "\n")
		out.Flush()
	}
	pct := func(v float64) *float64 { return &v }
	desc := &thing.Description{Version: 1, Title: mode}
	switch mode {
	case "sensor":
		desc.Properties = map[string]*thing.Property{"open": {Schema: thing.Schema{Type: "boolean"}, ReadOnly: true, Observable: true}}
		desc.Events = map[string]*thing.Event{"opened": {}}
		desc.Actions = map[string]*thing.Action{"open": {}, "close": {}}
	default:
		desc.Properties = map[string]*thing.Property{
			"on":         {Schema: thing.Schema{Type: "boolean"}, Observable: true},
			"brightness": {Schema: thing.Schema{Type: "integer", Minimum: pct(0), Maximum: pct(100)}, Observable: true},
		}
		desc.Actions = map[string]*thing.Action{
			"toggle": {Idempotent: false},
			"set": {Input: &thing.Schema{Type: "object", Properties: map[string]*thing.Schema{
				"on":         {Type: "boolean"},
				"brightness": {Type: "integer", Minimum: pct(0), Maximum: pct(100)},
			}}},
		}
	}
	emit(thing.Feedback{Kind: thing.KindDescription, Description: desc})
	on, open := false, false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var inv thing.Invocation
		if json.Unmarshal(sc.Bytes(), &inv) != nil {
			fmt.Fprintln(os.Stderr, "bad invocation:", sc.Text())
			continue
		}
		if path := os.Getenv(envRan); path != "" {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err == nil {
				fmt.Fprintf(f, "%s %s\n", inv.Cmd, inv.Action)
				f.Sync()
				f.Close()
			}
		}
		fmt.Fprintln(os.Stderr, "running", inv.Action)
		switch mode {
		case "hang":
			continue
		case "sensor":
			open = inv.Action == "open"
			emit(thing.Feedback{Kind: thing.KindState, Props: map[string]json.RawMessage{"open": json.RawMessage(fmt.Sprint(open))}, Cause: inv.Cmd})
			if open {
				emit(thing.Feedback{Kind: thing.KindEvent, Event: "opened", Data: json.RawMessage(`{"open":true}`), Cause: inv.Cmd})
			}
		default:
			switch inv.Action {
			case "toggle":
				on = !on
			case "set":
				var in struct{ On *bool }
				json.Unmarshal(inv.Input, &in)
				if in.On != nil {
					on = *in.On
				}
			}
			emit(thing.Feedback{Kind: thing.KindState, Props: map[string]json.RawMessage{"on": json.RawMessage(fmt.Sprint(on))}, Cause: inv.Cmd})
		}
		emit(thing.Feedback{Kind: thing.KindResult, Cmd: inv.Cmd, Status: thing.ResultDone, Output: json.RawMessage(fmt.Sprintf(`{"on":%v}`, on))})
	}
	return 0
}

// deviceCommand is the --thing-handler that plays mode, appending each
// invocation to ran.
func deviceCommand(mode, ran string, garbage bool) string {
	g := "0"
	if garbage {
		g = "1"
	}
	return fmt.Sprintf("%s=%s %s=%q %s=%s exec %q -test.run='^$'", envDevice, mode, envRan, ran, envGarbage, g, os.Args[0])
}

// testNode is a node run in this process, as Run runs it, with access to
// its insides.
type testNode struct {
	n    *Node
	cl   *Client
	home string
	stop func()
}

// startTestNode starts user's node in home against srv and waits until
// it is connected; it stops at the end of the test, or by stop.
func startTestNode(t *testing.T, srv *servertest.Instance, home, user string, edit func(*Config)) *testNode {
	t.Helper()
	cfg := Config{Home: home, Server: srv.MQTT, User: user, Password: user + "-pw",
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, SyncInterval: 200 * time.Millisecond,
		Logger: servertest.TestLogger(t).With("node", user)}
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.ensureDefaults(); err != nil {
		t.Fatal(err)
	}
	release, err := lockHome(home)
	if err != nil {
		t.Fatal(err)
	}
	n, err := start(t.Context(), cfg)
	if err != nil {
		release()
		t.Fatal(err)
	}
	api, err := n.serveAPI()
	if err != nil {
		n.close()
		release()
		t.Fatal(err)
	}
	var once sync.Once
	tn := &testNode{n: n, home: home, stop: func() {
		once.Do(func() {
			api.close()
			n.close()
			release()
		})
	}}
	t.Cleanup(tn.stop)
	waitFor(t, user+"'s node connected", func() bool {
		cl, err := Dial(home)
		if err != nil {
			return false
		}
		tn.cl = cl
		return n.link.Connected()
	})
	return tn
}

// waitFor polls ok for up to 20 s.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// knows reports whether a's book holds relation state with b and knows
// b's device.
func knows(a, b *testNode, state string) bool {
	a.n.book.mu.RLock()
	r := a.n.book.relations[b.n.cfg.User]
	a.n.book.mu.RUnlock()
	owner, ok := a.n.book.account(b.n.self.String())
	return r.State == state && ok && owner == b.n.cfg.User
}

// bind binds the thing to the person and waits until both books say so.
func bind(t *testing.T, person, th *testNode) {
	t.Helper()
	ctx := t.Context()
	var code wire.PairingCode
	if err := th.cl.Call(ctx, wire.MethodPairingCode, wire.Empty{}, &code); err != nil {
		t.Fatalf("pairing_code: %v", err)
	}
	if err := person.cl.Call(ctx, wire.MethodBindThing, wire.BindThingReq{Thing: th.n.cfg.User, Code: code.Code}, nil); err != nil {
		t.Fatalf("bind_thing: %v", err)
	}
	waitFor(t, "the binding in both books", func() bool {
		return knows(person, th, wire.StateBound) && knows(th, person, wire.StateBound)
	})
}

// sendCommand sends c from one node to a thing and returns its MsgId.
func sendCommand(t *testing.T, from *testNode, to string, c thing.Command) string {
	t.Helper()
	if c.Expires == 0 {
		c.Expires = time.Now().Add(time.Minute).UnixMilli()
	}
	if c.Trace.Origin == "" {
		c.Trace = thing.Trace{Origin: from.n.cfg.User, OriginMsg: wire.NewMsgID()}
	}
	p, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	res, err := from.cl.Send(t.Context(), SendRequest{To: to, MsgType: wire.MsgTypeCommand, Payload: p})
	if err != nil {
		t.Fatalf("send command: %v", err)
	}
	return res.MsgId
}

// feedbackOf returns the feedback about cmd (its MsgId as Cmd or Cause)
// that who holds from the thing th: in their dm (acks, results) and in
// the thing's feed (state, events).
func feedbackOf(t *testing.T, who *testNode, th, cmd string) []thing.Feedback {
	t.Helper()
	var msgs []HistoryEntry
	for _, conv := range []string{th, wire.ThingFeeds(th)} {
		h, err := who.cl.History(t.Context(), conv, 0)
		if err != nil {
			t.Fatalf("history of %s: %v", conv, err)
		}
		msgs = append(msgs, h.Messages...)
	}
	var out []thing.Feedback
	for _, m := range msgs {
		if m.MsgType != wire.MsgTypeFeedback || m.From != th {
			continue
		}
		fb, err := thing.ParseFeedback(m.Payload)
		if err != nil {
			t.Fatalf("feedback %s does not parse: %v", m.MsgId, err)
		}
		if fb.Cmd == cmd || fb.Cause == cmd {
			out = append(out, fb)
		}
	}
	return out
}

// has reports whether fbs hold feedback of kind with status.
func has(fbs []thing.Feedback, kind, status string) bool {
	for _, f := range fbs {
		if f.Kind == kind && (status == "" || f.Status == status) {
			return true
		}
	}
	return false
}

// waitFeedback waits until who holds feedback of kind and status about cmd.
func waitFeedback(t *testing.T, who *testNode, th, cmd, kind, status string) []thing.Feedback {
	t.Helper()
	var fbs []thing.Feedback
	waitFor(t, fmt.Sprintf("%s %s of %s at %s", kind, status, cmd, who.n.cfg.User), func() bool {
		fbs = feedbackOf(t, who, th, cmd)
		return has(fbs, kind, status)
	})
	return fbs
}

// ranLines returns what the device programs ran, a line each.
func ranLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
}

// thingStatus returns the node's thing status (never nil).
func thingStatus(t *testing.T, tn *testNode) ThingStatus {
	t.Helper()
	st, err := tn.cl.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Thing == nil {
		return ThingStatus{}
	}
	return *st.Thing
}

// listenAddrs are the node's listen addresses, to dial it directly.
func listenAddrs(t *testing.T, tn *testNode) []multiaddr.Multiaddr {
	t.Helper()
	var out []multiaddr.Multiaddr
	for _, a := range tn.n.host.Addrs() {
		ma, err := multiaddr.NewMultiaddr(strings.TrimSuffix(a, "/p2p/"+tn.n.self.String()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ma)
	}
	return out
}

func ranFile(t *testing.T) string { return filepath.Join(t.TempDir(), "ran") }
