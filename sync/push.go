package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/wire"
)

// The push: this device's unsequenced messages go up with history_push,
// its own at once and other devices' after their grace, and the SeqIds
// that come back are written into its store.

// Pushed is what a push did to the messages it pushed.
type Pushed struct {
	Sequenced  map[localdb.MsgKey]bool // got a SeqId
	Conflicted map[localdb.MsgKey]bool // answered "conflict", now marked
	// Held are the conversations where own messages wait behind another
	// device's not yet sequenced (see push): a server send there now
	// would overtake them.
	Held map[string]bool
}

// PushConv pushes, ahead of a server send in the conversation feeds, what
// must have its SeqId before that send: it relays the messages of feeds
// that other devices signed and that have waited RelayAfter, then pushes
// this device's own of feeds that are not held back, so SeqId order stays
// sending order whatever the path. The rule is per conversation, so other
// conversations' unsequenced messages wait for the next round instead of
// holding the send up. Pushed.Held names feeds when own messages there
// wait (the send must wait too).
func (s *Syncer) PushConv(ctx context.Context, feeds string) (Pushed, error) {
	p := Pushed{Sequenced: make(map[localdb.MsgKey]bool), Conflicted: make(map[localdb.MsgKey]bool)}
	if err := s.acquire(ctx); err != nil {
		return p, err
	}
	defer s.release()
	_, err := s.push(ctx, feeds, &p)
	return p, err
}

