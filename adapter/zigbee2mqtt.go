package adapter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/mqtter/mqtter/thing"
)

// ProfileZigbee2MQTT is the name of the Zigbee2MQTT profile.
const ProfileZigbee2MQTT = "zigbee2mqtt"

// MaxBridgeDevices bounds the devices a bridge's list may announce.
const MaxBridgeDevices = 256

// Zigbee2MQTT is the dialect of a Zigbee2MQTT bridge: one MQTT client for
// many Zigbee devices, each under its friendly name below the base topic:
//
//	<base>/<name>/set            {"state":"ON","brightness":40}    server → bridge (no reply)
//	<base>/<name>/get            {"state":""}                     server → bridge
//	<base>/<name>                {"state":"ON","brightness":40,…}  bridge → server, the device's state
//	<base>/<name>/availability   {"state":"online"} | online       bridge → server
//	<base>/bridge/state          {"state":"online"} | online       bridge → server, its will offline
//	<base>/bridge/devices        [{"friendly_name",…,"definition":{"exposes":[…]}}] (retained)
//
// The bridge's device list gives each device's properties (its exposes:
// binary, numeric, enum and text features, one level inside a light's or
// switch's features too); a binary feature with a toggle value also
// gives the action toggle. A set has no reply: the next state carrying
// what was set is the result. The profile remembers the bridge's last
// device list to map values both ways.
type Zigbee2MQTT struct {
	base string

	mu      sync.Mutex
	devices map[string]*z2mDevice // by friendly name
}

// z2mDevice is one device of the bridge's list: its features by property.
type z2mDevice struct {
	features map[string]*z2mFeature
	toggle   string // the property whose value_toggle toggles it
}

// z2mFeature is one feature of a device's exposes.
type z2mFeature struct {
	Type        string            `json:"type"`
	Property    string            `json:"property"`
	Access      int               `json:"access"`
	Unit        string            `json:"unit"`
	ValueOn     json.RawMessage   `json:"value_on"`
	ValueOff    json.RawMessage   `json:"value_off"`
	ValueToggle json.RawMessage   `json:"value_toggle"`
	ValueMin    *float64          `json:"value_min"`
	ValueMax    *float64          `json:"value_max"`
	Values      []json.RawMessage `json:"values"`
	Features    []z2mFeature      `json:"features"`
}

// Access bits of a feature: published in the state, settable with /set,
// readable with /get.
const (
	z2mPublished = 1
	z2mSettable  = 2
)

// NewZigbee2MQTT returns the profile of the bridge under base (its
// base_topic, zigbee2mqtt by default).
func NewZigbee2MQTT(base string) (*Zigbee2MQTT, error) {
	if !validTopicLevel(base) {
		return nil, fmt.Errorf("zigbee2mqtt: base topic %.80q: want one topic level, no wildcard", base)
	}
	return &Zigbee2MQTT{base: base, devices: make(map[string]*z2mDevice)}, nil
}

// Name implements Profile.
func (*Zigbee2MQTT) Name() string { return ProfileZigbee2MQTT }

// Title implements Profile.
func (z *Zigbee2MQTT) Title(device string) string {
	if device == "" {
		return "Zigbee2MQTT bridge " + z.base
	}
	return "Zigbee2MQTT " + device
}

// Owns implements Profile: everything under the base topic.
func (z *Zigbee2MQTT) Owns(topic string) bool {
	rest, ok := strings.CutPrefix(topic, z.base+"/")
	return ok && rest != ""
}

// MaySubscribe implements Profile: filters under the base topic.
func (z *Zigbee2MQTT) MaySubscribe(filter, _ string) bool {
	rest, ok := strings.CutPrefix(filter, z.base+"/")
	return ok && rest != ""
}

