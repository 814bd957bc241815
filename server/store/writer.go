package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/mqtter/mqtter/wire"
)

// maxBatch bounds how many jobs share one transaction, so that a burst does
// not hold every caller until one huge commit.
const maxBatch = 512

// Tx is what a write job may do: statements on the writer's connection,
// inside the batch's transaction and the job's own savepoint.
type Tx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Appended is the outcome of appending one message.
type Appended struct {
	MsgId     string
	From      string
	Feeds     string
	SeqId     int64
	Duplicate bool // the same message was stored before; SeqId is the one it got then
}

type job struct {
	fn   func(ctx context.Context, tx Tx) error // a generic change, run in a savepoint
	msgs []wire.Message                         // or messages to append
	done func(res []Appended, err error)
}

type completion struct {
	jobs []job
	outs []outcome
	err  error // the whole batch failed
}

type writer struct {
	log  *slog.Logger
	conn *sql.Conn
	ctx  context.Context

	mu     sync.Mutex // guards closed and the send side of jobs
	closed bool
	jobs   chan job
	exited chan struct{}
	// Completed batches go to a second goroutine that calls their done
	// functions in order, so answering and fanning out overlap the next
	// batch's transaction.
	completed chan completion
	queued    atomic.Int32 // completions handed to the completer, not yet done

	// Owned by the writer goroutine.
	lastSeq                        map[string]int64
	lookupMsg, insertMsg, readLast *sql.Stmt
	insertConv                     *sql.Stmt
	begin, commitTx, rollback      *sql.Stmt
	savepoint, rollbackTo, release *sql.Stmt
}

func startWriter(ctx context.Context, db *sql.DB, log *slog.Logger) (*writer, error) {
	// The writer outlives the caller's start-up context; Close ends it.
	wctx := context.WithoutCancel(ctx)
	conn, err := db.Conn(wctx)
	if err != nil {
		return nil, err
	}
	w := &writer{
		log: log, conn: conn, ctx: wctx,
		jobs:      make(chan job, 4*maxBatch),
		exited:    make(chan struct{}),
		completed: make(chan completion, 64),
		lastSeq:   make(map[string]int64),
	}
	prepare := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = conn.PrepareContext(wctx, q)
		return st
	}
	w.lookupMsg = prepare(`SELECT feeds, seq, msg_type, payload, time_create, device, sig
		FROM messages WHERE msg_id = ? AND sender = ?`)
	w.insertMsg = prepare(`INSERT INTO messages (feeds, seq, msg_id, msg_type, sender, payload, time_create, device, sig)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (msg_id, sender) DO NOTHING`)
	w.readLast = prepare(`SELECT coalesce(max(seq), 0) FROM messages WHERE feeds = ?`)
	w.insertConv = prepare(`INSERT INTO conversations (feeds, a, b) VALUES (?, ?, ?) ON CONFLICT (feeds) DO NOTHING`)
	w.begin = prepare(`BEGIN IMMEDIATE`)
	w.commitTx = prepare(`COMMIT`)
	w.rollback = prepare(`ROLLBACK`)
	w.savepoint = prepare(`SAVEPOINT job`)
	w.rollbackTo = prepare(`ROLLBACK TO job`)
	w.release = prepare(`RELEASE job`)
	if err != nil {
		conn.Close()
		return nil, err
	}
	go w.run()
	return w, nil
}

// complete calls the done functions of finished batches, in commit order.
func (w *writer) complete(finished chan<- struct{}) {
	defer close(finished)
	for c := range w.completed {
		c.run()
		w.queued.Add(-1)
	}
}

func (c completion) run() {
	for i, j := range c.jobs {
		if c.err != nil {
			j.done(nil, c.err)
		} else {
			j.done(c.outs[i].res, c.outs[i].err)
		}
	}
}

// finish calls a committed batch's done functions: right here when nothing
// else waits (a lone send should not pay for a goroutine switch), or on the
// completer while the next batch commits.
func (w *writer) finish(c completion) {
	if len(w.jobs) == 0 && w.queued.Load() == 0 {
		c.run()
		return
	}
	w.queued.Add(1)
	w.completed <- c
}

