package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

const (
	maxGroupName    = 128
	maxGroupMembers = 1000
)

func (s *Server) createFeeds(ctx context.Context, c *call) (any, error) {
	var req wire.CreateFeedsReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	req.Name = strings.TrimSpace(req.Name)
	if err := need("name", req.Name); err != nil {
		return nil, err
	}
	if len(req.Name) > maxGroupName {
		return nil, badRequest("name longer than %d bytes", maxGroupName)
	}
	if len(req.Members) > maxGroupMembers {
		return nil, badRequest("more than %d members", maxGroupMembers)
	}
	me := c.sess.account
	members := []string{me}
	for _, m := range req.Members {
		if m == me || slices.Contains(members, m) {
			continue
		}
		if _, err := s.account(ctx, m); err != nil {
			return nil, err
		}
		ok, err := s.related(ctx, me, m)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, forbidden("%s is not related to you; they can apply to join", m)
		}
		members = append(members, m)
	}
	feeds := "g:" + wire.NewMsgID()
	now := time.Now().UnixMilli()
	err := s.db.Write(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := store.CreateGroup(ctx, tx, store.Group{Feeds: feeds, Name: req.Name, Owner: me, Created: now}); err != nil {
			return err
		}
		for _, m := range members {
			if err := store.SetMember(ctx, tx, feeds, m, store.MemberActive, now); err != nil {
				return err
			}
		}
		return nil
	})
	s.dir.forgetGroup(feeds)
	if err != nil {
		return nil, err
	}
	for _, m := range members[1:] {
		s.relationEvent(m, wire.RelationEvent{Event: evGroupAdded, User: me, Feeds: feeds})
	}
	return map[string]string{"feeds": feeds}, nil
}

// groupArg reads the group named by feeds, or a clear error.
func (s *Server) groupArg(ctx context.Context, feeds string) (store.Group, error) {
	if err := need("feeds", feeds); err != nil {
		return store.Group{}, err
	}
	f, err := wire.ParseFeeds(feeds)
	if err != nil || f.Kind != wire.FeedsGroup {
		return store.Group{}, badRequest("%q is not a group", feeds)
	}
	g, found, err := s.dir.group(ctx, feeds)
	if err != nil {
		return g, err
	}
	if !found {
		return g, fmt.Errorf("%w: no group %s", ErrNotFound, feeds)
	}
	return g, nil
}

// changeGroup runs fn in a write job and forgets the cached group.
func (s *Server) changeGroup(ctx context.Context, feeds string, fn func(ctx context.Context, tx store.Tx) error) error {
	err := s.db.Write(ctx, fn)
	s.dir.forgetGroup(feeds)
	return err
}

func (s *Server) applyJoinFeeds(ctx context.Context, c *call) (any, error) {
	var req wire.FeedsReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	g, err := s.groupArg(ctx, req.Feeds)
	if err != nil {
		return nil, err
	}
	me := c.sess.account
	if g.IsMember(me) {
		return nil, fmt.Errorf("%w: already a member of %s", ErrConflict, g.Feeds)
	}
	if slices.Contains(g.Applicants, me) {
		return nil, fmt.Errorf("%w: already applied to %s", ErrConflict, g.Feeds)
	}
	err = s.changeGroup(ctx, g.Feeds, func(ctx context.Context, tx store.Tx) error {
		return store.SetMember(ctx, tx, g.Feeds, me, store.MemberApplied, time.Now().UnixMilli())
	})
	if err != nil {
		return nil, err
	}
	s.relationEvent(g.Owner, wire.RelationEvent{Event: evGroupApply, User: me, Feeds: g.Feeds})
	return nil, nil
}

