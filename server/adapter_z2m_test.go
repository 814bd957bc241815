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

// bulbFeedback waits for alice's next feedback from the bulb that match
// accepts; the server writes it for the bulb with no device (the bridge's
// client id is not the bulb's).
func bulbFeedback(t *testing.T, alice *servertest.Client, match func(thing.Feedback) bool) thing.Feedback {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for time.Now().Before(deadline) {
		n := alice.News()
		if n.Message.MsgType != wire.MsgTypeFeedback || n.Message.From != "bulb" {
			continue
		}
		if n.Message.Signed() || n.Message.Device != "" {
			t.Errorf("feedback %+v: want unsigned, with no device", n.Message)
		}
		fb, err := thing.ParseFeedback(n.Message.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if match(fb) {
			return fb
		}
	}
	t.Fatal("no matching feedback from the bulb")
	return thing.Feedback{}
}

// A Zigbee2MQTT bridge is one account carrying the things adopted behind
// it: the bulb's description comes from the bridge's device list, a set
// is answered by the next state carrying what was set (timeout when none
// comes), its remote is a local change, its availability its presence.
func TestZigbee2MQTTAdoption(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob")
	ctx := context.Background()
	nopw := func() (string, error) { return "", nil }
	for _, name := range []string{"z2m", "bulb", "plug"} {
		inst.AddUser(t, name, password(name), true)
	}
	if _, _, err := inst.Adopt(ctx, "bulb", "zigbee2mqtt", "bulb", "z2m", nopw); err == nil || !strings.Contains(err.Error(), "not adopted") {
		t.Errorf("Adopt behind a bridge not adopted = %v", err)
	}
	if _, _, err := inst.Adopt(ctx, "z2m", "zigbee2mqtt", "zigbee2mqtt", "", nopw); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inst.Adopt(ctx, "plug", "tasmota", "plug", "", nopw); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inst.Adopt(ctx, "bulb", "zigbee2mqtt", "bulb", "plug", nopw); err == nil {
		t.Error("Adopt behind a Tasmota plug succeeded")
	}
	code, _, err := inst.Adopt(ctx, "bulb", "zigbee2mqtt", "bulb", "z2m", nopw)
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	alice.OK("bind_thing", wire.BindThingReq{Thing: "bulb", Code: code}, nil)
	if _, err := servertest.TryDial(t, inst.MQTT, "bulb", password("bulb"), "bulb-itself"); err == nil {
		t.Error("the bulb's account connected by itself; want it refused (its device is behind the bridge)")
	}

	br, err := devicesim.StartBridge(devicesim.BridgeConfig{Broker: inst.MQTT, User: "z2m", Password: password("z2m"), ClientID: "z2m-pi", Bulb: "bulb"})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	if st := bulbFeedback(t, alice, of(thing.CauseLocal, thing.KindState)); string(st.Props["state"]) != "false" || string(st.Props["brightness"]) != "100" {
		t.Fatalf("the bulb's first state = %+v", st)
	}
	var d thing.Description
	alice.OK(wire.MethodDescription, thing.ThingReq{Thing: "bulb"}, &d)
	if d.Properties["state"] == nil || d.Properties["brightness"] == nil || !d.Properties["linkquality"].ReadOnly || d.Actions["toggle"] == nil {
		t.Fatalf("the bulb's description = %+v", d)
	}

	send := func(c thing.Command) string {
		m := commandMsg("alice", "bulb", c)
		send(t, alice, m)
		return m.MsgId
	}
	id := send(personCommand("alice", "toggle"))
	if ack := bulbFeedback(t, alice, of(id, thing.KindAck)); ack.Status != thing.AckAccepted {
		t.Fatalf("ack = %+v", ack)
	}
	if st := bulbFeedback(t, alice, of(id, thing.KindState)); string(st.Props["state"]) != "true" {
		t.Fatalf("state caused by toggle = %+v", st)
	}
	if res := bulbFeedback(t, alice, of(id, thing.KindResult)); res.Status != thing.ResultDone || string(res.Output) != `{"state":true}` {
		t.Fatalf("result of toggle = %+v", res)
	}
	if !br.On() || !slices.Contains(br.Received(), `zigbee2mqtt/bulb/set {"state":"TOGGLE"}`) {
		t.Fatalf("the bridge got %q, bulb on %v", br.Received(), br.On())
	}
	c := personCommand("alice", "")
	c.Action, c.Write = "", map[string]json.RawMessage{"brightness": json.RawMessage("40")}
	id = send(c)
	if res := bulbFeedback(t, alice, of(id, thing.KindResult)); res.Status != thing.ResultDone || string(res.Output) != `{"brightness":40}` {
		t.Fatalf("result of brightness 40 = %+v", res)
	}

	// Its remote: a local change.
	if err := br.Switch(false); err != nil {
		t.Fatal(err)
	}
	if st := bulbFeedback(t, alice, of(thing.CauseLocal, thing.KindState)); string(st.Props["state"]) != "false" {
		t.Fatalf("state after the remote = %+v", st)
	}

	// A set nobody answers: timeout.
	br.Mute(true)
	id = send(personCommand("alice", "toggle"))
	if res := bulbFeedback(t, alice, of(id, thing.KindResult)); res.Status != thing.ResultTimeout {
		t.Fatalf("result of an unanswered set = %+v, want timeout", res)
	}
	br.Mute(false)

	// Availability: offline to alice, commands rejected.
	if err := br.SetAvailability(false); err != nil {
		t.Fatal(err)
	}
	if p := presenceOf(t, alice, "z2m-pi"); p.User != "bulb" || p.Status != "offline" {
		t.Fatalf("presence after availability offline = %+v", p)
	}
	id = send(personCommand("alice", "toggle"))
	if ack := bulbFeedback(t, alice, of(id, thing.KindAck)); ack.Status != thing.AckRejected || !strings.Contains(ack.Error, "offline") {
		t.Fatalf("ack while offline = %+v", ack)
	}
	if err := br.SetAvailability(true); err != nil {
		t.Fatal(err)
	}
	if p := presenceOf(t, alice, "z2m-pi"); p.User != "bulb" || p.Status != "online" {
		t.Fatalf("presence after availability online = %+v", p)
	}

	// The bridge keeps to its base topic; bob cannot command the bulb.
	n := len(br.Received())
	if err := br.Publish("stat/plug/RESULT", `{"POWER":"ON"}`); err != nil {
		t.Fatal(err)
	}
	if e := bob.Fail(wire.MethodSend, commandMsg("bob", "bulb", personCommand("bob", "toggle"))); !strings.HasPrefix(e, "forbidden") {
		t.Errorf("bob's command to the bulb = %q, want forbidden", e)
	}
	time.Sleep(100 * time.Millisecond)
	if got := br.Received(); len(got) != n {
		t.Errorf("the bridge got %q, want nothing new", got[n:])
	}

	// The bridge drops off: the bulb behind it is offline too.
	br.Close()
	if p := presenceOf(t, alice, "z2m-pi"); p.User != "bulb" || p.Status != "offline" {
		t.Fatalf("the bulb's presence after its bridge dropped = %+v", p)
	}
	br2, err := devicesim.StartBridge(devicesim.BridgeConfig{Broker: inst.MQTT, User: "z2m", Password: password("z2m"), ClientID: "z2m-pi", Bulb: "bulb"})
	if err != nil {
		t.Fatal(err)
	}
	defer br2.Close()
	if p := presenceOf(t, alice, "z2m-pi"); p.User != "bulb" || p.Status != "online" {
		t.Fatalf("the bulb's presence after its bridge came back = %+v", p)
	}
}
