package thing

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/mqtter/mqtter/wire"
)

// book is a relation book as test data: the state of each pair, the kind of
// each account and the owner of each device.
type book struct {
	pairs   map[[2]string]string
	kinds   map[string]string
	devices map[string]string
	err     error // returned by every call when set
}

var _ Relations = (*book)(nil)

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (b *book) Tie(x, y string) (string, string, error) {
	if b.err != nil {
		return "", "", b.err
	}
	return b.pairs[pair(x, y)], b.kinds[y], nil
}

func (b *book) DeviceOwner(device string) (string, bool, error) {
	if b.err != nil {
		return "", false, b.err
	}
	owner, ok := b.devices[device]
	return owner, ok, nil
}

// newHome returns the relation book of the tests, and each person's device:
// alice is bound to the lamp, the door and the window, bob only to the
// door, carol is the lamp's friend; the door and the window are associated
// with the lamp, the door with the heater.
func newHome(t testing.TB) (*book, map[string]string) {
	t.Helper()
	devs := map[string]string{
		"alice": deviceOf(t, testKey(t, 1)),
		"bob":   deviceOf(t, testKey(t, 2)),
		"carol": deviceOf(t, testKey(t, 3)),
	}
	b := &book{
		pairs: map[[2]string]string{
			pair("alice", "lamp"):   wire.StateBound,
			pair("alice", "door"):   wire.StateBound,
			pair("alice", "window"): wire.StateBound,
			pair("bob", "door"):     wire.StateBound,
			pair("carol", "lamp"):   wire.StateFriend,
			pair("alice", "bob"):    wire.StateFriend,
			pair("door", "lamp"):    wire.StateAssociated,
			pair("window", "lamp"):  wire.StateAssociated,
			pair("door", "heater"):  wire.StateAssociated,
		},
		kinds: map[string]string{
			"alice": wire.KindPerson, "bob": wire.KindPerson, "carol": wire.KindPerson, "dave": wire.KindPerson,
			"lamp": wire.KindThing, "door": wire.KindThing, "window": wire.KindThing, "heater": wire.KindThing,
		},
		devices: map[string]string{},
	}
	for who, dev := range devs {
		b.devices[dev] = who
	}
	return b, devs
}

// grantedCommand returns the command the door sends the lamp under rule r1,
// which alice made and signed.
func grantedCommand(t testing.TB) *Command {
	t.Helper()
	g := doorRule()
	g.Then = Then{Action: "on"}
	return &Command{
		Action:  "on",
		Expires: 1_700_000_030_000,
		Trace:   Trace{Origin: "door", OriginMsg: "01HZX", Rule: g.ID, Hops: 1},
		Grant:   signed(t, g, testKey(t, 1)),
	}
}

