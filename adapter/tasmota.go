package adapter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/mqtter/mqtter/thing"
)

// ProfileTasmota is the name of the Tasmota profile.
const ProfileTasmota = "tasmota"

// TasmotaGroupTopic is Tasmota's default group topic, which every device
// also subscribes to (cmnd/tasmotas/#).
const TasmotaGroupTopic = "tasmotas"

// Tasmota is the dialect of the Tasmota firmware with its default full
// topic %prefix%/%topic%/:
//
//	cmnd/<topic>/<Command>   payload the command's parameter    server → device
//	stat/<topic>/RESULT      {"POWER":"ON"}, the answer        device → server
//	stat/<topic>/POWER       ON | OFF                          device → server
//	tele/<topic>/STATE       {"Time":…,"POWER":"ON","Dimmer":40,…}
//	tele/<topic>/SENSOR      {"Time":…,"ENERGY":{"Power":12,…}}
//	tele/<topic>/LWT         Online | Offline (retained; Offline is the will)
//
// Properties: POWER (and POWER1…POWER8) become boolean properties power
// (power1…), writable; Dimmer an integer dimmer 0…100 and CT an integer ct
// 153…500, writable; each number one level inside SENSOR (ENERGY.Power) a
// read-only number energy_power. The action toggle is POWER TOGGLE.
type Tasmota struct {
	topic string
}

// NewTasmota returns the profile for the device whose Tasmota topic is
// topic.
func NewTasmota(topic string) (*Tasmota, error) {
	if !validTopicLevel(topic) || topic == TasmotaGroupTopic {
		return nil, fmt.Errorf("tasmota: topic %.80q: want one topic level, no wildcard, not the group topic", topic)
	}
	return &Tasmota{topic: topic}, nil
}

// Name implements Profile.
func (*Tasmota) Name() string { return ProfileTasmota }

// Title implements Profile.
func (t *Tasmota) Title(string) string { return "Tasmota " + t.topic }

// Owns implements Profile: cmnd/, stat/ and tele/ under the device's topic.
func (t *Tasmota) Owns(topic string) bool {
	_, rest, ok := t.split(topic)
	return ok && rest != ""
}

// split splits prefix/<topic>/rest for the device's own topic.
func (t *Tasmota) split(topic string) (prefix, rest string, ok bool) {
	prefix, tail, ok := strings.Cut(topic, "/")
	if !ok || (prefix != "cmnd" && prefix != "stat" && prefix != "tele") {
		return "", "", false
	}
	own, rest, ok := strings.Cut(tail, "/")
	if !ok || own != t.topic {
		return "", "", false
	}
	return prefix, rest, true
}

// MaySubscribe implements Profile: the device's command topic, the group
// topic and its fallback topic (<client id>_fb), each with /#, as Tasmota
// subscribes them. Nothing but the adapter's own commands is ever written
// to the device, so the group topic reaches no other account's traffic.
func (t *Tasmota) MaySubscribe(filter, clientID string) bool {
	switch filter {
	case "cmnd/" + t.topic + "/#", "cmnd/" + TasmotaGroupTopic + "/#", "cmnd/" + clientID + "_fb/#":
		return true
	}
	return false
}

// Parse implements Profile: at most one report, about the device itself.
func (t *Tasmota) Parse(topic string, payload []byte) ([]Report, error) {
	r, err := t.parse(topic, payload)
	if err != nil || (r.Presence == "" && len(r.Props) == 0 && r.Failure == "") {
		return nil, err
	}
	if _, ok := r.Schemas["power"]; ok {
		r.Actions = map[string]*thing.Action{"toggle": {Title: "Switch power over"}}
	}
	return []Report{r}, nil
}

