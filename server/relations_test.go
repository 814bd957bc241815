package server_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func TestFriendRequestAccept(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]

	alice.OK("add_friend", map[string]string{"user": "bob"}, nil)
	if ev := relationEvent(t, bob, wire.EventRequest); ev.User != "alice" {
		t.Errorf("bob's relation push after add_friend = %+v, want event request from alice", ev)
	}
	wantRelation(t, alice, "bob", wire.KindPerson, wire.StatePendingOut)
	wantRelation(t, bob, "alice", wire.KindPerson, wire.StatePendingIn)
	// A pending request does not open the dm.
	wantError(t, "send before accept", alice.Fail("send", text(wire.DM("alice", "bob"), "hi")), "forbidden")

	before := time.Now().UnixMilli()
	bob.OK("accept_friend", map[string]string{"user": "alice"}, nil)
	if ev := relationEvent(t, alice, "accepted"); ev.User != "bob" {
		t.Errorf("alice's relation push after accept = %+v, want event accepted from bob", ev)
	}
	r := wantRelation(t, alice, "bob", wire.KindPerson, wire.StateFriend)
	if r.Since < before || r.Expires != 0 {
		t.Errorf("alice list_relations[bob] = %+v, want since >= %d and no expires", r, before)
	}
	wantRelation(t, bob, "alice", wire.KindPerson, wire.StateFriend)
	send(t, alice, text(wire.DM("alice", "bob"), "now we talk"))
}

func TestFriendRequestRefused(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, carol)
	alice.OK("add_friend", map[string]string{"user": "bob"}, nil)

	tests := []struct {
		name   string
		cl     *servertest.Client
		method string
		body   any
		want   string
	}{
		{"add self", alice, "add_friend", map[string]string{"user": "alice"}, "bad request"},
		{"add unknown", alice, "add_friend", map[string]string{"user": "nobody"}, "not found"},
		{"add bad name", alice, "add_friend", map[string]string{"user": "Not A Name"}, "bad request"},
		{"add without user", alice, "add_friend", map[string]string{}, "missing field"},
		{"add twice", alice, "add_friend", map[string]string{"user": "bob"}, "conflict"},
		{"add a friend", alice, "add_friend", map[string]string{"user": "carol"}, "conflict"},
		{"accept own request", alice, "accept_friend", map[string]string{"user": "bob"}, "not found"},
		{"accept without request", carol, "accept_friend", map[string]string{"user": "bob"}, "not found"},
		{"reject without request", carol, "reject_friend", map[string]string{"user": "bob"}, "not found"},
		{"remove a non-friend", bob, "remove_friend", map[string]string{"user": "carol"}, "not found"},
		{"remove a pending request", alice, "remove_friend", map[string]string{"user": "bob"}, "not found"},
		{"remove negative keep", alice, "remove_friend", map[string]any{"user": "carol", "keep_seconds": -1}, "bad request"},
		{"restore a friend", alice, "restore_friend", map[string]string{"user": "carol"}, "not found"},
		{"restore nothing", bob, "restore_friend", map[string]string{"user": "carol"}, "not found"},
	}
	for _, tt := range tests {
		wantError(t, tt.name, tt.cl.Fail(tt.method, tt.body), tt.want)
	}
	// Nothing above changed a relation.
	wantRelation(t, alice, "bob", wire.KindPerson, wire.StatePendingOut)
	wantRelation(t, alice, "carol", wire.KindPerson, wire.StateFriend)
	wantRelation(t, bob, "carol", "", "")
}

func TestFriendRequestReject(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	alice.OK("add_friend", map[string]string{"user": "bob"}, nil)
	bob.OK("reject_friend", map[string]string{"user": "alice"}, nil)
	if ev := relationEvent(t, alice, "rejected"); ev.User != "bob" {
		t.Errorf("alice's relation push after reject = %+v, want event rejected from bob", ev)
	}
	wantRelation(t, alice, "bob", "", "")
	wantRelation(t, bob, "alice", "", "")
	wantError(t, "accept after reject", bob.Fail("accept_friend", map[string]string{"user": "alice"}), "not found")
	wantError(t, "send after reject", alice.Fail("send", text(wire.DM("alice", "bob"), "hi")), "forbidden")
	// A rejected request may be made again.
	alice.OK("add_friend", map[string]string{"user": "bob"}, nil)
	wantRelation(t, bob, "alice", wire.KindPerson, wire.StatePendingIn)
}

