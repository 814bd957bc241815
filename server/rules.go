package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Bounds on rules.
const (
	// maxRulesPerThing is how many rules may name one thing, as A or B.
	maxRulesPerThing = 64
	// maxRuleBytes bounds one rule's JSON, so a thing's rules, and a
	// command carrying one as its grant, stay small.
	maxRuleBytes = 8 << 10
	// maxListedRules bounds a list_rules answer that names no thing.
	maxListedRules = 512
)

// addRule stores a rule (thing.Rule) between two associated things, made
// and signed by the calling person, who must be bound to both.
func (s *Server) addRule(ctx context.Context, c *call) (any, error) {
	if c.sess.kind != KindPerson {
		return nil, forbidden("only a person makes rules")
	}
	if len(c.body) > maxRuleBytes {
		return nil, badRequest("a rule is at most %d bytes", maxRuleBytes)
	}
	var r thing.Rule
	if err := decode(c.body, &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.By != c.sess.account {
		return nil, forbidden("rule %s is made by %s, not by you", r.ID, r.By)
	}
	if err := r.Verify(); err != nil {
		return nil, forbidden("rule %s: %v", r.ID, err)
	}
	owner, err := s.lookupDeviceOwner(ctx, r.Device)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if owner != c.sess.account {
		return nil, forbidden("rule %s is signed by device %s, which is not one of yours", r.ID, r.Device)
	}
	for _, t := range []string{r.A, r.B} {
		if err := s.thingArg(ctx, t); err != nil {
			return nil, err
		}
	}
	added, err := s.db.AddRule(ctx, r, maxRulesPerThing)
	if err != nil {
		return nil, err
	}
	if added {
		s.log.Debug("rule added", "rule", r.ID, "a", r.A, "b", r.B, "by", r.By)
		s.rulesChanged([]thing.Rule{r}, c.sess)
	}
	return thing.RuleID{ID: r.ID}, nil
}

// removeRule removes a rule, by its maker or a person bound to A or B.
func (s *Server) removeRule(ctx context.Context, c *call) (any, error) {
	var req thing.RuleID
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := need("id", req.ID); err != nil {
		return nil, err
	}
	r, err := s.db.Rule(ctx, req.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no rule %.80q", ErrNotFound, req.ID)
	}
	if err != nil {
		return nil, err
	}
	me := c.sess.account
	if r.By != me {
		may := false
		for _, t := range []string{r.A, r.B} {
			state, _, err := rights{ctx, s}.Tie(me, t)
			if err != nil {
				return nil, err
			}
			may = may || state == wire.StateBound
		}
		if !may {
			return nil, forbidden("rule %s: only its maker or a person bound to %s or %s removes it", r.ID, r.A, r.B)
		}
	}
	gone, err := s.db.RemoveRule(ctx, req.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no rule %.80q", ErrNotFound, req.ID)
	}
	if err != nil {
		return nil, err
	}
	s.log.Debug("rule removed", "rule", gone.ID, "by", me)
	s.rulesChanged([]thing.Rule{gone}, c.sess, me)
	return nil, nil
}

// listRules answers the rules the caller may see: of the thing named (the
// caller being it, bound to it or associated with it), or else of the
// calling thing, or of every thing the calling person is bound to.
func (s *Server) listRules(ctx context.Context, c *call) (any, error) {
	var req thing.ThingReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	me := c.sess.account
	things := []string{me}
	switch {
	case req.Thing != "":
		if err := s.maySeeThing(ctx, me, req.Thing); err != nil {
			return nil, err
		}
		things = []string{req.Thing}
	case c.sess.kind != KindThing:
		rels, err := s.db.RelationsOf(ctx, me)
		if err != nil {
			return nil, err
		}
		things = things[:0]
		for _, r := range rels {
			if r.Kind == store.KindBound && r.State == store.StateActive {
				things = append(things, r.Other(me))
			}
		}
	}
	seen := make(map[string]bool)
	out := []thing.Rule{}
	for _, t := range things {
		rules, err := s.db.RulesOf(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			if !seen[r.ID] {
				seen[r.ID] = true
				out = append(out, r)
			}
		}
		if len(out) > maxListedRules {
			return nil, badRequest("over %d rules: list them one thing at a time", maxListedRules)
		}
	}
	slices.SortFunc(out, func(x, y thing.Rule) int { return cmp.Compare(x.ID, y.ID) })
	return out, nil
}

// rulesChanged tells both things of each rule that their rules changed
// (User the other thing), and each rule's maker and the persons named
// (User each thing); origin, the device that made the change, is left out.
func (s *Server) rulesChanged(rules []thing.Rule, origin *session, persons ...string) {
	type push struct{ to, user string }
	done := make(map[push]bool)
	send := func(to, user string) {
		if p := (push{to, user}); !done[p] {
			done[p] = true
			s.pushEvent(to, wire.RelationEvent{Event: wire.EventRules, User: user}, origin)
		}
	}
	for _, r := range rules {
		send(r.A, r.B)
		send(r.B, r.A)
		for _, p := range append([]string{r.By}, persons...) {
			send(p, r.A)
			send(p, r.B)
		}
	}
}
