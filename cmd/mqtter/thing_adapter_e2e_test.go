package main_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/adapter/devicesim"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// A Tasmota plug on its stock firmware (simulated, speaking Tasmota's
// MQTT dialect) adopted with `mqtter thing adopt`, bound and commanded by
// alice's node like any thing: describe, do toggle, state, its button,
// its last will; bob, a stranger, cannot command it; an expired command
// never reaches it.
func TestTasmotaPlugAdopted(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice", "bob")
	if code, out := mqtter(t, nil, "", "thing", "adopt", "plug", "--data", data, "--profile", "tasmota"); code != 2 {
		t.Errorf("thing adopt without --topic = exit %d (%s), want 2", code, out)
	}
	if code, out := mqtter(t, nil, "", "thing", "adopt", "alice", "--data", data, "--topic", "alice"); code != 1 || !strings.Contains(out, "not a thing") {
		t.Errorf("thing adopt alice (a person) = exit %d (%s), want 1, not a thing", code, out)
	}
	if code, out := mqtter(t, []string{"MQTTER_PASSWORD=plug-pw"}, "", "thing", "adopt", "plug", "--data", data, "--profile", "zwave", "--topic", "plug"); code != 1 || !strings.Contains(out, "unknown profile") {
		t.Errorf("thing adopt --profile zwave = exit %d (%s), want 1, unknown profile", code, out)
	}
	code, out := mqtter(t, []string{"MQTTER_PASSWORD=plug-pw"}, "", "thing", "adopt", "plug", "--data", data, "--profile", "tasmota", "--topic", "plug")
	pc := pairingCode.FindStringSubmatch(out)
	if code != 0 || pc == nil || !strings.Contains(out, "added thing plug") {
		t.Fatalf("thing adopt plug = exit %d: %s; want the thing added with a pairing code", code, out)
	}
	srv := startServer(t, data)
	alice := startNode(t, "tcp://"+srv.mqtt, t.TempDir(), "alice", "alice-pw")
	bob := startNode(t, "tcp://"+srv.mqtt, t.TempDir(), "bob", "bob-pw")
	alice.must("thing", "bind", "plug", pc[1])

	plug, err := devicesim.StartPlug(devicesim.PlugConfig{Broker: "tcp://" + srv.mqtt, User: "plug", Password: "plug-pw",
		ClientID: "DVES_E2E001", Topic: "plug", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plug.Close()
	alice.eventually(20*time.Second, "the plug's description", func() (bool, string) {
		code, out := alice.cli("thing", "describe", "plug")
		return code == 0 && strings.Contains(out, "power") && strings.Contains(out, "toggle"), out
	})

	r := alice.runCLI("thing", "do", "plug", "toggle", "--timeout", "10s")
	if r.code != 0 || !strings.Contains(r.stdout, "done") {
		t.Fatalf("thing do plug toggle = exit %d\n%s%s, want done", r.code, r.stdout, r.stderr)
	}
	if !plug.Power() || !slices.Contains(plug.Received(), "cmnd/plug/POWER TOGGLE") {
		t.Fatalf("the plug got %q, power %v; want POWER TOGGLE, on", plug.Received(), plug.Power())
	}
	if out := alice.must("thing", "state", "plug"); !strings.Contains(out, "power = true") {
		t.Errorf("thing state plug = %q, want power = true", out)
	}

	// Its button: a state change caused locally.
	if err := plug.Press(); err != nil {
		t.Fatal(err)
	}
	alice.eventually(20*time.Second, "the button's state", func() (bool, string) {
		out := alice.must("thing", "state", "plug")
		return strings.Contains(out, "power = false") && len(alice.feedback("plug", thing.CauseLocal)) > 0, out
	})

	// An adopted device keeps to its own topics.
	for filter, want := range map[string]byte{"feeds/dm/alice": 0x80, "cmnd/#": 0x80, "presence/alice": 0x80} {
		if got, err := plug.Subscribe(filter); err != nil || got != want {
			t.Errorf("the plug's SUBSCRIBE %s = %#x, %v; want %#x", filter, got, err, want)
		}
	}

	// bob is no owner; an expired command never reaches the plug.
	n := len(plug.Received())
	if r := bob.runCLI("thing", "do", "plug", "toggle", "--timeout", "5s"); r.code == 0 {
		t.Errorf("bob's thing do plug toggle = exit 0\n%s, want a refusal", r.stdout)
	}
	if r := alice.runCLI("thing", "do", "plug", "toggle", "--timeout", "1ms"); r.code == 0 {
		t.Errorf("thing do plug toggle --timeout 1ms = exit 0\n%s, want timeout", r.stdout)
	}
	time.Sleep(300 * time.Millisecond)
	if got := plug.Received(); len(got) != n {
		t.Errorf("the plug got %q from bob's or an expired command", got[n:])
	}

	// Its last will: offline to alice, and commands rejected.
	if err := plug.Publish("tele/plug/LWT", "Offline", true); err != nil {
		t.Fatal(err)
	}
	alice.eventually(20*time.Second, "the plug offline", func() (bool, string) {
		code, out := alice.cli("peers", "--json")
		var peers []wire.PeerInfo
		json.Unmarshal([]byte(out), &peers)
		for _, p := range peers {
			if p.Device == "DVES_E2E001" {
				return code == 0 && p.Status == "offline", fmt.Sprintf("%+v", p)
			}
		}
		return false, out
	})
	if r := alice.runCLI("thing", "do", "plug", "toggle", "--timeout", "5s"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "offline") {
		t.Errorf("thing do plug toggle while offline = exit %d\n%s%s, want rejected: offline", r.code, r.stdout, r.stderr)
	}
}

// A Zigbee2MQTT bridge (simulated) adopted with `mqtter thing adopt`, and
// its bulb adopted behind it as a thing of its own: alice's node commands
// the bulb like any thing; a set's result is the bridge's next state.
func TestZigbee2MQTTBulbAdopted(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice")
	if code, out := mqtter(t, []string{"MQTTER_PASSWORD=bulb-pw"}, "", "thing", "adopt", "bulb", "--data", data, "--profile", "zigbee2mqtt", "--topic", "bulb", "--bridge", "z2m"); code != 1 || !strings.Contains(out, "not adopted") {
		t.Errorf("thing adopt behind a bridge not adopted = exit %d (%s), want 1", code, out)
	}
	if code, out := mqtter(t, []string{"MQTTER_PASSWORD=z2m-pw"}, "", "thing", "adopt", "z2m", "--data", data, "--profile", "zigbee2mqtt", "--topic", "zigbee2mqtt"); code != 0 {
		t.Fatalf("thing adopt z2m = exit %d: %s", code, out)
	}
	code, out := mqtter(t, []string{"MQTTER_PASSWORD=bulb-pw"}, "", "thing", "adopt", "bulb", "--data", data, "--profile", "zigbee2mqtt", "--topic", "bulb", "--bridge", "z2m")
	pc := pairingCode.FindStringSubmatch(out)
	if code != 0 || pc == nil || !strings.Contains(out, "behind bridge z2m") {
		t.Fatalf("thing adopt bulb --bridge z2m = exit %d: %s", code, out)
	}
	srv := startServer(t, data)
	alice := startNode(t, "tcp://"+srv.mqtt, t.TempDir(), "alice", "alice-pw")
	alice.must("thing", "bind", "bulb", pc[1])
	br, err := devicesim.StartBridge(devicesim.BridgeConfig{Broker: "tcp://" + srv.mqtt, User: "z2m", Password: "z2m-pw", ClientID: "z2m-e2e", Bulb: "bulb"})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	alice.eventually(20*time.Second, "the bulb's description", func() (bool, string) {
		code, out := alice.cli("thing", "describe", "bulb")
		return code == 0 && strings.Contains(out, "brightness") && strings.Contains(out, "toggle"), out
	})
	if r := alice.runCLI("thing", "do", "bulb", "toggle", "--timeout", "10s"); r.code != 0 || !strings.Contains(r.stdout, "done") {
		t.Fatalf("thing do bulb toggle = exit %d\n%s%s, want done", r.code, r.stdout, r.stderr)
	}
	if r := alice.runCLI("thing", "do", "bulb", "--set", "brightness=40", "--timeout", "10s"); r.code != 0 || !strings.Contains(r.stdout, "done") {
		t.Fatalf("thing do bulb --set brightness=40 = exit %d\n%s%s, want done", r.code, r.stdout, r.stderr)
	}
	if !br.On() || !slices.Contains(br.Received(), `zigbee2mqtt/bulb/set {"brightness":40}`) {
		t.Fatalf("the bridge got %q, bulb on %v", br.Received(), br.On())
	}
	alice.eventually(20*time.Second, "the bulb's state", func() (bool, string) {
		out := alice.must("thing", "state", "bulb")
		return strings.Contains(out, "state = true") && strings.Contains(out, "brightness = 40"), out
	})
}
