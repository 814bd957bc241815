package localdb

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// How this device first got a message, as Stored.Via says.
const (
	ViaLocal   = "local"   // sent from this device
	ViaP2P     = "p2p"     // a direct frame from a peer's device
	ViaServer  = "server"  // a push or send answer from the server
	ViaSync    = "sync"    // a history pull
	ViaGossip  = "gossip"  // GossipSub, from a member of the group
	ViaRelayed = "relayed" // a direct frame over a relayed connection
)

// ValidVia reports whether via is one of the Via constants.
func ValidVia(via string) bool {
	switch via {
	case ViaLocal, ViaP2P, ViaServer, ViaSync, ViaGossip, ViaRelayed:
		return true
	}
	return false
}

// Stored is a message as this device holds it.
type Stored struct {
	wire.Message
	Via        string // how this device first got it: one of the Via constants
	LocalOrder int64  // grows with every message this device stores
}

const messageCols = `msg_id, feeds, seq, msg_type, sender, payload, time_create, device, sig`

const insertMessage = `INSERT INTO messages (` + messageCols + `, via)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (msg_id, sender) DO NOTHING`

// insertRows is how many messages one INSERT statement carries: a page of
// 1000 then costs 10 statements instead of 1000, which is most of the
// driver's per-row cost (10 parameters a row, well under SQLite's limit).
const insertRows = 100

// burstRows is the most rows of an insert whose statement is kept
// prepared (a burst from a peer); larger ones, rarer, are prepared each
// time.
const burstRows = 8

// insertMessages returns an INSERT of n messages that skips the messages
// held already: a MsgId is unique per sender (From, MsgId).
func insertMessages(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO messages (` + messageCols + `, via) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	}
	b.WriteString(` ON CONFLICT (msg_id, sender) DO NOTHING`)
	return b.String()
}

// learnSeq records a SeqId for a message stored without one, if the
// incoming message is the same one: a SeqId the server gave another
// message under the same (From, MsgId) is not this message's.
const learnSeq = `UPDATE messages SET seq = ? WHERE msg_id = ? AND sender = ? AND seq = 0
	AND feeds = ? AND msg_type = ? AND payload = ? AND time_create = ? AND device = ? AND sig = ?`

// MsgKey names one message: a MsgId is unique per sender, so alice's and
// bob's messages may share a MsgId and still be two messages.
type MsgKey struct {
	From  string
	MsgId string
}

// KeyOf returns the key of m.
func KeyOf(m *wire.Message) MsgKey { return MsgKey{From: m.From, MsgId: m.MsgId} }

func messageArgs(m *wire.Message, via string) []any {
	return appendMessageArgs(make([]any, 0, 10), m, via)
}

func appendMessageArgs(args []any, m *wire.Message, via string) []any {
	payload := []byte(m.Payload)
	if payload == nil {
		payload = []byte{} // the column is NOT NULL
	}
	return append(args, m.MsgId, m.Feeds, m.SeqId, m.MsgType, m.From, payload, m.TimeCreate, m.Device, m.Sig, via)
}

// AddMessages stores msgs, all in one transaction, and reports which of them
// were new. A message is its (From, MsgId): one stored before keeps its row
// and Via, except that a SeqId
// learned later (the stored message has none, the incoming one has) is
// recorded. via is one of the Via constants.
func (db *DB) AddMessages(ctx context.Context, msgs []wire.Message, via string) ([]bool, error) {
	added, _, err := db.Ingest(ctx, msgs, via, nil)
	return added, err
}