func (s *Server) agreeJoinFeeds(ctx context.Context, c *call) (any, error) {
	var req wire.AgreeJoinReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := need("applicant", req.Applicant); err != nil {
		return nil, err
	}
	g, err := s.groupArg(ctx, req.Feeds)
	if err != nil {
		return nil, err
	}
	if g.Owner != c.sess.account {
		return nil, forbidden("only the owner of %s admits members", g.Feeds)
	}
	if !slices.Contains(g.Applicants, req.Applicant) {
		return nil, fmt.Errorf("%w: %s has not applied to %s", ErrNotFound, req.Applicant, g.Feeds)
	}
	err = s.changeGroup(ctx, g.Feeds, func(ctx context.Context, tx store.Tx) error {
		return store.SetMember(ctx, tx, g.Feeds, req.Applicant, store.MemberActive, time.Now().UnixMilli())
	})
	if err != nil {
		return nil, err
	}
	s.relationEvent(req.Applicant, wire.RelationEvent{Event: evGroupJoined, User: g.Owner, Feeds: g.Feeds})
	s.membersChanged(g.Feeds, g.Members, req.Applicant, c.sess.account)
	return nil, nil
}

func (s *Server) removeFeedsMember(ctx context.Context, c *call) (any, error) {
	var req wire.RemoveMemberReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := need("member", req.Member); err != nil {
		return nil, err
	}
	g, err := s.groupArg(ctx, req.Feeds)
	if err != nil {
		return nil, err
	}
	me := c.sess.account
	switch {
	case req.Member == g.Owner:
		return nil, fmt.Errorf("%w: the owner cannot leave %s; dissolve it instead", ErrConflict, g.Feeds)
	case me != g.Owner && me != req.Member:
		return nil, forbidden("only the owner of %s removes others", g.Feeds)
	case !g.IsMember(req.Member) && !slices.Contains(g.Applicants, req.Member):
		return nil, fmt.Errorf("%w: %s is not in %s", ErrNotFound, req.Member, g.Feeds)
	}
	err = s.changeGroup(ctx, g.Feeds, func(ctx context.Context, tx store.Tx) error {
		return store.DeleteMember(ctx, tx, g.Feeds, req.Member)
	})
	if err != nil {
		return nil, err
	}
	s.relationEvent(req.Member, wire.RelationEvent{Event: evGroupRemoved, User: me, Feeds: g.Feeds})
	s.membersChanged(g.Feeds, g.Members, req.Member, me)
	return nil, nil
}

// membersChanged tells the members of a group, but the one who acted
// (whose own devices get the relations snapshot) and the one who joined or
// left (who got an event of their own), that who joined or left.
func (s *Server) membersChanged(feeds string, members []string, who, actor string) {
	for _, m := range members {
		if m != who && m != actor {
			s.relationEvent(m, wire.RelationEvent{Event: evGroupMembers, User: who, Feeds: feeds})
		}
	}
}

func (s *Server) dissolveFeeds(ctx context.Context, c *call) (any, error) {
	var req wire.FeedsReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	g, err := s.groupArg(ctx, req.Feeds)
	if err != nil {
		return nil, err
	}
	if g.Owner != c.sess.account {
		return nil, forbidden("only the owner dissolves %s", g.Feeds)
	}
	err = s.changeGroup(ctx, g.Feeds, func(ctx context.Context, tx store.Tx) error {
		return store.DeleteGroup(ctx, tx, g.Feeds)
	})
	if err != nil {
		return nil, err
	}
	for _, m := range g.Members {
		if m != g.Owner {
			s.relationEvent(m, wire.RelationEvent{Event: evGroupDissolved, User: g.Owner, Feeds: g.Feeds})
		}
	}
	return nil, nil
}

func (s *Server) listFeeds(ctx context.Context, c *call) (any, error) {
	return s.groupsOf(ctx, c.sess.account)
}

// groupsOf lists the groups account is a member of.
func (s *Server) groupsOf(ctx context.Context, account string) ([]wire.Group, error) {
	feeds, err := s.db.GroupsOf(ctx, account)
	if err != nil {
		return nil, err
	}
	out := make([]wire.Group, 0, len(feeds))
	for _, f := range feeds {
		g, found, err := s.dir.group(ctx, f)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, wire.Group{Feeds: g.Feeds, Name: g.Name, Owner: g.Owner, Members: g.Members})
		}
	}
	return out, nil
}