// submit queues a job; done is called from the writer goroutine once the
// job's batch committed (or failed). It blocks while the queue is full.
func (w *writer) submit(j job) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		j.done(nil, ErrClosed)
		return
	}
	// Sending under the lock keeps close from racing a send; the writer
	// drains without taking the lock, so this cannot deadlock.
	w.jobs <- j
	w.mu.Unlock()
}

// do runs fn as a write job and waits for its batch to commit.
func (w *writer) do(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	ch := make(chan error, 1)
	w.submit(job{fn: fn, done: func(_ []Appended, err error) { ch <- err }})
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		// The job still runs or has run; its outcome is not ours to see.
		return ctx.Err()
	}
}

func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.jobs)
	}
	w.mu.Unlock()
	<-w.exited
}

func (w *writer) run() {
	finished := make(chan struct{})
	go w.complete(finished)
	defer func() {
		close(w.completed)
		<-finished
		w.conn.Close()
		close(w.exited)
	}()
	for j := range w.jobs {
		batch := make([]job, 1, 64)
		batch[0] = j
	fill:
		for len(batch) < maxBatch {
			select {
			case j, ok := <-w.jobs:
				if !ok {
					break fill
				}
				batch = append(batch, j)
			default:
				break fill
			}
		}
		w.commit(batch)
	}
}

// outcome is one job's result inside a batch.
type outcome struct {
	res []Appended
	err error
}

func (w *writer) commit(batch []job) {
	ctx := w.ctx
	outs := make([]outcome, len(batch))
	prevSeq := make(map[string]int64) // SeqIds to restore if the commit fails
	fail := func(err error) {
		for f, seq := range prevSeq {
			w.lastSeq[f] = seq
		}
		w.finish(completion{jobs: batch, err: err})
	}
	if _, err := w.begin.ExecContext(ctx); err != nil {
		fail(fmt.Errorf("store: begin: %w", err))
		return
	}
	for i, j := range batch {
		if j.fn != nil {
			outs[i].err = w.runSavepoint(ctx, j.fn)
			continue
		}
		outs[i].res, outs[i].err = w.append(ctx, j.msgs, prevSeq)
	}
	for feeds, prev := range prevSeq {
		if prev != 0 {
			continue // the conversation has its row
		}
		a, b := "", ""
		if f, err := wire.ParseFeeds(feeds); err == nil && f.Kind == wire.FeedsDM {
			a, b = f.A, f.B
		}
		if _, err := w.insertConv.ExecContext(ctx, feeds, a, b); err != nil {
			w.rollback.ExecContext(ctx)
			fail(fmt.Errorf("store: add conversation %s: %w", feeds, err))
			return
		}
	}
	if _, err := w.commitTx.ExecContext(ctx); err != nil {
		w.rollback.ExecContext(ctx)
		fail(fmt.Errorf("store: commit: %w", err))
		return
	}
	w.finish(completion{jobs: batch, outs: outs})
}