func TestRemoveAndRestoreFriend(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	send(t, alice, text(dm, "before"))

	before := time.Now().UnixMilli()
	var res struct {
		Expires int64 `json:"expires"`
	}
	alice.OK("remove_friend", map[string]any{"user": "bob", "keep_seconds": 60}, &res)
	after := time.Now().UnixMilli()
	if res.Expires < before+60_000 || res.Expires > after+60_000 {
		t.Errorf("remove_friend(keep_seconds 60).expires = %d, want within [%d, %d]", res.Expires, before+60_000, after+60_000)
	}
	if ev := relationEvent(t, bob, "removed"); ev.User != "alice" {
		t.Errorf("bob's relation push after remove = %+v, want event removed by alice", ev)
	}
	for _, cl := range []*servertest.Client{alice, bob} {
		other := map[string]string{"alice": "bob", "bob": "alice"}[cl.User]
		r := wantRelation(t, cl, other, wire.KindPerson, wire.StateRecycled)
		if r.Expires != res.Expires {
			t.Errorf("%s list_relations[%s].expires = %d, want %d", cl.User, other, r.Expires, res.Expires)
		}
	}
	wantError(t, "alice send while recycled", alice.Fail("send", text(dm, "x")), "forbidden")
	wantError(t, "bob send while recycled", bob.Fail("send", text(dm, "x")), "forbidden")
	// History stays readable by both.
	if h := history(t, bob, dm, 0, 0); len(h.Messages) != 1 {
		t.Errorf("bob history(%s) while recycled = %d messages, want 1", dm, len(h.Messages))
	}
	wantError(t, "restore by the removed one", bob.Fail("restore_friend", map[string]string{"user": "alice"}), "forbidden")
	// The bin is the remover's: the other side cannot replace it by asking anew.
	wantError(t, "add_friend while recycled", bob.Fail("add_friend", map[string]string{"user": "alice"}), "conflict")

	alice.OK("restore_friend", map[string]string{"user": "bob"}, nil)
	if ev := relationEvent(t, bob, "restored"); ev.User != "alice" {
		t.Errorf("bob's relation push after restore = %+v, want event restored by alice", ev)
	}
	if r := wantRelation(t, bob, "alice", wire.KindPerson, wire.StateFriend); r.Expires != 0 {
		t.Errorf("bob list_relations[alice] after restore = %+v, want no expires", r)
	}
	if r := send(t, bob, text(dm, "back")); r.SeqId != 2 {
		t.Errorf("send after restore SeqId = %d, want 2", r.SeqId)
	}
	wantError(t, "restore twice", alice.Fail("restore_friend", map[string]string{"user": "bob"}), "not found")
}

func TestRemovedFriendExpires(t *testing.T) {
	t.Parallel()
	const max = 400 * time.Millisecond
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.RecycleMax = max }))
	people(t, inst, "alice", "bob", "carol")
	alice, bob, carol := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1"), dial(t, inst, "carol", "carol-1")
	befriend(t, alice, bob)
	befriend(t, alice, carol)

	// keep_seconds over the server's maximum is cut to it.
	before := time.Now()
	var res struct {
		Expires int64 `json:"expires"`
	}
	alice.OK("remove_friend", map[string]any{"user": "bob", "keep_seconds": 3600}, &res)
	if limit := time.Now().Add(max).UnixMilli(); res.Expires > limit || res.Expires < before.Add(max).UnixMilli() {
		t.Errorf("remove_friend(keep_seconds 3600) with a %v maximum: expires = %d, want about %d", max, res.Expires, limit)
	}
	// No keep_seconds: the server maximum.
	alice.OK("remove_friend", map[string]any{"user": "carol"}, &res)
	if limit := time.Now().Add(max).UnixMilli(); res.Expires > limit {
		t.Errorf("remove_friend(no keep_seconds) with a %v maximum: expires = %d, want <= %d", max, res.Expires, limit)
	}
	time.Sleep(max + 200*time.Millisecond)

	wantError(t, "restore after expiry", alice.Fail("restore_friend", map[string]string{"user": "bob"}), "not found")
	wantRelation(t, alice, "bob", "", "")
	wantRelation(t, bob, "alice", "", "")
	wantRelation(t, alice, "carol", "", "")
	wantError(t, "send after expiry", alice.Fail("send", text(wire.DM("alice", "bob"), "x")), "forbidden")
	// An expired relation is gone: a new request starts over.
	bob.OK("add_friend", map[string]string{"user": "alice"}, nil)
	wantRelation(t, alice, "bob", wire.KindPerson, wire.StatePendingIn)
}

