package adapter

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/mqtter/mqtter/thing"
)

// bridgeDevices is a bridge's device list as Zigbee2MQTT publishes it on
// <base>/bridge/devices: the coordinator and a dimmable bulb.
const bridgeDevices = `[
 {"ieee_address":"0x00124b0000000001","type":"Coordinator","friendly_name":"Coordinator","definition":null},
 {"ieee_address":"0x0017880100000002","type":"Router","friendly_name":"bulb","supported":true,
  "definition":{"model":"LED1545G12","vendor":"IKEA","description":"TRADFRI bulb E27",
   "exposes":[
    {"type":"light","features":[
      {"type":"binary","name":"state","property":"state","access":7,"value_on":"ON","value_off":"OFF","value_toggle":"TOGGLE"},
      {"type":"numeric","name":"brightness","property":"brightness","access":7,"value_min":0,"value_max":254},
      {"type":"composite","name":"color_xy","property":"color","access":7,"features":[{"type":"numeric","name":"x","property":"x","access":7}]}]},
    {"type":"enum","name":"effect","property":"effect","access":2,"values":["blink","breathe"]},
    {"type":"numeric","name":"linkquality","property":"linkquality","access":1,"unit":"lqi","value_min":0,"value_max":255}]}}]`

func bridge(t testing.TB) *Zigbee2MQTT {
	t.Helper()
	z, err := NewZigbee2MQTT("zigbee2mqtt")
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestZigbee2MQTT(t *testing.T) {
	z := bridge(t)
	if _, err := z.Map("bulb", &thing.Command{Action: "toggle"}); !errors.Is(err, ErrUnmapped) {
		t.Fatalf("Map before the device list = %v, want ErrUnmapped", err)
	}
	if rs, err := z.Parse("zigbee2mqtt/bulb", []byte(`{"state":"ON"}`)); err != nil || len(rs) != 0 {
		t.Fatalf("Parse of an unlisted device's state = %v, %v; want nothing", rs, err)
	}
	rs, err := z.Parse("zigbee2mqtt/bridge/devices", []byte(bridgeDevices))
	if err != nil || len(rs) != 1 || rs[0].Device != "bulb" {
		t.Fatalf("Parse(bridge/devices) = %+v, %v; want the bulb", rs, err)
	}
	s := rs[0].Schemas
	if s["state"].Type != "boolean" || s["brightness"].Type != "number" || *s["brightness"].Maximum != 254 ||
		!s["linkquality"].ReadOnly || s["effect"].Type != "string" || s["color"] != nil || rs[0].Actions["toggle"] == nil {
		t.Fatalf("the bulb's schemas %+v, actions %v", s, rs[0].Actions)
	}
	if d := Describe(z.Title("bulb"), "bulb", 1, s, rs[0].Actions); d.Validate() != nil {
		t.Fatal(d.Validate())
	}

	for _, tt := range []struct {
		topic, payload string
		want           Report
		err            error
	}{
		{topic: "zigbee2mqtt/bulb", payload: `{"state":"OFF","brightness":40,"linkquality":99,"update":{"state":"idle"}}`,
			want: Report{Device: "bulb", Props: map[string]json.RawMessage{"state": json.RawMessage("false"), "brightness": json.RawMessage("40"), "linkquality": json.RawMessage("99")}}},
		{topic: "zigbee2mqtt/bulb/availability", payload: `{"state":"offline"}`, want: Report{Device: "bulb", Presence: Offline}},
		{topic: "zigbee2mqtt/bulb/availability", payload: `online`, want: Report{Device: "bulb", Presence: Online}},
		{topic: "zigbee2mqtt/bridge/state", payload: `{"state":"online"}`, want: Report{Presence: Online}},
		{topic: "zigbee2mqtt/bridge/state", payload: `maybe`, err: ErrBadPayload},
		{topic: "zigbee2mqtt/bulb", payload: `"ON"`, err: ErrBadPayload},
		{topic: "zigbee2mqtt/bridge/devices", payload: `{}`, err: ErrBadPayload},
		{topic: "other/bulb", payload: `{}`, err: ErrNotOwn},
	} {
		rs, err := z.Parse(tt.topic, []byte(tt.payload))
		if !errors.Is(err, tt.err) {
			t.Errorf("Parse(%s, %s) = %v, want %v", tt.topic, tt.payload, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if len(rs) != 1 || rs[0].Device != tt.want.Device || rs[0].Presence != tt.want.Presence || len(rs[0].Props) != len(tt.want.Props) {
			t.Errorf("Parse(%s, %s) = %+v, want %+v", tt.topic, tt.payload, rs, tt.want)
			continue
		}
		for k, v := range tt.want.Props {
			if string(rs[0].Props[k]) != string(v) {
				t.Errorf("Parse(%s): %s = %s, want %s", tt.topic, k, rs[0].Props[k], v)
			}
		}
	}

	for _, tt := range []struct {
		cmd, payload string
		err          error
	}{
		{cmd: `{"action":"toggle"}`, payload: `{"state":"TOGGLE"}`},
		{cmd: `{"write":{"state":true,"brightness":40}}`, payload: `{"brightness":40,"state":"ON"}`},
		{cmd: `{"write":{"effect":"blink"}}`, payload: `{"effect":"blink"}`},
		{cmd: `{"write":{"brightness":300}}`, err: ErrUnmapped},
		{cmd: `{"write":{"linkquality":3}}`, err: ErrUnmapped},
		{cmd: `{"write":{"effect":"dance"}}`, err: ErrUnmapped},
		{cmd: `{"action":"fly"}`, err: ErrUnmapped},
	} {
		var c thing.Command
		json.Unmarshal([]byte(tt.cmd), &c)
		out, err := z.Map("bulb", &c)
		if !errors.Is(err, tt.err) {
			t.Errorf("Map(%s) = %v, want %v", tt.cmd, err, tt.err)
			continue
		}
		if err == nil && (len(out.Publishes) != 1 || out.Publishes[0].Topic != "zigbee2mqtt/bulb/set" || string(out.Publishes[0].Payload) != tt.payload) {
			t.Errorf("Map(%s) = %+v, want zigbee2mqtt/bulb/set %s", tt.cmd, out.Publishes, tt.payload)
		}
	}
	for filter, want := range map[string]bool{"zigbee2mqtt/#": true, "zigbee2mqtt/bridge/request/#": true, "#": false, "other/#": false, "zigbee2mqtt": false} {
		if got := z.MaySubscribe(filter, "z"); got != want {
			t.Errorf("MaySubscribe(%q) = %v, want %v", filter, got, want)
		}
	}
}

// Whatever the bridge publishes (its device list first, then anything),
// Parse must not panic, must refuse with the package's errors, and what it
// reads must fit its schemas.
func FuzzZigbee2MQTTParse(f *testing.F) {
	f.Add("zigbee2mqtt/bridge/devices", []byte(bridgeDevices))
	f.Add("zigbee2mqtt/bulb", []byte(`{"state":"ON","brightness":254}`))
	f.Add("zigbee2mqtt/bulb/availability", []byte(`{"state":"online"}`))
	f.Add("zigbee2mqtt/bridge/state", []byte(`offline`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		z := bridge(t)
		if _, err := z.Parse("zigbee2mqtt/bridge/devices", []byte(bridgeDevices)); err != nil {
			t.Fatal(err)
		}
		rs, err := z.Parse(topic, payload)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) && !errors.Is(err, ErrNotOwn) {
				t.Fatalf("Parse(%q, %q) = %v", topic, payload, err)
			}
			return
		}
		if len(rs) > MaxBridgeDevices+1 {
			t.Fatalf("Parse(%q) gave %d reports", topic, len(rs))
		}
		checkReports(t, z, topic, payload, rs)
		for _, r := range rs {
			if r.Device != "" {
				z.Map(r.Device, &thing.Command{Action: "toggle"})
			}
		}
	})
}

// Whatever a command says, Map refuses it with ErrUnmapped or maps it to
// one set of the bulb whose every value its device list allows.
func FuzzZigbee2MQTTMap(f *testing.F) {
	f.Add(`{"action":"toggle"}`)
	f.Add(`{"write":{"state":true,"brightness":40}}`)
	f.Add(`{"write":{"effect":"blink"}}`)
	z := bridge(f)
	if _, err := z.Parse("zigbee2mqtt/bridge/devices", []byte(bridgeDevices)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		var c thing.Command
		if json.Unmarshal([]byte(cmd), &c) != nil {
			return
		}
		out, err := z.Map("bulb", &c)
		if err != nil {
			if !errors.Is(err, ErrUnmapped) {
				t.Fatalf("Map(%s) = %v", cmd, err)
			}
			return
		}
		if len(out.Publishes) != 1 || out.Publishes[0].Topic != "zigbee2mqtt/bulb/set" {
			t.Fatalf("Map(%s) = %+v", cmd, out.Publishes)
		}
		var set map[string]json.RawMessage
		if err := json.Unmarshal(out.Publishes[0].Payload, &set); err != nil || len(set) != len(out.Want) {
			t.Fatalf("Map(%s) sets %s, want %v", cmd, out.Publishes[0].Payload, out.Want)
		}
	})
}
