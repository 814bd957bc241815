package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// Enqueue stores one of this device's own messages (Via local) and puts it
// in the outbox, in one transaction. Once it returns the message survives a
// crash of the process (WAL with synchronous NORMAL; a power loss may undo
// the last commits). Enqueueing a MsgId again is not an error and queues it
// only once.
func (db *DB) Enqueue(ctx context.Context, m wire.Message) error {
	return db.EnqueueAll(ctx, Outgoing{Messages: []wire.Message{m}})
}

// Outgoing is what one commit of this device's own sending holds: a thing
// that reports state and a result at once, to several people, pays for
// one transaction instead of one a message.
type Outgoing struct {
	// Messages are stored and queued as Enqueue does, in this order.
	Messages []wire.Message
	// Commands are commands among Messages, recorded as RecordCommand
	// does, so that their feedback finds them however soon it comes.
	Commands []Command
	// Seen records commands this account received (as a thing) the first
	// time they are seen, in state received (ignored when already
	// recorded): the caller decided with CommandKnown that they are new,
	// and the record commits with the ack and the mark that they run.
	Seen []SeenCommand
	// Marks move commands this account received (as a thing) on, as
	// SetCommandState does, once the messages above are stored: a result
	// and the mark that its command was answered commit together.
	Marks []CommandMark
	// StateRev, when above zero, is the last state revision given out
	// (LastStateRev reads it back), kept with the state messages that
	// carry it; a lower value than the one kept changes nothing.
	StateRev int64
}

// SeenCommand is a received command's first sighting.
type SeenCommand struct {
	MsgId, From string
	Payload     []byte
}

// CommandMark is a state change of a received command (SetCommandState).
type CommandMark struct {
	MsgId, From, State, Outcome string
}

