package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// plainHome is a server where alice (a signed device, as a node) owns two
// things without a node, the door and the lamp, plain MQTT clients, which
// are associated; bob owns the kettle, plain too.
type plainHome struct {
	inst        *servertest.Instance
	alice       *servertest.Client
	aliceKey    crypto.PrivKey
	door, lamp  *servertest.Client
	bob, kettle *servertest.Client
}

func newPlainHome(t *testing.T) *plainHome {
	t.Helper()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob")
	h := &plainHome{inst: inst}
	doorCode := inst.AddUser(t, "door", password("door"), true)
	lampCode := inst.AddUser(t, "lamp", password("lamp"), true)
	kettleCode := inst.AddUser(t, "kettle", password("kettle"), true)
	h.alice, h.aliceKey = signedUser(t, inst, "alice")
	h.door, h.lamp = dial(t, inst, "door", "door-esp"), dial(t, inst, "lamp", "lamp-esp")
	h.bob, h.kettle = dial(t, inst, "bob", "bob-1"), dial(t, inst, "kettle", "kettle-esp")
	h.alice.OK("bind_thing", wire.BindThingReq{Thing: "door", Code: doorCode}, nil)
	h.alice.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: lampCode}, nil)
	h.bob.OK("bind_thing", wire.BindThingReq{Thing: "kettle", Code: kettleCode}, nil)
	h.alice.OK("associate", wire.AssociateReq{A: "door", B: "lamp"}, nil)
	for _, cl := range []*servertest.Client{h.alice, h.door, h.lamp, h.bob, h.kettle} {
		cl.Drain(50 * time.Millisecond)
	}
	return h
}

// addRule has alice add the rule "when a reports event, b runs action".
func (h *plainHome) addRule(t *testing.T, id, a, event, b, action string) thing.Rule {
	t.Helper()
	r := thing.Rule{ID: id, A: a, B: b, When: thing.When{Event: event}, Then: thing.Then{Action: action},
		By: "alice", Created: time.Now().UnixMilli()}
	if err := r.Sign(h.aliceKey); err != nil {
		t.Fatal(err)
	}
	h.alice.OK(wire.MethodAddRule, r, nil)
	return r
}

// event is thing from's event report in the dm with to, caused by cause.
func event(from, to, name, cause string) wire.Message {
	return feedbackMsg(from, to, thing.Feedback{Kind: thing.KindEvent, Event: name, Cause: cause})
}

// nextCommand waits for the next news push to cl that is a command.
func nextCommand(t *testing.T, cl *servertest.Client) (wire.Message, thing.Command) {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for time.Now().Before(deadline) {
		n := cl.News()
		if n.Message.MsgType != wire.MsgTypeCommand {
			continue
		}
		c, err := thing.ParseCommand(n.Message.Payload)
		if err != nil {
			t.Fatalf("%s: command %s: %v", cl.Device, n.Message.Payload, err)
		}
		return n.Message, c
	}
	t.Fatalf("%s: no command", cl.Device)
	return wire.Message{}, thing.Command{}
}

// nextFeedback waits for the next news push to cl in feeds that is
// feedback of kind.
func nextFeedback(t *testing.T, cl *servertest.Client, feeds, kind string) (wire.Message, thing.Feedback) {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for time.Now().Before(deadline) {
		n := cl.News()
		if n.Feeds != feeds || n.Message.MsgType != wire.MsgTypeFeedback {
			continue
		}
		fb, err := thing.ParseFeedback(n.Message.Payload)
		if err == nil && fb.Kind == kind {
			return n.Message, fb
		}
	}
	t.Fatalf("%s: no %s in %s", cl.Device, kind, feeds)
	return wire.Message{}, thing.Feedback{}
}