func TestMayCommand(t *testing.T) {
	b, _ := newHome(t)
	personal := func() *Command {
		return &Command{Action: "on", Expires: 1, Trace: Trace{Origin: "alice", OriginMsg: "m"}}
	}
	regrant := func(t testing.TB, c *Command, key byte, change func(g *Rule)) {
		change(c.Grant)
		signed(t, c.Grant, testKey(t, key))
	}
	tests := []struct {
		name    string
		author  string
		thing   string
		command func(t testing.TB) *Command
		ok      bool
	}{
		{"bound person", "alice", "lamp", func(t testing.TB) *Command { return personal() }, true},
		{"bound person writes", "alice", "lamp", func(t testing.TB) *Command {
			c := personal()
			c.Action, c.Write = "", map[string]json.RawMessage{"on": json.RawMessage(`true`)}
			return c
		}, true},
		{"bound person with a grant", "alice", "lamp", func(t testing.TB) *Command {
			c := personal()
			c.Grant = grantedCommand(t).Grant
			return c
		}, false},
		{"friend", "carol", "lamp", func(t testing.TB) *Command { return personal() }, false},
		{"person bound to another thing", "bob", "lamp", func(t testing.TB) *Command { return personal() }, false},
		{"stranger", "dave", "lamp", func(t testing.TB) *Command { return personal() }, false},
		{"a person commanding a person", "alice", "bob", func(t testing.TB) *Command { return personal() }, false},
		{"a thing commanding a person", "lamp", "alice", grantedCommand, false},

		{"associated thing with a grant", "door", "lamp", grantedCommand, true},
		{"associated thing, no grant", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			c.Grant = nil
			return c
		}, false},
		{"grant for another action", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			c.Action = "off"
			return c
		}, false},
		{"grant for an action, command writes too", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			c.Write = map[string]json.RawMessage{"brightness": json.RawMessage(`100`)}
			return c
		}, false},
		{"grant from another A", "window", "lamp", grantedCommand, false},
		{"grant to another B", "door", "heater", grantedCommand, false},
		{"grant's A is another thing", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			regrant(t, c, 1, func(g *Rule) { g.A = "window" })
			return c
		}, false},
		{"trace names another rule", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			c.Trace.Rule = "r2"
			return c
		}, false},
		{"trace names no rule", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			c.Trace.Rule = ""
			return c
		}, false},
		{"hops 0", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			c.Trace.Hops = 0
			return c
		}, false},
		{"signed by a device not of By", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			regrant(t, c, 2, func(g *Rule) {}) // bob's device, By alice
			return c
		}, false},
		{"signed by an unknown device", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			regrant(t, c, 9, func(g *Rule) {})
			return c
		}, false},
		{"by a person not bound to the thing", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			regrant(t, c, 2, func(g *Rule) { g.By = "bob" })
			return c
		}, false},
		{"by the thing's friend", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			regrant(t, c, 3, func(g *Rule) { g.By = "carol" })
			return c
		}, false},
		{"forged grant", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			dev := c.Grant.Device
			regrant(t, c, 2, func(g *Rule) {})
			c.Grant.Device = dev // bob's signature under alice's device
			return c
		}, false},
		{"grant changed after signing", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			c.Grant.Then.Action, c.Action = "unlock", "unlock"
			return c
		}, false},
		{"unsigned grant", "door", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			c.Grant.Sig = ""
			return c
		}, false},
		{"thing not associated", "heater", "lamp", func(t testing.TB) *Command {
			c := grantedCommand(t)
			regrant(t, c, 1, func(g *Rule) { g.A = "heater" })
			return c
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.command(t)
			err := MayCommand(b, tt.author, tt.thing, c)
			if tt.ok && err != nil || !tt.ok && !errors.Is(err, ErrNotAllowed) {
				t.Errorf("MayCommand(%s, %s) = %v, want ok %v (else ErrNotAllowed)", tt.author, tt.thing, err, tt.ok)
			}
		})
	}
}