// EnqueueAll commits out in one transaction: all of it or none. A mark of
// a command never seen changes nothing.
func (db *DB) EnqueueAll(ctx context.Context, out Outgoing) error {
	op := "enqueue"
	if len(out.Messages) > 0 {
		op += " " + out.Messages[0].MsgId
	}
	if len(out.Messages) > 1 {
		op += fmt.Sprintf(" and %d more", len(out.Messages)-1)
	}
	for _, mk := range out.Marks {
		if !validCommandState(mk.State) {
			return fmt.Errorf("localdb: command %s: unknown state %q", mk.MsgId, mk.State)
		}
	}
	now := time.Now().UnixMilli()
	return db.inTx(ctx, op, func(tx wtx) error {
		for i := range out.Messages {
			m := &out.Messages[i]
			if _, err := tx.ExecContext(ctx, insertMessage, messageArgs(m, ViaLocal)...); err != nil {
				return fmt.Errorf("store message %s: %w", m.MsgId, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO outbox (msg_id, queued)
				SELECT msg_id, local_order FROM messages WHERE msg_id = ? AND sender = ?
				ON CONFLICT (msg_id) DO NOTHING`, m.MsgId, m.From)
			if err != nil {
				return fmt.Errorf("queue %s: %w", m.MsgId, err)
			}
		}
		for _, c := range out.Commands {
			if err := recordCommand(ctx, tx, c, now); err != nil {
				return err
			}
		}
		for _, c := range out.Seen {
			if _, err := tx.ExecContext(ctx, insertSeenCommand, c.MsgId, c.From, c.Payload, CommandReceived, now, now); err != nil {
				return fmt.Errorf("record command %s: %w", c.MsgId, err)
			}
		}
		for _, mk := range out.Marks {
			if _, err := setCommandState(ctx, tx, mk, now); err != nil {
				return err
			}
		}
		if out.StateRev > 0 {
			if err := keepStateRev(ctx, tx, out.StateRev); err != nil {
				return err
			}
		}
		return nil
	})
}

// Outbox returns the messages waiting in the outbox, in the order they
// were enqueued. The outbox holds only this account's messages and joins
// them by their row (queued), not by MsgId, which another sender's message
// may share.
func (db *DB) Outbox(ctx context.Context) ([]wire.Message, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT m.msg_id, m.feeds, m.seq, m.msg_type, m.sender,
		m.payload, m.time_create, m.device, m.sig
		FROM outbox o JOIN messages m ON m.local_order = o.queued ORDER BY o.queued`)
	if err != nil {
		return nil, fmt.Errorf("localdb: outbox: %w", err)
	}
	msgs, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("localdb: outbox: %w", err)
	}
	return msgs, nil
}

// Delivered takes msgID out of the outbox once path ("p2p" or "server")
// delivered it. A message no longer in the outbox is not an error, so a
// delivery reported twice (say, by both paths) is harmless.
func (db *DB) Delivered(ctx context.Context, msgID, path string) error {
	return db.DeliveredAll(ctx, []string{msgID}, path)
}

// DeliveredAll is Delivered for several messages, in one transaction.
func (db *DB) DeliveredAll(ctx context.Context, ids []string, path string) error {
	if len(ids) == 0 {
		return nil
	}
	if path != ViaP2P && path != ViaServer {
		return fmt.Errorf("localdb: delivered %s: unknown path %q", ids[0], path)
	}
	return db.inTx(ctx, fmt.Sprintf("delivered %s (%d)", ids[0], len(ids)), func(tx wtx) error {
		for _, id := range ids {
			r, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE msg_id = ?`, id)
			if err != nil {
				return err
			}
			if n, _ := r.RowsAffected(); n > 0 {
				db.log.Debug("outbox: delivered", "msg_id", id, "path", path)
			}
		}
		return nil
	})
}

// OutboxAttempt records a failed delivery attempt of msgID: it counts the
// attempt and keeps errMsg and the time as the last failure. It returns
// ErrNotFound if msgID is not in the outbox.
func (db *DB) OutboxAttempt(ctx context.Context, msgID, errMsg string) error {
	return db.inTx(ctx, "outbox attempt "+msgID, func(tx wtx) error {
		r, err := tx.ExecContext(ctx, `UPDATE outbox
			SET attempts = attempts + 1, last_error = ?, last_attempt = ? WHERE msg_id = ?`,
			errMsg, time.Now().UnixMilli(), msgID)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// OutboxEntry is the delivery state of one message in the outbox.
type OutboxEntry struct {
	MsgId       string
	Attempts    int
	LastError   string
	LastAttempt int64 // unix milliseconds; 0 before the first failure
}

// OutboxState returns the delivery state of msgID, or ErrNotFound if it is
// not in the outbox.
func (db *DB) OutboxState(ctx context.Context, msgID string) (OutboxEntry, error) {
	e := OutboxEntry{MsgId: msgID}
	err := db.read.QueryRowContext(ctx, `SELECT attempts, last_error, last_attempt
		FROM outbox WHERE msg_id = ?`, msgID).Scan(&e.Attempts, &e.LastError, &e.LastAttempt)
	if errors.Is(err, sql.ErrNoRows) {
		return OutboxEntry{}, fmt.Errorf("localdb: outbox state of %s: %w", msgID, ErrNotFound)
	}
	if err != nil {
		return OutboxEntry{}, fmt.Errorf("localdb: outbox state of %s: %w", msgID, err)
	}
	return e, nil
}

// Pending counts the messages waiting in the outbox and the messages held
// without a SeqId still to be pushed (conflicted ones are not), without
// reading them.
func (db *DB) Pending(ctx context.Context) (outbox, unsequenced int, err error) {
	err = db.read.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM outbox),
		(SELECT count(*) FROM messages WHERE seq = 0 AND NOT EXISTS (SELECT 1 FROM conflicted c
			WHERE c.msg_id = messages.msg_id AND c.sender = messages.sender))`).Scan(&outbox, &unsequenced)
	if err != nil {
		return 0, 0, fmt.Errorf("localdb: pending: %w", err)
	}
	return outbox, unsequenced, nil
}
