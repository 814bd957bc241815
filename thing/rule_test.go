package thing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testKey returns the device key made from seed, the same on every run, so
// that the golden rule's signature is stable.
func testKey(t testing.TB, seed byte) crypto.PrivKey {
	t.Helper()
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// deviceOf returns the device id of key.
func deviceOf(t testing.TB, key crypto.PrivKey) string {
	t.Helper()
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// doorRule is a valid, unsigned rule: when the door opens and it is dark,
// the lamp fades to the level the event gives.
func doorRule() *Rule {
	return &Rule{
		ID: "r1",
		A:  "door",
		B:  "lamp",
		When: When{Event: "opened", If: []Cond{
			{Path: "lux", Op: "lt", Value: json.RawMessage(`50`)},
			{Path: "by.kind", Op: "ne", Value: json.RawMessage(`"cat"`)},
		}},
		Then:    Then{Action: "fade", InputFrom: "want"},
		By:      "alice",
		Created: 1_700_000_000_000,
	}
}

func signed(t testing.TB, r *Rule, key crypto.PrivKey) *Rule {
	t.Helper()
	if err := r.Sign(key); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return r
}

func TestRuleValidate(t *testing.T) {
	conds := func(n int) []Cond {
		c := make([]Cond, n)
		for i := range c {
			c[i] = Cond{Op: "ne", Value: json.RawMessage(`0`)}
		}
		return c
	}
	tests := []struct {
		name   string
		change func(r *Rule)
		ok     bool
	}{
		{"valid", func(r *Rule) {}, true},
		{"property", func(r *Rule) { r.When = When{Property: "lux", If: []Cond{{Op: "gt", Value: json.RawMessage(`100`)}}} }, true},
		{"fixed input", func(r *Rule) { r.Then = Then{Action: "fade", Input: json.RawMessage(`{"to":10}`)} }, true},
		{"every op", func(r *Rule) {
			r.When.If = nil
			for _, op := range condOps {
				r.When.If = append(r.When.If, Cond{Op: op, Value: json.RawMessage(`1`)})
			}
		}, true},
		{"conditions at the limit", func(r *Rule) { r.When.If = conds(MaxConds) }, true},
		{"too many conditions", func(r *Rule) { r.When.If = conds(MaxConds + 1) }, false},
		{"no id", func(r *Rule) { r.ID = "" }, false},
		{"id not a name", func(r *Rule) { r.ID = "r 1" }, false},
		{"a not an account", func(r *Rule) { r.A = "Door" }, false},
		{"no b", func(r *Rule) { r.B = "" }, false},
		{"by not an account", func(r *Rule) { r.By = "alice@home" }, false},
		{"a is b", func(r *Rule) { r.B = r.A }, false},
		{"no trigger", func(r *Rule) { r.When.Event = "" }, false},
		{"event and property", func(r *Rule) { r.When.Property = "lux" }, false},
		{"trigger not a name", func(r *Rule) { r.When.Event = "op ened" }, false},
		{"unknown op", func(r *Rule) { r.When.If[0].Op = "like" }, false},
		{"no op", func(r *Rule) { r.When.If[0].Op = "" }, false},
		{"no value", func(r *Rule) { r.When.If[0].Value = nil }, false},
		{"value not JSON", func(r *Rule) { r.When.If[0].Value = json.RawMessage(`{`) }, false},
		{"no action", func(r *Rule) { r.Then.Action = "" }, false},
		{"input not JSON", func(r *Rule) { r.Then.Input = json.RawMessage(`{"to":`) }, false},
		{"no created", func(r *Rule) { r.Created = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := doorRule()
			tt.change(r)
			err := r.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%+v) = %v, want ok %v", r, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadRule) {
				t.Errorf("Validate() = %v, want it to wrap ErrBadRule", err)
			}
		})
	}
}

