package main_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/adapter/devicesim"
	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// adoptPlug adopts a Tasmota plug as thing name (its Tasmota topic the
// same) and returns its pairing code.
func adoptPlug(t *testing.T, data, name string) string {
	t.Helper()
	code, out := mqtter(t, []string{"MQTTER_PASSWORD=" + name + "-pw"}, "", "thing", "adopt", name, "--data", data,
		"--profile", "tasmota", "--topic", name)
	pc := pairingCode.FindStringSubmatch(out)
	if code != 0 || pc == nil {
		t.Fatalf("thing adopt %s = exit %d: %s; want a pairing code", name, code, out)
	}
	return pc[1]
}

// The three kinds of participant in one chain: alice's node (the built
// binary) switches on a Tasmota plug the server adopted (stock firmware,
// simulated); the plug's new state fires alice's rule "plug power on →
// mcu brew" on the server; the microcontroller (a plain MQTT client, a
// thing account) gets the command from the plug with the rule as its
// grant and alice's chain as its trace, acks and answers done; alice sees
// its result in the chain of her command to the plug. Nothing runs twice.
// A stranger's plug switching, or publishing on alice's plug's topics,
// fires nothing.
func TestMixedChain(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice", "bob")
	plugCode := adoptPlug(t, data, "plug")
	bobPlugCode := adoptPlug(t, data, "bobplug")
	m := pairingCode.FindStringSubmatch(addUser(t, data, "mcu", "mcu-pw", "--thing"))
	if m == nil {
		t.Fatal("user add mcu --thing printed no pairing code")
	}
	srv := startServer(t, data)
	broker := "tcp://" + srv.mqtt
	alice := startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	bob := startNode(t, broker, t.TempDir(), "bob", "bob-pw")

	plug, err := devicesim.StartPlug(devicesim.PlugConfig{Broker: broker, User: "plug", Password: "plug-pw",
		ClientID: "DVES_MIX001", Topic: "plug", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plug.Close()
	bobPlug, err := devicesim.StartPlug(devicesim.PlugConfig{Broker: broker, User: "bobplug", Password: "bobplug-pw",
		ClientID: "DVES_MIX002", Topic: "bobplug", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer bobPlug.Close()
	mcu := dialPlain(t, broker, "mcu", "mcu-esp32")
	mcu.describe([]string{"brew"})

	alice.must("thing", "bind", "plug", plugCode)
	alice.must("thing", "bind", "mcu", m[1])
	bob.must("thing", "bind", "bobplug", bobPlugCode)
	alice.must("thing", "associate", "plug", "mcu")
	alice.eventually(20*time.Second, "the plug's description", func() (bool, string) {
		code, out := alice.cli("thing", "describe", "plug")
		return code == 0 && strings.Contains(out, "power"), out
	})
	alice.must("thing", "rule", "add", "plug", "mcu", "--when", "prop:power", "--if", "eq true", "--then", "brew", "--id", "plug-mcu")

	// alice switches the plug on; the rule makes the mcu brew.
	done := make(chan cliResult, 1)
	go func() { done <- alice.runCLI("thing", "do", "plug", "--set", "power=true", "--timeout", "20s") }()
	n, c := mcu.command()
	if r := <-done; r.code != 0 || !strings.Contains(r.stdout, "done") {
		t.Fatalf("thing do plug --set power=true = exit %d\n%s%s, want done", r.code, r.stdout, r.stderr)
	}
	cmds, err := alice.client().Commands(t.Context(), "plug", 1)
	if err != nil || len(cmds) == 0 {
		t.Fatalf("alice's commands to the plug: %v, %v", cmds, err)
	}
	id := cmds[0].MsgId
	if n.Feeds != wire.DM("mcu", "plug") || n.Message.From != "plug" || n.Message.Device != wire.ServerDevice ||
		c.Action != "brew" || c.Grant == nil || c.Grant.ID != "plug-mcu" || c.Grant.A != "plug" || c.Grant.B != "mcu" ||
		c.Trace.Origin != "alice" || c.Trace.OriginMsg != id || c.Trace.Hops != 1 || c.Trace.Rule != "plug-mcu" {
		t.Fatalf("the mcu got %+v (grant %+v) from %s (Device %q) in %s; want the plug's brew under alice's rule, one hop down her command %s",
			c, c.Grant, n.Message.From, n.Message.Device, n.Feeds, id)
	}
	mcu.answer(n, c)

	// alice sees the mcu's result in her command's chain, over the CLI's JSON.
	var row node.CommandRow
	alice.eventually(20*time.Second, "the mcu's result in alice's command's chain", func() (bool, string) {
		var rows []node.CommandRow
		out := alice.must("thing", "commands", "plug", "--json")
		if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) == 0 {
			return false, out
		}
		row = rows[0]
		return slices.ContainsFunc(row.Chain, func(l localdb.ChainLink) bool {
			return l.Thing == "mcu" && l.Kind == thing.KindResult
		}), out
	})
	if row.MsgId != id || row.State != "done" {
		t.Errorf("alice's command to the plug = %+v, want %s done", row, id)
	}
	count := map[string]int{}
	for _, l := range row.Chain {
		key := l.Thing + " " + l.Kind + " " + l.Status
		count[key]++
		switch {
		case l.Thing == "mcu" && (l.Hops != 1 || l.Cmd != n.Message.MsgId):
			t.Errorf("the chain's link %+v, want hops 1 and the mcu's command %s", l, n.Message.MsgId)
		case l.Thing == "plug" && (l.Hops != 0 || string(l.Body) != `{"power":true}`):
			t.Errorf("the chain's link %+v, want the plug's state power true at hop 0", l)
		}
	}
	if count["plug state "] != 1 || count["mcu ack accepted"] != 1 || count["mcu result done"] != 1 || len(row.Chain) != 3 {
		t.Errorf("alice's chain = %+v, want the plug's state, the mcu's ack accepted and result done, once each", row.Chain)
	}
	plugFb := alice.feedback("plug", id)
	if !slices.ContainsFunc(plugFb, func(f thing.Feedback) bool { return f.Kind == thing.KindResult && f.Status == thing.ResultDone }) ||
		!slices.ContainsFunc(plugFb, func(f thing.Feedback) bool { return f.Kind == thing.KindState && string(f.Props["power"]) == "true" }) {
		t.Errorf("alice's feedback from the plug about %s = %+v, want its state power true and its result done", id, plugFb)
	}

	// No command ran twice: the plug switched once, the mcu got one command.
	if got := plug.Received(); len(got) != 1 || !plug.Power() {
		t.Errorf("the plug got %q (power %v), want one command, on", got, plug.Power())
	}
	for _, p := range mcu.cl.Drain(time.Second) {
		if strings.Contains(string(p.Body), `"MsgType":"command"`) && !strings.Contains(string(p.Body), n.Message.MsgId) {
			t.Errorf("the mcu got a second command on %s: %s", p.Topic, p.Body)
		}
	}

	// A stranger's plug: bob switches his own on, and it publishes as
	// if it were alice's; alice's rule does not fire.
	if r := bob.runCLI("thing", "do", "bobplug", "--set", "power=true", "--timeout", "10s"); r.code != 0 || !bobPlug.Power() {
		t.Fatalf("bob's thing do bobplug --set power=true = exit %d\n%s%s, want done", r.code, r.stdout, r.stderr)
	}
	for _, topic := range []string{"stat/plug/RESULT", "tele/plug/STATE"} {
		if err := bobPlug.Publish(topic, `{"POWER":"OFF"}`, false); err != nil {
			t.Fatal(err)
		}
		if err := bobPlug.Publish(topic, `{"POWER":"ON"}`, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range mcu.cl.Drain(2 * time.Second) {
		if strings.Contains(string(p.Body), `"MsgType":"command"`) {
			t.Errorf("a stranger's plug made the mcu a command on %s: %s", p.Topic, p.Body)
		}
	}
	if out := alice.must("thing", "state", "plug"); !strings.Contains(out, "power = true") {
		t.Errorf("alice's plug's state = %q after the stranger's publishes, want power = true", out)
	}
	cmds, err = alice.client().Commands(t.Context(), "plug", 5)
	if err != nil || len(cmds) != 1 {
		t.Errorf("alice's commands to the plug = %s, %v; want the one", fmt.Sprint(cmds), err)
	}
}