// push relays other devices' messages past their grace, then pushes this
// device's own, of the conversation feeds or of all when it is "", noting in done (when not nil) what became of them and
// which conversations hold own messages back. An own message waits only
// behind another device's unsequenced message stored before it in its
// conversation and not relayable yet: pushing it first would put a reply
// ahead of what it answers. It waits until that message's author pushes
// it (this device then holds its SeqId) or its grace ends.
func (s *Syncer) push(ctx context.Context, feeds string, done *Pushed) (int, error) {
	relay, err := s.relayable(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	if relay.through > 0 {
		// Relay only on the connection the grace was counted on.
		same := func() bool { return s.cfg.Server.Connects() == relay.conn }
		n, err := s.pushAll(ctx, done, same, func(limit int) ([]wire.Message, error) {
			return s.cfg.DB.UnsequencedNotOf(ctx, s.cfg.Device, relay.through, feeds, limit)
		})
		if n > 0 {
			s.relayed.Add(int64(n))
			s.log.Info("sync: relayed messages other devices signed", "messages", n)
		}
		total += n
		if err != nil {
			return total, err
		}
	}
	n, err := s.pushAll(ctx, done, nil, func(limit int) ([]wire.Message, error) {
		return s.cfg.DB.UnsequencedOfFree(ctx, s.cfg.Device, relay.through, feeds, limit)
	})
	total += n
	if err != nil || done == nil {
		return total, err
	}
	done.Held, err = s.cfg.DB.HeldBack(ctx, s.cfg.Device, relay.through, feeds)
	return total, err
}

// relayGate says which of other devices' messages a push may relay: those
// held through local order through (0: none), while the connection is
// still conn.
type relayGate struct {
	through int64
	conn    uint64
}

// markEvery is how often, at most, the relay clock notes what is held:
// often enough that a message waits little longer than its grace (a mark
// and a round at most), seldom enough that the marks stay few (nine).
func (s *Syncer) markEvery() time.Duration { return s.cfg.RelayAfter / 8 }

// relayable notes what this device holds now, and returns which other
// devices' messages have been held, connected, for RelayAfter on this
// connection. It keeps at most one mark older than RelayAfter and one
// mark per markEvery younger. The caller holds lock.
func (s *Syncer) relayable(ctx context.Context) (relayGate, error) {
	conn := s.cfg.Server.Connects()
	if !s.cfg.Server.Connected() {
		s.marks = s.marks[:0]
		return relayGate{}, nil
	}
	if conn != s.marksConn {
		s.marks, s.marksConn = s.marks[:0], conn // a new connection: the clock starts again
	}
	now := time.Now()
	if n := len(s.marks); n == 0 || now.Sub(s.marks[n-1].at) >= s.markEvery() {
		through, err := s.cfg.DB.LastLocalOrder(ctx)
		if err != nil {
			return relayGate{}, err
		}
		if n == 0 || through > s.marks[n-1].through {
			s.marks = append(s.marks, heldMark{through: through, at: now})
		}
	}
	ripe := -1 // the newest mark at least RelayAfter old
	for i, m := range s.marks {
		if now.Sub(m.at) < s.cfg.RelayAfter {
			break
		}
		ripe = i
	}
	if ripe < 0 {
		return relayGate{conn: conn}, nil
	}
	through := s.marks[ripe].through
	s.marks = append(s.marks[:0], s.marks[ripe:]...) // older marks say nothing more
	return relayGate{through: through, conn: conn}, nil
}

// pushAll pushes, batch by batch, the messages next returns (up to limit
// of them, in local order) until none is left or, when still is set, it
// says to stop.
func (s *Syncer) pushAll(ctx context.Context, done *Pushed, still func() bool, next func(limit int) ([]wire.Message, error)) (int, error) {
	total := 0
	for {
		if still != nil && !still() {
			return total, nil
		}
		msgs, err := next(wire.MaxHistoryPush + len(s.refused))
		if err != nil {
			return total, err
		}
		batch := msgs[:0]
		for _, m := range msgs {
			if !s.refused[localdb.KeyOf(&m)] && len(batch) < wire.MaxHistoryPush {
				batch = append(batch, m)
			}
		}
		if len(batch) == 0 {
			return total, nil
		}
		refusedBefore := len(s.refused)
		n, err := s.pushBatch(ctx, batch, done)
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 && len(s.refused) == refusedBefore {
			// The answer sequenced none of the batch (its rows named
			// other messages): the same batch again would loop. The next
			// round tries again.
			s.log.Warn("history_push sequenced none of a batch; retrying next round", "messages", len(batch))
			return total, nil
		}
	}
}

// pushResult is one row of the history_push answer; From is there when
// the server says it.
type pushResult struct {
	MsgId string `json:"MsgId"`
	From  string `json:"From,omitempty"`
	SeqId int64  `json:"SeqId"`
}

// pushBatch pushes one batch; a batch the server refuses as a whole is
// pushed one message at a time, so one bad message holds up no other. The
// answer's rows are in request order: a SeqId is recorded only for the
// message pushed at its position, and only if the row names that message.
func (s *Syncer) pushBatch(ctx context.Context, batch []wire.Message, done *Pushed) (int, error) {
	var seqs []pushResult
	err := s.cfg.Server.Call(ctx, wire.MethodHistoryPush, wire.HistoryPushReq{Messages: batch}, &seqs)
	var ae *wire.AnswerError
	if errors.As(err, &ae) {
		if len(batch) == 1 {
			m := batch[0]
			k := localdb.KeyOf(&m)
			s.refused[k] = true
			if IsConflict(err) {
				return 0, s.conflict(ctx, m, err, done)
			}
			s.log.Warn("history_push refused a message", "msg_id", m.MsgId, "from", m.From, "err", err)
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
	if len(seqs) != len(batch) {
		s.log.Warn("history_push answered a different number of rows", "pushed", len(batch), "rows", len(seqs))
	}
	m := make(map[localdb.MsgKey]int64, len(seqs))
	keys := make([]localdb.MsgKey, 0, len(seqs))
	last := make(map[string]int64) // by feeds: the highest SeqId this push got
	for i, r := range seqs[:min(len(seqs), len(batch))] {
		msg := &batch[i]
		if r.SeqId <= 0 {
			continue
		}
		if r.MsgId != msg.MsgId || r.From != "" && r.From != msg.From {
			s.log.Warn("history_push answered a row for another message; its SeqId is not recorded",
				"position", i, "pushed", msg.MsgId, "from", msg.From, "answered", r.MsgId, "answered_from", r.From)
			continue
		}
		k := localdb.KeyOf(msg)
		if _, dup := m[k]; dup {
			continue
		}
		m[k] = r.SeqId
		keys = append(keys, k)
		last[msg.Feeds] = max(last[msg.Feeds], r.SeqId)
		if done != nil {
			done.Sequenced[k] = true
		}
	}
	if err := s.cfg.DB.SetSeqs(ctx, m); err != nil {
		return 0, err
	}
	for feeds, seq := range last {
		if _, err := s.cfg.DB.Advance(ctx, feeds, seq); err != nil {
			return 0, err
		}
	}
	s.pushed.Add(int64(len(m)))
	if s.cfg.Sequenced != nil && len(keys) > 0 {
		s.cfg.Sequenced(keys)
	}
	return len(m), nil
}

// conflict marks a message the server answered "conflict" for, so that it
// is never pushed or sent again, and tells Config.Conflict once.
func (s *Syncer) conflict(ctx context.Context, m wire.Message, err error, done *Pushed) error {
	fresh, e := s.cfg.DB.MarkConflict(context.WithoutCancel(ctx), m, err.Error())
	if e != nil {
		return fmt.Errorf("mark conflict of %s: %w", m.MsgId, e)
	}
	if done != nil {
		done.Conflicted[localdb.KeyOf(&m)] = true
	}
	if fresh {
		s.conflicts.Add(1)
		if s.cfg.Conflict != nil {
			s.cfg.Conflict(m, err)
		} else {
			s.log.Warn("history_push: the server holds another message under this MsgId", "msg_id", m.MsgId, "from", m.From, "err", err)
		}
	}
	return nil
}