// Parse implements Profile.
func (z *Zigbee2MQTT) Parse(topic string, payload []byte) ([]Report, error) {
	rest, ok := strings.CutPrefix(topic, z.base+"/")
	if !ok || rest == "" {
		return nil, fmt.Errorf("%w: %.120q", ErrNotOwn, topic)
	}
	if len(payload) > MaxPayload*8 || (rest != "bridge/devices" && len(payload) > MaxPayload) {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadPayload, len(payload))
	}
	switch {
	case rest == "bridge/state":
		p, err := z2mPresence(payload)
		return []Report{{Presence: p}}, err
	case rest == "bridge/devices":
		return z.parseDevices(payload)
	case strings.HasPrefix(rest, "bridge/"):
		return nil, nil // info, logging, responses, groups …
	case strings.HasSuffix(rest, "/availability"):
		name := strings.TrimSuffix(rest, "/availability")
		p, err := z2mPresence(payload)
		return []Report{{Device: name, Presence: p}}, err
	case strings.HasSuffix(rest, "/set") || strings.HasSuffix(rest, "/get") || strings.Contains(rest, "/set/") || strings.Contains(rest, "/get/"):
		return nil, nil // commands, which the bridge does not publish
	}
	return z.parseState(rest, payload)
}

// z2mPresence reads {"state":"online"} or the legacy online.
func z2mPresence(payload []byte) (string, error) {
	s := string(bytes.TrimSpace(payload))
	var obj struct {
		State string `json:"state"`
	}
	if json.Unmarshal(payload, &obj) == nil && obj.State != "" {
		s = obj.State
	}
	switch s {
	case "online":
		return Online, nil
	case "offline":
		return Offline, nil
	}
	return "", fmt.Errorf("%w: availability %.40q: want online or offline", ErrBadPayload, payload)
}

// parseDevices reads the bridge's device list: each device's properties
// and actions, remembered for mapping.
func (z *Zigbee2MQTT) parseDevices(payload []byte) ([]Report, error) {
	var list []struct {
		FriendlyName string `json:"friendly_name"`
		Type         string `json:"type"`
		Definition   *struct {
			Exposes []z2mFeature `json:"exposes"`
		} `json:"definition"`
	}
	if err := json.Unmarshal(payload, &list); err != nil {
		return nil, fmt.Errorf("%w: bridge/devices: want a JSON array of devices", ErrBadPayload)
	}
	devices := make(map[string]*z2mDevice)
	var out []Report
	for _, d := range list {
		if d.Type == "Coordinator" || d.Definition == nil || !ValidDeviceName(d.FriendlyName) || len(devices) >= MaxBridgeDevices {
			continue
		}
		dev := &z2mDevice{features: make(map[string]*z2mFeature)}
		r := Report{Device: d.FriendlyName, Schemas: make(map[string]*thing.Property)}
		var add func(fs []z2mFeature, depth int)
		add = func(fs []z2mFeature, depth int) {
			for i := range fs {
				f := &fs[i]
				if len(f.Features) > 0 && depth == 0 {
					add(f.Features, 1)
					continue
				}
				p := f.schema()
				if p == nil || !plainName(f.Property) || len(r.Schemas) >= MaxProps {
					continue
				}
				dev.features[f.Property] = f
				r.Schemas[f.Property] = p
				if f.Type == "binary" && len(f.ValueToggle) > 0 && f.Access&z2mSettable != 0 && dev.toggle == "" {
					dev.toggle = f.Property
				}
			}
		}
		add(d.Definition.Exposes, 0)
		if dev.toggle != "" {
			r.Actions = map[string]*thing.Action{"toggle": {Title: "Switch " + dev.toggle + " over"}}
		}
		devices[d.FriendlyName] = dev
		out = append(out, r)
	}
	z.mu.Lock()
	z.devices = devices
	z.mu.Unlock()
	return out, nil
}

