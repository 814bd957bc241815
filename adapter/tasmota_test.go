package adapter

import (
	"encoding/json"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/mqtter/mqtter/thing"
)

func plug(t testing.TB) *Tasmota {
	t.Helper()
	p, err := NewTasmota("plug")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTasmotaParse(t *testing.T) {
	p := plug(t)
	tests := []struct {
		topic, payload string
		presence       string
		props          map[string]string
		answer         bool
		failure        string
		err            error
	}{
		{topic: "tele/plug/LWT", payload: "Online", presence: Online},
		{topic: "tele/plug/LWT", payload: "Offline", presence: Offline},
		{topic: "tele/plug/LWT", payload: "maybe", err: ErrBadPayload},
		{topic: "tele/plug/STATE", payload: `{"Time":"2024-01-01T00:00:00","Uptime":"0T00:01:00","POWER":"ON","Dimmer":40,"Wifi":{"RSSI":80}}`,
			props: map[string]string{"power": "true", "dimmer": "40"}},
		{topic: "tele/plug/STATE", payload: `{"POWER1":"OFF","POWER2":"ON","POWER9":"ON","Dimmer":140}`,
			props: map[string]string{"power1": "false", "power2": "true"}},
		{topic: "stat/plug/RESULT", payload: `{"POWER":"OFF"}`, props: map[string]string{"power": "false"}, answer: true},
		{topic: "stat/plug/RESULT", payload: `{"Command":"Unknown"}`, props: map[string]string{}, answer: true, failure: "command unknown"},
		{topic: "stat/plug/POWER", payload: "ON", props: map[string]string{"power": "true"}},
		{topic: "stat/plug/POWER", payload: "half", err: ErrBadPayload},
		{topic: "tele/plug/SENSOR", payload: `{"Time":"x","ENERGY":{"Power":12,"Voltage":229.5,"TotalStartTime":"x"},"AM2301":{"Temperature":21.5}}`,
			props: map[string]string{"energy_power": "12", "energy_voltage": "229.5", "am2301_temperature": "21.5"}},
		{topic: "tele/plug/STATE", payload: `[1]`, err: ErrBadPayload},
		{topic: "tele/plug/STATE", payload: `null`, err: ErrBadPayload},
		{topic: "tele/plug/INFO1", payload: `{"Module":"Sonoff Basic"}`},
		{topic: "tele/other/STATE", payload: `{"POWER":"ON"}`, err: ErrNotOwn},
		{topic: "stat/plug", payload: `ON`, err: ErrNotOwn},
		{topic: "foo/plug/STATE", payload: `{}`, err: ErrNotOwn},
	}
	for _, tt := range tests {
		t.Run(tt.topic+" "+tt.payload, func(t *testing.T) {
			rs, err := p.Parse(tt.topic, []byte(tt.payload))
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			var r Report
			if len(rs) > 1 {
				t.Fatalf("Parse = %d reports, want at most one", len(rs))
			} else if len(rs) == 1 {
				r = rs[0]
			}
			got := map[string]string{}
			for k, v := range r.Props {
				got[k] = string(v)
				if r.Schemas[k] == nil {
					t.Errorf("property %s has no schema", k)
				} else if err := r.Schemas[k].Check(v); err != nil {
					t.Errorf("property %s = %s does not fit its own schema: %v", k, v, err)
				}
			}
			if tt.props == nil {
				tt.props = map[string]string{}
			}
			if r.Presence != tt.presence || !maps.Equal(got, tt.props) || r.Answer != tt.answer || r.Failure != tt.failure {
				t.Errorf("Parse = %+v props %v, want presence %q props %v answer %v failure %q", r, got, tt.presence, tt.props, tt.answer, tt.failure)
			}
		})
	}
}

func TestTasmotaMap(t *testing.T) {
	p := plug(t)
	tests := []struct {
		cmd     string
		topic   string
		payload string
		want    []string
		err     error
	}{
		{cmd: `{"action":"toggle"}`, topic: "cmnd/plug/POWER", payload: "TOGGLE", want: []string{"power"}},
		{cmd: `{"write":{"power":true}}`, topic: "cmnd/plug/POWER", payload: "ON", want: []string{"power"}},
		{cmd: `{"write":{"power2":false}}`, topic: "cmnd/plug/POWER2", payload: "OFF", want: []string{"power2"}},
		{cmd: `{"write":{"dimmer":40}}`, topic: "cmnd/plug/Dimmer", payload: "40", want: []string{"dimmer"}},
		{cmd: `{"write":{"dimmer":40,"power":true}}`, topic: "cmnd/plug/Backlog", payload: "Dimmer 40; POWER ON", want: []string{"dimmer", "power"}},
		{cmd: `{"write":{"dimmer":101}}`, err: ErrUnmapped},
		{cmd: `{"write":{"dimmer":4.5}}`, err: ErrUnmapped},
		{cmd: `{"write":{"power":"ON"}}`, err: ErrUnmapped},
		{cmd: `{"write":{"energy_power":3}}`, err: ErrUnmapped},
		{cmd: `{"action":"explode"}`, err: ErrUnmapped},
		{cmd: `{"action":"toggle","input":{"x":1}}`, err: ErrUnmapped},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			var c thing.Command
			if err := json.Unmarshal([]byte(tt.cmd), &c); err != nil {
				t.Fatal(err)
			}
			got, err := p.Map("", &c)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Map(%s) = %v, want %v", tt.cmd, err, tt.err)
			}
			if err != nil {
				return
			}
			if len(got.Publishes) != 1 || got.Publishes[0].Topic != tt.topic || string(got.Publishes[0].Payload) != tt.payload {
				t.Errorf("Map(%s) = %+v, want %s %q", tt.cmd, got.Publishes, tt.topic, tt.payload)
			}
			if !equalStrings(got.Want, tt.want) {
				t.Errorf("Map(%s).Want = %v, want %v", tt.cmd, got.Want, tt.want)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTasmotaTopics(t *testing.T) {
	p := plug(t)
	for filter, want := range map[string]bool{
		"cmnd/plug/#": true, "cmnd/tasmotas/#": true, "cmnd/DVES_1A2B3C_fb/#": true,
		"cmnd/other/#": false, "cmnd/#": false, "#": false, "stat/plug/#": false, "cmnd/other_fb/#": false,
	} {
		if got := p.MaySubscribe(filter, "DVES_1A2B3C"); got != want {
			t.Errorf("MaySubscribe(%q) = %v, want %v", filter, got, want)
		}
	}
	for _, topic := range []string{"", "a/b", "tasmotas", "x+", "#"} {
		if _, err := NewTasmota(topic); err == nil {
			t.Errorf("NewTasmota(%q) accepted", topic)
		}
	}
	if _, err := New("nosuch", "plug"); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("New(nosuch) = %v, want ErrUnknownProfile", err)
	}
}

// The description built from what a plug announced validates, offers
// toggle and accepts the commands the profile maps.
func TestTasmotaDescribe(t *testing.T) {
	p := plug(t)
	rs, err := p.Parse("tele/plug/STATE", []byte(`{"POWER":"ON","Dimmer":10}`))
	if err != nil || len(rs) != 1 {
		t.Fatal(rs, err)
	}
	d := Describe(p.Title(""), "plug", 1, rs[0].Schemas, rs[0].Actions)
	if err := d.Validate(); err != nil {
		t.Fatalf("description %+v: %v", d, err)
	}
	for _, cmd := range []thing.Command{{Action: "toggle"}, {Write: map[string]json.RawMessage{"dimmer": json.RawMessage("50")}}} {
		cmd.Expires = time.Now().Add(time.Minute).UnixMilli()
		if err := d.CheckCommand(&cmd); err != nil {
			t.Errorf("CheckCommand(%+v) = %v", cmd, err)
		}
	}
}

// Whatever a device publishes, Parse must not panic, must refuse with the
// package's errors, and what it reads must fit the schemas it reports.
func FuzzTasmotaParse(f *testing.F) {
	for _, s := range [][2]string{
		{"tele/plug/LWT", "Online"}, {"tele/plug/STATE", `{"POWER":"ON","Dimmer":40}`},
		{"stat/plug/RESULT", `{"POWER1":"OFF"}`}, {"stat/plug/RESULT", `{"Command":"Unknown"}`},
		{"tele/plug/SENSOR", `{"ENERGY":{"Power":12.5}}`}, {"stat/plug/POWER2", "ON"},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	p := plug(f)
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		rs, err := p.Parse(topic, payload)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) && !errors.Is(err, ErrNotOwn) {
				t.Fatalf("Parse(%q, %q) = %v, want ErrBadPayload or ErrNotOwn", topic, payload, err)
			}
			return
		}
		checkReports(t, p, topic, payload, rs)
	})
}