func (w *writer) runSavepoint(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	if _, err := w.savepoint.ExecContext(ctx); err != nil {
		return fmt.Errorf("store: savepoint: %w", err)
	}
	if err := fn(ctx, w.conn); err != nil {
		if _, rerr := w.rollbackTo.ExecContext(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		w.release.ExecContext(ctx)
		return err
	}
	if _, err := w.release.ExecContext(ctx); err != nil {
		return fmt.Errorf("store: release savepoint: %w", err)
	}
	return nil
}

// ErrMsgIdReused is returned when a sender's MsgId is stored already for
// another message of that sender (other content, conversation or device);
// the job that carried it stores nothing. The error names the MsgId.
var ErrMsgIdReused = errors.New("MsgId already used by another message")

// append stores msgs in order, assigning each new (From, MsgId) the next
// SeqId of its conversation. MsgIds are unique per sender, not across
// senders: a message of another sender under a MsgId already stored is a
// message of its own. The same message stored before (same From, MsgId and
// stored fields) keeps its SeqId, so a retried send gets the same answer.
// The job is all or nothing: on any error, what it stored is rolled back.
func (w *writer) append(ctx context.Context, msgs []wire.Message, prevSeq map[string]int64) ([]Appended, error) {
	if len(msgs) == 1 {
		// One INSERT either stores the message or stores nothing: no
		// savepoint needed (they cost as much as the insert).
		return w.appendAll(ctx, msgs, prevSeq)
	}
	if _, err := w.savepoint.ExecContext(ctx); err != nil {
		return nil, fmt.Errorf("store: savepoint: %w", err)
	}
	jobPrev := make(map[string]int64)
	res, err := w.appendAll(ctx, msgs, jobPrev)
	if err != nil {
		for f, seq := range jobPrev {
			w.lastSeq[f] = seq
		}
		if _, rerr := w.rollbackTo.ExecContext(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		w.release.ExecContext(ctx)
		return nil, err
	}
	if _, err := w.release.ExecContext(ctx); err != nil {
		return nil, fmt.Errorf("store: release savepoint: %w", err)
	}
	for f, seq := range jobPrev {
		if _, ok := prevSeq[f]; !ok {
			prevSeq[f] = seq
		}
	}
	return res, nil
}

func (w *writer) appendAll(ctx context.Context, msgs []wire.Message, prevSeq map[string]int64) ([]Appended, error) {
	res := make([]Appended, 0, len(msgs))
	for _, m := range msgs {
		last, err := w.last(ctx, m.Feeds)
		if err != nil {
			return nil, err
		}
		seq := last + 1
		r, err := w.insertMsg.ExecContext(ctx, m.Feeds, seq, m.MsgId, m.MsgType, m.From,
			[]byte(m.Payload), m.TimeCreate, m.Device, m.Sig)
		if err != nil {
			return nil, fmt.Errorf("store: insert %s: %w", m.MsgId, err)
		}
		if n, err := r.RowsAffected(); err != nil || n == 0 {
			// Stored before (maybe earlier in this batch): a retry gets
			// the same SeqId again, another message is refused.
			stored := wire.Message{MsgId: m.MsgId, From: m.From}
			var payload []byte
			if err := w.lookupMsg.QueryRowContext(ctx, m.MsgId, m.From).Scan(&stored.Feeds, &stored.SeqId,
				&stored.MsgType, &payload, &stored.TimeCreate, &stored.Device, &stored.Sig); err != nil {
				return nil, fmt.Errorf("store: look up %s of %s: %w", m.MsgId, m.From, err)
			}
			stored.Payload = payload
			if !sameMessage(stored, m) {
				return nil, fmt.Errorf("%w: %s of %s", ErrMsgIdReused, m.MsgId, m.From)
			}
			res = append(res, Appended{MsgId: m.MsgId, From: m.From, Feeds: stored.Feeds, SeqId: stored.SeqId, Duplicate: true})
			continue
		}
		if _, ok := prevSeq[m.Feeds]; !ok {
			prevSeq[m.Feeds] = last
		}
		w.lastSeq[m.Feeds] = seq
		res = append(res, Appended{MsgId: m.MsgId, From: m.From, Feeds: m.Feeds, SeqId: seq})
	}
	return res, nil
}

// sameMessage reports whether m is a retry of stored, a message of the same
// sender under the same MsgId: every stored field equal, the payload compared
// in canonical JSON (what a signature covers), so that an intermediary's
// re-encoding is still the same message.
func sameMessage(stored, m wire.Message) bool {
	if stored.Feeds != m.Feeds || stored.MsgType != m.MsgType || stored.TimeCreate != m.TimeCreate ||
		stored.Device != m.Device || stored.Sig != m.Sig {
		return false
	}
	if bytes.Equal(stored.Payload, m.Payload) {
		return true
	}
	a, err := wire.CanonicalJSON(stored.Payload)
	if err != nil {
		return false
	}
	b, err := wire.CanonicalJSON(m.Payload)
	return err == nil && bytes.Equal(a, b)
}

func (w *writer) last(ctx context.Context, feeds string) (int64, error) {
	if seq, ok := w.lastSeq[feeds]; ok {
		return seq, nil
	}
	var seq int64
	err := w.readLast.QueryRowContext(ctx, feeds).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: last seq of %s: %w", feeds, err)
	}
	w.lastSeq[feeds] = seq
	return seq, nil
}