// The server runs the rules of things without a node: alice commands the
// door, the door's event (caused by her command) fires her rule, and the
// server writes the lamp's command as the door's node would: From the
// door, in their dm, the rule as grant, the chain's trace, an expiry,
// unsigned with the server's Device. The lamp's result reaches alice, the
// chain's origin, with the trace. One report written into two dms fires
// once; a report of another event fires nothing.
func TestServerRunsRulesOfPlainThings(t *testing.T) {
	t.Parallel()
	h := newPlainHome(t)
	rule := h.addRule(t, "door-lamp", "door", "opened", "lamp", "toggle")
	h.door.Drain(quiet)
	h.lamp.Drain(quiet)

	open := personCommand("alice", "open")
	cmd := signMsg(t, h.aliceKey, "alice", commandMsg("alice", "door", open))
	send(t, h.alice, cmd)
	got, _ := nextCommand(t, h.door)
	if got.MsgId != cmd.MsgId {
		t.Fatalf("door got command %s, want alice's %s", got.MsgId, cmd.MsgId)
	}
	// The door reports its event to alice, and the same report to the
	// lamp: one report, one firing.
	ev := event("door", "alice", "opened", cmd.MsgId)
	send(t, h.door, ev)
	ev2 := ev
	ev2.MsgId, ev2.Feeds = wire.NewMsgID(), wire.DM("door", "lamp")
	send(t, h.door, ev2)

	before := time.Now()
	m, c := nextCommand(t, h.lamp)
	if m.From != "door" || m.Feeds != wire.DM("door", "lamp") || m.Device != wire.ServerDevice || m.Signed() {
		t.Errorf("the rule's command: From %s, Feeds %s, Device %q, signed %v; want door, dm:door:lamp, %q, unsigned",
			m.From, m.Feeds, m.Device, m.Signed(), wire.ServerDevice)
	}
	wantTrace := thing.Trace{Origin: "alice", OriginMsg: open.Trace.OriginMsg, Rule: rule.ID, Hops: 1}
	if c.Action != "toggle" || c.Trace != wantTrace || c.Grant == nil || c.Grant.ID != rule.ID || c.Grant.Sig != rule.Sig {
		t.Errorf("the rule's command = %+v (trace %+v), want toggle under grant %s with trace %+v", c, c.Trace, rule.ID, wantTrace)
	}
	if exp := time.UnixMilli(c.Expires); exp.Before(before.Add(thing.DefaultExpiry-5*time.Second)) || exp.After(time.Now().Add(thing.DefaultExpiry)) {
		t.Errorf("expires %v, want about %v from now", exp, thing.DefaultExpiry)
	}
	if n := metric(t, h.inst, "mqtter_rule_firings_total"); n != 1 {
		t.Errorf("mqtter_rule_firings_total = %v, want 1 (one report in two dms)", n)
	}

	// The lamp answers in the dm with the door; alice, the origin, gets it.
	res := feedbackMsg("lamp", "door", thing.Feedback{Kind: thing.KindResult, Cmd: m.MsgId, Action: "toggle",
		Status: thing.ResultDone, Output: json.RawMessage(`{"on":true}`)})
	send(t, h.lamp, res)
	am, afb := nextFeedback(t, h.alice, wire.DM("alice", "lamp"), thing.KindResult)
	if am.From != "lamp" || am.Device != wire.ServerDevice || afb.Cmd != m.MsgId || afb.Status != thing.ResultDone ||
		afb.Trace == nil || *afb.Trace != wantTrace || string(afb.Output) != `{"on":true}` {
		t.Errorf("alice got %+v (From %s, Device %q), want the lamp's result with trace %+v", afb, am.From, am.Device, wantTrace)
	}

	// Another event of the door fires nothing.
	send(t, h.door, event("door", "alice", "closed", thing.CauseLocal))
	noCommand(t, h.lamp)
}

// noCommand fails if a command to cl comes within quiet.
func noCommand(t *testing.T, cl *servertest.Client) {
	t.Helper()
	for _, p := range cl.Drain(quiet) {
		var n wire.News
		if p.Topic == wire.PushNews && json.Unmarshal(p.Body, &n) == nil &&
			n.Message.MsgType == wire.MsgTypeCommand && n.Message.From != cl.User {
			t.Errorf("%s: unexpected command %s from %s", cl.Device, n.Message.Payload, n.Message.From)
		}
	}
}