func TestRuleSignVerify(t *testing.T) {
	key := testKey(t, 1)
	r := signed(t, doorRule(), key)
	if r.Device != deviceOf(t, key) {
		t.Errorf("Sign: Device = %s, want %s", r.Device, deviceOf(t, key))
	}
	if err := r.Verify(); err != nil {
		t.Fatalf("Verify() of a signed rule = %v, want nil", err)
	}

	// What travels is JSON: the rule must verify once decoded, whatever
	// the spacing and order of its members.
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var back Rule
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(); err != nil {
		t.Errorf("Verify() of the decoded rule = %v, want nil", err)
	}

	other := testKey(t, 2)
	flip := func(s string) string {
		sig, _ := base64.StdEncoding.DecodeString(s)
		sig[10] ^= 1
		return base64.StdEncoding.EncodeToString(sig)
	}
	changes := []struct {
		name   string
		change func(r *Rule)
	}{
		{"id", func(r *Rule) { r.ID = "r2" }},
		{"a", func(r *Rule) { r.A = "window" }},
		{"b", func(r *Rule) { r.B = "heater" }},
		{"when.event", func(r *Rule) { r.When.Event = "closed" }},
		{"when.property", func(r *Rule) { r.When.Event, r.When.Property = "", "opened" }},
		{"a condition added", func(r *Rule) { r.When.If = append(r.When.If, Cond{Op: "eq", Value: json.RawMessage(`1`)}) }},
		{"a condition removed", func(r *Rule) { r.When.If = r.When.If[:1] }},
		{"conditions swapped", func(r *Rule) { r.When.If[0], r.When.If[1] = r.When.If[1], r.When.If[0] }},
		{"cond.path", func(r *Rule) { r.When.If[0].Path = "lx" }},
		{"cond.op", func(r *Rule) { r.When.If[0].Op = "le" }},
		{"cond.value", func(r *Rule) { r.When.If[0].Value = json.RawMessage(`500`) }},
		{"then.action", func(r *Rule) { r.Then.Action = "unlock" }},
		{"then.input", func(r *Rule) { r.Then.Input = json.RawMessage(`{"to":100}`) }},
		{"then.input_from", func(r *Rule) { r.Then.InputFrom = "" }},
		{"by", func(r *Rule) { r.By = "bob" }},
		{"created", func(r *Rule) { r.Created++ }},
		{"device", func(r *Rule) { r.Device = deviceOf(t, other) }},
		{"device not a peer id", func(r *Rule) { r.Device = "alice-phone" }},
		{"no device", func(r *Rule) { r.Device = "" }},
		{"sig", func(r *Rule) { r.Sig = flip(r.Sig) }},
		{"sig not base64", func(r *Rule) { r.Sig = "!" + r.Sig[1:] }},
		{"sig short", func(r *Rule) { r.Sig = r.Sig[:len(r.Sig)-4] }},
		{"no sig", func(r *Rule) { r.Sig = "" }},
		{"signed by another key", func(r *Rule) {
			dev := r.Device
			signed(t, r, other)
			r.Device = dev
		}},
	}
	for _, tt := range changes {
		t.Run(tt.name, func(t *testing.T) {
			r := signed(t, doorRule(), key)
			tt.change(r)
			if err := r.Verify(); !errors.Is(err, ErrBadRule) {
				t.Errorf("Verify() after changing %s = %v, want ErrBadRule", tt.name, err)
			}
		})
	}

	t.Run("resigned by another key", func(t *testing.T) {
		r := signed(t, signed(t, doorRule(), key), other)
		if err := r.Verify(); err != nil {
			t.Errorf("Verify() = %v, want nil", err)
		}
		if r.Device != deviceOf(t, other) {
			t.Errorf("Device = %s, want the signer's %s", r.Device, deviceOf(t, other))
		}
	})
	t.Run("sign an invalid rule", func(t *testing.T) {
		r := doorRule()
		r.Then.Input = json.RawMessage(`{`)
		if err := r.Sign(key); err == nil {
			t.Errorf("Sign() of a rule whose input is not JSON = nil, want an error")
		}
	})
}

