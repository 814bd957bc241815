package server

import (
	"context"
	"slices"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// A thing's feed (docs/protocol.md, "Things' feeds"): the conversation
// "t:<thing>" that only the thing writes (its state and events, once,
// instead of a dm to each), and that the persons bound to it and the
// things associated with it read: pushed, pulled, listed among their
// conversations, and carried among their nodes by gossip.

// readsFeed reports whether account reads thing's feed now: it is the
// thing itself, or a person bound to it, or a thing associated with it.
// Nobody reads the feed of an account that is not a thing.
func (s *Server) readsFeed(ctx context.Context, thing, account string) (bool, error) {
	kind, err := s.accountKind(ctx, thing)
	if err != nil || kind != wire.KindThing {
		return false, err
	}
	if account == thing {
		return true, nil
	}
	r, found, err := s.dir.relation(ctx, thing, account)
	if err != nil || !found || r.State != store.StateActive {
		return false, err
	}
	return r.Kind == store.KindBound || r.Kind == store.KindAssociated, nil
}

// feedReaders returns the readers of thing's feed now, sorted: the thing
// and every account bound to it or associated with it. It is nil when
// thing is not a thing.
func (s *Server) feedReaders(ctx context.Context, thing string) ([]string, error) {
	kind, err := s.accountKind(ctx, thing)
	if err != nil || kind != wire.KindThing {
		return nil, err
	}
	rels, err := s.db.RelationsOf(ctx, thing)
	if err != nil {
		return nil, err
	}
	out := []string{thing}
	for _, r := range rels {
		if r.State == store.StateActive && (r.Kind == store.KindBound || r.Kind == store.KindAssociated) {
			out = append(out, r.Other(thing))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// thingFeedsOf returns the things' feeds account reads, sorted: its own
// when it is a thing, and those of the things it is bound to (a person)
// or associated with (a thing).
func (s *Server) thingFeedsOf(ctx context.Context, account string) ([]string, error) {
	kind, err := s.accountKind(ctx, account)
	if err != nil {
		return nil, err
	}
	rels, err := s.db.RelationsOf(ctx, account)
	if err != nil {
		return nil, err
	}
	var out []string
	if kind == wire.KindThing {
		out = append(out, wire.ThingFeeds(account))
	}
	for _, r := range rels {
		if r.State != store.StateActive {
			continue
		}
		// A binding joins a person and a thing: the thing is the other
		// side only for a person.
		if r.Kind == store.KindAssociated || r.Kind == store.KindBound && kind == wire.KindPerson {
			out = append(out, wire.ThingFeeds(r.Other(account)))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// listThingFeeds answers list_thing_feeds: each thing's feed the caller
// reads, with its readers (what a node's gossip peer filter and validator
// need, cached so they hold with the server down). Anyone may ask; each
// sees only the feeds it reads.
func (s *Server) listThingFeeds(ctx context.Context, c *call) (any, error) {
	feeds, err := s.thingFeedsOf(ctx, c.sess.account)
	if err != nil {
		return nil, err
	}
	out := []wire.Group{}
	for _, f := range feeds {
		thing := f[len(wire.ThingFeeds("")):]
		readers, err := s.feedReaders(ctx, thing)
		if err != nil {
			return nil, err
		}
		out = append(out, wire.Group{Feeds: f, Name: thing, Owner: thing, Members: readers})
	}
	return out, nil
}

// feedReadersChanged tells the readers of thing's feed but the thing and
// who (the two the relation event reached) that who began or stopped
// reading it, with the relation event group_members: their nodes refresh
// their book and evict who's devices from the feed's gossip mesh at once.
func (s *Server) feedReadersChanged(ctx context.Context, thing, who string) {
	readers, err := s.feedReaders(ctx, thing)
	if err != nil {
		s.log.Warn("readers of a thing's feed", "thing", thing, "err", err)
		return
	}
	for _, r := range readers {
		if r != thing && r != who {
			s.relationEvent(r, wire.RelationEvent{Event: evGroupMembers, User: who, Feeds: wire.ThingFeeds(thing)})
		}
	}
}
