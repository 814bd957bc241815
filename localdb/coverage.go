package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// Coverage is how much of one conversation this device holds.
type Coverage struct {
	HeldThrough int64 `json:"held_through"` // every SeqId up to this one is held
	LastSeq     int64 `json:"last_seq"`     // the conversation's last SeqId, as the server last said
	Refused     int   `json:"refused"`      // messages of it the server returned that did not check out
}

// Complete reports whether the device holds the whole conversation as far
// as it knows.
func (c Coverage) Complete() bool { return c.HeldThrough >= c.LastSeq && c.Refused == 0 }

// Coverage returns how much of feeds this device holds.
func (db *DB) Coverage(ctx context.Context, feeds string) (Coverage, error) {
	var c Coverage
	err := db.read.QueryRowContext(ctx, `SELECT
		coalesce((SELECT seq FROM cursors WHERE feeds = ?1), 0),
		coalesce((SELECT last_seq FROM cursors WHERE feeds = ?1), 0),
		(SELECT count(*) FROM refused WHERE feeds = ?1)`, feeds).Scan(&c.HeldThrough, &c.LastSeq, &c.Refused)
	if err != nil {
		return Coverage{}, fmt.Errorf("localdb: coverage of %s: %w", feeds, err)
	}
	return c, nil
}

// NoteLastSeq records that feeds has at least seq messages on the server.
func (db *DB) NoteLastSeq(ctx context.Context, feeds string, seq int64) error {
	return db.inTx(ctx, "note last seq of "+feeds, func(tx wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO cursors (feeds, seq, last_seq) VALUES (?, 0, ?)
			ON CONFLICT (feeds) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)`, feeds, seq)
		return err
	})
}

// Advance moves the cursor of feeds over the SeqIds held right after it
// (messages that arrived as pushes), records lastSeq like NoteLastSeq, and
// returns the new cursor.
func (db *DB) Advance(ctx context.Context, feeds string, lastSeq int64) (int64, error) {
	var cursor int64
	err := db.inTx(ctx, "advance cursor of "+feeds, func(tx wtx) error {
		err := tx.QueryRowContext(ctx, `SELECT seq FROM cursors WHERE feeds = ?`, feeds).Scan(&cursor)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		for {
			rows, err := tx.QueryContext(ctx, `SELECT seq FROM messages WHERE feeds = ? AND seq > ?
				ORDER BY seq LIMIT 1000`, feeds, cursor)
			if err != nil {
				return err
			}
			moved, gap := 0, false
			for rows.Next() {
				var seq int64
				if err := rows.Scan(&seq); err != nil {
					rows.Close()
					return err
				}
				if seq != cursor+1 {
					gap = true
					break
				}
				cursor, moved = seq, moved+1
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if gap || moved < 1000 {
				break
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO cursors (feeds, seq, last_seq) VALUES (?, ?, ?)
			ON CONFLICT (feeds) DO UPDATE SET seq = max(seq, excluded.seq),
				last_seq = max(last_seq, excluded.last_seq)`, feeds, cursor, lastSeq)
		return err
	})
	if err != nil {
		return 0, err
	}
	return cursor, nil
}

