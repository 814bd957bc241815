package node

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// signedRule is alice's rule "when A reports opened, B toggles", signed
// by key.
func signedRule(t *testing.T, key crypto.PrivKey, id, a, b string) thing.Rule {
	t.Helper()
	r := thing.Rule{ID: id, A: a, B: b, When: thing.When{Event: "opened"}, Then: thing.Then{Action: "toggle"},
		By: "alice", Created: time.Now().UnixMilli()}
	if err := r.Sign(key); err != nil {
		t.Fatal(err)
	}
	return r
}

// A rule of alice's makes the door sensor command the lamp: alice opens
// the door, the sensor's event fires the rule, the lamp's node checks the
// grant and runs the toggle, and its result reaches the sensor and alice
// with the chain's trace. The same event again is a duplicate firing:
// dropped and counted.
func TestRuleCommandsAnotherThing(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser(t, "alice", "alice-pw", false)
	srv.AddUser(t, "door", "door-pw", true)
	srv.AddUser(t, "lamp", "lamp-pw", true)
	doorRan, lampRan := ranFile(t), ranFile(t)
	alice := startTestNode(t, srv, t.TempDir(), "alice", nil)
	door := startTestNode(t, srv, t.TempDir(), "door", func(c *Config) { c.ThingHandler = deviceCommand("sensor", doorRan, false) })
	lamp := startTestNode(t, srv, t.TempDir(), "lamp", func(c *Config) { c.ThingHandler = deviceCommand("lamp", lampRan, false) })
	bind(t, alice, door)
	bind(t, alice, lamp)
	ctx := t.Context()
	if err := alice.cl.Call(ctx, wire.MethodAssociate, wire.AssociateReq{A: "door", B: "lamp"}, nil); err != nil {
		t.Fatalf("associate: %v", err)
	}
	waitFor(t, "the association in both books", func() bool {
		return knows(door, lamp, wire.StateAssociated) && knows(lamp, door, wire.StateAssociated)
	})
	waitFor(t, "the descriptions", func() bool {
		return thingStatus(t, door).Description >= 1 && thingStatus(t, lamp).Description >= 1
	})
	// As list_rules would answer, had the server the rule.
	rule := signedRule(t, alice.n.key, "door-lights-lamp", "door", "lamp")
	door.n.thing.setRules([]thing.Rule{rule, signedRule(t, alice.n.key, "other-thing", "lamp", "door")})
	if st := thingStatus(t, door); st.Rules.Active != 1 {
		t.Fatalf("door runs %d rules, want its 1", st.Rules.Active)
	}

	cmd := sendCommand(t, alice, "door", thing.Command{Action: "open"})
	waitFeedback(t, alice, "door", cmd, thing.KindEvent, "")
	waitFor(t, "the lamp to run the rule's toggle", func() bool { return len(ranLines(t, lampRan)) == 1 })

	// The lamp's result goes to the door (the sender) and alice (the
	// chain's origin), with the trace the rule made.
	var lampCmd string
	waitFor(t, "the lamp's result at alice", func() bool {
		h, err := alice.cl.History(ctx, "lamp", 0)
		if err != nil {
			return false
		}
		for _, m := range h.Messages {
			fb, err := thing.ParseFeedback(m.Payload)
			if m.MsgType != wire.MsgTypeFeedback || err != nil || fb.Kind != thing.KindResult {
				continue
			}
			if fb.Trace == nil || fb.Trace.Origin != "alice" || fb.Trace.OriginMsg == "" || fb.Trace.Rule != rule.ID || fb.Trace.Hops != 1 {
				t.Fatalf("the lamp's result trace = %+v, want origin alice, rule %s, 1 hop", fb.Trace, rule.ID)
			}
			lampCmd = fb.Cmd
			return true
		}
		return false
	})
	waitFeedback(t, door, "lamp", lampCmd, thing.KindResult, thing.ResultDone)

	// The program reports the same event of the same command again.
	if err := door.cl.ThingFeedback(ctx, thing.Feedback{Kind: thing.KindEvent, Event: "opened", Cause: cmd}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the duplicate firing dropped", func() bool { return thingStatus(t, door).Rules.Dropped[dropDuplicate] == 1 })
	st, err := door.cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters["rules_dropped"] != 1 || st.Counters["rules_fired"] != 1 || len(st.Thing.Rules.RecentDrops) != 1 {
		t.Errorf("door's counters %v, rules %+v, want 1 fired, 1 dropped and listed", st.Counters, st.Thing.Rules)
	}
	time.Sleep(200 * time.Millisecond)
	if got := ranLines(t, lampRan); len(got) != 1 {
		t.Errorf("the lamp ran %v, want one toggle", got)
	}
}

// The loop guards: a chain stops at thing.MaxHops; a rule does not fire
// on the outcome of its own command; an origin fires a rule once; a rule
// fires at most ruleBurst times a minute; a rule whose maker is no longer
// bound does not fire. Each drop is counted by reason and listed.
func TestRuleGuards(t *testing.T) {
	key, _ := fixedKey(t, 7)
	var drops []DroppedFiring
	e := newRuleEngine("door", func(d DroppedFiring) { drops = append(drops, d) })
	rule := signedRule(t, key, "r1", "door", "lamp")
	e.set([]thing.Rule{rule})
	bound := func(u string) bool { return u == "alice" }
	ev := &thing.Feedback{Kind: thing.KindEvent, Event: "opened", Data: json.RawMessage(`{}`), Cause: thing.CauseLocal}
	now := time.Now()
	fire := func(cause *thing.Trace, msg string, by func(string) bool) int {
		return len(e.plan(ev, cause, msg, by, now))
	}

	if got := e.plan(ev, nil, "m1", bound, now); len(got) != 1 || got[0].cmd.Trace != (thing.Trace{Origin: "door", OriginMsg: "m1", Rule: "r1", Hops: 1}) || got[0].cmd.Grant.ID != "r1" {
		t.Fatalf("a local event's firing = %+v, want one command with trace door/m1/r1/1 and the grant", got)
	}
	if n := fire(&thing.Trace{Origin: "alice", OriginMsg: "c1", Hops: thing.MaxHops}, "m2", bound); n != 0 {
		t.Errorf("fired %d past MaxHops", n)
	}
	if n := fire(&thing.Trace{Origin: "alice", OriginMsg: "c2", Rule: "r1", Hops: 1}, "m3", bound); n != 0 {
		t.Errorf("fired %d on its own command's outcome", n)
	}
	if n := fire(&thing.Trace{Origin: "alice", OriginMsg: "c3", Rule: "other", Hops: 1}, "m4", bound); n != 1 {
		t.Errorf("fired %d on another rule's outcome, want 1", n)
	}
	if n := fire(&thing.Trace{Origin: "alice", OriginMsg: "c3", Rule: "other2", Hops: 2}, "m5", bound); n != 0 {
		t.Errorf("fired %d twice for one origin", n)
	}
	if n := fire(nil, "m6", func(string) bool { return false }); n != 0 {
		t.Errorf("fired %d for a maker no longer bound", n)
	}
	fired := 2
	for i := 0; i < ruleBurst; i++ {
		fired += fire(nil, "burst"+string(rune('a'+i)), bound)
	}
	if fired != ruleBurst {
		t.Errorf("fired %d in one instant, want the burst of %d", fired, ruleBurst)
	}
	now = now.Add(ruleRefill)
	if n := fire(nil, "later", bound); n != 1 {
		t.Errorf("fired %d a refill later, want 1", n)
	}
	st := e.status()
	want := map[string]int64{dropHops: 1, dropSelfCause: 1, dropDuplicate: 1, dropUnbound: 1, dropRate: 2}
	for reason, n := range want {
		if st.Dropped[reason] != n {
			t.Errorf("dropped[%s] = %d, want %d (all: %v)", reason, st.Dropped[reason], n, st.Dropped)
		}
	}
	if st.Fired != ruleBurst+1 || len(drops) != 6 || len(st.RecentDrops) != 6 {
		t.Errorf("fired %d, %d drops reported, %d listed; want %d, 6, 6", st.Fired, len(drops), len(st.RecentDrops), ruleBurst+1)
	}
	// Rules of other things, or with a broken signature, are not kept.
	bad := rule
	bad.Then.Action = "explode"
	e.set([]thing.Rule{bad, signedRule(t, key, "r2", "lamp", "door")})
	if st := e.status(); st.Active != 0 {
		t.Errorf("kept %d rules, want none", st.Active)
	}
}

// The command a rule makes passes the command rule on the sending node
// (which cannot know whether the maker is bound to the other thing) but
// not one whose grant is for another action.
func TestOwnSendRightsLeaveTheOtherPairToB(t *testing.T) {
	key, alice := fixedKey(t, 7)
	b := newBook("door")
	b.setRelations([]wire.Relation{{User: "alice", Kind: wire.KindPerson, State: wire.StateBound},
		{User: "lamp", Kind: wire.KindThing, State: wire.StateAssociated}})
	b.setPeers([]wire.PeerInfo{{User: "alice", Device: alice.String()}})
	rule := signedRule(t, key, "r1", "door", "lamp")
	c := thing.Command{Action: "toggle", Expires: time.Now().Add(time.Minute).UnixMilli(),
		Trace: thing.Trace{Origin: "door", OriginMsg: "m1", Rule: "r1", Hops: 1}, Grant: &rule}
	if err := thing.MayCommand(bookRights{b}, "door", "lamp", &c); err == nil {
		t.Error("the plain book allowed a pair it cannot know; the test is moot")
	}
	if err := thing.MayCommand(ownSendRights{bookRights{b}}, "door", "lamp", &c); err != nil {
		t.Errorf("own send of a rule's command: %v", err)
	}
	c.Action = "explode"
	if err := thing.MayCommand(ownSendRights{bookRights{b}}, "door", "lamp", &c); err == nil {
		t.Error("own send of a command the grant does not cover was allowed")
	}
}
