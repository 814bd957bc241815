package thing

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// The loop guards: a chain stops past MaxHops; a rule does not fire on
// the outcome of its own command; an origin fires a rule once; a rule
// fires at most RuleBurst times a minute; a rule whose maker is no longer
// bound does not fire. Each drop says its reason.
func TestGuardPlan(t *testing.T) {
	r := doorRule()
	r.When.If = nil
	r.Then = Then{Action: "toggle"}
	rules := []Rule{*r}
	g := NewGuard()
	bound := func(u string) bool { return u == "alice" }
	ev := &Feedback{Kind: KindEvent, Event: "opened", Data: json.RawMessage(`{}`), Cause: CauseLocal}
	now := time.Now()
	var drops []Drop
	fire := func(cause *Trace, msg string, by func(string) bool) []Firing {
		f, d := g.Plan(rules, ev, cause, msg, by, now)
		drops = append(drops, d...)
		return f
	}

	got := fire(nil, "m1", bound)
	if len(got) != 1 || got[0].Command.Trace != (Trace{Origin: "door", OriginMsg: "m1", Rule: "r1", Hops: 1}) ||
		got[0].Command.Grant == nil || got[0].Command.Grant.ID != "r1" || got[0].Command.Action != "toggle" ||
		got[0].Command.Expires != now.Add(DefaultExpiry).UnixMilli() {
		t.Fatalf("a local event's firing = %+v, want one toggle with trace door/m1/r1/1, the grant and the default expiry", got)
	}
	cases := []struct {
		name  string
		cause *Trace
		msg   string
		by    func(string) bool
		fires int
	}{
		{"past MaxHops", &Trace{Origin: "alice", OriginMsg: "c1", Rule: "x", Hops: MaxHops}, "m2", bound, 0},
		{"its own command's outcome", &Trace{Origin: "alice", OriginMsg: "c2", Rule: "r1", Hops: 1}, "m3", bound, 0},
		{"another rule's outcome", &Trace{Origin: "alice", OriginMsg: "c3", Rule: "other", Hops: 1}, "m4", bound, 1},
		{"the same origin again", &Trace{Origin: "alice", OriginMsg: "c3", Rule: "other2", Hops: 2}, "m5", bound, 0},
		{"a maker no longer bound", nil, "m6", func(string) bool { return false }, 0},
	}
	for _, c := range cases {
		f := fire(c.cause, c.msg, c.by)
		if len(f) != c.fires {
			t.Errorf("%s: fired %d, want %d", c.name, len(f), c.fires)
		}
		if c.fires == 1 && f[0].Command.Trace.Hops != c.cause.Hops+1 {
			t.Errorf("%s: hops %d, want %d", c.name, f[0].Command.Trace.Hops, c.cause.Hops+1)
		}
	}
	fired := 2
	for i := range RuleBurst {
		fired += len(fire(nil, fmt.Sprint("burst", i), bound))
	}
	if fired != RuleBurst {
		t.Errorf("fired %d in one instant, want the burst of %d", fired, RuleBurst)
	}
	now = now.Add(RuleRefill)
	if n := len(fire(nil, "later", bound)); n != 1 {
		t.Errorf("fired %d a refill later, want 1", n)
	}
	want := map[string]int{DropHops: 1, DropSelfCause: 1, DropDuplicate: 1, DropUnbound: 1, DropRate: 2}
	have := map[string]int{}
	for _, d := range drops {
		have[d.Reason]++
		if d.Rule != "r1" || d.OriginMsg == "" {
			t.Errorf("drop %+v names no rule or origin", d)
		}
	}
	for reason, n := range want {
		if have[reason] != n {
			t.Errorf("dropped[%s] = %d, want %d (all: %v)", reason, have[reason], n, have)
		}
	}
	// Another thing's event, or another event, fires nothing and drops nothing.
	n := len(drops)
	if f, d := g.Plan(rules, &Feedback{Kind: KindEvent, Event: "closed", Cause: CauseLocal}, nil, "x", bound, now); len(f)+len(d) != 0 {
		t.Errorf("an event the rule does not name: %d firings, %d drops", len(f), len(d))
	}
	if len(drops) != n {
		t.Error("drops grew")
	}
	// Pruned, the rule's rate limit starts afresh.
	g.Prune(func(string) bool { return false })
	if len(g.buckets) != 0 {
		t.Errorf("%d buckets after pruning all", len(g.buckets))
	}
}