// schema is the thing property of a feature, nil for a kind the profile
// does not map (composite, list).
func (f *z2mFeature) schema() *thing.Property {
	p := &thing.Property{ReadOnly: f.Access&z2mSettable == 0, Observable: f.Access&z2mPublished != 0}
	switch f.Type {
	case "binary":
		if len(f.ValueOn) == 0 || len(f.ValueOff) == 0 {
			return nil
		}
		p.Type = "boolean"
	case "numeric":
		p.Type, p.Minimum, p.Maximum = "number", f.ValueMin, f.ValueMax
		if p.Minimum != nil && p.Maximum != nil && *p.Minimum > *p.Maximum {
			return nil
		}
		if len(f.Unit) <= 32 {
			p.Unit = f.Unit
		}
	case "enum":
		p.Type = "string"
		for _, v := range f.Values {
			var s string
			if json.Unmarshal(v, &s) == nil && len(p.Enum) < 64 {
				p.Enum = append(p.Enum, json.RawMessage(mustJSON(s)))
			}
		}
		if len(p.Enum) == 0 {
			return nil
		}
	case "text":
		p.Type = "string"
	default:
		return nil
	}
	return p
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// plainName reports a property name of [a-z0-9_], 1 to 64 bytes.
func plainName(s string) bool {
	if s == "" || len(s) > thing.MaxNameLen {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// ValidDeviceName reports a friendly name usable as topic levels: no
// wildcard, no empty level, not the bridge's own.
func ValidDeviceName(s string) bool {
	if s == "" || len(s) > 128 || s == "bridge" || strings.HasPrefix(s, "bridge/") {
		return false
	}
	for _, level := range strings.Split(s, "/") {
		if level == "" || level == "set" || level == "get" || level == "availability" {
			return false
		}
	}
	for _, r := range s {
		if r < ' ' || r == '+' || r == '#' || r == 0x7f {
			return false
		}
	}
	return true
}

// parseState reads a device's state, for the features the bridge's list
// gave it; a device not (yet) in the list reports nothing.
func (z *Zigbee2MQTT) parseState(name string, payload []byte) ([]Report, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: state of %.80q: want a JSON object", ErrBadPayload, name)
	}
	z.mu.Lock()
	dev := z.devices[name]
	z.mu.Unlock()
	if dev == nil {
		return nil, nil
	}
	r := Report{Device: name, Props: make(map[string]json.RawMessage), Schemas: make(map[string]*thing.Property)}
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		f := dev.features[key]
		if f == nil {
			continue
		}
		v, ok := f.fromDevice(obj[key])
		p := f.schema()
		if !ok || p == nil || p.Check(v) != nil {
			continue
		}
		r.Props[key], r.Schemas[key] = v, p
	}
	if len(r.Props) == 0 {
		return nil, nil
	}
	return []Report{r}, nil
}

// fromDevice converts a reported value: a binary's on and off values to
// true and false, others as they are.
func (f *z2mFeature) fromDevice(v json.RawMessage) (json.RawMessage, bool) {
	if f.Type != "binary" {
		return v, true
	}
	switch {
	case jsonEqual(v, f.ValueOn):
		return json.RawMessage("true"), true
	case jsonEqual(v, f.ValueOff):
		return json.RawMessage("false"), true
	}
	return nil, false
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

// Map implements Profile: one <base>/<name>/set with every setting.
func (z *Zigbee2MQTT) Map(device string, c *thing.Command) (Command, error) {
	z.mu.Lock()
	dev := z.devices[device]
	z.mu.Unlock()
	if dev == nil {
		return Command{}, fmt.Errorf("%w: no device %.80q in the bridge's list", ErrUnmapped, device)
	}
	set := map[string]json.RawMessage{}
	var want []string
	switch c.Action {
	case "":
	case "toggle":
		if dev.toggle == "" {
			return Command{}, fmt.Errorf("%w: %s cannot toggle", ErrUnmapped, device)
		}
		if len(c.Input) > 0 && string(c.Input) != "null" {
			return Command{}, fmt.Errorf("%w: toggle takes no input", ErrUnmapped)
		}
		set[dev.toggle] = dev.features[dev.toggle].ValueToggle
		want = append(want, dev.toggle)
	default:
		return Command{}, fmt.Errorf("%w: no action %.64q", ErrUnmapped, c.Action)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Write)) {
		f := dev.features[name]
		if f == nil || f.Access&z2mSettable == 0 {
			return Command{}, fmt.Errorf("%w: no writable property %.64q", ErrUnmapped, name)
		}
		v := c.Write[name]
		if err := f.schema().Check(v); err != nil {
			return Command{}, fmt.Errorf("%w: %s: %v", ErrUnmapped, name, err)
		}
		if f.Type == "binary" {
			v = f.ValueOff
			if string(bytes.TrimSpace(c.Write[name])) == "true" {
				v = f.ValueOn
			}
		}
		set[name] = v
		if !slices.Contains(want, name) {
			want = append(want, name)
		}
	}
	if len(set) == 0 {
		return Command{}, fmt.Errorf("%w: nothing to do", ErrUnmapped)
	}
	body, err := json.Marshal(set)
	if err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrUnmapped, err)
	}
	return Command{Publishes: []Publish{{Topic: z.base + "/" + device + "/set", Payload: body}}, Want: want}, nil
}
