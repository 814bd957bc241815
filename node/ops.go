package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// status reports what the node is doing now.
func (n *Node) status(ctx context.Context) (Status, error) {
	st := Status{
		User:      n.cfg.User,
		Device:    n.self.String(),
		Server:    ServerDisconnected,
		ServerURL: n.cfg.Server,
		Addrs:     n.host.Addrs(),
		Peers:     []string{},
		Failures:  n.failures.list(),
		Counters:  n.counts.snapshot(),
		Thing:     n.thing.status(),

		Reachability: n.host.Reachability(),
		Relay:        n.relayStatus(),
	}
	if n.gossip != nil {
		gs := n.gossip.Stats()
		st.Gossip = &GossipStatus{
			Published: gs.Published, Delivered: gs.Delivered, Rejected: gs.Rejected,
			Ignored: gs.Ignored, Unreached: gs.Unreached, Meshes: make(map[string][]string, len(gs.Topics)),
		}
		for t, peers := range gs.Topics {
			if feeds, ok := feedsOfTopic(t); ok {
				st.Gossip.Meshes[feeds] = peers
			}
		}
	}
	if n.link.Connected() {
		st.Server = ServerConnected
	} else if err := n.link.Err(); err != nil {
		st.ServerError = err.Error()
	}
	for _, id := range n.host.ConnectedPeers() {
		st.Peers = append(st.Peers, id.String())
	}
	var err error
	if st.Outbox, st.Unsynced, err = n.db.Pending(ctx); err != nil {
		return Status{}, err
	}
	if st.Refused, err = n.db.RefusedMessages(ctx, statusRefused); err != nil {
		return Status{}, err
	}
	if st.Conflicted, err = n.db.ConflictedMessages(ctx, statusRefused); err != nil {
		return Status{}, err
	}
	return st, nil
}

// statusRefused is how many refused messages status lists.
const statusRefused = 10

// resolveFeeds turns a user or a feeds id into a conversation of this
// account.
func (n *Node) resolveFeeds(to string) (wire.Feeds, string, error) {
	to = strings.TrimSpace(to)
	if to == "" {
		return wire.Feeds{}, "", badRequest("no recipient: give a user or a group (g:…)")
	}
	if strings.Contains(to, ":") {
		f, err := wire.ParseFeeds(to)
		if err != nil {
			return wire.Feeds{}, "", badRequest("%v", err)
		}
		if f.Kind == wire.FeedsDM && !f.Has(n.cfg.User) {
			return wire.Feeds{}, "", forbidden("%s is not a conversation of %s", to, n.cfg.User)
		}
		return f, f.String(), nil
	}
	if !wire.ValidAccount(to) {
		return wire.Feeds{}, "", badRequest("%q is not a user name", to)
	}
	if to == n.cfg.User {
		return wire.Feeds{}, "", badRequest("that is you: messages go to another user or a group")
	}
	feeds := wire.DM(n.cfg.User, to)
	f, err := wire.ParseFeeds(feeds)
	if err != nil {
		return wire.Feeds{}, "", badRequest("%v", err)
	}
	return f, feeds, nil
}

// send makes, signs and enqueues one of this device's messages; it returns
// once the message is durable in the outbox.
func (n *Node) send(ctx context.Context, req SendRequest) (SendResult, error) {
	return n.sendWithID(ctx, req, wire.NewMsgID())
}

// sendWithID is send under a MsgId the caller made, for a payload that
// names its own message (a command's trace).
func (n *Node) sendWithID(ctx context.Context, req SendRequest, msgID string) (SendResult, error) {
	m, err := n.prepare(req, msgID)
	if err != nil {
		return SendResult{}, err
	}
	if err := n.enqueue(ctx, localdb.Outgoing{Messages: []wire.Message{m}}, nil, nil); err != nil {
		return SendResult{}, err
	}
	return SendResult{MsgId: m.MsgId, Feeds: m.Feeds}, nil
}