// Ingest stores msgs as AddMessages does and, in the same transaction,
// records the thing feedback of those that are new, as RecordFeedback
// does: steps[i] (nil for none) is what msgs[i] says, and outs[i] what
// recording it did (zero for a message with no step or not new). A
// person's node that receives a thing's ack, state and result so pays one
// commit, not two, before the command's waiter wakes. steps is nil or as
// long as msgs.
func (db *DB) Ingest(ctx context.Context, msgs []wire.Message, via string, steps []*ThingFeedback) (added []bool, outs []FeedbackOutcome, err error) {
	if !ValidVia(via) {
		return nil, nil, fmt.Errorf("localdb: add messages: unknown via %q", via)
	}
	if steps != nil && len(steps) != len(msgs) {
		return nil, nil, fmt.Errorf("localdb: add messages: %d feedback steps for %d messages", len(steps), len(msgs))
	}
	added = make([]bool, len(msgs))
	if len(msgs) == 0 {
		return added, nil, nil
	}
	if steps != nil {
		outs = make([]FeedbackOutcome, len(msgs))
	}
	err = db.inTx(ctx, "add messages", func(tx wtx) error {
		if err := addMessages(ctx, tx, db.insertStmts, msgs, via, added); err != nil {
			return err
		}
		if steps == nil {
			return nil
		}
		now := time.Now().UnixMilli()
		for i, s := range steps {
			if s == nil || !added[i] {
				continue
			}
			o, err := recordInSavepoint(ctx, tx, s, now)
			if err != nil {
				return err
			}
			outs[i] = o
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return added, outs, nil
}

// addMessages is AddMessages inside tx; added[i] is set for each message
// new to the table.
func addMessages(ctx context.Context, tx wtx, ready map[int]*sql.Stmt, msgs []wire.Message, via string, added []bool) error {
	// Rows get local_order max+1, so those a statement inserted are the
	// ones past the largest local_order before it.
	var watermark int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(local_order), 0) FROM messages`).Scan(&watermark); err != nil {
		return err
	}
	stmts := make(map[int]*sql.Stmt, 2) // by rows: a full chunk and the rest
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	args := make([]any, 0, 10*min(insertRows, len(msgs)))
	for lo := 0; lo < len(msgs); lo += insertRows {
		chunk := msgs[lo:min(lo+insertRows, len(msgs))]
		st := stmts[len(chunk)]
		if st == nil {
			switch pre := ready[len(chunk)]; {
			case pre != nil:
				st = tx.StmtContext(ctx, pre)
			case len(chunk) <= burstRows: // a direct burst's size: worth keeping
				st = tx.stmt(ctx, insertMessages(len(chunk)))
			}
			if st == nil {
				var err error
				if st, err = tx.PrepareContext(ctx, insertMessages(len(chunk))); err != nil {
					return err
				}
			}
			stmts[len(chunk)] = st
		}
		args = args[:0]
		for i := range chunk {
			args = appendMessageArgs(args, &chunk[i], via)
		}
		r, err := st.ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("insert %s…: %w", chunk[0].MsgId, err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return fmt.Errorf("insert %s…: %w", chunk[0].MsgId, err)
		}
		if n == int64(len(chunk)) {
			for i := range chunk {
				added[lo+i] = true
			}
		} else if n > 0 {
			if err := markInserted(ctx, tx, chunk, watermark, added[lo:lo+len(chunk)]); err != nil {
				return err
			}
		}
		if n > 0 {
			if watermark, err = r.LastInsertId(); err != nil {
				return err
			}
		}
	}
	var update *sql.Stmt
	for i := range msgs {
		m := &msgs[i]
		if added[i] || m.SeqId == 0 {
			continue
		}
		if update == nil {
			var err error
			if update, err = tx.PrepareContext(ctx, learnSeq); err != nil {
				return err
			}
			defer update.Close()
		}
		payload := []byte(m.Payload)
		if payload == nil {
			payload = []byte{}
		}
		if _, err := update.ExecContext(ctx, m.SeqId, m.MsgId, m.From, m.Feeds, m.MsgType, payload, m.TimeCreate, m.Device, m.Sig); err != nil {
			return fmt.Errorf("set seq of %s: %w", m.MsgId, err)
		}
	}
	return nil
}

// markInserted sets added[i] for the messages of chunk that its INSERT
// stored (the rows past watermark): for a message the chunk carries twice,
// the first one.
func markInserted(ctx context.Context, tx wtx, chunk []wire.Message, watermark int64, added []bool) error {
	rows, err := tx.QueryContext(ctx, `SELECT sender, msg_id FROM messages WHERE local_order > ?`, watermark)
	if err != nil {
		return err
	}
	defer rows.Close()
	inserted := make(map[MsgKey]bool)
	for rows.Next() {
		var k MsgKey
		if err := rows.Scan(&k.From, &k.MsgId); err != nil {
			return err
		}
		inserted[k] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range chunk {
		if k := KeyOf(&chunk[i]); inserted[k] {
			added[i] = true
			delete(inserted, k)
		}
	}
	return nil
}

// SetSeqs records the SeqIds the server assigned, by (From, MsgId), so a
// SeqId lands only on the very message the server sequenced, never on
// another sender's message with the same MsgId. Messages this device does
// not hold are skipped.
func (db *DB) SetSeqs(ctx context.Context, seqs map[MsgKey]int64) error {
	if len(seqs) == 0 {
		return nil
	}
	return db.inTx(ctx, "set seqs", func(tx wtx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE messages SET seq = ? WHERE msg_id = ? AND sender = ? AND seq != ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		for k, seq := range seqs {
			if seq <= 0 {
				return fmt.Errorf("%s/%s: SeqId %d is not positive", k.From, k.MsgId, seq)
			}
			if _, err := st.ExecContext(ctx, seq, k.MsgId, k.From, seq); err != nil {
				return fmt.Errorf("%s/%s: %w", k.From, k.MsgId, err)
			}
		}
		return nil
	})
}

// History returns the messages of one conversation oldest first: the
// sequenced ones by SeqId, then the unsequenced ones in local order. With
// limit > 0 it returns the newest limit messages of that order, still
// oldest first.
func (db *DB) History(ctx context.Context, feeds string, limit int) ([]Stored, error) {
	n := int64(limit)
	if limit <= 0 {
		n = -1 // SQLite: no limit
	}
	// One statement, so both halves come from the same snapshot even while
	// SetSeqs moves messages from one half to the other. Each half reads
	// its end of the (feeds, seq, local_order) index newest first.
	rows, err := db.read.QueryContext(ctx, `
		SELECT * FROM (SELECT `+messageCols+`, via, local_order, 1 FROM messages
			WHERE feeds = ?1 AND seq = 0 ORDER BY local_order DESC LIMIT ?2)
		UNION ALL
		SELECT * FROM (SELECT `+messageCols+`, via, local_order, 0 FROM messages
			WHERE feeds = ?1 AND seq > 0 ORDER BY seq DESC LIMIT ?2)`, feeds, n)
	if err != nil {
		return nil, fmt.Errorf("localdb: history of %s: %w", feeds, err)
	}
	defer rows.Close()
	type row struct {
		s           Stored
		unsequenced bool
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(append(scanArgs(&r.s.Message), &r.s.Via, &r.s.LocalOrder, &r.unsequenced)...); err != nil {
			return nil, fmt.Errorf("localdb: history of %s: %w", feeds, err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: history of %s: %w", feeds, err)
	}
	sort.Slice(got, func(i, j int) bool {
		a, b := got[i], got[j]
		if a.unsequenced != b.unsequenced {
			return !a.unsequenced
		}
		if a.unsequenced {
			return a.s.LocalOrder < b.s.LocalOrder
		}
		if a.s.SeqId != b.s.SeqId {
			return a.s.SeqId < b.s.SeqId
		}
		return a.s.LocalOrder < b.s.LocalOrder
	})
	if limit > 0 && len(got) > limit {
		got = got[len(got)-limit:]
	}
	out := make([]Stored, len(got))
	for i, r := range got {
		out[i] = r.s
	}
	return out, nil
}

// Unsequenced returns up to limit messages that have no SeqId yet, across
// all conversations, in local order, whoever signed them (history_push
// takes them by device: UnsequencedOf, UnsequencedNotOf). A conflicted
// message (MarkConflict) is not among them. limit <= 0 means all of them.
func (db *DB) Unsequenced(ctx context.Context, limit int) ([]wire.Message, error) {
	return db.unsequenced(ctx, `1`, limit)
}

// UnsequencedOf returns up to limit messages without a SeqId that device
// signed (their Device is device), across all conversations, in local
// order: what that device, when it is this one, pushes at once. A
// conflicted message is not among them. limit <= 0 means all of them.
func (db *DB) UnsequencedOf(ctx context.Context, device string, limit int) ([]wire.Message, error) {
	return db.unsequenced(ctx, `device = ?`, limit, device)
}

// heldBehind is the condition, on a message of device (the first
// argument), that another device's unsequenced, unconflicted message
// stored after local order through (the second) comes before it in its
// conversation.
const heldBehind = `EXISTS (SELECT 1 FROM messages o
	WHERE o.seq = 0 AND o.feeds = messages.feeds AND o.device != ?
		AND o.local_order > ? AND o.local_order < messages.local_order
		AND NOT EXISTS (SELECT 1 FROM conflicted c WHERE c.msg_id = o.msg_id AND c.sender = o.sender))`

// inFeeds returns the condition (with its arguments) that a message is in
// the conversation feeds, or in any when feeds is "". It is a plain
// "feeds = ?" when set, so that the (feeds, seq) index narrows the query to
// the one conversation: an "OR" would make every push before a server
// send scan the device's whole unsequenced backlog.
func inFeeds(feeds string) (string, []any) {
	if feeds == "" {
		return `1`, nil
	}
	return `feeds = ?`, []any{feeds}
}

// UnsequencedOfFree is UnsequencedOf without the messages held back: those
// that, in their conversation, come after a message another device signed
// that is unsequenced and stored after local order through (one this
// device may not relay yet). Pushing such a message first would put a
// reply ahead of what it answers. With feeds set, only that
// conversation's.
func (db *DB) UnsequencedOfFree(ctx context.Context, device string, through int64, feeds string, limit int) ([]wire.Message, error) {
	cond, args := inFeeds(feeds)
	return db.unsequenced(ctx, cond+` AND device = ? AND NOT `+heldBehind, limit, append(args, device, device, through)...)
}

// HeldBack returns the conversations (feeds only, when set) in which some
// unsequenced message of device is held back, as UnsequencedOfFree leaves
// it out.
func (db *DB) HeldBack(ctx context.Context, device string, through int64, feeds string) (map[string]bool, error) {
	cond, args := inFeeds(feeds)
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT feeds FROM messages
		WHERE seq = 0 AND `+cond+` AND device = ? AND `+heldBehind+` AND NOT EXISTS (SELECT 1 FROM conflicted c
			WHERE c.msg_id = messages.msg_id AND c.sender = messages.sender)`, append(args, device, device, through)...)
	if err != nil {
		return nil, fmt.Errorf("localdb: held back: %w", err)
	}
	defer rows.Close()
	held := make(map[string]bool)
	for rows.Next() {
		var feeds string
		if err := rows.Scan(&feeds); err != nil {
			return nil, fmt.Errorf("localdb: held back: %w", err)
		}
		held[feeds] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: held back: %w", err)
	}
	return held, nil
}

// UnsequencedNotOf returns up to limit messages without a SeqId that another
// device than device signed, stored at or before local order through, in
// the conversation feeds or in all when it is "", in local order: what this
// device relays for others once they had time to push their own. A
// conflicted message is not among them. limit <= 0 means all of them.
func (db *DB) UnsequencedNotOf(ctx context.Context, device string, through int64, feeds string, limit int) ([]wire.Message, error) {
	cond, args := inFeeds(feeds)
	return db.unsequenced(ctx, cond+` AND device != ? AND local_order <= ?`, limit, append(args, device, through)...)
}

// unsequenced returns up to limit unsequenced, unconflicted messages that
// also match cond (with args), in local order.
func (db *DB) unsequenced(ctx context.Context, cond string, limit int, args ...any) ([]wire.Message, error) {
	n := int64(limit)
	if limit <= 0 {
		n = -1
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+messageCols+` FROM messages
		WHERE seq = 0 AND `+cond+` AND NOT EXISTS (SELECT 1 FROM conflicted c
			WHERE c.msg_id = messages.msg_id AND c.sender = messages.sender)
		ORDER BY local_order LIMIT ?`, append(args, n)...)
	if err != nil {
		return nil, fmt.Errorf("localdb: unsequenced: %w", err)
	}
	msgs, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("localdb: unsequenced: %w", err)
	}
	return msgs, nil
}

// LastLocalOrder returns the local order of the message stored last, 0 when
// none is: every message held now has a local order at most that.
func (db *DB) LastLocalOrder(ctx context.Context) (int64, error) {
	var last int64
	if err := db.read.QueryRowContext(ctx, `SELECT coalesce(max(local_order), 0) FROM messages`).Scan(&last); err != nil {
		return 0, fmt.Errorf("localdb: last local order: %w", err)
	}
	return last, nil
}

// scanArgs points at m's fields in messageCols order.
func scanArgs(m *wire.Message) []any {
	return []any{&m.MsgId, &m.Feeds, &m.SeqId, &m.MsgType, &m.From, (*[]byte)(&m.Payload), &m.TimeCreate, &m.Device, &m.Sig}
}

// scanMessages reads rows of messageCols and closes rows.
func scanMessages(rows *sql.Rows) ([]wire.Message, error) {
	defer rows.Close()
	var msgs []wire.Message
	for rows.Next() {
		var m wire.Message
		if err := rows.Scan(scanArgs(&m)...); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}
