package server_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

func TestAddListRemoveRule(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	alice2 := dial(t, h.inst, "alice", "alice-2")
	r := newRule(t, h.aliceKey, "switch-toggles-lamp", "switch", "lamp", "alice", "toggle")
	var id thing.RuleID
	h.alice.OK(wire.MethodAddRule, r, &id)
	if id.ID != r.ID {
		t.Errorf("add_rule = %+v, want id %s", id, r.ID)
	}
	thingEvent(t, h.lamp, wire.EventRules, "switch")
	thingEvent(t, h.sw, wire.EventRules, "lamp")
	thingEvent(t, alice2, wire.EventRules, "switch")
	noThingEvent(t, h.alice, wire.EventRules) // the device that added it knows

	want := []string{r.ID}
	for _, tt := range []struct {
		cl   *servertest.Client
		name string
	}{{h.alice, ""}, {h.alice, "lamp"}, {h.lamp, ""}, {h.sw, ""}, {h.lamp, "switch"}, {h.sw, "lamp"}} {
		if got := listRules(t, tt.cl, tt.name); !slices.Equal(got, want) {
			t.Errorf("%s list_rules(%q) = %v, want %v", tt.cl.User, tt.name, got, want)
		}
	}
	var rules []thing.Rule
	h.lamp.OK(wire.MethodListRules, thing.ThingReq{}, &rules)
	if len(rules) != 1 || rules[0].Verify() != nil || rules[0].Sig != r.Sig {
		t.Errorf("list_rules = %+v, want the signed rule as added", rules)
	}
	for _, cl := range []*servertest.Client{h.carol, h.dave, h.kettle} {
		if got := listRules(t, cl, ""); len(got) != 0 {
			t.Errorf("%s list_rules = %v, want none", cl.User, got)
		}
	}

	// The same rule again is fine and changes nothing; another under its id
	// is a conflict.
	h.alice.OK(wire.MethodAddRule, r, nil)
	noThingEvent(t, h.lamp, wire.EventRules)
	other := newRule(t, h.aliceKey, r.ID, "switch", "lamp", "alice", "dim")
	wantError(t, "another rule under a taken id", h.alice.Fail(wire.MethodAddRule, other), "conflict")

	wantError(t, "remove_rule by a stranger", h.carol.Fail(wire.MethodRemoveRule, thing.RuleID{ID: r.ID}), "forbidden")
	wantError(t, "remove_rule by the owner's friend", h.dave.Fail(wire.MethodRemoveRule, thing.RuleID{ID: r.ID}), "forbidden")
	wantError(t, "remove_rule by a thing", h.lamp.Fail(wire.MethodRemoveRule, thing.RuleID{ID: r.ID}), "forbidden")
	wantError(t, "remove_rule of no rule", h.alice.Fail(wire.MethodRemoveRule, thing.RuleID{ID: "nope"}), "not found")
	wantError(t, "remove_rule without id", h.alice.Fail(wire.MethodRemoveRule, thing.RuleID{}), "missing field")
	h.alice.OK(wire.MethodRemoveRule, thing.RuleID{ID: r.ID}, nil)
	thingEvent(t, h.lamp, wire.EventRules, "switch")
	thingEvent(t, h.sw, wire.EventRules, "lamp")
	thingEvent(t, alice2, wire.EventRules, "lamp")
	if got := listRules(t, h.alice, ""); len(got) != 0 {
		t.Errorf("list_rules after remove_rule = %v, want none", got)
	}
	wantError(t, "remove_rule twice", h.alice.Fail(wire.MethodRemoveRule, thing.RuleID{ID: r.ID}), "not found")

	// A person bound to one of the two things may remove a rule too.
	bindAgain(t, h.bob, h.lamp)
	h.alice.OK(wire.MethodAddRule, r, nil)
	if got := listRules(t, h.bob, ""); !slices.Equal(got, want) {
		t.Errorf("bob (bound to lamp) list_rules = %v, want %v", got, want)
	}
	h.bob.OK(wire.MethodRemoveRule, thing.RuleID{ID: r.ID}, nil)
	thingEvent(t, h.alice, wire.EventRules, "lamp")
}