// prepare makes and signs one of this device's messages under msgID, and
// checks it as the server would: what it would refuse is refused here at
// once rather than queued.
func (n *Node) prepare(req SendRequest, msgID string) (wire.Message, error) {
	f, feeds, err := n.resolveFeeds(req.To)
	if err != nil {
		return wire.Message{}, err
	}
	// The server's write rule, over the cached book.
	if err := wire.MayWrite(bookRights{n.book}, feeds, n.cfg.User); err != nil {
		switch {
		case errors.Is(err, wire.ErrNotRelated) && f.Kind == wire.FeedsDM:
			other := f.Peer(n.cfg.User)
			return wire.Message{}, forbidden("not a friend: %s (ask first: mqtter friend add %s)", other, other)
		case errors.Is(err, wire.ErrNotMember) && f.Kind == wire.FeedsGroup:
			return wire.Message{}, forbidden("not a member of %s", feeds)
		case errors.Is(err, wire.ErrNotMember), errors.Is(err, wire.ErrNotRelated):
			return wire.Message{}, forbidden("%v", err)
		}
		return wire.Message{}, badRequest("%v", err)
	}
	m := wire.Message{
		MsgId:      msgID,
		Feeds:      feeds,
		MsgType:    req.MsgType,
		From:       n.cfg.User,
		Payload:    req.Payload,
		TimeCreate: time.Now().UnixMilli(),
	}
	if m.MsgType == "" {
		m.MsgType = wire.MsgTypeText
	}
	if len(m.Payload) == 0 {
		if req.Text == "" {
			return wire.Message{}, badRequest("empty message")
		}
		p, err := json.Marshal(map[string]string{"text": req.Text})
		if err != nil {
			return wire.Message{}, badRequest("text: %v", err)
		}
		m.Payload = p
	}
	if err := m.Sign(n.key); err != nil {
		return wire.Message{}, badRequest("%v", err)
	}
	if err := m.Validate(); err != nil {
		return wire.Message{}, badRequest("%v", err)
	}
	if err := thing.MayWrite(ownSendRights{bookRights{n.book}}, &m); err != nil {
		if errors.Is(err, thing.ErrNotAllowed) {
			return wire.Message{}, forbidden("%v", err)
		}
		return wire.Message{}, badRequest("%v", err)
	}
	return m, nil
}

// enqueue makes prepared messages durable in the outbox, with the
// commands among them tracked and the marks of received commands, all in
// one transaction; then it hands them to the outbox (those in hold may
// wait a moment for company; those held in the conversations release
// need not any more) and announces them. A burst of messages
// costs one commit, and a command's row exists before the command leaves,
// so its feedback always finds it.
func (n *Node) enqueue(ctx context.Context, out localdb.Outgoing, hold map[string]bool, release []string) error {
	msgs := out.Messages
	for i := range msgs {
		if row, ok := n.ownCommandRow(&msgs[i]); ok {
			out.Commands = append(out.Commands, row)
		}
	}
	if err := n.db.EnqueueAll(ctx, out); err != nil {
		return &userError{http.StatusInternalServerError, fmt.Sprintf("store: %v", err)}
	}
	// A fresh MsgId has no row before this one, so the row is as
	// recorded: pending.
	for _, row := range out.Commands {
		row.State, row.Updated = localdb.CommandPending, time.Now().UnixMilli()
		n.commandChanged(row)
	}
	queued := make([]queuedMsg, len(msgs))
	for i, m := range msgs {
		queued[i] = queuedMsg{m, hold[m.MsgId]}
	}
	n.out.add(queued, release)
	for _, m := range msgs {
		n.events.publish(EventMessage, HistoryEntry{Message: m, Via: "local"})
	}
	return nil
}

// history returns a conversation as this device holds it.
func (n *Node) history(ctx context.Context, with string, limit int) (HistoryResult, error) {
	_, feeds, err := n.resolveFeeds(with)
	if err != nil {
		return HistoryResult{}, err
	}
	stored, err := n.db.History(ctx, feeds, limit)
	if err != nil {
		return HistoryResult{}, err
	}
	res := HistoryResult{Feeds: feeds, Messages: make([]HistoryEntry, len(stored))}
	for i, s := range stored {
		res.Messages[i] = HistoryEntry{Message: s.Message, Via: s.Via}
	}
	if res.Coverage, err = n.db.Coverage(ctx, feeds); err != nil {
		return HistoryResult{}, err
	}
	res.Complete = res.Coverage.Complete()
	return res, nil
}