// AddRefused records a message from the server that did not check out,
// by its (From, MsgId).
func (db *DB) AddRefused(ctx context.Context, m wire.Message, reason string) error {
	return db.inTx(ctx, "add refused", func(tx wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO refused (sender, msg_id, feeds, seq, reason, at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (msg_id, sender) DO UPDATE SET reason = excluded.reason, at = excluded.at`,
			m.From, m.MsgId, m.Feeds, m.SeqId, reason, time.Now().UnixMilli())
		return err
	})
}

// Refused is a message from the server that did not check out.
type Refused struct {
	From   string `json:"From,omitempty"` // empty for those recorded before senders were
	MsgId  string `json:"MsgId"`
	Feeds  string `json:"Feeds"`
	SeqId  int64  `json:"SeqId"`
	Reason string `json:"reason"`
	At     int64  `json:"at"`
}

// RefusedMessages returns the refused messages, newest first, at most limit.
func (db *DB) RefusedMessages(ctx context.Context, limit int) ([]Refused, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT sender, msg_id, feeds, seq, reason, at FROM refused
		ORDER BY at DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("localdb: refused: %w", err)
	}
	defer rows.Close()
	var out []Refused
	for rows.Next() {
		var r Refused
		if err := rows.Scan(&r.From, &r.MsgId, &r.Feeds, &r.SeqId, &r.Reason, &r.At); err != nil {
			return nil, fmt.Errorf("localdb: refused: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: refused: %w", err)
	}
	return out, nil
}

// Conflicted is a message held here that the server answered "conflict"
// for: the server holds another message under its (From, MsgId).
type Conflicted struct {
	From   string `json:"From"`
	MsgId  string `json:"MsgId"`
	Feeds  string `json:"Feeds"`
	Reason string `json:"reason"`
	At     int64  `json:"at"`
}

// MarkConflict records that the server holds another message under m's
// (From, MsgId): m stays stored, unsequenced, but leaves the outbox and
// Unsequenced, so it is never sent or pushed again. It reports whether m
// was not marked before.
func (db *DB) MarkConflict(ctx context.Context, m wire.Message, reason string) (bool, error) {
	var fresh bool
	err := db.inTx(ctx, "mark conflict "+m.MsgId, func(tx wtx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO conflicted (sender, msg_id, feeds, reason, at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (msg_id, sender) DO NOTHING`, m.From, m.MsgId, m.Feeds, reason, time.Now().UnixMilli())
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		fresh = n > 0
		// The outbox holds this account's messages only: take out the row
		// of this very message, not one that merely shares its MsgId.
		_, err = tx.ExecContext(ctx, `DELETE FROM outbox WHERE msg_id = ?1 AND queued IN
			(SELECT local_order FROM messages WHERE msg_id = ?1 AND sender = ?2)`, m.MsgId, m.From)
		return err
	})
	return fresh, err
}

// ConflictedMessages returns the conflicted messages, newest first, at
// most limit.
func (db *DB) ConflictedMessages(ctx context.Context, limit int) ([]Conflicted, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT sender, msg_id, feeds, reason, at FROM conflicted
		ORDER BY at DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("localdb: conflicted: %w", err)
	}
	defer rows.Close()
	var out []Conflicted
	for rows.Next() {
		var c Conflicted
		if err := rows.Scan(&c.From, &c.MsgId, &c.Feeds, &c.Reason, &c.At); err != nil {
			return nil, fmt.Errorf("localdb: conflicted: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: conflicted: %w", err)
	}
	return out, nil
}

// Each calls fn for every message this device holds, conversation by
// conversation, each by SeqId (the unsequenced ones first, in local
// order), reading the rows as it goes so memory stays flat whatever the
// history's size. It stops at fn's first
// error and returns it.
func (db *DB) Each(ctx context.Context, fn func(Stored) error) error {
	rows, err := db.read.QueryContext(ctx, `SELECT `+messageCols+`, via, local_order FROM messages
		ORDER BY feeds, seq, local_order`)
	if err != nil {
		return fmt.Errorf("localdb: each: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s Stored
		if err := rows.Scan(append(scanArgs(&s.Message), &s.Via, &s.LocalOrder)...); err != nil {
			return fmt.Errorf("localdb: each: %w", err)
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("localdb: each: %w", err)
	}
	return nil
}

// Conversations returns the feeds of every conversation this device holds
// messages of.
func (db *DB) Conversations(ctx context.Context) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT feeds FROM messages ORDER BY feeds`)
	if err != nil {
		return nil, fmt.Errorf("localdb: conversations: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return nil, fmt.Errorf("localdb: conversations: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: conversations: %w", err)
	}
	return out, nil
}
