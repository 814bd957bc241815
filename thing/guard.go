package thing

import (
	"sync"
	"time"
)

// Loop guards of the rules, the same wherever rules run (a thing's node,
// or the server for a thing without one).
const (
	// RuleBurst and RuleRefill: a rule fires at most RuleBurst times at
	// once and RuleBurst times a minute over time (a token bucket).
	RuleBurst  = 10
	RuleRefill = time.Minute / RuleBurst
	// maxFiredPairs bounds the memory of (origin message, rule) pairs
	// already fired; the oldest are forgotten first.
	maxFiredPairs = 4096
	// maxBuckets bounds the rate limits kept, one a rule that fired.
	maxBuckets = 4096
)

// Reasons a firing is dropped.
const (
	DropHops      = "hops"      // the chain is at MaxHops
	DropSelfCause = "self"      // the rule would fire on its own command's outcome
	DropDuplicate = "duplicate" // the rule fired for this origin message already
	DropRate      = "rate"      // the rule fires too often
	DropUnbound   = "unbound"   // the rule's maker is no longer bound to the thing
)

// Firing is a command a rule makes: Command goes from Rule.A to Rule.B.
type Firing struct {
	Rule    Rule
	Command Command
}

// Drop is a firing a loop guard stopped.
type Drop struct {
	Rule      string
	OriginMsg string
	Reason    string
}

// Guard applies the loop guards to rule firings: a chain stops past
// MaxHops, a rule never fires on the outcome of its own command, a rule
// fires once per origin message, and at most RuleBurst times a minute.
// What it remembers is bounded; it is safe for concurrent use.
type Guard struct {
	mu         sync.Mutex
	fired      map[firedPair]struct{}
	firedOrder []firedPair
	buckets    map[string]*tokenBucket
}

type firedPair struct{ originMsg, rule string }

// NewGuard returns a Guard that has seen no firing.
func NewGuard() *Guard {
	return &Guard{fired: make(map[firedPair]struct{}), buckets: make(map[string]*tokenBucket)}
}

// Plan returns the commands rules make on fb, state or an event their
// thing A emitted as message msgID, whose cause had the trace cause (nil
// when no command caused it: the chain starts at A and msgID), and the
// firings the guards stopped. boundPerson reports whether a rule's maker
// is still bound to A. A rule that is not A's, or does not match fb, is
// neither.
func (g *Guard) Plan(rules []Rule, fb *Feedback, cause *Trace, msgID string, boundPerson func(string) bool, now time.Time) ([]Firing, []Drop) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Firing
	var drops []Drop
	for _, r := range rules {
		ok, input := r.Fires(fb)
		if !ok {
			continue
		}
		tr := Trace{Origin: r.A, OriginMsg: msgID, Rule: r.ID, Hops: 1}
		if cause != nil {
			tr.Origin, tr.OriginMsg, tr.Hops = cause.Origin, cause.OriginMsg, cause.Hops+1
		}
		reason := ""
		switch {
		case cause != nil && cause.Rule == r.ID:
			reason = DropSelfCause
		case tr.Hops > MaxHops:
			reason = DropHops
		case !boundPerson(r.By):
			reason = DropUnbound
		default:
			if _, seen := g.fired[firedPair{tr.OriginMsg, r.ID}]; seen {
				reason = DropDuplicate
			} else if !g.bucket(r.ID, now).take(now) {
				reason = DropRate
			}
		}
		if reason != "" {
			drops = append(drops, Drop{Rule: r.ID, OriginMsg: tr.OriginMsg, Reason: reason})
			continue
		}
		g.remember(firedPair{tr.OriginMsg, r.ID})
		grant := r
		out = append(out, Firing{Rule: r, Command: Command{Action: r.Then.Action, Input: input,
			Expires: now.Add(DefaultExpiry).UnixMilli(), Trace: tr, Grant: &grant}})
	}
	return out, drops
}

// Prune forgets the rate limits of the rules keep does not report (rules
// removed).
func (g *Guard) Prune(keep func(rule string) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id := range g.buckets {
		if !keep(id) {
			delete(g.buckets, id)
		}
	}
}

func (g *Guard) remember(p firedPair) {
	g.fired[p] = struct{}{}
	g.firedOrder = append(g.firedOrder, p)
	if len(g.firedOrder) > maxFiredPairs {
		delete(g.fired, g.firedOrder[0])
		g.firedOrder[0] = firedPair{}
		g.firedOrder = g.firedOrder[1:]
	}
}

// bucket returns rule's token bucket. Past maxBuckets, the buckets that
// are full again (they limit nothing) are forgotten first; should none be,
// one is forgotten at random: its rule may fire a burst again, and the
// hop limit still ends any loop it is part of.
func (g *Guard) bucket(rule string, now time.Time) *tokenBucket {
	b, ok := g.buckets[rule]
	if ok {
		return b
	}
	if len(g.buckets) >= maxBuckets {
		for id, x := range g.buckets {
			if x.refill(now) >= RuleBurst {
				delete(g.buckets, id)
			}
		}
		for id := range g.buckets {
			if len(g.buckets) < maxBuckets {
				break
			}
			delete(g.buckets, id)
		}
	}
	b = &tokenBucket{tokens: RuleBurst, last: now}
	g.buckets[rule] = b
	return b
}

// tokenBucket allows RuleBurst takes at once, refilled one per RuleRefill.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) refill(now time.Time) float64 {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(RuleBurst, b.tokens+float64(d)/float64(RuleRefill))
		b.last = now
	}
	return b.tokens
}

func (b *tokenBucket) take(now time.Time) bool {
	if b.refill(now) < 1 {
		return false
	}
	b.tokens--
	return true
}