func TestAddRuleRefused(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	bobKey, bobDevice := servertest.NewDeviceKey(t)
	bob := dial(t, h.inst, "bob", bobDevice)
	bob.Register(bobKey, nil)
	bindAgain(t, bob, h.lamp) // bob is bound to the lamp, not the switch
	h.alice.OK("bind_thing", wire.BindThingReq{Thing: "kettle", Code: func() string {
		var c wire.PairingCode
		h.kettle.OK("pairing_code", wire.Empty{}, &c)
		return c.Code
	}()}, nil)
	strayKey, _ := servertest.NewDeviceKey(t)

	forged := newRule(t, h.aliceKey, "forged", "switch", "lamp", "alice", "toggle")
	forged.Then.Action = "dim" // changed after signing
	sameRule := func(id string) thing.Rule { return newRule(t, h.aliceKey, id, "switch", "lamp", "alice", "toggle") }
	noID := sameRule("x")
	noID.ID = ""
	for _, tt := range []struct {
		name string
		cl   *servertest.Client
		body any
		want string
	}{
		{"by a thing", h.sw, newRule(t, h.swKey, "r1", "switch", "lamp", "switch", "toggle"), "forbidden: only a person"},
		{"made by someone else", bob, sameRule("r2"), "forbidden: rule r2 is made by alice, not by you"},
		{"with a forged signature", h.alice, forged, "forbidden: rule forged: bad rule: the signature does not match"},
		{"signed by another account's device", h.alice, newRule(t, bobKey, "r3", "switch", "lamp", "alice", "toggle"), "not one of yours"},
		{"signed by no registered device", h.alice, newRule(t, strayKey, "r4", "switch", "lamp", "alice", "toggle"), "not one of yours"},
		{"for things the maker is not bound to both of", bob, newRule(t, bobKey, "r5", "switch", "lamp", "bob", "toggle"), "forbidden: relations missing for the rule: bob and switch are not bound"},
		{"for things that are not associated", h.alice, newRule(t, h.aliceKey, "r6", "kettle", "lamp", "alice", "toggle"), "forbidden: relations missing for the rule: kettle and lamp are not associated"},
		{"for a person", h.alice, newRule(t, h.aliceKey, "r7", "switch", "bob", "alice", "toggle"), "not a thing"},
		{"for no such account", h.alice, newRule(t, h.aliceKey, "r8", "switch", "nobody", "alice", "toggle"), "not found"},
		{"from a thing to itself", h.alice, newRule(t, h.aliceKey, "r9", "lamp", "lamp", "alice", "toggle"), "bad request"},
		{"without an id", h.alice, noID, "bad request"},
		{"unsigned", h.alice, func() thing.Rule { r := sameRule("r10"); r.Sig = ""; return r }(), "forbidden: rule r10: bad rule"},
		{"not JSON", h.alice, []byte(`{"id":`), "bad request"},
	} {
		wantError(t, "add_rule "+tt.name, tt.cl.Fail(wire.MethodAddRule, tt.body), tt.want)
	}
	if got := listRules(t, h.lamp, ""); len(got) != 0 {
		t.Errorf("list_rules after refused add_rules = %v, want none", got)
	}
	noThingEvent(t, h.lamp, wire.EventRules)

	for _, tt := range []struct {
		name string
		cl   *servertest.Client
		body thing.ThingReq
		want string
	}{
		{"a stranger", h.carol, thing.ThingReq{Thing: "lamp"}, "forbidden"},
		{"the owner's friend", h.dave, thing.ThingReq{Thing: "lamp"}, "forbidden"},
		{"an unrelated thing", h.kettle, thing.ThingReq{Thing: "lamp"}, "forbidden"},
		{"a person as the thing", h.alice, thing.ThingReq{Thing: "bob"}, "not a thing"},
	} {
		wantError(t, "list_rules by "+tt.name, tt.cl.Fail(wire.MethodListRules, tt.body), tt.want)
	}
}

// A rule lives while its maker is bound to both things and they are
// associated: unbind_thing and dissociate drop the rules that needed them.
func TestRulesGoWithTheirRelations(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	r := newRule(t, h.aliceKey, "r", "switch", "lamp", "alice", "toggle")
	h.alice.OK(wire.MethodAddRule, r, nil)
	h.lamp.Drain(quiet)
	h.alice.OK("unbind_thing", wire.BindThingReq{Thing: "lamp"}, nil)
	thingEvent(t, h.lamp, wire.EventRules, "switch")
	if got := listRules(t, h.sw, ""); len(got) != 0 {
		t.Errorf("list_rules after the maker unbound the lamp = %v, want none", got)
	}
	// Bound again, the rule does not come back by itself.
	bindAgain(t, h.alice, h.lamp)
	if got := listRules(t, h.alice, ""); len(got) != 0 {
		t.Errorf("list_rules after binding again = %v, want none", got)
	}
	h.alice.OK(wire.MethodAddRule, r, nil)
	h.sw.Drain(quiet)
	h.alice.OK("dissociate", wire.AssociateReq{A: "lamp", B: "switch"}, nil)
	thingEvent(t, h.sw, wire.EventRules, "lamp")
	if got := listRules(t, h.alice, ""); len(got) != 0 {
		t.Errorf("list_rules after dissociate = %v, want none", got)
	}
	wantError(t, "add_rule while dissociated", h.alice.Fail(wire.MethodAddRule, r), "forbidden")
}

// A thing has at most 64 rules.
func TestRuleLimit(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	for i := range 64 {
		h.alice.OK(wire.MethodAddRule, newRule(t, h.aliceKey, fmt.Sprintf("r%02d", i), "switch", "lamp", "alice", "toggle"), nil)
	}
	wantError(t, "a 65th rule", h.alice.Fail(wire.MethodAddRule, newRule(t, h.aliceKey, "r64", "lamp", "switch", "alice", "toggle")), "too many rules")
	if got := listRules(t, h.lamp, ""); len(got) != 64 {
		t.Errorf("list_rules = %d rules, want 64", len(got))
	}
}
