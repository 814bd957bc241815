package server_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func TestGroupLifecycle(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)

	var created wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "climbing", Members: []string{"bob"}}, &created)
	g := created.Feeds
	if f, err := wire.ParseFeeds(g); err != nil || f.Kind != wire.FeedsGroup {
		t.Fatalf("create_feeds = %q, want a g: feeds (%v)", g, err)
	}
	if ev := relationEvent(t, bob, "group_added"); ev.Feeds != g || ev.User != "alice" {
		t.Errorf("bob's relation push after create_feeds = %+v, want group_added to %s by alice", ev, g)
	}
	for _, cl := range []*servertest.Client{alice, bob} {
		got, ok := groupMembers(t, cl, g)
		if !ok || got.Name != "climbing" || got.Owner != "alice" || !slices.Equal(got.Members, []string{"alice", "bob"}) {
			t.Errorf("%s list_feeds[%s] = %+v (listed %v), want climbing owned by alice with [alice bob]", cl.User, g, got, ok)
		}
	}
	if _, ok := groupMembers(t, carol, g); ok {
		t.Errorf("carol list_feeds lists %s, want not (not a member)", g)
	}
	if r := send(t, bob, text(g, "hello group")); r.SeqId != 1 {
		t.Errorf("first group send SeqId = %d, want 1", r.SeqId)
	}
	if n := alice.News(); n.Feeds != g || n.Message.From != "bob" {
		t.Errorf("alice news = %+v, want bob's message in %s", n, g)
	}

	// carol is nobody's friend: she applies and the owner admits her.
	wantError(t, "non-member send", carol.Fail("send", text(g, "let me in")), "forbidden")
	wantError(t, "non-member history", carol.Fail("history", wire.HistoryReq{Feeds: g}), "forbidden")
	carol.OK("apply_join_feeds", wire.FeedsReq{Feeds: g}, nil)
	if ev := relationEvent(t, alice, "group_apply"); ev.Feeds != g || ev.User != "carol" {
		t.Errorf("alice's relation push after apply = %+v, want group_apply from carol to %s", ev, g)
	}
	wantError(t, "applicant send", carol.Fail("send", text(g, "pending")), "forbidden")
	wantError(t, "agree by a member", bob.Fail("agree_join_feeds", wire.AgreeJoinReq{Applicant: "carol", Feeds: g}), "forbidden")
	alice.OK("agree_join_feeds", wire.AgreeJoinReq{Applicant: "carol", Feeds: g}, nil)
	if ev := relationEvent(t, carol, "group_joined"); ev.Feeds != g {
		t.Errorf("carol's relation push after agree = %+v, want group_joined to %s", ev, g)
	}
	if ev := relationEvent(t, bob, "group_members"); ev.Feeds != g || ev.User != "carol" {
		t.Errorf("bob's relation push after carol joined = %+v, want group_members naming carol", ev)
	}
	if got, _ := groupMembers(t, bob, g); !slices.Equal(got.Members, []string{"alice", "bob", "carol"}) {
		t.Errorf("bob list_feeds[%s].members = %v, want [alice bob carol]", g, got.Members)
	}
	if r := send(t, carol, text(g, "thanks")); r.SeqId != 2 {
		t.Errorf("carol's send SeqId = %d, want 2", r.SeqId)
	}
	if h := history(t, carol, g, 0, 0); !slices.Equal(seqIDs(h.Messages), []int64{1, 2}) {
		t.Errorf("carol history(%s) = %v, want [1 2]", g, seqIDs(h.Messages))
	}

	// Removing: only the owner removes others; a member may leave.
	wantError(t, "member removes another", bob.Fail("remove_feeds_member", wire.RemoveMemberReq{Member: "carol", Feeds: g}), "forbidden")
	alice.OK("remove_feeds_member", wire.RemoveMemberReq{Member: "carol", Feeds: g}, nil)
	if ev := relationEvent(t, carol, "group_removed"); ev.Feeds != g {
		t.Errorf("carol's relation push after removal = %+v, want group_removed from %s", ev, g)
	}
	if ev := relationEvent(t, bob, "group_members"); ev.Feeds != g || ev.User != "carol" {
		t.Errorf("bob's relation push after carol was removed = %+v, want group_members naming carol", ev)
	}
	wantError(t, "removed member send", carol.Fail("send", text(g, "still here?")), "forbidden")
	send(t, bob, text(g, "after carol left"))
	carol.NoPush(wire.PushNews, quiet)
	wantError(t, "removed member history", carol.Fail("history", wire.HistoryReq{Feeds: g}), "forbidden")
	if _, ok := groupMembers(t, carol, g); ok {
		t.Errorf("carol list_feeds still lists %s after removal", g)
	}
	wantError(t, "owner leaves", alice.Fail("remove_feeds_member", wire.RemoveMemberReq{Member: "alice", Feeds: g}), "conflict")
	wantError(t, "member dissolves", bob.Fail("dissolve_feeds", wire.FeedsReq{Feeds: g}), "forbidden")
	bob.OK("remove_feeds_member", wire.RemoveMemberReq{Member: "bob", Feeds: g}, nil)
	if got, _ := groupMembers(t, alice, g); !slices.Equal(got.Members, []string{"alice"}) {
		t.Errorf("alice list_feeds[%s].members after bob left = %v, want [alice]", g, got.Members)
	}

	alice.OK("dissolve_feeds", wire.FeedsReq{Feeds: g}, nil)
	if _, ok := groupMembers(t, alice, g); ok {
		t.Errorf("alice list_feeds lists %s after dissolve", g)
	}
	wantError(t, "send to a dissolved group", alice.Fail("send", text(g, "anyone?")), "forbidden")
	wantError(t, "dissolve twice", alice.Fail("dissolve_feeds", wire.FeedsReq{Feeds: g}), "not found")
}

