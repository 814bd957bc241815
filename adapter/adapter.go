// Package adapter maps the MQTT dialects of off-the-shelf device firmware
// onto the thing model, so the server can adopt such a device as a thing
// without changing its firmware. A Profile knows one dialect: which topics
// are the device's own, which subscriptions it may hold, how a command
// becomes the dialect's PUBLISH, and what the device's own PUBLISHes say
// (presence, property values, answers). It holds no connection: the
// server keeps the connections and the things' state, and writes what a
// profile reads as feedback of the thing. A profile remembers only what
// it needs to map values (a bridge's device list).
//
//	person ──command{write:{power:true}}──▶ server ──cmnd/plug/POWER ON──▶ device
//	person ◀──feedback ack/result/state── server ◀──stat/plug/RESULT {"POWER":"ON"}── device
//
// The package depends only on thing and wire.
package adapter

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mqtter/mqtter/thing"
)

// Errors callers branch on with errors.Is.
var (
	// ErrUnmapped: the command asks for something the profile cannot say
	// in the device's dialect (an unknown action, a read-only or unknown
	// property, a value of the wrong type).
	ErrUnmapped = errors.New("cannot map the command")
	// ErrBadPayload: a device's PUBLISH does not parse.
	ErrBadPayload = errors.New("bad payload")
	// ErrNotOwn: a PUBLISH outside the device's own topic space.
	ErrNotOwn = errors.New("not the device's own topic")
	// ErrUnknownProfile: no profile of that name.
	ErrUnknownProfile = errors.New("unknown profile")
)

// Limits on what a device's PUBLISH may make the server hold.
const (
	// MaxProps bounds the properties one report (and a description) holds.
	MaxProps = 32
	// MaxPayload is the largest device payload a profile parses.
	MaxPayload = 16 << 10
)

// Presence values of a Report.
const (
	Online  = "online"
	Offline = "offline"
)

// Publish is one MQTT PUBLISH the server writes to the device.
type Publish struct {
	Topic   string
	Payload []byte
}

// Report is what one PUBLISH of the device says, about the device itself
// or (a bridge's) one of the devices behind it.
type Report struct {
	// Device is "" for the device itself, else the name of a device
	// behind the bridge the report is about (a Zigbee2MQTT friendly name).
	Device string
	// Presence is Online or Offline when the PUBLISH announces the
	// device's availability (its last will, or the will's opposite).
	Presence string
	// Props are property values, by thing property name.
	Props map[string]json.RawMessage
	// Schemas describe the properties of Props the device announced, so
	// that the thing's description grows with what it reports.
	Schemas map[string]*thing.Property
	// Actions are actions the device announced it can run.
	Actions map[string]*thing.Action
	// Answer marks the device's answer to a command (Tasmota's RESULT).
	Answer bool
	// Failure is set on an answer that says the command failed.
	Failure string
}

// Command is what the server writes to the device for one command, and
// how it knows the command's outcome: the reported values of Want.
type Command struct {
	Publishes []Publish
	// Want are the properties whose next reported values are the result.
	Want []string
}

// Profile is one firmware dialect, configured for one device.
type Profile interface {
	// Name is the profile's name, as stored and given to `thing adopt`.
	Name() string
	// Owns reports whether topic is in the device's own topic space.
	Owns(topic string) bool
	// MaySubscribe reports whether the device (with MQTT client id
	// clientID) may subscribe to filter.
	MaySubscribe(filter, clientID string) bool
	// Parse reads one PUBLISH of the device: none, one or (a bridge's
	// list of devices) several reports. Errors wrap ErrNotOwn or
	// ErrBadPayload.
	Parse(topic string, payload []byte) ([]Report, error)
	// Map turns a command to device ("" the device itself, else one
	// behind the bridge) into the dialect's PUBLISHes. Errors wrap
	// ErrUnmapped.
	Map(device string, c *thing.Command) (Command, error)
	// Title is the description's title of device.
	Title(device string) string
}

// New returns the profile name for a device under topic (Tasmota: its
// topic; Zigbee2MQTT: the bridge's base topic).
func New(name, topic string) (Profile, error) {
	switch name {
	case ProfileTasmota:
		return NewTasmota(topic)
	case ProfileZigbee2MQTT:
		return NewZigbee2MQTT(topic)
	}
	return nil, fmt.Errorf("%w: %q (known: %s, %s)", ErrUnknownProfile, name, ProfileTasmota, ProfileZigbee2MQTT)
}

// Describe builds a thing's description from the properties and actions
// its device announced so far.
func Describe(title, account string, version int64, props map[string]*thing.Property, actions map[string]*thing.Action) thing.Description {
	if len(actions) == 0 {
		actions = nil
	}
	return thing.Description{Thing: account, Version: version, Title: title, Properties: props, Actions: actions}
}

// validTopicLevel reports whether s may be one level of a topic a profile
// is configured with: printable, no wildcard, no separator.
func validTopicLevel(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == '/' || r == '+' || r == '#' || r == 0x7f {
			return false
		}
	}
	return true
}
