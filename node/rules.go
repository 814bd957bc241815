package node

import (
	"slices"
	"sync"
	"time"

	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Guards of the rules a thing runs; the loop guards themselves are
// package thing's (thing.Guard), shared with the server, which runs the
// rules of things without a node.
const (
	ruleBurst  = thing.RuleBurst
	ruleRefill = thing.RuleRefill
	// maxRecentDrops is how many dropped firings status lists.
	maxRecentDrops = 16
)

// Reasons a firing is dropped (RulesStatus.Dropped's keys): the guards'
// (thing.Drop*), and a send that failed.
const (
	dropHops      = thing.DropHops
	dropSelfCause = thing.DropSelfCause
	dropDuplicate = thing.DropDuplicate
	dropRate      = thing.DropRate
	dropUnbound   = thing.DropUnbound
)

// ruleEngine holds the rules this thing runs (as thing A) and decides,
// with the loop guards (thing.Guard), which fire on the state and events
// it emits; it counts and reports what the guards drop.
type ruleEngine struct {
	self   string
	onDrop func(DroppedFiring)
	guard  *thing.Guard

	mu       sync.Mutex
	rules    []thing.Rule
	nFired   int64
	nDropped map[string]int64
	recent   []DroppedFiring
}

// firing is a command a rule makes.
type firing struct {
	rule thing.Rule
	cmd  thing.Command
}

func newRuleEngine(self string, onDrop func(DroppedFiring)) *ruleEngine {
	return &ruleEngine{self: self, onDrop: onDrop, guard: thing.NewGuard(), nDropped: make(map[string]int64)}
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
	e.rules = keep
	e.mu.Unlock()
	e.guard.Prune(func(id string) bool {
		return slices.ContainsFunc(keep, func(r thing.Rule) bool { return r.ID == id })
	})
}

// targets are the things this thing's rules command (their B).
func (e *ruleEngine) targets() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, r := range e.rules {
		if !slices.Contains(out, r.B) {
			out = append(out, r.B)
		}
	}
	return out
}

// plan returns the commands the rules make on fb, state or an event this
// thing emitted as message msgID, whose cause had trace cause (nil when no
// command caused it). Every firing a guard stops is dropped, counted and
// reported.
func (e *ruleEngine) plan(fb *thing.Feedback, cause *thing.Trace, msgID string, boundPerson func(string) bool, now time.Time) []firing {
	e.mu.Lock()
	defer e.mu.Unlock()
	fired, drops := e.guard.Plan(e.rules, fb, cause, msgID, boundPerson, now)
	for _, d := range drops {
		e.droppedLocked(d.Rule, d.OriginMsg, d.Reason, now)
	}
	out := make([]firing, 0, len(fired))
	for _, f := range fired {
		out = append(out, firing{rule: f.Rule, cmd: f.Command})
	}
	e.nFired += int64(len(out))
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