func TestRuleFires(t *testing.T) {
	cond := func(path, op, value string) []Cond {
		return []Cond{{Path: path, Op: op, Value: json.RawMessage(value)}}
	}
	event := func(name, data string) *Feedback {
		return &Feedback{Kind: KindEvent, Event: name, Data: json.RawMessage(data), Cause: CauseLocal}
	}
	state := func(props string) *Feedback {
		f := &Feedback{Kind: KindState, Cause: CauseLocal}
		if err := json.Unmarshal([]byte(props), &f.Props); err != nil {
			t.Fatal(err)
		}
		return f
	}
	fixed := Then{Action: "on", Input: json.RawMessage(`{"to":10}`)}
	tests := []struct {
		name  string
		when  When
		then  Then
		f     *Feedback
		fires bool
		input string
	}{
		{"event, no conditions", When{Event: "opened"}, fixed, event("opened", ""), true, `{"to":10}`},
		{"event, no input", When{Event: "opened"}, Then{Action: "on"}, event("opened", ""), true, ``},
		{"another event", When{Event: "opened"}, fixed, event("closed", ""), false, ``},
		{"event rule, state feedback", When{Event: "opened"}, fixed, state(`{"opened":true}`), false, ``},
		{"property rule, event feedback", When{Property: "lux"}, fixed, event("lux", "1"), false, ``},
		{"ack feedback", When{Event: "opened"}, fixed, &Feedback{Kind: KindAck, Event: "opened", Cmd: "m", Status: AckAccepted}, false, ``},
		{"event data not JSON", When{Event: "opened"}, fixed, event("opened", "{"), false, ``},

		{"eq number", When{Event: "t", If: cond("", "eq", `20`)}, fixed, event("t", `20.0`), true, `{"to":10}`},
		{"eq number, not", When{Event: "t", If: cond("", "eq", `20`)}, fixed, event("t", `21`), false, ``},
		{"eq string", When{Event: "t", If: cond("mode", "eq", `"away"`)}, fixed, event("t", `{"mode":"away"}`), true, `{"to":10}`},
		{"eq object in another order", When{Event: "t", If: cond("", "eq", `{"a":1,"b":[2]}`)}, fixed, event("t", `{"b":[2],"a":1}`), true, `{"to":10}`},
		{"eq null, data absent", When{Event: "t", If: cond("", "eq", `null`)}, fixed, event("t", ``), true, `{"to":10}`},
		{"eq, string and number", When{Event: "t", If: cond("", "eq", `"1"`)}, fixed, event("t", `1`), false, ``},
		{"ne", When{Event: "t", If: cond("", "ne", `1`)}, fixed, event("t", `2`), true, `{"to":10}`},
		{"ne, equal", When{Event: "t", If: cond("", "ne", `true`)}, fixed, event("t", `true`), false, ``},
		{"ne, path missing", When{Event: "t", If: cond("a.b", "ne", `1`)}, fixed, event("t", `{"a":{}}`), true, `{"to":10}`},
		{"gt", When{Event: "t", If: cond("", "gt", `1`)}, fixed, event("t", `1.5`), true, `{"to":10}`},
		{"gt, equal", When{Event: "t", If: cond("", "gt", `1`)}, fixed, event("t", `1`), false, ``},
		{"ge, equal", When{Event: "t", If: cond("", "ge", `1`)}, fixed, event("t", `1`), true, `{"to":10}`},
		{"ge, under", When{Event: "t", If: cond("", "ge", `1`)}, fixed, event("t", `0.5`), false, ``},
		{"lt", When{Event: "t", If: cond("", "lt", `0`)}, fixed, event("t", `-3`), true, `{"to":10}`},
		{"lt, equal", When{Event: "t", If: cond("", "lt", `0`)}, fixed, event("t", `0`), false, ``},
		{"le, equal", When{Event: "t", If: cond("", "le", `0`)}, fixed, event("t", `0`), true, `{"to":10}`},
		{"le, over", When{Event: "t", If: cond("", "le", `0`)}, fixed, event("t", `0.1`), false, ``},
		{"gt on strings", When{Event: "t", If: cond("", "gt", `"a"`)}, fixed, event("t", `"b"`), false, ``},
		{"lt, value missing", When{Event: "t", If: cond("x", "lt", `5`)}, fixed, event("t", `{}`), false, ``},
		{"eq, path missing", When{Event: "t", If: cond("x", "eq", `null`)}, fixed, event("t", `{}`), false, ``},
		{"path through a non-object", When{Event: "t", If: cond("a.b", "eq", `1`)}, fixed, event("t", `{"a":[1]}`), false, ``},
		{"nested path", When{Event: "t", If: cond("a.b.c", "ge", `3`)}, fixed, event("t", `{"a":{"b":{"c":3}}}`), true, `{"to":10}`},
		{"every condition holds", When{Event: "t", If: []Cond{
			{Path: "lux", Op: "lt", Value: json.RawMessage(`50`)},
			{Path: "who", Op: "ne", Value: json.RawMessage(`"cat"`)},
		}}, fixed, event("t", `{"lux":10,"who":"bob"}`), true, `{"to":10}`},
		{"one condition fails", When{Event: "t", If: []Cond{
			{Path: "lux", Op: "lt", Value: json.RawMessage(`50`)},
			{Path: "who", Op: "ne", Value: json.RawMessage(`"cat"`)},
		}}, fixed, event("t", `{"lux":10,"who":"cat"}`), false, ``},

		{"property changed", When{Property: "lux", If: cond("", "lt", `50`)}, fixed, state(`{"lux":20,"on":true}`), true, `{"to":10}`},
		{"property not in the state", When{Property: "lux"}, fixed, state(`{"on":true}`), false, ``},
		{"property, condition fails", When{Property: "lux", If: cond("", "lt", `50`)}, fixed, state(`{"lux":80}`), false, ``},

		{"no input_from, no input", When{Event: "t"}, Then{Action: "show", InputFrom: ""}, event("t", `{"a":1}`), true, ``},
		{"input_from a member", When{Event: "t"}, Then{Action: "fade", InputFrom: "want"}, event("t", `{"want":{"to":30},"lux":3}`), true, `{"to":30}`},
		{"input_from a nested member", When{Event: "t"}, Then{Action: "fade", InputFrom: "a.b"}, event("t", `{"a":{"b":[1,2]}}`), true, `[1,2]`},
		{"input_from over input", When{Event: "t"}, Then{Action: "fade", Input: json.RawMessage(`1`), InputFrom: "x"}, event("t", `{"x":2}`), true, `2`},
		{"input_from missing", When{Event: "t"}, Then{Action: "fade", InputFrom: "want"}, event("t", `{"lux":3}`), false, ``},
		{"input_from a property", When{Property: "lux"}, Then{Action: "fade", InputFrom: "level"}, state(`{"lux":{"level":7}}`), true, `7`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Rule{ID: "r", A: "a", B: "b", When: tt.when, Then: tt.then, By: "alice", Created: 1}
			fires, input := r.Fires(tt.f)
			if fires != tt.fires || string(input) != tt.input {
				t.Errorf("Fires(%+v) = %v, %s, want %v, %s", tt.f, fires, input, tt.fires, tt.input)
			}
		})
	}
}
