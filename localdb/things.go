package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// States of a command this account received (as a thing).
const (
	CommandReceived = "received" // seen, not yet handed to the device program
	CommandRunning  = "running"  // handed to the device program (marked before)
	CommandAnswered = "answered" // a result or a refusal went out: done
)

// ThingCommand is a command this account received, as kept for running it
// at most once.
type ThingCommand struct {
	MsgId    string
	From     string
	Payload  []byte
	State    string
	Outcome  string
	Received int64 // unix ms
	Updated  int64 // unix ms
}

// insertSeenCommand records a received command's first sighting.
const insertSeenCommand = `INSERT INTO thing_commands
	(msg_id, sender, payload, state, received, updated) VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (msg_id, sender) DO NOTHING`

// CommandKnown reports whether a command (From, MsgId) was recorded by an
// Outgoing's Seen: a read, for a caller that is the only one to record
// commands and records a new one with its ack.
func (db *DB) CommandKnown(ctx context.Context, msgID, from string) (bool, error) {
	var one int
	err := db.read.QueryRowContext(ctx, `SELECT 1 FROM thing_commands WHERE msg_id = ? AND sender = ?`, msgID, from).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("localdb: command %s: %w", msgID, err)
	}
	return true, nil
}

// SetCommandState moves a received command to state, with the status it
// was answered with (outcome, for CommandAnswered). It returns ErrNotFound
// for a command never seen.
func (db *DB) SetCommandState(ctx context.Context, msgID, from, state, outcome string) error {
	if !validCommandState(state) {
		return fmt.Errorf("localdb: command %s: unknown state %q", msgID, state)
	}
	mk := CommandMark{MsgId: msgID, From: from, State: state, Outcome: outcome}
	return db.inTx(ctx, "command "+msgID+" "+state, func(tx wtx) error {
		found, err := setCommandState(ctx, tx, mk, time.Now().UnixMilli())
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
}

func validCommandState(state string) bool {
	switch state {
	case CommandReceived, CommandRunning, CommandAnswered:
		return true
	}
	return false
}

// setCommandState is SetCommandState inside tx; it reports whether the
// command was there.
func setCommandState(ctx context.Context, tx wtx, mk CommandMark, now int64) (bool, error) {
	r, err := tx.ExecContext(ctx, `UPDATE thing_commands SET state = ?, outcome = ?, updated = ?
		WHERE msg_id = ? AND sender = ?`, mk.State, mk.Outcome, now, mk.MsgId, mk.From)
	if err != nil {
		return false, fmt.Errorf("command %s %s: %w", mk.MsgId, mk.State, err)
	}
	n, err := r.RowsAffected()
	return n > 0, err
}

// ThingCommand returns one command as kept, or ErrNotFound.
func (db *DB) ThingCommand(ctx context.Context, msgID, from string) (ThingCommand, error) {
	c := ThingCommand{MsgId: msgID, From: from}
	err := db.read.QueryRowContext(ctx, `SELECT payload, state, outcome, received, updated
		FROM thing_commands WHERE msg_id = ? AND sender = ?`, msgID, from).
		Scan(&c.Payload, &c.State, &c.Outcome, &c.Received, &c.Updated)
	if errors.Is(err, sql.ErrNoRows) {
		return ThingCommand{}, fmt.Errorf("localdb: command %s: %w", msgID, ErrNotFound)
	}
	if err != nil {
		return ThingCommand{}, fmt.Errorf("localdb: command %s: %w", msgID, err)
	}
	return c, nil
}

// OpenCommands returns the commands not answered yet (received or
// running), oldest first: what a restart must take up again.
func (db *DB) OpenCommands(ctx context.Context) ([]ThingCommand, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT msg_id, sender, payload, state, outcome, received, updated
		FROM thing_commands WHERE state <> ? ORDER BY received, msg_id`, CommandAnswered)
	if err != nil {
		return nil, fmt.Errorf("localdb: open commands: %w", err)
	}
	defer rows.Close()
	var out []ThingCommand
	for rows.Next() {
		var c ThingCommand
		if err := rows.Scan(&c.MsgId, &c.From, &c.Payload, &c.State, &c.Outcome, &c.Received, &c.Updated); err != nil {
			return nil, fmt.Errorf("localdb: open commands: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: open commands: %w", err)
	}
	return out, nil
}

// metaStateRev is the meta key of the last state revision given out:
// revisions increase across restarts (Outgoing.StateRev keeps them).
const metaStateRev = "thing.state_rev"

// LastStateRev returns the last state revision given out.
func (db *DB) LastStateRev(ctx context.Context) (int64, error) {
	rev, err := lastStateRev(ctx, db.read)
	if err != nil {
		return 0, fmt.Errorf("localdb: state revision: %w", err)
	}
	return rev, nil
}

func lastStateRev(ctx context.Context, q queryer) (int64, error) {
	var cur string
	err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaStateRev).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	last, _ := strconv.ParseInt(cur, 10, 64)
	return last, nil
}

// keepStateRev keeps rev as the last revision given out, unless a higher
// one is kept.
func keepStateRev(ctx context.Context, tx wtx, rev int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value
		WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)`, metaStateRev, strconv.FormatInt(rev, 10))
	return err
}

// UnrecordedCommands returns the commands to others than self (by
// sender) made after since (unix ms) that came directly or from the
// server and were never recorded (Outgoing.Seen): stored, then the
// process ended before it took them. Never recorded means never run.
func (db *DB) UnrecordedCommands(ctx context.Context, self string, since int64) ([]wire.Message, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT m.msg_id, m.feeds, m.seq, m.msg_type, m.sender,
		m.payload, m.time_create, m.device, m.sig
		FROM messages m WHERE m.msg_type = 'command' AND m.time_create > ?
		AND m.via IN (?, ?) AND m.sender <> ?
		AND NOT EXISTS (SELECT 1 FROM thing_commands c WHERE c.msg_id = m.msg_id AND c.sender = m.sender)
		ORDER BY m.local_order`, since, ViaP2P, ViaServer, self)
	if err != nil {
		return nil, fmt.Errorf("localdb: unrecorded commands: %w", err)
	}
	msgs, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("localdb: unrecorded commands: %w", err)
	}
	return msgs, nil
}