func TestMayWrite(t *testing.T) {
	b, _ := newHome(t)
	payload := func(v any) json.RawMessage {
		p, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	person := payload(Command{Action: "on", Expires: 1, Trace: Trace{Origin: "alice", OriginMsg: "m"}})
	granted := payload(grantedCommand(t))
	result := json.RawMessage(`{"kind":"result","cmd":"m","status":"done"}`)
	state := json.RawMessage(`{"kind":"state","props":{"on":true},"rev":1,"cause":"local"}`)
	event := json.RawMessage(`{"kind":"event","event":"opened","cause":"local"}`)
	msg := func(typ, from, feeds string, p json.RawMessage) *wire.Message {
		return &wire.Message{MsgId: "m2", Feeds: feeds, MsgType: typ, From: from, Payload: p, TimeCreate: 1}
	}
	tests := []struct {
		name string
		m    *wire.Message
		want error // nil, or what the error wraps
	}{
		{"text", msg(wire.MsgTypeText, "carol", wire.DM("carol", "lamp"), json.RawMessage(`{"text":"hi"}`)), nil},
		{"command from a bound person", msg(wire.MsgTypeCommand, "alice", wire.DM("alice", "lamp"), person), nil},
		{"command from a friend", msg(wire.MsgTypeCommand, "carol", wire.DM("carol", "lamp"), person), ErrNotAllowed},
		{"command from a stranger", msg(wire.MsgTypeCommand, "dave", wire.DM("dave", "lamp"), person), ErrNotAllowed},
		{"command under a grant", msg(wire.MsgTypeCommand, "door", wire.DM("door", "lamp"), granted), nil},
		{"command under a grant, another thing", msg(wire.MsgTypeCommand, "window", wire.DM("window", "lamp"), granted), ErrNotAllowed},
		{"command in a group", msg(wire.MsgTypeCommand, "alice", wire.GroupFeeds("home"), person), ErrNotAllowed},
		{"command in another dm", msg(wire.MsgTypeCommand, "alice", wire.DM("bob", "lamp"), person), ErrNotAllowed},
		{"command in a bad feeds", msg(wire.MsgTypeCommand, "alice", "dm:lamp:alice", person), wire.ErrBadFeeds},
		{"malformed command", msg(wire.MsgTypeCommand, "alice", wire.DM("alice", "lamp"), json.RawMessage(`{"action":"on"}`)), ErrBadCommand},
		{"command not an object", msg(wire.MsgTypeCommand, "alice", wire.DM("alice", "lamp"), json.RawMessage(`"on"`)), ErrBadCommand},
		{"feedback from a thing", msg(wire.MsgTypeFeedback, "lamp", wire.DM("alice", "lamp"), result), nil},
		{"feedback from a thing to a thing", msg(wire.MsgTypeFeedback, "lamp", wire.DM("door", "lamp"), result), nil},
		{"feedback from a person", msg(wire.MsgTypeFeedback, "alice", wire.DM("alice", "lamp"), result), ErrNotAllowed},
		{"feedback in a group", msg(wire.MsgTypeFeedback, "lamp", wire.GroupFeeds("home"), result), ErrNotAllowed},
		{"malformed feedback", msg(wire.MsgTypeFeedback, "lamp", wire.DM("alice", "lamp"), json.RawMessage(`{"kind":"result","status":"done"}`)), ErrBadFeedback},
		{"feedback with a bad description", msg(wire.MsgTypeFeedback, "lamp", wire.DM("alice", "lamp"),
			json.RawMessage(`{"kind":"description","description":{"thing":"lamp","version":0}}`)), ErrBadFeedback},
		{"its own description", msg(wire.MsgTypeFeedback, "lamp", wire.DM("alice", "lamp"),
			json.RawMessage(`{"kind":"description","description":{"thing":"lamp","version":1}}`)), nil},
		{"another thing's description", msg(wire.MsgTypeFeedback, "lamp", wire.DM("alice", "lamp"),
			json.RawMessage(`{"kind":"description","description":{"thing":"door","version":1}}`)), ErrNotAllowed},
		{"state in its feed", msg(wire.MsgTypeFeedback, "lamp", wire.ThingFeeds("lamp"), state), nil},
		{"event in its feed", msg(wire.MsgTypeFeedback, "lamp", wire.ThingFeeds("lamp"), event), nil},
		{"a bound person writes a thing's feed", msg(wire.MsgTypeFeedback, "alice", wire.ThingFeeds("lamp"), state), ErrNotAllowed},
		{"an associated thing writes a thing's feed", msg(wire.MsgTypeFeedback, "door", wire.ThingFeeds("lamp"), state), ErrNotAllowed},
		{"a person's feed", msg(wire.MsgTypeFeedback, "alice", wire.ThingFeeds("alice"), state), ErrNotAllowed},
		{"text in a thing's feed", msg(wire.MsgTypeText, "lamp", wire.ThingFeeds("lamp"), json.RawMessage(`{"text":"hi"}`)), ErrNotAllowed},
		{"command in a thing's feed", msg(wire.MsgTypeCommand, "lamp", wire.ThingFeeds("lamp"), person), ErrNotAllowed},
		{"result in a thing's feed", msg(wire.MsgTypeFeedback, "lamp", wire.ThingFeeds("lamp"), result), ErrNotAllowed},
		{"description in a thing's feed", msg(wire.MsgTypeFeedback, "lamp", wire.ThingFeeds("lamp"),
			json.RawMessage(`{"kind":"description","description":{"thing":"lamp","version":1}}`)), ErrNotAllowed},
		{"malformed state in a thing's feed", msg(wire.MsgTypeFeedback, "lamp", wire.ThingFeeds("lamp"), json.RawMessage(`{"kind":"state"}`)), ErrBadFeedback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := MayWrite(b, tt.m)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("MayWrite(%s from %s in %s) = %v, want %v", tt.m.MsgType, tt.m.From, tt.m.Feeds, err, tt.want)
			}
		})
	}
}

func TestMayWriteRelationsError(t *testing.T) {
	b, _ := newHome(t)
	b.err = errors.New("book closed")
	for _, m := range []*wire.Message{
		{MsgId: "m", Feeds: wire.DM("alice", "lamp"), MsgType: wire.MsgTypeCommand, From: "alice",
			Payload: json.RawMessage(`{"action":"on","expires":1,"trace":{"origin":"alice","origin_msg":"m","hops":0}}`)},
		{MsgId: "m", Feeds: wire.DM("alice", "lamp"), MsgType: wire.MsgTypeFeedback, From: "lamp",
			Payload: json.RawMessage(`{"kind":"ack","cmd":"m","status":"queued"}`)},
	} {
		if err := MayWrite(b, m); !errors.Is(err, b.err) || errors.Is(err, ErrNotAllowed) {
			t.Errorf("MayWrite(%s) with a failing book = %v, want the book's error", m.MsgType, err)
		}
	}
}
