package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Relation events pushed on impush://modulus/relation.
const (
	evRequest        = "request"
	evAccepted       = "accepted"
	evRejected       = "rejected"
	evRemoved        = "removed"
	evRestored       = "restored"
	evBound          = "bound"
	evUnbound        = "unbound"
	evAssociated     = "associated"
	evDissociated    = "dissociated"
	evGroupAdded     = "group_added"
	evGroupApply     = "group_apply"
	evGroupJoined    = "group_joined"
	evGroupRemoved   = "group_removed"
	evGroupDissolved = "group_dissolved"
	// evGroupMembers tells the other members that someone (User) joined
	// or left: their nodes admit or drop that account's devices from the
	// group's gossip mesh.
	evGroupMembers = "group_members"
)

const pairingCodeTTL = 10 * time.Minute

func (s *Server) account(ctx context.Context, name string) (store.Account, error) {
	if !wire.ValidAccount(name) {
		return store.Account{}, badRequest("bad account name %q", name)
	}
	a, err := s.db.Account(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return a, fmt.Errorf("%w: no such user %q", ErrNotFound, name)
	}
	return a, err
}

// related reports whether x and y have an active relation (friends, bound
// or associated): what a dm needs.
func (s *Server) related(ctx context.Context, x, y string) (bool, error) {
	r, found, err := s.dir.relation(ctx, x, y)
	return found && r.State == store.StateActive, err
}

// changeRelation runs fn in a write job with the current relation between
// me and other (found false when there is none), then forgets the cached
// pair.
func (s *Server) changeRelation(ctx context.Context, me, other string, fn func(ctx context.Context, tx store.Tx, r store.Relation, found bool) error) error {
	err := s.db.Write(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := store.GetRelation(ctx, tx, me, other)
		found := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if found && r.State == store.StateRecycled && r.Expires < time.Now().UnixMilli() {
			found = false // expired: as good as purged
		}
		return fn(ctx, tx, r, found)
	})
	s.dir.forget(me, other)
	return err
}

func (s *Server) relationEvent(to string, ev wire.RelationEvent) {
	body, err := json.Marshal(ev)
	if err != nil {
		return
	}
	s.pushAccount(to, wire.PushRelation, body)
}

func (s *Server) userArg(ctx context.Context, c *call) (wire.UserReq, error) {
	var req wire.UserReq
	if err := decode(c.body, &req); err != nil {
		return req, err
	}
	if err := need("user", req.User); err != nil {
		return req, err
	}
	if req.User == c.sess.account {
		return req, badRequest("that is you")
	}
	_, err := s.account(ctx, req.User)
	return req, err
}

func (s *Server) addFriend(ctx context.Context, c *call) (any, error) {
	req, err := s.userArg(ctx, c)
	if err != nil {
		return nil, err
	}
	me, now := c.sess.account, time.Now().UnixMilli()
	event := evRequest
	err = s.changeRelation(ctx, me, req.User, func(ctx context.Context, tx store.Tx, r store.Relation, found bool) error {
		switch {
		case r.State == store.StateRecycled && found:
			return fmt.Errorf("%w: the relation with %s is in the recycle bin until %s; %s can restore it",
				ErrConflict, req.User, time.UnixMilli(r.Expires).UTC().Format(time.RFC3339), r.Actor)
		case !found:
			return store.PutRelation(ctx, tx, store.Relation{A: me, B: req.User, Kind: store.KindFriend, State: store.StatePending, Actor: me, Since: now})
		case r.State == store.StatePending && r.Actor != me:
			// They asked first: asking back accepts.
			event = evAccepted
			return store.PutRelation(ctx, tx, store.Relation{A: me, B: req.User, Kind: store.KindFriend, State: store.StateActive, Actor: me, Since: now})
		case r.State == store.StatePending:
			return fmt.Errorf("%w: already asked %s", ErrConflict, req.User)
		default:
			return fmt.Errorf("%w: already related to %s (%s)", ErrConflict, req.User, r.Kind)
		}
	})
	if err != nil {
		return nil, err
	}
	s.relationEvent(req.User, wire.RelationEvent{Event: event, User: me})
	return nil, nil
}

