package node

import (
	"context"
	"time"

	"github.com/mqtter/mqtter/localdb"
	mqsync "github.com/mqtter/mqtter/sync"
	"github.com/mqtter/mqtter/wire"
)

// restoreLogEvery is how often a long pull logs how far it got.
const restoreLogEvery = time.Second

// newSyncer wires the sync package to this node: pulled messages are
// checked like pushes and announced, pushed ones leave the outbox, and a
// long pull (a new device restoring its history) logs its progress.
func (n *Node) newSyncer() (*mqsync.Syncer, error) {
	var lastLog time.Time
	return mqsync.New(mqsync.Config{
		DB:       n.db,
		Server:   serverRef{n},
		Device:   n.self.String(),
		Interval: n.cfg.SyncInterval,
		Check:    n.checkServerFields,
		Stored:   func(m wire.Message) { n.received(m, localdb.ViaSync) },
		Refused: func(m wire.Message, err error) {
			n.counts.refused.Add(1)
			n.log.Warn("refused a pulled message", "msg_id", m.MsgId, "feeds", m.Feeds, "seq", m.SeqId, "err", err)
		},
		Sequenced: func(keys []localdb.MsgKey) {
			n.counts.pushed.Add(int64(len(keys)))
			// What the server sequenced it also pushed to every member's
			// devices: those messages are delivered. Only this account's
			// are in the outbox; another sender's message may share a
			// MsgId with one of ours and says nothing about it.
			ids := n.ownIDs(keys)
			n.markDelivered(n.ctx, ids, localdb.ViaServer)
			n.out.delivered(ids)
		},
		Conflict: func(m wire.Message, err error) {
			n.conflicted(m, err)
			if m.From == n.cfg.User {
				n.out.delivered([]string{m.MsgId}) // not delivered, but never to be sent again
			}
		},
		Progress: func(p mqsync.Progress) {
			if p.Total < mqsync.PageSize && !(p.Done && p.Fetched >= mqsync.PageSize) {
				return // short pulls are not worth a line
			}
			if !p.Done && time.Since(lastLog) < restoreLogEvery {
				return
			}
			lastLog = time.Now()
			pct := 100.0
			if p.Total > 0 {
				pct = min(100, 100*float64(p.Fetched)/float64(p.Total))
			}
			args := []any{"fetched", p.Fetched, "of", p.Total, "percent", int(pct),
				"conversation", p.Conversation, "conversations", p.Conversations}
			switch {
			case p.Done && p.Err != nil:
				n.log.Warn("history pull stopped", append(args, "err", p.Err)...)
			case p.Done:
				n.log.Info("history pulled", args...)
			default:
				n.log.Info("pulling history", args...)
			}
		},
		Logger: n.log,
	})
}

// serverRef is the server link as the syncer sees it; the link is made
// after the syncer, which needs it only once the link is up.
type serverRef struct{ n *Node }

func (r serverRef) Call(ctx context.Context, method string, req, out any) error {
	return r.n.link.Call(ctx, method, req, out)
}

func (r serverRef) Connected() bool { return r.n.link.Connected() }

func (r serverRef) Connects() uint64 { return r.n.link.Connects() }

// ownIDs returns the MsgIds of this account's messages among keys.
func (n *Node) ownIDs(keys []localdb.MsgKey) []string {
	var ids []string
	for _, k := range keys {
		if k.From == n.cfg.User {
			ids = append(ids, k.MsgId)
		}
	}
	return ids
}

// conflicted reports a message the server answered "conflict" for (it
// holds another message under the same From and MsgId), already marked in
// the store so that it is never sent or pushed again.
func (n *Node) conflicted(m wire.Message, err error) {
	n.counts.conflicts.Add(1)
	n.log.Warn("the server holds another message under this MsgId; this one stays local, unsequenced, and is not sent again",
		"msg_id", m.MsgId, "from", m.From, "feeds", m.Feeds, "err", err)
}
