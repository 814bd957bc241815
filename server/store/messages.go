package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mqtter/mqtter/wire"
)

// AppendAsync queues msgs to be stored and sequenced, and calls done from the
// writer goroutine once their batch committed. done must not block.
func (db *DB) AppendAsync(msgs []wire.Message, done func([]Appended, error)) {
	db.writer.submit(job{msgs: msgs, done: done})
}

// Append stores and sequences msgs and waits for the commit.
func (db *DB) Append(ctx context.Context, msgs []wire.Message) ([]Appended, error) {
	type result struct {
		res []Appended
		err error
	}
	ch := make(chan result, 1)
	db.AppendAsync(msgs, func(res []Appended, err error) { ch <- result{res, err} })
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// History returns up to limit messages of feeds with SeqId > afterSeq, in
// SeqId order, and stops early once the messages' payloads and signatures
// reach maxBytes (0: no byte limit). The first message is always returned,
// however large, so a reader paging on from the last SeqId it got always
// moves forward.
func (db *DB) History(ctx context.Context, feeds string, afterSeq int64, limit, maxBytes int) ([]wire.Message, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT seq, msg_id, msg_type, sender, payload, time_create, device, sig
		FROM messages WHERE feeds = ? AND seq > ? ORDER BY seq LIMIT ?`, feeds, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("store: history %s: %w", feeds, err)
	}
	defer rows.Close()
	var out []wire.Message
	bytes := 0
	for rows.Next() {
		m := wire.Message{Feeds: feeds}
		var payload []byte
		if err := rows.Scan(&m.SeqId, &m.MsgId, &m.MsgType, &m.From, &payload, &m.TimeCreate, &m.Device, &m.Sig); err != nil {
			return nil, fmt.Errorf("store: history %s: %w", feeds, err)
		}
		m.Payload = payload
		out = append(out, m)
		if bytes += len(payload) + len(m.Sig); maxBytes > 0 && bytes >= maxBytes {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: history %s: %w", feeds, err)
	}
	return out, nil
}

// LastSeq returns the last SeqId of feeds, 0 when it has none.
func (db *DB) LastSeq(ctx context.Context, feeds string) (int64, error) {
	var seq int64
	err := db.read.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM messages WHERE feeds = ?`, feeds).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: last seq %s: %w", feeds, err)
	}
	return seq, nil
}

// Conversations returns account's dm conversations that hold messages, and
// the given groups, with their last SeqIds (0 for a group without messages).
func (db *DB) Conversations(ctx context.Context, account string, groups []string) ([]wire.Conversation, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT feeds, (SELECT max(seq) FROM messages m WHERE m.feeds = c.feeds)
		FROM (SELECT feeds FROM conversations WHERE a = ?1 UNION ALL SELECT feeds FROM conversations WHERE b = ?1) c
		ORDER BY 1`, account)
	if err != nil {
		return nil, fmt.Errorf("store: conversations of %s: %w", account, err)
	}
	defer rows.Close()
	var out []wire.Conversation
	for rows.Next() {
		var c wire.Conversation
		if err := rows.Scan(&c.Feeds, &c.LastSeqID); err != nil {
			return nil, fmt.Errorf("store: conversations of %s: %w", account, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: conversations of %s: %w", account, err)
	}
	for _, g := range groups {
		seq, err := db.LastSeq(ctx, g)
		if err != nil {
			return nil, err
		}
		out = append(out, wire.Conversation{Feeds: g, LastSeqID: seq})
	}
	return out, nil
}

// Cursors returns device's delivery cursors by feeds.
func (db *DB) Cursors(ctx context.Context, device string) (map[string]int64, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT feeds, seq FROM cursors WHERE device = ?`, device)
	if err != nil {
		return nil, fmt.Errorf("store: cursors of %s: %w", device, err)
	}
	defer rows.Close()
	out := make(map[string]int64)
	for rows.Next() {
		var feeds string
		var seq int64
		if err := rows.Scan(&feeds, &seq); err != nil {
			return nil, fmt.Errorf("store: cursors of %s: %w", device, err)
		}
		out[feeds] = seq
	}
	return out, rows.Err()
}

// SetCursor moves device's cursor in feeds forward to seq (never back).
func (db *DB) SetCursor(ctx context.Context, device, feeds string, seq int64) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO cursors (device, feeds, seq) VALUES (?, ?, ?)
			ON CONFLICT (device, feeds) DO UPDATE SET seq = max(seq, excluded.seq)`, device, feeds, seq)
		if err != nil {
			return fmt.Errorf("store: set cursor: %w", err)
		}
		return nil
	})
}

// MessagesByID returns up to limit stored messages with MsgId msgID, of
// any author (a MsgId is unique per author only).
func (db *DB) MessagesByID(ctx context.Context, msgID string, limit int) ([]wire.Message, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT feeds, seq, msg_type, sender, payload, time_create, device, sig
		FROM messages WHERE msg_id = ? LIMIT ?`, msgID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: message %.80s: %w", msgID, err)
	}
	defer rows.Close()
	var out []wire.Message
	for rows.Next() {
		m := wire.Message{MsgId: msgID}
		var payload []byte
		if err := rows.Scan(&m.Feeds, &m.SeqId, &m.MsgType, &m.From, &payload, &m.TimeCreate, &m.Device, &m.Sig); err != nil {
			return nil, fmt.Errorf("store: message %.80s: %w", msgID, err)
		}
		m.Payload = payload
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: message %.80s: %w", msgID, err)
	}
	return out, nil
}