func (t *Tasmota) parse(topic string, payload []byte) (Report, error) {
	prefix, rest, ok := t.split(topic)
	if !ok {
		return Report{}, fmt.Errorf("%w: %.120q", ErrNotOwn, topic)
	}
	if len(payload) > MaxPayload {
		return Report{}, fmt.Errorf("%w: %d bytes, at most %d", ErrBadPayload, len(payload), MaxPayload)
	}
	switch {
	case prefix == "tele" && rest == "LWT":
		switch string(bytes.TrimSpace(payload)) {
		case "Online":
			return Report{Presence: Online}, nil
		case "Offline":
			return Report{Presence: Offline}, nil
		}
		return Report{}, fmt.Errorf("%w: LWT %.40q: want Online or Offline", ErrBadPayload, payload)
	case prefix == "tele" && rest == "STATE", prefix == "stat" && rest == "RESULT":
		obj, err := tasmotaObject(payload)
		if err != nil {
			return Report{}, err
		}
		r := tasmotaState(obj)
		if prefix == "stat" {
			r.Answer = true
			if raw, ok := obj["Command"]; ok {
				var why string
				json.Unmarshal(raw, &why)
				r.Failure = "command " + strings.ToLower(strings.TrimSpace(why))
			}
		}
		return r, nil
	case prefix == "tele" && rest == "SENSOR":
		obj, err := tasmotaObject(payload)
		if err != nil {
			return Report{}, err
		}
		return tasmotaSensor(obj), nil
	case prefix == "stat" && tasmotaPowerKey(rest):
		on, ok := tasmotaOnOff(payload)
		if !ok {
			return Report{}, fmt.Errorf("%w: %s %.40q: want ON or OFF", ErrBadPayload, rest, payload)
		}
		name := strings.ToLower(rest)
		return Report{
			Props:   map[string]json.RawMessage{name: boolJSON(on)},
			Schemas: map[string]*thing.Property{name: powerProperty()},
		}, nil
	}
	// Its own, but nothing the thing model carries (INFO, STATUS,
	// UPTIME, the commands it may echo on cmnd/…).
	return Report{}, nil
}

// tasmotaObject decodes a payload that must be one JSON object.
func tasmotaObject(payload []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: want a JSON object", ErrBadPayload)
	}
	return obj, nil
}

// tasmotaState reads the keys of STATE and RESULT the profile maps.
func tasmotaState(obj map[string]json.RawMessage) Report {
	r := Report{Props: map[string]json.RawMessage{}, Schemas: map[string]*thing.Property{}}
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		raw := obj[key]
		switch {
		case len(r.Props) >= MaxProps:
		case tasmotaPowerKey(key):
			var s string
			if json.Unmarshal(raw, &s) != nil {
				continue
			}
			if on, ok := tasmotaOnOff([]byte(s)); ok {
				name := strings.ToLower(key)
				r.Props[name], r.Schemas[name] = boolJSON(on), powerProperty()
			}
		case tasmotaRanges[key] != [2]float64{}:
			lim := tasmotaRanges[key]
			var n float64
			if json.Unmarshal(raw, &n) != nil || n != float64(int64(n)) || n < lim[0] || n > lim[1] {
				continue
			}
			name := strings.ToLower(key)
			r.Props[name] = json.RawMessage(strconv.FormatInt(int64(n), 10))
			r.Schemas[name] = &thing.Property{Schema: thing.Schema{Type: "integer", Minimum: &lim[0], Maximum: &lim[1]}, Observable: true}
		}
	}
	return r
}

// tasmotaRanges are the integer settings the profile maps, by Tasmota key,
// with their ranges.
var tasmotaRanges = map[string][2]float64{"Dimmer": {0, 100}, "CT": {153, 500}}

// tasmotaSensor reads the numbers one level inside a SENSOR object
// ({"ENERGY":{"Power":12}} → energy_power) as read-only properties.
func tasmotaSensor(obj map[string]json.RawMessage) Report {
	r := Report{Props: map[string]json.RawMessage{}, Schemas: map[string]*thing.Property{}}
	for _, group := range slices.Sorted(maps.Keys(obj)) {
		var inner map[string]json.RawMessage
		if json.Unmarshal(obj[group], &inner) != nil {
			continue
		}
		for _, key := range slices.Sorted(maps.Keys(inner)) {
			var n json.Number
			d := json.NewDecoder(bytes.NewReader(inner[key]))
			d.UseNumber()
			if d.Decode(&n) != nil || len(r.Props) >= MaxProps {
				continue
			}
			name, ok := sensorName(group, key)
			if !ok {
				continue
			}
			r.Props[name] = json.RawMessage(n.String())
			r.Schemas[name] = &thing.Property{Schema: thing.Schema{Type: "number"}, ReadOnly: true, Observable: true}
		}
	}
	return r
}

