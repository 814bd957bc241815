package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// describe stores the calling thing's description (thing.Description):
// a higher version replaces the stored one and is announced to the
// persons bound to the thing and the things associated with it.
func (s *Server) describe(ctx context.Context, c *call) (any, error) {
	if c.sess.kind != KindThing {
		return nil, forbidden("only a thing describes itself")
	}
	var d thing.Description
	if err := decode(c.body, &d); err != nil {
		return nil, err
	}
	if err := need("thing", d.Thing); err != nil {
		return nil, err
	}
	if d.Thing != c.sess.account {
		return nil, forbidden("%s describes itself only, not %s", c.sess.account, d.Thing)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	changed, err := s.db.PutDescription(ctx, d, time.Now())
	if err != nil {
		return nil, err
	}
	if changed {
		s.log.Debug("described", "thing", d.Thing, "version", d.Version)
		s.announceThing(ctx, d.Thing, c.sess)
	}
	return nil, nil
}

// description answers the latest description of a thing the caller may
// see: itself, one bound to it, one associated with it.
func (s *Server) description(ctx context.Context, c *call) (any, error) {
	var req thing.ThingReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := s.maySeeThing(ctx, c.sess.account, req.Thing); err != nil {
		return nil, err
	}
	d, err := s.db.Description(ctx, req.Thing)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s has not described itself", ErrNotFound, req.Thing)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// maySeeThing checks that name is a thing and caller is that thing, a
// person bound to it or a thing associated with it: who may read its
// description and its rules.
func (s *Server) maySeeThing(ctx context.Context, caller, name string) error {
	if err := s.thingArg(ctx, name); err != nil {
		return err
	}
	if caller == name {
		return nil
	}
	state, _, err := rights{ctx, s}.Tie(caller, name)
	if err != nil {
		return err
	}
	if state != wire.StateBound && state != wire.StateAssociated {
		return forbidden("%s is neither bound to nor associated with %s", caller, name)
	}
	return nil
}

// announceThing tells the persons bound to name, the things associated
// with it and its own other devices that its description changed.
func (s *Server) announceThing(ctx context.Context, name string, origin *session) {
	rels, err := s.db.RelationsOf(ctx, name)
	if err != nil {
		s.log.Warn("announce description", "thing", name, "err", err)
		return
	}
	ev := wire.RelationEvent{Event: wire.EventDescribed, User: name}
	s.pushEvent(name, ev, origin)
	for _, r := range rels {
		if r.State == store.StateActive && (r.Kind == store.KindBound || r.Kind == store.KindAssociated) {
			s.pushEvent(r.Other(name), ev, origin)
		}
	}
}

// pushEvent pushes a relation event to every connected device of account
// but origin.
func (s *Server) pushEvent(account string, ev wire.RelationEvent, origin *session) {
	body, err := json.Marshal(ev)
	if err != nil {
		return
	}
	n := 0
	for _, sess := range s.sessions.sessions(account) {
		if sess != origin {
			sess.send(wire.PushRelation, body)
			n++
		}
	}
	s.metrics.pushes.WithLabelValues(pushKind(wire.PushRelation)).Add(float64(n))
}