func TestDissolveTellsMembers(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "x", Members: []string{"bob"}}, &g)
	alice.OK("dissolve_feeds", g, nil)
	if ev := relationEvent(t, bob, "group_dissolved"); ev.Feeds != g.Feeds || ev.User != "alice" {
		t.Errorf("bob's relation push after dissolve = %+v, want group_dissolved of %s by alice", ev, g.Feeds)
	}
	if _, ok := groupMembers(t, bob, g.Feeds); ok {
		t.Errorf("bob list_feeds lists %s after dissolve", g.Feeds)
	}
	wantError(t, "bob send to dissolved", bob.Fail("send", text(g.Feeds, "x")), "forbidden")
}

func TestGroupRefused(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"bob"}}, &g)
	carol.OK("apply_join_feeds", g, nil)
	noGroup := wire.GroupFeeds("nosuchgroup")

	tests := []struct {
		name   string
		cl     *servertest.Client
		method string
		body   any
		want   string
	}{
		{"create with a stranger", alice, "create_feeds", wire.CreateFeedsReq{Name: "g2", Members: []string{"carol"}}, "forbidden"},
		{"create with an unknown account", alice, "create_feeds", wire.CreateFeedsReq{Name: "g2", Members: []string{"nobody"}}, "not found"},
		{"create without a name", alice, "create_feeds", wire.CreateFeedsReq{Members: []string{"bob"}}, "missing field"},
		{"create with a blank name", alice, "create_feeds", wire.CreateFeedsReq{Name: "  "}, "missing field"},
		{"create with a long name", alice, "create_feeds", wire.CreateFeedsReq{Name: strings.Repeat("n", 129)}, "bad request"},
		{"apply as a member", bob, "apply_join_feeds", g, "conflict"},
		{"apply twice", carol, "apply_join_feeds", g, "conflict"},
		{"apply to no group", carol, "apply_join_feeds", wire.FeedsReq{Feeds: noGroup}, "not found"},
		{"apply to a dm", carol, "apply_join_feeds", wire.FeedsReq{Feeds: wire.DM("alice", "bob")}, "not a group"},
		{"apply without feeds", carol, "apply_join_feeds", wire.FeedsReq{}, "missing field"},
		{"agree a non-applicant", alice, "agree_join_feeds", wire.AgreeJoinReq{Applicant: "bob", Feeds: g.Feeds}, "not found"},
		{"agree without applicant", alice, "agree_join_feeds", wire.AgreeJoinReq{Feeds: g.Feeds}, "missing field"},
		{"agree by the applicant", carol, "agree_join_feeds", wire.AgreeJoinReq{Applicant: "carol", Feeds: g.Feeds}, "forbidden"},
		{"remove a stranger", alice, "remove_feeds_member", wire.RemoveMemberReq{Member: "nobody", Feeds: g.Feeds}, "not found"},
		{"remove without member", alice, "remove_feeds_member", wire.RemoveMemberReq{Feeds: g.Feeds}, "missing field"},
		{"dissolve by an applicant", carol, "dissolve_feeds", g, "forbidden"},
		{"dissolve no group", alice, "dissolve_feeds", wire.FeedsReq{Feeds: noGroup}, "not found"},
	}
	for _, tt := range tests {
		wantError(t, tt.name, tt.cl.Fail(tt.method, tt.body), tt.want)
	}
	if got, _ := groupMembers(t, alice, g.Feeds); !slices.Equal(got.Members, []string{"alice", "bob"}) {
		t.Errorf("list_feeds[%s].members after refused calls = %v, want [alice bob]", g.Feeds, got.Members)
	}
	var gs []wire.Group
	alice.OK("list_feeds", wire.Empty{}, &gs)
	if len(gs) != 1 {
		t.Errorf("alice list_feeds = %d groups, want 1 (refused creates made none): %+v", len(gs), gs)
	}
}