// sensorName is group_key in lower case, if that is made of [a-z0-9_]
// only and fits a name.
func sensorName(group, key string) (string, bool) {
	name := strings.ToLower(group + "_" + key)
	if len(name) > thing.MaxNameLen {
		return "", false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return "", false
		}
	}
	return name, true
}

// tasmotaPowerKey reports POWER or POWER1 … POWER8.
func tasmotaPowerKey(key string) bool {
	if key == "POWER" {
		return true
	}
	n, ok := strings.CutPrefix(key, "POWER")
	return ok && len(n) == 1 && n[0] >= '1' && n[0] <= '8'
}

func tasmotaOnOff(payload []byte) (on, ok bool) {
	switch strings.ToUpper(string(bytes.TrimSpace(payload))) {
	case "ON":
		return true, true
	case "OFF":
		return false, true
	}
	return false, false
}

func boolJSON(b bool) json.RawMessage { return json.RawMessage(strconv.FormatBool(b)) }

func powerProperty() *thing.Property {
	return &thing.Property{Schema: thing.Schema{Type: "boolean"}, Observable: true}
}

// Map implements Profile. One setting is one cmnd/<topic>/<Command>; an
// action with writes, or several writes, go in one Backlog, in name order.
func (t *Tasmota) Map(device string, c *thing.Command) (Command, error) {
	if device != "" {
		return Command{}, fmt.Errorf("%w: tasmota has no devices behind it", ErrUnmapped)
	}
	type step struct{ cmd, arg, want string }
	var steps []step
	switch c.Action {
	case "":
	case "toggle":
		if len(c.Input) > 0 && string(c.Input) != "null" {
			return Command{}, fmt.Errorf("%w: toggle takes no input", ErrUnmapped)
		}
		steps = append(steps, step{"POWER", "TOGGLE", "power"})
	default:
		return Command{}, fmt.Errorf("%w: no action %.64q (tasmota has toggle)", ErrUnmapped, c.Action)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Write)) {
		key := strings.ToUpper(name)
		raw := c.Write[name]
		switch {
		case tasmotaPowerKey(key):
			var on bool
			if json.Unmarshal(raw, &on) != nil {
				return Command{}, fmt.Errorf("%w: %s: want true or false", ErrUnmapped, name)
			}
			steps = append(steps, step{key, map[bool]string{true: "ON", false: "OFF"}[on], name})
		case name == "dimmer" || name == "ct":
			key = map[string]string{"dimmer": "Dimmer", "ct": "CT"}[name]
			lim := tasmotaRanges[key]
			var n float64
			if json.Unmarshal(raw, &n) != nil || n != float64(int64(n)) || n < lim[0] || n > lim[1] {
				return Command{}, fmt.Errorf("%w: %s: want an integer %v to %v", ErrUnmapped, name, lim[0], lim[1])
			}
			steps = append(steps, step{key, strconv.FormatInt(int64(n), 10), name})
		default:
			return Command{}, fmt.Errorf("%w: no writable property %.64q", ErrUnmapped, name)
		}
	}
	if len(steps) == 0 {
		return Command{}, fmt.Errorf("%w: nothing to do", ErrUnmapped)
	}
	var out Command
	for _, s := range steps {
		if !slices.Contains(out.Want, s.want) {
			out.Want = append(out.Want, s.want)
		}
	}
	if len(steps) == 1 {
		out.Publishes = []Publish{{Topic: "cmnd/" + t.topic + "/" + steps[0].cmd, Payload: []byte(steps[0].arg)}}
		return out, nil
	}
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = s.cmd + " " + s.arg
	}
	out.Publishes = []Publish{{Topic: "cmnd/" + t.topic + "/Backlog", Payload: []byte(strings.Join(parts, "; "))}}
	return out, nil
}