// What the guard remembers is bounded: the fired pairs and the rate
// limits, however many origins and rules come.
func TestGuardBounded(t *testing.T) {
	g := NewGuard()
	ev := &Feedback{Kind: KindEvent, Event: "opened", Cause: CauseLocal}
	now := time.Now()
	all := func(string) bool { return true }
	var rules []Rule
	for i := range 50 {
		r := doorRule()
		r.ID = fmt.Sprint("r", i)
		r.When.If = nil
		r.Then = Then{Action: "toggle"}
		rules = append(rules, *r)
	}
	for i := range maxFiredPairs {
		now = now.Add(RuleRefill)
		if f, _ := g.Plan(rules[:1], ev, nil, fmt.Sprint("m", i), all, now); len(f) != 1 {
			t.Fatalf("origin m%d fired %d, want 1", i, len(f))
		}
	}
	g.Plan(rules, ev, nil, "last", all, now)
	if len(g.fired) > maxFiredPairs || len(g.firedOrder) > maxFiredPairs {
		t.Errorf("%d fired pairs kept (%d in order), want at most %d", len(g.fired), len(g.firedOrder), maxFiredPairs)
	}
	// The oldest pair is forgotten: its origin fires again.
	if f, d := g.Plan(rules[:1], ev, nil, "m0", all, now.Add(time.Minute)); len(f) != 1 {
		t.Errorf("a forgotten origin fired %d, want 1 (%v)", len(f), d)
	}
	for i := range maxBuckets + 10 {
		g.bucket(fmt.Sprint("b", i), now)
	}
	if len(g.buckets) > maxBuckets {
		t.Errorf("%d rate limits kept, want at most %d", len(g.buckets), maxBuckets)
	}
}

// FuzzGuardPlan runs the rules on any feedback a device may report, with
// any trace: no panic, and a firing never goes past MaxHops, never fires
// a rule on its own command's outcome, and carries its rule as grant.
func FuzzGuardPlan(f *testing.F) {
	f.Add([]byte(`{"kind":"event","event":"opened","data":{"lux":12,"want":40},"cause":"local"}`), "", 0)
	f.Add([]byte(`{"kind":"event","event":"opened","data":{"lux":70},"cause":"c1"}`), "r1", 2)
	f.Add([]byte(`{"kind":"state","props":{"lux":3},"rev":1,"cause":"local"}`), "other", 4)
	f.Add([]byte(`{"kind":"event","event":"opened","data":[1,{"want":"x"}],"cause":"local"}`), "", 9)
	rules := []Rule{*doorRule()}
	p := doorRule()
	p.ID, p.When = "r2", When{Property: "lux", If: []Cond{{Op: "ge", Value: json.RawMessage(`1`)}}}
	p.Then = Then{Action: "fade", InputFrom: ""}
	rules = append(rules, *p)
	g := NewGuard()
	all := func(string) bool { return true }
	f.Fuzz(func(t *testing.T, payload []byte, causeRule string, hops int) {
		fb, err := ParseFeedback(payload)
		if err != nil {
			return
		}
		var cause *Trace
		if hops > 0 {
			cause = &Trace{Origin: "alice", OriginMsg: "o", Rule: causeRule, Hops: hops}
		}
		fired, _ := g.Plan(rules, &fb, cause, "m", all, time.Now())
		for _, x := range fired {
			c := x.Command
			if c.Trace.Hops > MaxHops || c.Trace.Hops < 1 || (cause != nil && cause.Rule == x.Rule.ID) ||
				c.Grant == nil || c.Grant.ID != x.Rule.ID || c.Trace.Rule != x.Rule.ID {
				t.Fatalf("firing %+v (trace %+v) on cause %+v", x.Rule.ID, c.Trace, cause)
			}
		}
	})
}
