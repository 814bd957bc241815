package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

const (
	maxHistoryPush  = 500
	defaultHistory  = 100
	maxHistoryLimit = 1000
	replayPage      = 500
	maxDeviceOwners = 100_000
)

// deviceOwners caches device → account, which never changes once bound.
type deviceOwners struct {
	mu sync.RWMutex
	m  map[string]string
}

func (s *Server) deviceOwner(ctx context.Context, device string) (string, error) {
	s.owners.mu.RLock()
	a, ok := s.owners.m[device]
	s.owners.mu.RUnlock()
	if ok {
		return a, nil
	}
	a, err := s.db.DeviceAccount(ctx, device)
	if errors.Is(err, store.ErrNotFound) {
		return "", forbidden("unknown device %s", device)
	}
	if err != nil {
		return "", err
	}
	s.owners.mu.Lock()
	if s.owners.m == nil || len(s.owners.m) >= maxDeviceOwners {
		s.owners.m = make(map[string]string)
	}
	s.owners.m[device] = a
	s.owners.mu.Unlock()
	return a, nil
}

// admit checks a message a client hands over and fills what the server
// attests. An unsigned message is the sender's own: From and Device are
// set from the connection. A signed one must verify, and its Device must be
// a device of its From. With relay false (send), From must be the sender.
func (s *Server) admit(ctx context.Context, sess *session, m *wire.Message, relay bool) error {
	if err := need("MsgId", m.MsgId); err != nil {
		return err
	}
	m.SeqId = 0
	if !m.Signed() {
		if m.From != "" && m.From != sess.account {
			return forbidden("unsigned message from %s: only its own messages may be unsigned", m.From)
		}
		// The server attests Device: only a client id bound to the account
		// (a peer id only once proven) may be named.
		if owner, err := s.deviceOwner(ctx, sess.device); err != nil {
			return err
		} else if owner != sess.account {
			return forbidden("device %s does not belong to %s", sess.device, sess.account)
		}
		m.From, m.Device = sess.account, sess.device
		if err := m.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		return nil
	}
	if !relay && m.From != sess.account {
		return forbidden("cannot send as %s", m.From)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := m.Verify(); err != nil {
		return forbidden("message %s: %v", m.MsgId, err)
	}
	owner, err := s.deviceOwner(ctx, m.Device)
	if err != nil {
		return err
	}
	if owner != m.From {
		return forbidden("device %s does not belong to %s", m.Device, m.From)
	}
	return nil
}

// members returns the accounts of a conversation that account may read:
// the two of a dm it is one of, or the members of a group it belongs to.
func (s *Server) members(ctx context.Context, account, feeds string) (wire.Feeds, []string, error) {
	f, err := wire.ParseFeeds(feeds)
	if err != nil {
		return f, nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if f.Kind == wire.FeedsDM {
		if !f.Has(account) {
			return f, nil, forbidden("not a member of %s", feeds)
		}
		return f, []string{f.A, f.B}, nil
	}
	g, found, err := s.dir.group(ctx, feeds)
	if err != nil {
		return f, nil, err
	}
	if !found || !g.IsMember(account) {
		return f, nil, forbidden("not a member of %s", feeds)
	}
	return f, g.Members, nil
}

// maySend returns the members of feeds if account may send to it: a dm
// needs an active relation (friends, bound or associated).
func (s *Server) maySend(ctx context.Context, account, feeds string) ([]string, error) {
	f, members, err := s.members(ctx, account, feeds)
	if err != nil {
		return nil, err
	}
	if f.Kind == wire.FeedsDM {
		ok, err := s.related(ctx, f.A, f.B)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, forbidden("%s and %s are not friends", f.A, f.B)
		}
	}
	return members, nil
}

func (s *Server) send(ctx context.Context, c *call) (any, error) {
	var m wire.Message
	if err := decode(c.body, &m); err != nil {
		return nil, err
	}
	if err := s.admit(ctx, c.sess, &m, false); err != nil {
		return nil, err
	}
	members, err := s.maySend(ctx, c.sess.account, m.Feeds)
	if err != nil {
		return nil, err
	}
	c.sess.pending.Add(1)
	s.db.AppendAsync([]wire.Message{m}, func(res []store.Appended, err error) {
		defer c.sess.pending.Done()
		if err != nil {
			c.answer(nil, err)
			return
		}
		r := res[0]
		c.answer(wire.SendResult{MsgId: r.MsgId, Feeds: r.Feeds, SeqId: r.SeqId}, nil)
		if !r.Duplicate {
			m.SeqId = r.SeqId
			s.fanout(members, m, c.sess)
		}
	})
	return nil, errDeferred
}

// Deliver stores, sequences and pushes a message from a trusted backend
// (POST /v1/s2s/push). From must be an existing account and a member of
// Feeds; relations are not checked.
func (s *Server) Deliver(ctx context.Context, m wire.Message) (wire.SendResult, error) {
	m.SeqId = 0
	if err := m.Validate(); err != nil {
		return wire.SendResult{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if m.Signed() {
		if err := m.Verify(); err != nil {
			return wire.SendResult{}, forbidden("%v", err)
		}
	}
	if _, err := s.account(ctx, m.From); err != nil {
		return wire.SendResult{}, err
	}
	_, members, err := s.members(ctx, m.From, m.Feeds)
	if err != nil {
		return wire.SendResult{}, err
	}
	res, err := s.db.Append(ctx, []wire.Message{m})
	if err != nil {
		return wire.SendResult{}, err
	}
	r := res[0]
	if !r.Duplicate {
		m.SeqId = r.SeqId
		s.fanout(members, m, nil)
	}
	return wire.SendResult{MsgId: r.MsgId, Feeds: r.Feeds, SeqId: r.SeqId}, nil
}

// fanout pushes a newly sequenced message to every connected device of the
// members, except the one that sent it.
func (s *Server) fanout(members []string, m wire.Message, origin *session) {
	body, err := json.Marshal(wire.News{Feeds: m.Feeds, LastSeqID: m.SeqId, Message: m})
	if err != nil {
		s.log.Error("encode news", "msg", m.MsgId, "err", err)
		return
	}
	s.metrics.stored.Inc()
	// Counted before each write, so a client that has the push also finds
	// it in /metrics.
	pushed := s.metrics.pushes.WithLabelValues("news")
	for _, account := range members {
		for _, sess := range s.sessions.sessions(account) {
			if sess != origin {
				pushed.Inc()
				sess.sendNews(m.Feeds, m.SeqId, body)
			}
		}
	}
}

func (s *Server) historyPush(ctx context.Context, c *call) (any, error) {
	var req wire.HistoryPushReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if len(req.Messages) > maxHistoryPush {
		return nil, badRequest("%d messages, at most %d a push", len(req.Messages), maxHistoryPush)
	}
	if len(req.Messages) == 0 {
		return []wire.SeqResult{}, nil
	}
	members := make(map[string][]string)
	for i := range req.Messages {
		m := &req.Messages[i]
		if err := s.admit(ctx, c.sess, m, true); err != nil {
			return nil, err
		}
		ms, ok := members[m.Feeds]
		if !ok {
			var err error
			if _, ms, err = s.members(ctx, c.sess.account, m.Feeds); err != nil {
				return nil, err
			}
			members[m.Feeds] = ms
		}
		// The author must belong to the conversation too: one of a dm's
		// two, or a current member of the group.
		if !slices.Contains(ms, m.From) {
			return nil, forbidden("%s is not part of %s", m.From, m.Feeds)
		}
	}
	msgs := req.Messages
	c.sess.pending.Add(1)
	s.db.AppendAsync(msgs, func(res []store.Appended, err error) {
		defer c.sess.pending.Done()
		if err != nil {
			c.answer(nil, err)
			return
		}
		out := make([]wire.SeqResult, len(res))
		for i, r := range res {
			out[i] = wire.SeqResult{MsgId: r.MsgId, SeqId: r.SeqId}
		}
		c.answer(out, nil)
		for i, r := range res {
			if !r.Duplicate {
				m := msgs[i]
				m.SeqId = r.SeqId
				s.fanout(members[m.Feeds], m, c.sess)
			}
		}
	})
	return nil, errDeferred
}

func (s *Server) history(ctx context.Context, c *call) (any, error) {
	var req wire.HistoryReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := need("feeds", req.Feeds); err != nil {
		return nil, err
	}
	return s.History(ctx, c.sess.account, req)
}

// History returns a page of a conversation that account may read.
func (s *Server) History(ctx context.Context, account string, req wire.HistoryReq) (wire.HistoryResult, error) {
	if req.AfterSeq < 0 {
		return wire.HistoryResult{}, badRequest("after_seq must not be negative")
	}
	switch {
	case req.Limit < 0:
		return wire.HistoryResult{}, badRequest("limit must not be negative")
	case req.Limit == 0:
		req.Limit = defaultHistory
	case req.Limit > maxHistoryLimit:
		req.Limit = maxHistoryLimit
	}
	if _, _, err := s.members(ctx, account, req.Feeds); err != nil {
		return wire.HistoryResult{}, err
	}
	last, err := s.db.LastSeq(ctx, req.Feeds)
	if err != nil {
		return wire.HistoryResult{}, err
	}
	msgs, err := s.db.History(ctx, req.Feeds, req.AfterSeq, req.Limit)
	if err != nil {
		return wire.HistoryResult{}, err
	}
	if msgs == nil {
		msgs = []wire.Message{}
	}
	return wire.HistoryResult{Messages: msgs, LastSeqID: last}, nil
}

func (s *Server) conversations(ctx context.Context, c *call) (any, error) {
	return s.Conversations(ctx, c.sess.account)
}

// Conversations lists account's conversations with their last SeqIds.
func (s *Server) Conversations(ctx context.Context, account string) ([]wire.Conversation, error) {
	groups, err := s.db.GroupsOf(ctx, account)
	if err != nil {
		return nil, err
	}
	convs, err := s.db.Conversations(ctx, account, groups)
	if convs == nil && err == nil {
		convs = []wire.Conversation{}
	}
	return convs, err
}

func (s *Server) ack(ctx context.Context, c *call) (any, error) {
	var req wire.AckReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := need("feeds", req.Feeds); err != nil {
		return nil, err
	}
	if req.SeqID < 0 {
		return nil, badRequest("seq_id must not be negative")
	}
	if _, _, err := s.members(ctx, c.sess.account, req.Feeds); err != nil {
		return nil, err
	}
	// A cursor past the end would skip messages not yet sent.
	last, err := s.db.LastSeq(ctx, req.Feeds)
	if err != nil {
		return nil, err
	}
	return nil, s.db.SetCursor(ctx, c.sess.device, req.Feeds, min(req.SeqID, last))
}

// replay pushes a connecting device its relation snapshot, then every
// stored message after its delivery cursors, per conversation in SeqId
// order, a page at a time as the client takes them.
func (s *Server) replay(sess *session) {
	replayed := make(map[string]int64)
	defer func() { sess.replayed(replayed) }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := s.log.With("account", sess.account, "device", sess.device)
	rels, err := s.relationsOf(ctx, sess.account)
	if err != nil {
		log.Error("replay: relations", "err", err)
		return
	}
	if body, err := json.Marshal(rels); err == nil {
		sess.send(wire.PushRelations, body)
	}
	convs, err := s.Conversations(ctx, sess.account)
	if err != nil {
		log.Error("replay: conversations", "err", err)
		return
	}
	cursors, err := s.db.Cursors(ctx, sess.device)
	if err != nil {
		log.Error("replay: cursors", "err", err)
		return
	}
	pushed := 0
	for _, conv := range convs {
		after := cursors[conv.Feeds]
		for after < conv.LastSeqID {
			msgs, err := s.db.History(ctx, conv.Feeds, after, replayPage)
			if err != nil {
				log.Error("replay: history", "feeds", conv.Feeds, "err", err)
				return
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				body, err := json.Marshal(wire.News{Feeds: conv.Feeds, LastSeqID: conv.LastSeqID, Message: m})
				if err != nil {
					continue
				}
				sess.send(wire.PushNews, body)
			}
			pushed += len(msgs)
			after = msgs[len(msgs)-1].SeqId
			replayed[conv.Feeds] = after
			if !sess.waitBacklog(replayWindow) {
				return
			}
		}
	}
	s.metrics.pushes.WithLabelValues("replay").Add(float64(pushed))
	if pushed > 0 {
		log.Debug("replayed", "messages", pushed)
	}
}