// checkReports checks what a profile read: bounded, values that fit
// their schemas, and descriptions that validate.
func checkReports(t *testing.T, p Profile, topic string, payload []byte, rs []Report) {
	t.Helper()
	for _, r := range rs {
		if len(r.Props) > MaxProps || len(r.Schemas) > MaxProps {
			t.Fatalf("Parse(%q, %q) gave %d properties", topic, payload, len(r.Props))
		}
		for k, v := range r.Props {
			s := r.Schemas[k]
			if s == nil || s.Check(v) != nil {
				t.Fatalf("Parse(%q, %q): %s = %s does not fit %+v", topic, payload, k, v, s)
			}
		}
		if len(r.Schemas) > 0 {
			d := Describe(p.Title(r.Device), "plug", 1, r.Schemas, r.Actions)
			if err := d.Validate(); err != nil {
				t.Fatalf("Parse(%q, %q): description %v", topic, payload, err)
			}
		}
	}
}

// Whatever a command says, Map refuses it with ErrUnmapped or maps it to
// publishes under the device's own command topic.
func FuzzTasmotaMap(f *testing.F) {
	f.Add(`{"action":"toggle"}`)
	f.Add(`{"write":{"dimmer":40,"power":true}}`)
	p := plug(f)
	f.Fuzz(func(t *testing.T, cmd string) {
		var c thing.Command
		if json.Unmarshal([]byte(cmd), &c) != nil {
			return
		}
		out, err := p.Map("", &c)
		if err != nil {
			if !errors.Is(err, ErrUnmapped) {
				t.Fatalf("Map(%s) = %v", cmd, err)
			}
			return
		}
		for _, pub := range out.Publishes {
			if !p.Owns(pub.Topic) || pub.Topic[:5] != "cmnd/" {
				t.Fatalf("Map(%s) publishes on %q", cmd, pub.Topic)
			}
		}
	})
}
