package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/adapter/devicesim"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// adoptedHome is a server where alice owns two Tasmota devices, the plug
// and the lamp, adopted through the tasmota profile; bob is a stranger.
type adoptedHome struct {
	inst       *servertest.Instance
	alice, bob *servertest.Client
	plug       *devicesim.Plug
}

func newAdoptedHome(t *testing.T) *adoptedHome {
	t.Helper()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob")
	h := &adoptedHome{inst: inst, alice: dial(t, inst, "alice", "alice-1"), bob: dial(t, inst, "bob", "bob-1")}
	for _, name := range []string{"plug", "lamp"} {
		inst.AddUser(t, name, password(name), true)
		code, created, err := inst.Adopt(context.Background(), name, "tasmota", name, "", func() (string, error) { return "", nil })
		if err != nil || created || code == "" {
			t.Fatalf("Adopt(%s) = %q, %v, %v; want a code for the existing thing", name, code, created, err)
		}
		h.alice.OK("bind_thing", wire.BindThingReq{Thing: name, Code: code}, nil)
	}
	plug, err := devicesim.StartPlug(devicesim.PlugConfig{Broker: inst.MQTT, User: "plug", Password: password("plug"),
		ClientID: "DVES_0A0B0C", Topic: "plug", Dimmer: true, QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plug.Close)
	h.plug = plug
	return h
}

// feedback waits for alice's next feedback from thing about cmd ("" for
// any), skipping other news.
func (h *adoptedHome) feedback(t *testing.T, from string, match func(thing.Feedback) bool) thing.Feedback {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for time.Now().Before(deadline) {
		n := h.alice.News()
		if n.Message.MsgType != wire.MsgTypeFeedback || n.Message.From != from {
			continue
		}
		fb, err := thing.ParseFeedback(n.Message.Payload)
		if err != nil {
			t.Fatalf("feedback %s: %v", n.Message.Payload, err)
		}
		if n.Message.Signed() || n.Message.Device != "DVES_0A0B0C" {
			t.Errorf("feedback %+v: want unsigned, with the device's client id", n.Message)
		}
		if match(fb) {
			return fb
		}
	}
	t.Fatalf("no matching feedback from %s", from)
	return thing.Feedback{}
}

func of(cmd, kind string) func(thing.Feedback) bool {
	return func(f thing.Feedback) bool {
		return f.Kind == kind && (f.Cmd == cmd || f.Cause == cmd)
	}
}

// A Tasmota plug adopted as a thing: its description is built from its
// STATE, alice's commands become cmnd/plug/… PUBLISHes and its RESULT the
// result, its button a local state change, its LWT its presence.
func TestTasmotaAdoption(t *testing.T) {
	t.Parallel()
	h := newAdoptedHome(t)
	alice := h.alice

	// The description, from what the plug announced.
	var d thing.Description
	deadline := time.Now().Add(servertest.Timeout)
	for {
		a := alice.Call(wire.MethodDescription, thing.ThingReq{Thing: "plug"})
		if a.Error == "" {
			if err := json.Unmarshal(a.Result, &d); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no description of the plug: %s", a.Error)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.Properties["power"] == nil || d.Properties["dimmer"] == nil || d.Actions["toggle"] == nil || d.Properties["dimmer"].ReadOnly {
		t.Fatalf("description = %+v, want power, dimmer (writable) and toggle", d)
	}

	send := func(c thing.Command) string {
		m := commandMsg("alice", "plug", c)
		send(t, alice, m)
		return m.MsgId
	}
	id := send(personCommand("alice", "toggle"))
	if ack := h.feedback(t, "plug", of(id, thing.KindAck)); ack.Status != thing.AckAccepted {
		t.Fatalf("ack = %+v, want accepted", ack)
	}
	st := h.feedback(t, "plug", of(id, thing.KindState))
	res := h.feedback(t, "plug", of(id, thing.KindResult))
	if string(st.Props["power"]) != "true" || res.Status != thing.ResultDone || string(res.Output) != `{"power":true}` {
		t.Fatalf("state %+v, result %+v; want power true, done", st, res)
	}
	if got := h.plug.Received(); !slices.Contains(got, "cmnd/plug/POWER TOGGLE") || !h.plug.Power() {
		t.Fatalf("the plug got %q (power %v), want POWER TOGGLE", got, h.plug.Power())
	}

	c := personCommand("alice", "")
	c.Action, c.Write = "", map[string]json.RawMessage{"dimmer": json.RawMessage("40")}
	id = send(c)
	if res := h.feedback(t, "plug", of(id, thing.KindResult)); res.Status != thing.ResultDone || string(res.Output) != `{"dimmer":40}` {
		t.Fatalf("result of dimmer 40 = %+v", res)
	}

	// Its button: state caused locally.
	if err := h.plug.Press(); err != nil {
		t.Fatal(err)
	}
	if st := h.feedback(t, "plug", of(thing.CauseLocal, thing.KindState)); string(st.Props["power"]) != "false" {
		t.Fatalf("state after the button = %+v, want power false", st)
	}

	// An expired command never reaches the plug; one the profile cannot
	// map is rejected.
	n := len(h.plug.Received())
	c = personCommand("alice", "toggle")
	c.Expires = time.Now().Add(-time.Second).UnixMilli()
	id = send(c)
	if res := h.feedback(t, "plug", of(id, thing.KindResult)); res.Status != thing.ResultTimeout {
		t.Fatalf("result of an expired command = %+v, want timeout", res)
	}
	id = send(personCommand("alice", "explode"))
	if ack := h.feedback(t, "plug", of(id, thing.KindAck)); ack.Status != thing.AckRejected || !strings.Contains(ack.Error, "explode") {
		t.Fatalf("ack of an unknown action = %+v, want rejected", ack)
	}
	if got := h.plug.Received(); len(got) != n {
		t.Fatalf("the plug got %q after the expired and the unknown command, want nothing new", got[n:])
	}

	// LWT Offline: offline to alice, commands rejected; Online again.
	if err := h.plug.Publish("tele/plug/LWT", "Offline", true); err != nil {
		t.Fatal(err)
	}
	if p := presenceOf(t, alice, "DVES_0A0B0C"); p.Status != "offline" || p.User != "plug" {
		t.Fatalf("presence after LWT Offline = %+v", p)
	}
	id = send(personCommand("alice", "toggle"))
	if ack := h.feedback(t, "plug", of(id, thing.KindAck)); ack.Status != thing.AckRejected || !strings.Contains(ack.Error, "offline") {
		t.Fatalf("ack while offline = %+v, want rejected", ack)
	}
	if err := h.plug.Publish("tele/plug/LWT", "Online", true); err != nil {
		t.Fatal(err)
	}
	if p := presenceOf(t, alice, "DVES_0A0B0C"); p.Status != "online" {
		t.Fatalf("presence after LWT Online = %+v", p)
	}
	h.plug.Close()
	if p := presenceOf(t, alice, "DVES_0A0B0C"); p.Status != "offline" {
		t.Fatalf("presence after the plug dropped = %+v", p)
	}
}

// The adopted plug's topic space is its own: it cannot report for the
// lamp, send IM requests, or subscribe to anything but its command
// topics; a stranger cannot command it.
func TestTasmotaAdoptedRights(t *testing.T) {
	t.Parallel()
	h := newAdoptedHome(t)
	h.feedback(t, "plug", of(thing.CauseLocal, thing.KindState)) // its announcement
	for filter, want := range map[string]byte{
		"cmnd/plug/#": 0, "cmnd/lamp/#": 0x80, "cmnd/#": 0x80, "#": 0x80, "feeds/dm/alice": 0x80, "im://#": 0x80, "stat/lamp/#": 0x80,
	} {
		if got, err := h.plug.Subscribe(filter); err != nil || got != want {
			t.Errorf("the plug's SUBSCRIBE %s = %#x, %v; want %#x", filter, got, err, want)
		}
	}
	for _, p := range [][2]string{
		{"stat/lamp/RESULT", `{"POWER":"ON"}`},
		{"tele/lamp/LWT", "Offline"},
		{"im://modulus/send?msg_id=1", string(mustJSON(feedbackMsg("plug", "alice", thing.Feedback{Kind: thing.KindEvent, Event: "x", Cause: "local"})))},
	} {
		if err := h.plug.Publish(p[0], p[1], false); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing of that reached alice: the next feedback is the plug's own
	// local change.
	if err := h.plug.Press(); err != nil {
		t.Fatal(err)
	}
	fb := h.feedback(t, "plug", func(thing.Feedback) bool { return true })
	if fb.Kind != thing.KindState || fb.Cause != thing.CauseLocal {
		t.Fatalf("alice's next feedback from the plug = %+v, want the button's state", fb)
	}
	for _, n := range h.alice.Drain(100 * time.Millisecond) {
		if strings.Contains(string(n.Body), `"From":"lamp"`) {
			t.Errorf("alice got %s: the plug reported for the lamp", n.Body)
		}
	}
	e := h.bob.Fail(wire.MethodSend, commandMsg("bob", "plug", personCommand("bob", "toggle")))
	if !strings.HasPrefix(e, "forbidden") {
		t.Errorf("bob's command to the plug = %q, want forbidden", e)
	}
	if got := h.plug.Received(); len(got) != 0 {
		t.Errorf("the plug got %q, want no command", got)
	}
}

// An adopted device takes part in rules like any thing: alice's rule
// "when the plug's power changes, toggle the lamp" runs on the server
// (neither has a node) and its command reaches the lamp, another adopted
// Tasmota device, as cmnd/lamp/POWER TOGGLE.
func TestTasmotaRule(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice")
	alice, key := signedUser(t, inst, "alice")
	for _, name := range []string{"plug", "lamp"} {
		inst.AddUser(t, name, password(name), true)
		code, _, err := inst.Adopt(context.Background(), name, "tasmota", name, "", func() (string, error) { return "", nil })
		if err != nil {
			t.Fatal(err)
		}
		alice.OK("bind_thing", wire.BindThingReq{Thing: name, Code: code}, nil)
	}
	alice.OK("associate", wire.AssociateReq{A: "plug", B: "lamp"}, nil)
	devices := map[string]*devicesim.Plug{}
	for _, name := range []string{"plug", "lamp"} {
		d, err := devicesim.StartPlug(devicesim.PlugConfig{Broker: inst.MQTT, User: name, Password: password(name),
			ClientID: "DVES_" + name, Topic: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		devices[name] = d
	}
	// The lamp's description (toggle) must be stored before the rule.
	deadline := time.Now().Add(servertest.Timeout)
	for alice.Call(wire.MethodDescription, thing.ThingReq{Thing: "lamp"}).Error != "" {
		if time.Now().After(deadline) {
			t.Fatal("no description of the lamp")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := thing.Rule{ID: "plug-lamp", A: "plug", B: "lamp", When: thing.When{Property: "power"}, Then: thing.Then{Action: "toggle"},
		By: "alice", Created: time.Now().UnixMilli()}
	if err := r.Sign(key); err != nil {
		t.Fatal(err)
	}
	alice.OK(wire.MethodAddRule, r, nil)
	if err := devices["plug"].Press(); err != nil {
		t.Fatal(err)
	}
	if got := devices["lamp"].WaitReceived(1, servertest.Timeout); !slices.Contains(got, "cmnd/lamp/POWER TOGGLE") {
		t.Fatalf("the lamp got %q after the plug's button, want POWER TOGGLE by the rule", got)
	}
	if !devices["lamp"].Power() {
		t.Error("the lamp is off after the rule toggled it")
	}
}