// Who may not make the server command a thing: a plain thing writing a
// command itself (no grant, or a grant the server does not hold), a
// stranger's thing reporting the rule's event, a person "reporting" it,
// and anyone after the rule is removed. The server's own Device can be
// neither a client id nor named by the s2s push.
func TestPlainRulesRefuse(t *testing.T) {
	t.Parallel()
	h := newPlainHome(t)
	rule := h.addRule(t, "door-lamp", "door", "opened", "lamp", "toggle")
	h.lamp.Drain(quiet)

	// A forged command: no grant, a grant the server never held.
	wantError(t, "a plain thing's command without a grant",
		h.door.Fail("send", commandMsg("door", "lamp", personCommand("door", "toggle"))), "forbidden")
	other := thing.Rule{ID: "not-held", A: "door", B: "lamp", When: thing.When{Event: "opened"},
		Then: thing.Then{Action: "toggle"}, By: "alice", Created: time.Now().UnixMilli()}
	if err := other.Sign(h.aliceKey); err != nil {
		t.Fatal(err)
	}
	c := ruleCommand(&other)
	c.Trace.Origin = "door"
	wantError(t, "a plain thing's command under a rule the server does not hold",
		h.door.Fail("send", commandMsg("door", "lamp", c)), "no rule of the server's")

	// The kettle (bob's) reports the event; bob "reports" it: nothing fires.
	send(t, h.kettle, event("kettle", "bob", "opened", thing.CauseLocal))
	wantError(t, "a person's event", h.bob.Fail("send", event("bob", "kettle", "opened", thing.CauseLocal)), "only a thing sends feedback")
	noCommand(t, h.lamp)

	// Removed, the rule fires no more.
	h.alice.OK(wire.MethodRemoveRule, thing.RuleID{ID: rule.ID}, nil)
	send(t, h.door, event("door", "alice", "opened", thing.CauseLocal))
	noCommand(t, h.lamp)
	if n := metric(t, h.inst, "mqtter_rule_firings_total"); n != 0 {
		t.Errorf("mqtter_rule_firings_total = %v, want 0", n)
	}

	// The server's Device is reserved.
	if _, err := servertest.TryDial(t, h.inst.MQTT, "door", password("door"), wire.ServerDevice); err == nil {
		t.Error("a client connected with the server's own Device as its client id")
	}
}

// A loop of two rules between two plain things (the door's opening
// toggles the lamp; the lamp's toggle opens the door), each device
// reporting its event caused by the command it got, is cut by the loop
// guards: the chain keeps one origin, so the first rule does not fire a
// second time, and the drop is counted in the server's metrics.
func TestPlainRuleLoopIsCut(t *testing.T) {
	t.Parallel()
	h := newPlainHome(t)
	h.addRule(t, "door-lamp", "door", "opened", "lamp", "toggle")
	h.addRule(t, "lamp-door", "lamp", "toggled", "door", "open")
	h.door.Drain(quiet)
	h.lamp.Drain(quiet)

	send(t, h.door, event("door", "alice", "opened", thing.CauseLocal))
	commands := 0
	answer := map[*servertest.Client]string{h.lamp: "toggled", h.door: "opened"}
	for range 3 {
		for _, cl := range []*servertest.Client{h.lamp, h.door} {
			for _, p := range cl.Drain(quiet) {
				var n wire.News
				if p.Topic != wire.PushNews || json.Unmarshal(p.Body, &n) != nil ||
					n.Message.MsgType != wire.MsgTypeCommand || n.Message.From == cl.User {
					continue // not a command, or its own rule's (a device sees those too)
				}
				commands++
				if c, err := thing.ParseCommand(n.Message.Payload); err != nil || c.Trace.Hops > thing.MaxHops {
					t.Errorf("command %s: %v", n.Message.Payload, err)
				}
				send(t, cl, event(cl.User, n.Message.From, answer[cl], n.Message.MsgId))
			}
		}
	}
	if commands != 2 {
		t.Errorf("the loop made %d commands, want 2 (each rule once)", commands)
	}
	if n := metric(t, h.inst, `mqtter_rule_firings_dropped_total{reason="duplicate"}`); n != 1 {
		t.Errorf("duplicate drops = %v, want 1", n)
	}
}