func (s *Server) acceptFriend(ctx context.Context, c *call) (any, error) {
	return s.answerRequest(ctx, c, true)
}

func (s *Server) rejectFriend(ctx context.Context, c *call) (any, error) {
	return s.answerRequest(ctx, c, false)
}

func (s *Server) answerRequest(ctx context.Context, c *call, accept bool) (any, error) {
	req, err := s.userArg(ctx, c)
	if err != nil {
		return nil, err
	}
	me, now := c.sess.account, time.Now().UnixMilli()
	err = s.changeRelation(ctx, me, req.User, func(ctx context.Context, tx store.Tx, r store.Relation, found bool) error {
		if !found || r.State != store.StatePending || r.Actor != req.User {
			return fmt.Errorf("%w: no friend request from %s", ErrNotFound, req.User)
		}
		if !accept {
			return store.DeleteRelation(ctx, tx, me, req.User)
		}
		return store.PutRelation(ctx, tx, store.Relation{A: me, B: req.User, Kind: store.KindFriend, State: store.StateActive, Actor: me, Since: now})
	})
	if err != nil {
		return nil, err
	}
	ev := evRejected
	if accept {
		ev = evAccepted
	}
	s.relationEvent(req.User, wire.RelationEvent{Event: ev, User: me})
	return nil, nil
}

func (s *Server) removeFriend(ctx context.Context, c *call) (any, error) {
	req, err := s.userArg(ctx, c)
	if err != nil {
		return nil, err
	}
	if req.KeepSeconds < 0 {
		return nil, badRequest("keep_seconds must not be negative")
	}
	keep := s.cfg.RecycleMax
	if req.KeepSeconds > 0 && time.Duration(req.KeepSeconds)*time.Second < keep {
		keep = time.Duration(req.KeepSeconds) * time.Second
	}
	me, now := c.sess.account, time.Now()
	expires := now.Add(keep).UnixMilli()
	err = s.changeRelation(ctx, me, req.User, func(ctx context.Context, tx store.Tx, r store.Relation, found bool) error {
		if !found || r.State != store.StateActive || r.Kind != store.KindFriend {
			return fmt.Errorf("%w: %s is not your friend", ErrNotFound, req.User)
		}
		r.State, r.Actor, r.Since, r.Expires = store.StateRecycled, me, now.UnixMilli(), expires
		return store.PutRelation(ctx, tx, r)
	})
	if err != nil {
		return nil, err
	}
	s.relationEvent(req.User, wire.RelationEvent{Event: evRemoved, User: me})
	return map[string]int64{"expires": expires}, nil
}

func (s *Server) restoreFriend(ctx context.Context, c *call) (any, error) {
	req, err := s.userArg(ctx, c)
	if err != nil {
		return nil, err
	}
	me, now := c.sess.account, time.Now().UnixMilli()
	err = s.changeRelation(ctx, me, req.User, func(ctx context.Context, tx store.Tx, r store.Relation, found bool) error {
		if !found || r.State != store.StateRecycled {
			return fmt.Errorf("%w: no removed relation with %s to restore", ErrNotFound, req.User)
		}
		if r.Actor != me {
			return forbidden("only %s, who removed it, can restore it", r.Actor)
		}
		r.State, r.Since, r.Expires = store.StateActive, now, 0
		return store.PutRelation(ctx, tx, r)
	})
	if err != nil {
		return nil, err
	}
	s.relationEvent(req.User, wire.RelationEvent{Event: evRestored, User: me})
	return nil, nil
}

func (s *Server) listRelations(ctx context.Context, c *call) (any, error) {
	return s.relationsOf(ctx, c.sess.account)
}

// relationsOf lists account's relations as it sees them.
func (s *Server) relationsOf(ctx context.Context, account string) ([]wire.Relation, error) {
	rels, err := s.db.RelationsOf(ctx, account)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	out := make([]wire.Relation, 0, len(rels))
	for _, r := range rels {
		if r.State == store.StateRecycled && r.Expires < now {
			continue
		}
		other := r.Other(account)
		kind := "person"
		if a, err := s.db.Account(ctx, other); err == nil {
			kind = a.Kind
		}
		v := wire.Relation{User: other, Kind: kind, Since: r.Since}
		switch r.State {
		case store.StatePending:
			v.State = "pending-in"
			if r.Actor == account {
				v.State = "pending-out"
			}
		case store.StateRecycled:
			v.State, v.Expires = "recycled", r.Expires
		default:
			v.State = r.Kind
		}
		out = append(out, v)
	}
	return out, nil
}