func TestRemoveFriendKeepSeconds(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	alice.OK("remove_friend", map[string]any{"user": "bob", "keep_seconds": 1}, nil)
	wantRelation(t, alice, "bob", wire.KindPerson, wire.StateRecycled)
	time.Sleep(1200 * time.Millisecond)
	wantError(t, "restore after keep_seconds 1", alice.Fail("restore_friend", map[string]string{"user": "bob"}), "not found")
	wantRelation(t, alice, "bob", "", "")
}

func TestPairingCode(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice")
	inst.AddUser(t, "lamp", password("lamp"), true)
	alice, lamp := dial(t, inst, "alice", "alice-1"), dial(t, inst, "lamp", "lamp-1")

	wantError(t, "pairing_code by a person", alice.Fail("pairing_code", wire.Empty{}), "forbidden")
	var a, b wire.PairingCode
	lamp.OK("pairing_code", wire.Empty{}, &a)
	lamp.OK("pairing_code", wire.Empty{}, &b)
	now := time.Now().UnixMilli()
	if a.Code == "" || a.Expires <= now {
		t.Errorf("pairing_code = %+v, want a code expiring after %d", a, now)
	}
	if a.Code == b.Code {
		t.Errorf("two pairing_code calls both gave %q, want fresh codes", a.Code)
	}
}

func TestBindThing(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob")
	first := inst.AddUser(t, "lamp", password("lamp"), true)
	inst.AddUser(t, "kettle", password("kettle"), true)
	alice, bob := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	lamp := dial(t, inst, "lamp", "lamp-1")
	var code wire.PairingCode
	lamp.OK("pairing_code", wire.Empty{}, &code)

	tests := []struct {
		name string
		cl   *servertest.Client
		body wire.BindThingReq
		want string
	}{
		{"wrong code", alice, wire.BindThingReq{Thing: "lamp", Code: "000000000x"}, "forbidden"},
		{"code of another thing", alice, wire.BindThingReq{Thing: "kettle", Code: code.Code}, "forbidden"},
		{"no code", alice, wire.BindThingReq{Thing: "lamp"}, "missing field"},
		{"no thing", alice, wire.BindThingReq{Code: code.Code}, "missing field"},
		{"a person", alice, wire.BindThingReq{Thing: "bob", Code: code.Code}, "not a thing"},
		{"unknown thing", alice, wire.BindThingReq{Thing: "toaster", Code: code.Code}, "not found"},
		{"by a thing", lamp, wire.BindThingReq{Thing: "kettle", Code: code.Code}, "forbidden"},
	}
	for _, tt := range tests {
		wantError(t, "bind_thing "+tt.name, tt.cl.Fail("bind_thing", tt.body), tt.want)
	}

	alice.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: code.Code}, nil)
	if ev := relationEvent(t, lamp, "bound"); ev.User != "alice" {
		t.Errorf("lamp's relation push after bind = %+v, want event bound by alice", ev)
	}
	wantRelation(t, alice, "lamp", wire.KindThing, wire.StateBound)
	wantRelation(t, lamp, "alice", wire.KindPerson, wire.StateBound)
	// A code is good once.
	wantError(t, "bind_thing with a used code", bob.Fail("bind_thing", wire.BindThingReq{Thing: "lamp", Code: code.Code}), "forbidden")
	wantRelation(t, bob, "lamp", "", "")
	// The code printed by user add --thing works too.
	bob.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: first}, nil)
	wantRelation(t, bob, "lamp", wire.KindThing, wire.StateBound)

	// Bound person and thing share a dm.
	dm := wire.DM("alice", "lamp")
	send(t, lamp, text(dm, "on"))
	if n := alice.News(); n.Feeds != dm || n.Message.From != "lamp" {
		t.Errorf("alice news after lamp sent = %+v, want a message from lamp in %s", n, dm)
	}

	wantError(t, "unbind by a stranger", bob.Fail("unbind_thing", wire.BindThingReq{Thing: "kettle"}), "not found")
	alice.OK("unbind_thing", wire.BindThingReq{Thing: "lamp"}, nil)
	if ev := relationEvent(t, lamp, "unbound"); ev.User != "alice" {
		t.Errorf("lamp's relation push after unbind = %+v, want event unbound by alice", ev)
	}
	wantRelation(t, alice, "lamp", "", "")
	wantRelation(t, lamp, "bob", wire.KindPerson, wire.StateBound)
	wantError(t, "unbind twice", alice.Fail("unbind_thing", wire.BindThingReq{Thing: "lamp"}), "not found")
	wantError(t, "send after unbind", lamp.Fail("send", text(dm, "off")), "forbidden")
}