// A command that expired while its plain thing was offline is never
// delivered to it (not on CONNECT, not on a feeds subscription); the
// server records the result timeout in the dm, once, on the thing's
// behalf, and alice gets it. A node's device gets the command: it checks
// expiries itself.
func TestExpiredCommandNotDeliveredToPlainThing(t *testing.T) {
	t.Parallel()
	h := newPlainHome(t)
	nodeCl, _ := signedUser(t, h.inst, "lamp") // a node of the lamp's, offline too
	nodeCl.Close()
	h.lamp.Close()
	c := personCommand("alice", "toggle")
	c.Expires = time.Now().Add(300 * time.Millisecond).UnixMilli()
	cmd := send(t, h.alice, commandMsg("alice", "lamp", c))
	fresh := personCommand("alice", "dim")
	time.Sleep(500 * time.Millisecond)
	live := send(t, h.alice, commandMsg("alice", "lamp", fresh))

	lamp := dial(t, h.inst, "lamp", "lamp-esp")
	got, _ := nextCommand(t, lamp)
	if got.MsgId != live.MsgId {
		t.Fatalf("the lamp got %s, want only the live command %s", got.MsgId, live.MsgId)
	}
	m, fb := nextFeedback(t, h.alice, wire.DM("alice", "lamp"), thing.KindResult)
	if m.From != "lamp" || m.Device != wire.ServerDevice || fb.Cmd != cmd.MsgId || fb.Status != thing.ResultTimeout ||
		fb.Error != "expired before delivery" || fb.Trace == nil || fb.Trace.Origin != "alice" {
		t.Errorf("alice got %+v from %s (Device %q), want the timeout of %s", fb, m.From, m.Device, cmd.MsgId)
	}
	if n := metric(t, h.inst, "mqtter_commands_expired_total"); n != 1 {
		t.Errorf("mqtter_commands_expired_total = %v, want 1", n)
	}

	// Again, from the cursor (never acked), and as a subscriber: still
	// withheld, and no second result.
	lamp.Close()
	sub := dial(t, h.inst, "lamp", "lamp-esp")
	if tok := sub.Paho().Subscribe("feeds/dm/alice", 1, nil); !tok.WaitTimeout(servertest.Timeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	for _, p := range sub.Drain(quiet) {
		if strings.Contains(string(p.Body), cmd.MsgId) && strings.Contains(string(p.Body), `"MsgType":"command"`) {
			t.Errorf("the expired command came on %s", p.Topic)
		}
	}
	h.alice.NoPush(wire.PushNews, quiet)
	results := 0
	for _, hm := range history(t, h.alice, wire.DM("alice", "lamp"), 0, 0).Messages {
		if fb, err := thing.ParseFeedback(hm.Payload); err == nil && fb.Kind == thing.KindResult && fb.Cmd == cmd.MsgId {
			results++
		}
	}
	if results != 1 {
		t.Errorf("%d results of the expired command stored, want 1", results)
	}

	// A node's device (a proven peer id) is given it: it answers itself.
	node := dial(t, h.inst, "lamp", nodeCl.Device)
	var n wire.News
	for n.Message.MsgId != cmd.MsgId {
		n = node.News()
	}
}

// The s2s push cannot name the server's own Device.
func TestServerDeviceNotForBackends(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.S2SToken = s2sSecret }))
	people(t, inst, "alice", "bob")
	a, b := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	befriend(t, a, b)
	m := text(wire.DM("alice", "bob"), "hi")
	m.From, m.Device = "alice", wire.ServerDevice
	if status, body := call(t, http.MethodPost, inst.HTTP+"/v1/s2s/push", bearer(s2sSecret), mustJSON(m)); status != http.StatusForbidden {
		t.Errorf("s2s push with the server's Device: %d %s, want 403", status, body)
	}
}
