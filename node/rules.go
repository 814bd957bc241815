package node

import (
	"slices"
	"sync"
	"time"

	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Loop guards of the rules a thing runs.
const (
	// ruleBurst and ruleRefill: a rule fires at most ruleBurst times at
	// once and ruleBurst times a minute over time (a token bucket).
	ruleBurst  = 10
	ruleRefill = time.Minute / ruleBurst
	// maxFiredPairs bounds the memory of (origin message, rule) pairs
	// already fired; the oldest are forgotten first.
	maxFiredPairs = 4096
	// maxRecentDrops is how many dropped firings status lists.
	maxRecentDrops = 16
)

// Reasons a firing is dropped (RulesStatus.Dropped's keys).
const (
	dropHops      = "hops"      // the chain is at thing.MaxHops
	dropSelfCause = "self"      // the rule would fire on its own command's outcome
	dropDuplicate = "duplicate" // the rule fired for this origin message already
	dropRate      = "rate"      // the rule fires too often
	dropUnbound   = "unbound"   // the rule's maker is no longer bound to this thing
)

// ruleEngine holds the rules this thing runs (as thing A) and decides,
// with the loop guards, which fire on the state and events it emits.
type ruleEngine struct {
	self   string
	onDrop func(DroppedFiring)

	mu         sync.Mutex
	rules      []thing.Rule
	fired      map[firedPair]struct{}
	firedOrder []firedPair
	buckets    map[string]*tokenBucket
	nFired     int64
	nDropped   map[string]int64
	recent     []DroppedFiring
}

type firedPair struct{ originMsg, rule string }

// firing is a command a rule makes.
type firing struct {
	rule thing.Rule
	cmd  thing.Command
}

func newRuleEngine(self string, onDrop func(DroppedFiring)) *ruleEngine {
	return &ruleEngine{self: self, onDrop: onDrop, fired: make(map[firedPair]struct{}),
		buckets: make(map[string]*tokenBucket), nDropped: make(map[string]int64)}
}

// set replaces the rules with those of rules that this thing runs: A is
// this thing, the shape and signature check out. Whether the maker is
// bound is asked at each firing, since bindings change.
func (e *ruleEngine) set(rules []thing.Rule) {
	var keep []thing.Rule
	for _, r := range rules {
		if r.A != e.self {
			continue
		}
		if err := r.Verify(); err != nil {
			continue
		}
		keep = append(keep, r)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rules = keep
	for id := range e.buckets {
		if !slices.ContainsFunc(keep, func(r thing.Rule) bool { return r.ID == id }) {
			delete(e.buckets, id)
		}
	}
}

// plan returns the commands the rules make on fb, state or an event this
// thing emitted as message msgID, whose cause had trace cause (nil when no
// command caused it). Every firing a guard stops is dropped, counted and
// reported.
func (e *ruleEngine) plan(fb *thing.Feedback, cause *thing.Trace, msgID string, boundPerson func(string) bool, now time.Time) []firing {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []firing
	for _, r := range e.rules {
		ok, input := r.Fires(fb)
		if !ok {
			continue
		}
		tr := thing.Trace{Origin: e.self, OriginMsg: msgID, Rule: r.ID, Hops: 1}
		if cause != nil {
			tr.Origin, tr.OriginMsg, tr.Hops = cause.Origin, cause.OriginMsg, cause.Hops+1
		}
		reason := ""
		switch {
		case cause != nil && cause.Rule == r.ID:
			reason = dropSelfCause
		case tr.Hops > thing.MaxHops:
			reason = dropHops
		case !boundPerson(r.By):
			reason = dropUnbound
		default:
			if _, seen := e.fired[firedPair{tr.OriginMsg, r.ID}]; seen {
				reason = dropDuplicate
			} else if !e.bucket(r.ID, now).take(now) {
				reason = dropRate
			}
		}
		if reason != "" {
			e.droppedLocked(r.ID, tr.OriginMsg, reason, now)
			continue
		}
		e.remember(firedPair{tr.OriginMsg, r.ID})
		e.nFired++
		g := r
		out = append(out, firing{rule: r, cmd: thing.Command{Action: r.Then.Action, Input: input,
			Expires: now.Add(thing.DefaultExpiry).UnixMilli(), Trace: tr, Grant: &g}})
	}
	return out
}

// dropped records a firing dropped after it was planned (its send failed).
func (e *ruleEngine) dropped(rule, originMsg, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nFired--
	e.droppedLocked(rule, originMsg, reason, time.Now())
}

func (e *ruleEngine) droppedLocked(rule, originMsg, reason string, now time.Time) {
	key := reason
	if len(key) > 5 && key[:5] == "send:" {
		key = "send"
	}
	e.nDropped[key]++
	d := DroppedFiring{Time: now.UnixMilli(), Rule: rule, OriginMsg: originMsg, Reason: reason}
	e.recent = append(e.recent, d)
	if len(e.recent) > maxRecentDrops {
		e.recent = slices.Delete(e.recent, 0, len(e.recent)-maxRecentDrops)
	}
	if e.onDrop != nil {
		e.onDrop(d)
	}
}

func (e *ruleEngine) remember(p firedPair) {
	e.fired[p] = struct{}{}
	e.firedOrder = append(e.firedOrder, p)
	if len(e.firedOrder) > maxFiredPairs {
		old := e.firedOrder[0]
		delete(e.fired, old)
		e.firedOrder = slices.Delete(e.firedOrder, 0, 1)
	}
}

func (e *ruleEngine) bucket(rule string, now time.Time) *tokenBucket {
	b, ok := e.buckets[rule]
	if !ok {
		b = &tokenBucket{tokens: ruleBurst, last: now}
		e.buckets[rule] = b
	}
	return b
}

// status reports the rules and what the guards dropped.
func (e *ruleEngine) status() RulesStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := RulesStatus{Active: len(e.rules), Fired: e.nFired, Dropped: make(map[string]int64, len(e.nDropped)),
		RecentDrops: slices.Clone(e.recent)}
	for k, v := range e.nDropped {
		st.Dropped[k] = v
	}
	return st
}

// tokenBucket allows ruleBurst takes at once, refilled one per ruleRefill.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(ruleBurst, b.tokens+float64(d)/float64(ruleRefill))
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ownSendRights is the command rule's view of the book for this node's
// own sends. A command this thing sends under a rule names the rule's
// maker, and the rule holds only if the maker is bound to the other thing
// too: a pair this node's book cannot know (it knows only its own
// relations). That pair is left to those who can check it, the other
// thing's node and the server; this node checked what it can know: that
// the maker is bound to this thing, and the rule's signature.
type ownSendRights struct{ bookRights }

// Tie answers an unknowable pair (one without this account) as a bound
// person, the one question MayCommand asks about such a pair.
func (r ownSendRights) Tie(a, b string) (string, string, error) {
	if a != r.b.self && b != r.b.self {
		return wire.StateBound, wire.KindPerson, nil
	}
	return r.bookRights.Tie(a, b)
}
