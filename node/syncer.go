package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/wire"
)

// historyPage is how many messages one history pull asks for (the
// server's maximum).
const historyPage = 1000

// syncer keeps this device's history and the server's in step: it pushes
// messages that have no SeqId yet (history_push) every SyncInterval and on
// demand, and pulls what the device lacks (history, by after_seq cursor) on
// connect and on demand.
type syncer struct {
	n     *Node
	kickc chan bool // true: also pull
	mu    sync.Mutex
	// refused are MsgIds the server would not sequence, skipped until
	// the node restarts.
	refused map[string]bool
}

func newSyncer(n *Node) *syncer {
	return &syncer{n: n, kickc: make(chan bool, 1), refused: make(map[string]bool)}
}

// kick asks the loop for a round soon; pull asks for a pull too.
func (s *syncer) kick(pushOnly bool) {
	select {
	case s.kickc <- !pushOnly:
	default:
	}
}

func (s *syncer) loop() {
	defer s.n.wg.Done()
	t := time.NewTicker(s.n.cfg.SyncInterval)
	defer t.Stop()
	for {
		pull := false
		select {
		case <-s.n.ctx.Done():
			return
		case <-t.C:
		case pull = <-s.kickc:
		}
		if !s.n.link.Connected() {
			continue
		}
		if _, err := s.run(s.n.ctx, pull); err != nil && !errors.Is(err, context.Canceled) {
			s.n.log.Info("sync", "err", err)
		}
	}
}

// run pushes every unsequenced message and, with pull, pulls every
// conversation's missing messages.
func (s *syncer) run(ctx context.Context, pull bool) (SyncResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res SyncResult
	pushed, err := s.push(ctx, nil)
	res.Pushed = pushed
	if err != nil {
		return res, fmt.Errorf("push: %w", err)
	}
	if pull {
		pulled, err := s.pull(ctx)
		res.Pulled = pulled
		if err != nil {
			return res, fmt.Errorf("pull: %w", err)
		}
	}
	return res, nil
}

// pushBefore pushes every unsequenced message now, ahead of a server
// send: what went directly earlier then gets its SeqId before the message
// that follows it, so SeqId order stays sending order whatever the path. It
// returns the MsgIds that got a SeqId.
func (s *syncer) pushBefore(ctx context.Context) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	done := make(map[string]bool)
	_, err := s.push(ctx, done)
	return done, err
}

// push pushes every unsequenced message, adding those sequenced to done
// when it is not nil.
func (s *syncer) push(ctx context.Context, done map[string]bool) (int, error) {
	total := 0
	for {
		msgs, err := s.n.db.Unsequenced(ctx, wire.MaxHistoryPush+len(s.refused))
		if err != nil {
			return total, err
		}
		batch := msgs[:0]
		for _, m := range msgs {
			if !s.refused[m.MsgId] && len(batch) < wire.MaxHistoryPush {
				batch = append(batch, m)
			}
		}
		if len(batch) == 0 {
			return total, nil
		}
		n, err := s.pushBatch(ctx, batch, done)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// pushBatch pushes one batch; a batch the server refuses as a whole is
// pushed one message at a time, so one bad message holds up no other.
func (s *syncer) pushBatch(ctx context.Context, batch []wire.Message, done map[string]bool) (int, error) {
	var seqs []wire.SeqResult
	err := s.n.link.Call(ctx, wire.MethodHistoryPush, wire.HistoryPushReq{Messages: batch}, &seqs)
	var ae *wire.AnswerError
	if errors.As(err, &ae) {
		if len(batch) == 1 {
			s.refused[batch[0].MsgId] = true
			s.n.log.Warn("history_push refused a message", "msg_id", batch[0].MsgId, "err", err)
			return 0, nil
		}
		total := 0
		for i := range batch {
			n, err := s.pushBatch(ctx, batch[i:i+1], done)
			total += n
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}
	if err != nil {
		return 0, err
	}
	m := make(map[string]int64, len(seqs))
	ids := make([]string, 0, len(seqs))
	for _, r := range seqs {
		if r.SeqId > 0 {
			m[r.MsgId] = r.SeqId
			ids = append(ids, r.MsgId)
			if done != nil {
				done[r.MsgId] = true
			}
		}
	}
	if err := s.n.db.SetSeqs(ctx, m); err != nil {
		return 0, err
	}
	s.n.counts.pushed.Add(int64(len(m)))
	// What the server sequenced it also pushed to every member's devices:
	// those messages are delivered.
	s.n.markDelivered(ctx, ids, localdb.ViaServer)
	s.n.out.delivered(ids)
	return len(m), nil
}

// pull fetches, for every conversation the server lists, the messages
// after this device's cursor.
func (s *syncer) pull(ctx context.Context) (int, error) {
	var convs []wire.Conversation
	if err := s.n.link.Call(ctx, wire.MethodConversations, wire.Empty{}, &convs); err != nil {
		return 0, err
	}
	total := 0
	for _, c := range convs {
		n, err := s.pullOne(ctx, c)
		total += n
		if err != nil {
			return total, fmt.Errorf("%s: %w", c.Feeds, err)
		}
	}
	return total, nil
}

func (s *syncer) pullOne(ctx context.Context, c wire.Conversation) (int, error) {
	cursor, err := s.n.db.Cursor(ctx, c.Feeds)
	if err != nil {
		return 0, err
	}
	total := 0
	for cursor < c.LastSeqID {
		var page wire.HistoryResult
		req := wire.HistoryReq{Feeds: c.Feeds, AfterSeq: cursor, Limit: historyPage}
		if err := s.n.link.Call(ctx, wire.MethodHistory, req, &page); err != nil {
			return total, err
		}
		if len(page.Messages) == 0 {
			break
		}
		good := make([]wire.Message, 0, len(page.Messages))
		next := cursor
		for _, m := range page.Messages {
			next = max(next, m.SeqId)
			if m.Feeds != c.Feeds {
				s.n.counts.refused.Add(1)
				s.n.log.Warn("refused a pulled message of another conversation", "msg_id", m.MsgId, "feeds", m.Feeds)
				continue
			}
			if err := s.n.checkFromServer(&m); err != nil {
				s.n.counts.refused.Add(1)
				s.n.log.Warn("refused a pulled message", "msg_id", m.MsgId, "feeds", m.Feeds, "err", err)
				continue
			}
			good = append(good, m)
		}
		if next <= cursor {
			return total, fmt.Errorf("history after %d did not move forward", cursor)
		}
		added, err := s.n.db.AddMessages(ctx, good, localdb.ViaSync)
		if err != nil {
			return total, err
		}
		for i, ok := range added {
			if ok {
				total++
				s.n.received(good[i], localdb.ViaSync)
			}
		}
		cursor = next
		if err := s.n.db.SetCursor(ctx, c.Feeds, cursor); err != nil {
			return total, err
		}
		c.LastSeqID = max(c.LastSeqID, page.LastSeqID)
	}
	return total, nil
}
