package server_test

import (
	"reflect"
	"testing"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// A thing publishes its description; the server keeps the latest version
// and tells the persons bound to it and the things associated with it.
func TestDescribe(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	lamp2 := dial(t, h.inst, "lamp", "lamp-2")
	v1 := lampDescription(1, "Lamp")
	h.lamp.OK(wire.MethodDescribe, v1, nil)
	for _, cl := range []*servertest.Client{h.alice, h.sw, lamp2} {
		thingEvent(t, cl, wire.EventDescribed, "lamp")
	}
	for _, cl := range []*servertest.Client{h.lamp, h.alice, h.sw} {
		var got thing.Description
		cl.OK(wire.MethodDescription, thing.ThingReq{Thing: "lamp"}, &got)
		if !reflect.DeepEqual(got, v1) {
			t.Errorf("%s description(lamp) = %+v, want %+v", cl.User, got, v1)
		}
	}

	// The same version again changes nothing and tells nobody.
	h.lamp.OK(wire.MethodDescribe, v1, nil)
	noThingEvent(t, h.alice, wire.EventDescribed)
	wantError(t, "the same version with other content", h.lamp.Fail(wire.MethodDescribe, lampDescription(1, "Other")), "conflict")

	v2 := lampDescription(2, "Lamp v2")
	h.lamp.OK(wire.MethodDescribe, v2, nil)
	thingEvent(t, h.alice, wire.EventDescribed, "lamp")
	wantError(t, "a lower version", h.lamp.Fail(wire.MethodDescribe, v1), "conflict")
	var got thing.Description
	h.alice.OK(wire.MethodDescription, thing.ThingReq{Thing: "lamp"}, &got)
	if got.Version != 2 || got.Title != "Lamp v2" {
		t.Errorf("description after v2 = version %d %q, want 2 %q", got.Version, got.Title, "Lamp v2")
	}

	// Strangers and the dave, friend of the owner, hear nothing of it.
	for _, cl := range []*servertest.Client{h.bob, h.carol, h.dave, h.kettle} {
		noThingEvent(t, cl, wire.EventDescribed)
	}
}

func TestDescribeRefused(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	bad := lampDescription(1, "x")
	bad.Actions = map[string]*thing.Action{"": {}}
	for _, tt := range []struct {
		name string
		cl   *servertest.Client
		body any
		want string
	}{
		{"by a person", h.alice, lampDescription(1, "x"), "forbidden"},
		{"a thing describing another thing", h.sw, lampDescription(1, "x"), "forbidden"},
		{"no thing", h.lamp, map[string]any{"version": 1}, "missing field"},
		{"version 0", h.lamp, lampDescription(0, "x"), "bad request"},
		{"an action without a name", h.lamp, bad, "bad request"},
		{"not JSON", h.lamp, []byte(`{"thing":`), "bad request"},
	} {
		wantError(t, "describe "+tt.name, tt.cl.Fail(wire.MethodDescribe, tt.body), tt.want)
	}
	wantError(t, "description of a thing that never described itself", h.alice.Fail(wire.MethodDescription, thing.ThingReq{Thing: "lamp"}), "not found")
	noThingEvent(t, h.alice, wire.EventDescribed)
}

// Only the thing, persons bound to it and things associated with it may
// read its description.
func TestDescriptionRefused(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	bindAgain(t, h.bob, h.lamp)
	h.bob.OK("unbind_thing", wire.BindThingReq{Thing: "lamp"}, nil)
	h.lamp.OK(wire.MethodDescribe, lampDescription(1, "Lamp"), nil)
	h.dave.OK("add_friend", wire.UserReq{User: "lamp"}, nil)
	h.lamp.OK("accept_friend", wire.UserReq{User: "dave"}, nil)
	for _, tt := range []struct {
		name string
		cl   *servertest.Client
		body any
		want string
	}{
		{"a stranger", h.carol, thing.ThingReq{Thing: "lamp"}, "forbidden"},
		{"a former owner, after unbind_thing", h.bob, thing.ThingReq{Thing: "lamp"}, "forbidden"},
		{"a friend of the owner", h.dave, thing.ThingReq{Thing: "switch"}, "forbidden"},
		{"a friend of the thing", h.dave, thing.ThingReq{Thing: "lamp"}, "forbidden"},
		{"an unrelated thing", h.kettle, thing.ThingReq{Thing: "lamp"}, "forbidden"},
		{"no thing", h.alice, thing.ThingReq{}, "missing field"},
		{"a person", h.alice, thing.ThingReq{Thing: "bob"}, "not a thing"},
		{"no such account", h.alice, thing.ThingReq{Thing: "nobody"}, "not found"},
	} {
		wantError(t, "description by "+tt.name, tt.cl.Fail(wire.MethodDescription, tt.body), tt.want)
	}
}