func TestAssociateThings(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob")
	lampCode := inst.AddUser(t, "lamp", password("lamp"), true)
	switchCode := inst.AddUser(t, "switch", password("switch"), true)
	inst.AddUser(t, "kettle", password("kettle"), true)
	alice, bob := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	lamp, sw := dial(t, inst, "lamp", "lamp-1"), dial(t, inst, "switch", "switch-1")
	alice.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: lampCode}, nil)
	alice.OK("bind_thing", wire.BindThingReq{Thing: "switch", Code: switchCode}, nil)
	var code wire.PairingCode
	sw.OK("pairing_code", wire.Empty{}, &code)
	bob.OK("bind_thing", wire.BindThingReq{Thing: "switch", Code: code.Code}, nil)

	pair := wire.AssociateReq{A: "lamp", B: "switch"}
	tests := []struct {
		name string
		cl   *servertest.Client
		body wire.AssociateReq
		want string
	}{
		{"by an owner of one", bob, pair, "forbidden"},
		{"by a thing", lamp, pair, "forbidden"},
		{"an unbound thing", alice, wire.AssociateReq{A: "lamp", B: "kettle"}, "forbidden"},
		{"with itself", alice, wire.AssociateReq{A: "lamp", B: "lamp"}, "bad request"},
		{"a person", alice, wire.AssociateReq{A: "lamp", B: "bob"}, "not a thing"},
		{"missing b", alice, wire.AssociateReq{A: "lamp"}, "missing field"},
	}
	for _, tt := range tests {
		wantError(t, "associate "+tt.name, tt.cl.Fail("associate", tt.body), tt.want)
	}
	wantError(t, "send before associate", lamp.Fail("send", text(wire.DM("lamp", "switch"), "x")), "forbidden")

	alice.OK("associate", pair, nil)
	for _, cl := range []*servertest.Client{lamp, sw} {
		relationEvent(t, cl, "associated")
	}
	wantRelation(t, lamp, "switch", wire.KindThing, wire.StateAssociated)
	wantRelation(t, sw, "lamp", wire.KindThing, wire.StateAssociated)
	wantError(t, "associate twice", alice.Fail("associate", pair), "conflict")
	send(t, sw, text(wire.DM("lamp", "switch"), "toggle"))

	wantError(t, "dissociate by an owner of one", bob.Fail("dissociate", pair), "forbidden")
	wantError(t, "dissociate by a thing", sw.Fail("dissociate", pair), "forbidden")
	alice.OK("dissociate", wire.AssociateReq{A: "switch", B: "lamp"}, nil)
	wantRelation(t, lamp, "switch", "", "")
	wantError(t, "dissociate twice", alice.Fail("dissociate", pair), "not found")
	wantError(t, "send after dissociate", sw.Fail("send", text(wire.DM("lamp", "switch"), "x")), "forbidden")
}

// A relation or group change made on one device reaches the account's
// other devices as a relation snapshot; the acting device gets its answer.
func TestRelationChangeReachesOwnOtherDevices(t *testing.T) {
	inst, c := start(t, "alice", "bob")
	a1, b := c[0], c[1]
	a2 := dial(t, inst, "alice", "alice-2")
	// A client that sends nothing gets its CONNECT pushes once
	// SubscribeWait tells it is not a subscriber.
	a2.NextPush(wire.PushRelations)
	a2.Drain(quiet)
	a1.Drain(quiet)
	befriend(t, a1, b)
	var rels []wire.Relation
	p := a2.NextPush(wire.PushRelations)
	if err := json.Unmarshal(p.Body, &rels); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if !slices.ContainsFunc(rels, func(r wire.Relation) bool { return r.User == "bob" }) {
		t.Errorf("alice-2's snapshot after alice-1 asked bob = %+v, want bob in it", rels)
	}
	var g wire.FeedsReq
	a1.OK("create_feeds", wire.CreateFeedsReq{Name: "team", Members: []string{"bob"}}, &g)
	a2.NextPush(wire.PushRelations)
	a1.NoPush(wire.PushRelations, quiet)
	a2.Drain(quiet)
	a1.Fail("accept_friend", map[string]string{"user": "nobody-asked"})
	a2.NoPush(wire.PushRelations, quiet) // a failed call changes nothing
}
