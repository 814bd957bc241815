package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

const (
	maxHistoryPush  = 500
	defaultHistory  = 100
	maxHistoryLimit = 1000
	replayPage      = 500
)

func (s *Server) deviceOwner(ctx context.Context, device string) (string, error) {
	a, err := s.lookupDeviceOwner(ctx, device)
	if errors.Is(err, store.ErrNotFound) {
		return "", forbidden("unknown device %s", device)
	}
	return a, err
}

// lookupDeviceOwner returns the account device is bound to, or
// store.ErrNotFound.
func (s *Server) lookupDeviceOwner(ctx context.Context, device string) (string, error) {
	return s.owners.get(device, func() (string, error) { return s.db.DeviceAccount(ctx, device) })
}

// admit checks a message handed over and fills what the server attests.
// sess is the connection it came on, nil for the s2s push (a trusted
// backend writing as From, which must be an existing account). An unsigned
// message from a connection is the sender's own: From and Device are set
// from the connection. A signed one must verify, and its Device must be a
// device of its From. With relay false (send), From must be the sender.
func (s *Server) admit(ctx context.Context, sess *session, m *wire.Message, relay bool) error {
	if err := need("MsgId", m.MsgId); err != nil {
		return err
	}
	m.SeqId = 0
	if sess != nil && !m.Signed() {
		if sess.device == wire.ServerDevice {
			return forbidden("client id %s is the server's own", sess.device)
		}
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
	if sess != nil && !relay && m.From != sess.account {
		return forbidden("cannot send as %s", m.From)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if sess == nil {
		if _, err := s.account(ctx, m.From); err != nil {
			return err
		}
	}
	if m.Signed() {
		if err := m.Verify(); err != nil {
			return forbidden("message %s: %v", m.MsgId, err)
		}
	} else if m.Device == "" || m.Device == wire.ServerDevice {
		// A backend's unsigned message names no device; one the server
		// writes itself names the server's (Deliver refuses it).
		return nil
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
// the two of a dm it is one of, the members of a group it belongs to, or
// the readers of a thing's feed it reads.
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
	if f.Kind == wire.FeedsThing {
		ok, err := s.readsFeed(ctx, f.Thing, account)
		if err != nil {
			return f, nil, err
		}
		if !ok {
			return f, nil, forbidden("not a reader of %s", feeds)
		}
		readers, err := s.feedReaders(ctx, f.Thing)
		return f, readers, err
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

// rights answers the write rule's questions (wire.Rights) from the
// directory cache, within one request's context.
type rights struct {
	ctx context.Context
	s   *Server
}

// Related reports whether a and b have an active relation.
func (r rights) Related(a, b string) (bool, error) { return r.s.related(r.ctx, a, b) }

// Member reports whether account is a current member of the group feeds,
// or a reader of the thing's feed feeds.
func (r rights) Member(feeds, account string) (bool, error) {
	if f, err := wire.ParseFeeds(feeds); err == nil && f.Kind == wire.FeedsThing {
		return r.s.readsFeed(r.ctx, f.Thing, account)
	}
	g, found, err := r.s.dir.group(r.ctx, feeds)
	return found && g.IsMember(account), err
}

// inConversation reports whether account is one of a dm's two, a current
// member of a group or a reader of a thing's feed: the right to read
// feeds, and to relay into it.
func inConversation(r wire.Rights, feeds, account string) (bool, error) {
	f, err := wire.ParseFeeds(feeds)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if f.Kind == wire.FeedsDM {
		return f.Has(account), nil
	}
	return r.Member(feeds, account)
}

// mayWrite applies the write rule to an admitted message handed over by
// caller ("" for the s2s push, which writes as From).
//
// A message of the caller's own (From is the caller, or the s2s push) needs
// its author's write right now: wire.MayWrite, then for a command or
// feedback the command rule (mayWriteThing). A message another account
// signed (a history_push relaying what the caller received, for instance
// on a direct stream) needs the caller and the author both to be in the
// conversation now, and a command or feedback must parse
// (mayRelayThing). In a dm that makes the caller the other of the two,
// the recipient: its node took the message when it was written, and the
// news goes to the two only, so nobody is reached who did not accept it; a
// relation ended since then does not strand the message. In a group the
// news reaches every member, so the author must still be one: that is its
// write right now. docs/protocol.md says why TimeCreate, which the author
// chooses, is not used to look back.
func mayWrite(r rights, caller string, m *wire.Message) error {
	if caller == "" || m.From == caller {
		err := wire.MayWrite(r, m.Feeds, m.From)
		if errors.Is(err, wire.ErrNotMember) || errors.Is(err, wire.ErrNotRelated) {
			return forbidden("message %s: %v", m.MsgId, err)
		}
		if err != nil {
			return err
		}
		return r.mayWriteThing(m)
	}
	for _, who := range []string{caller, m.From} {
		ok, err := inConversation(r, m.Feeds, who)
		if err != nil {
			return err
		}
		if !ok {
			return forbidden("message %s: %s is not part of %s", m.MsgId, who, m.Feeds)
		}
	}
	return r.mayRelayThing(m)
}

// accept is the one way a message enters the server, for send,
// history_push and the s2s push alike: each message is admitted (fields,
// signature, device of From) and checked against the write rule, then the
// batch is appended (all or nothing) and answer called with the store's
// outcome from the writer goroutine (it must not block); the messages newly
// sequenced are then pushed to the conversation's members. An error
// returned is a refusal before anything was stored, and answer is not
// called. sess is the connection the messages came on, nil for the s2s
// push; relay lets the connection hand over messages others signed.
func (s *Server) accept(ctx context.Context, sess *session, relay bool, msgs []wire.Message, answer func([]store.Appended, error)) error {
	r := rights{ctx, s}
	caller := ""
	if sess != nil {
		caller = sess.account
	}
	members := make(map[string][]string)
	for i := range msgs {
		m := &msgs[i]
		if err := s.admit(ctx, sess, m, relay); err != nil {
			return err
		}
		if err := mayWrite(r, caller, m); err != nil {
			return err
		}
		if _, ok := members[m.Feeds]; !ok {
			// The author is in the conversation (mayWrite checked it).
			_, ms, err := s.members(ctx, m.From, m.Feeds)
			if err != nil {
				return err
			}
			members[m.Feeds] = ms
		}
	}
	if sess != nil {
		sess.pending.Add(1)
	}
	s.db.AppendAsync(msgs, func(res []store.Appended, err error) {
		if sess != nil {
			defer sess.pending.Done()
		}
		answer(res, err)
		if err != nil {
			return
		}
		for i, r := range res {
			if !r.Duplicate {
				m := msgs[i]
				m.SeqId = r.SeqId
				s.fanout(members[m.Feeds], m, sess)
				s.afterStored(sess, m)
			}
		}
	})
	return nil
}

func (s *Server) send(ctx context.Context, c *call) (any, error) {
	var m wire.Message
	if err := decode(c.body, &m); err != nil {
		return nil, err
	}
	err := s.accept(ctx, c.sess, false, []wire.Message{m}, func(res []store.Appended, err error) {
		if err != nil {
			c.answer(nil, err)
			return
		}
		r := res[0]
		c.answer(wire.SendResult{MsgId: r.MsgId, Feeds: r.Feeds, SeqId: r.SeqId}, nil)
	})
	if err != nil {
		return nil, err
	}
	return nil, errDeferred
}

// Deliver stores, sequences and pushes a message from a trusted backend
// (POST /v1/s2s/push), written as its From: an existing account with the
// write right to Feeds, as a send needs. A signed message must verify, and
// a Device given must belong to From.
func (s *Server) Deliver(ctx context.Context, m wire.Message) (wire.SendResult, error) {
	type outcome struct {
		res []store.Appended
		err error
	}
	if m.Device == wire.ServerDevice {
		return wire.SendResult{}, forbidden("device %s is the server's own", m.Device)
	}
	ch := make(chan outcome, 1)
	err := s.accept(ctx, nil, false, []wire.Message{m}, func(res []store.Appended, err error) {
		ch <- outcome{res, err}
	})
	if err != nil {
		return wire.SendResult{}, err
	}
	select {
	case o := <-ch:
		if o.err != nil {
			return wire.SendResult{}, o.err
		}
		r := o.res[0]
		return wire.SendResult{MsgId: r.MsgId, Feeds: r.Feeds, SeqId: r.SeqId}, nil
	case <-ctx.Done():
		return wire.SendResult{}, ctx.Err()
	}
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
	s.adapters.offer(m)
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
	msgs := req.Messages
	err := s.accept(ctx, c.sess, true, msgs, func(res []store.Appended, err error) {
		if err != nil {
			c.answer(nil, err)
			return
		}
		out := make([]wire.SeqResult, len(res))
		for i, r := range res {
			out[i] = wire.SeqResult{MsgId: r.MsgId, SeqId: r.SeqId, From: r.From}
		}
		c.answer(out, nil)
	})
	if err != nil {
		return nil, err
	}
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

// History returns a page of a conversation that account may read: up to
// Limit messages, fewer once their bodies reach the HistoryBytes config;
// the reader pages on from the last SeqId it got.
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
	msgs, err := s.db.History(ctx, req.Feeds, req.AfterSeq, req.Limit, s.cfg.HistoryBytes)
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

// Conversations lists account's conversations with their last SeqIds: its
// dms with messages, its groups and the things' feeds it reads.
func (s *Server) Conversations(ctx context.Context, account string) ([]wire.Conversation, error) {
	groups, err := s.db.GroupsOf(ctx, account)
	if err != nil {
		return nil, err
	}
	feeds, err := s.thingFeedsOf(ctx, account)
	if err != nil {
		return nil, err
	}
	convs, err := s.db.Conversations(ctx, account, append(groups, feeds...))
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
	rels, err := s.relationsOf(ctx, sess.account)
	if err != nil {
		s.log.Error("replay: relations", "account", sess.account, "device", sess.device, "err", err)
		return
	}
	if body, err := json.Marshal(rels); err == nil {
		sess.send(wire.PushRelations, body)
	}
	s.replayConversations(ctx, sess, func(string) bool { return true }, replayed)
}

// replayConversations pushes sess every stored message after its device's
// cursors (and after what it was written on a feeds topic) in the
// conversations want picks, per conversation in SeqId order, a page at a
// time as the client takes them; replayed gets the last SeqId pushed of
// each.
func (s *Server) replayConversations(ctx context.Context, sess *session, want func(feeds string) bool, replayed map[string]int64) {
	log := s.log.With("account", sess.account, "device", sess.device)
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
		if !want(conv.Feeds) {
			continue
		}
		after := max(cursors[conv.Feeds], sess.dl.sentSeq(conv.Feeds))
		for after < conv.LastSeqID {
			msgs, err := s.db.History(ctx, conv.Feeds, after, replayPage, s.cfg.HistoryBytes)
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
				sess.push(sess.newsPacket(conv.Feeds, m.SeqId, body))
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