// relatedAccounts returns the accounts with an active relation to account.
func (s *Server) relatedAccounts(ctx context.Context, account string) ([]string, error) {
	rels, err := s.db.RelationsOf(ctx, account)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rels {
		if r.State == store.StateActive {
			out = append(out, r.Other(account))
		}
	}
	return out, nil
}

func (s *Server) pairingCode(ctx context.Context, c *call) (any, error) {
	if c.sess.kind != "thing" {
		return nil, forbidden("only a thing has a pairing code")
	}
	code, expires, err := s.NewPairingCode(ctx, c.sess.account)
	if err != nil {
		return nil, err
	}
	return wire.PairingCode{Code: code, Expires: expires.UnixMilli()}, nil
}

// NewPairingCode stores and returns a fresh one-time code that lets one
// person bind thing.
func (s *Server) NewPairingCode(ctx context.Context, thing string) (string, time.Time, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000_000))
	if err != nil {
		return "", time.Time{}, err
	}
	code := fmt.Sprintf("%09d", n)
	expires := time.Now().Add(pairingCodeTTL)
	return code, expires, s.db.PutPairingCode(ctx, code, thing, expires)
}

func (s *Server) thingArg(ctx context.Context, name string) error {
	if err := need("thing", name); err != nil {
		return err
	}
	a, err := s.account(ctx, name)
	if err != nil {
		return err
	}
	if a.Kind != "thing" {
		return badRequest("%s is not a thing", name)
	}
	return nil
}

func (s *Server) bindThing(ctx context.Context, c *call) (any, error) {
	var req wire.BindThingReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if c.sess.kind != "person" {
		return nil, forbidden("only a person binds things")
	}
	if err := s.thingArg(ctx, req.Thing); err != nil {
		return nil, err
	}
	if err := need("code", req.Code); err != nil {
		return nil, err
	}
	me, now := c.sess.account, time.Now()
	g := s.guard
	if blocked, wait := g.guessers.blocked(me, now); blocked {
		s.metrics.pairingRefused.WithLabelValues("throttled").Inc()
		return nil, forbidden("too many wrong pairing codes, try again in %s", wait.Round(time.Second))
	}
	if blocked, wait := g.things.blocked(req.Thing, now); blocked {
		s.metrics.pairingRefused.WithLabelValues("throttled").Inc()
		return nil, forbidden("too many wrong pairing codes for %s, try again in %s", req.Thing, wait.Round(time.Second))
	}
	var guess error
	err := s.changeRelation(ctx, me, req.Thing, func(ctx context.Context, tx store.Tx, r store.Relation, found bool) error {
		guess = store.GuessPairingCode(ctx, tx, req.Code, req.Thing, now, s.cfg.PairingGuesses)
		if errors.Is(guess, store.ErrPairingWrong) || errors.Is(guess, store.ErrPairingInvalidated) {
			return nil // commit: an error would undo the count of wrong guesses
		}
		if guess != nil {
			return guess
		}
		if found && r.State == store.StateActive && r.Kind == store.KindBound {
			return fmt.Errorf("%w: %s is already bound to you", ErrConflict, req.Thing)
		}
		return store.PutRelation(ctx, tx, store.Relation{A: me, B: req.Thing, Kind: store.KindBound, State: store.StateActive, Actor: me, Since: now.UnixMilli()})
	})
	if err != nil {
		return nil, err
	}
	switch {
	case errors.Is(guess, store.ErrPairingInvalidated):
		s.metrics.pairingRefused.WithLabelValues("invalidated").Inc()
		g.guessers.fail(me, now)
		g.things.fail(req.Thing, now)
		return nil, forbidden("%v", guess)
	case errors.Is(guess, store.ErrPairingWrong):
		s.metrics.pairingRefused.WithLabelValues("wrong_code").Inc()
		g.guessers.fail(me, now)
		g.things.fail(req.Thing, now)
		return nil, forbidden("%v", guess)
	}
	s.relationEvent(req.Thing, wire.RelationEvent{Event: evBound, User: me})
	s.feedReadersChanged(ctx, req.Thing, me)
	return nil, nil
}

func (s *Server) unbindThing(ctx context.Context, c *call) (any, error) {
	var req wire.BindThingReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := s.thingArg(ctx, req.Thing); err != nil {
		return nil, err
	}
	me := c.sess.account
	var dropped []thing.Rule
	err := s.changeRelation(ctx, me, req.Thing, func(ctx context.Context, tx store.Tx, r store.Relation, found bool) error {
		if !found || r.Kind != store.KindBound {
			return fmt.Errorf("%w: %s is not bound to you", ErrNotFound, req.Thing)
		}
		// The rules the person made for the thing go with the binding.
		var err error
		if dropped, err = store.DropRulesOfBinding(ctx, tx, me, req.Thing); err != nil {
			return err
		}
		return store.DeleteRelation(ctx, tx, me, req.Thing)
	})
	if err != nil {
		return nil, err
	}
	s.relationEvent(req.Thing, wire.RelationEvent{Event: evUnbound, User: me})
	s.feedReadersChanged(ctx, req.Thing, me)
	s.rulesChanged(dropped, c.sess)
	return nil, nil
}

// ownsBoth checks that the caller is a person bound to both things.
func (s *Server) ownsBoth(ctx context.Context, c *call, req wire.AssociateReq) error {
	if c.sess.kind != "person" {
		return forbidden("only the things' owner associates them")
	}
	if req.A == req.B {
		return badRequest("a thing cannot be associated with itself")
	}
	for _, t := range []string{req.A, req.B} {
		if err := s.thingArg(ctx, t); err != nil {
			return err
		}
		r, found, err := s.dir.relation(ctx, c.sess.account, t)
		if err != nil {
			return err
		}
		if !found || r.Kind != store.KindBound || r.State != store.StateActive {
			return forbidden("%s is not bound to you", t)
		}
	}
	return nil
}

func (s *Server) associate(ctx context.Context, c *call) (any, error) {
	return s.setAssociation(ctx, c, true)
}

func (s *Server) dissociate(ctx context.Context, c *call) (any, error) {
	return s.setAssociation(ctx, c, false)
}

func (s *Server) setAssociation(ctx context.Context, c *call, on bool) (any, error) {
	var req wire.AssociateReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := s.ownsBoth(ctx, c, req); err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	var dropped []thing.Rule
	err := s.changeRelation(ctx, req.A, req.B, func(ctx context.Context, tx store.Tx, r store.Relation, found bool) error {
		if !on {
			if !found || r.Kind != store.KindAssociated {
				return fmt.Errorf("%w: %s and %s are not associated", ErrNotFound, req.A, req.B)
			}
			// The rules between the two go with the association.
			var err error
			if dropped, err = store.DropRulesOfAssociation(ctx, tx, req.A, req.B); err != nil {
				return err
			}
			return store.DeleteRelation(ctx, tx, req.A, req.B)
		}
		if found && r.State == store.StateActive {
			return fmt.Errorf("%w: %s and %s are already related (%s)", ErrConflict, req.A, req.B, r.Kind)
		}
		return store.PutRelation(ctx, tx, store.Relation{A: req.A, B: req.B, Kind: store.KindAssociated, State: store.StateActive, Actor: c.sess.account, Since: now})
	})
	if err != nil {
		return nil, err
	}
	ev := evDissociated
	if on {
		ev = evAssociated
	}
	s.relationEvent(req.A, wire.RelationEvent{Event: ev, User: req.B})
	s.relationEvent(req.B, wire.RelationEvent{Event: ev, User: req.A})
	s.feedReadersChanged(ctx, req.A, req.B)
	s.feedReadersChanged(ctx, req.B, req.A)
	s.rulesChanged(dropped, c.sess)
	return nil, nil
}
