package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/sqlitedb"
	"github.com/mqtter/mqtter/wire"
)

func open(t testing.TB, path string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func msg(feeds string) wire.Message {
	return wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds, MsgType: "text", From: "alice",
		Payload: []byte(`{"text":"hello"}`), TimeCreate: 1, Device: "d1"}
}

func TestAppendAssignsSeqIdsPerConversation(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	ctx := t.Context()
	ab, ac := wire.DM("alice", "bob"), wire.DM("alice", "carol")
	in := []wire.Message{msg(ab), msg(ac), msg(ab), msg(ab), msg(ac)}
	res, err := db.Append(ctx, in)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	want := []int64{1, 1, 2, 3, 2}
	for i, r := range res {
		if r.SeqId != want[i] || r.Duplicate || r.MsgId != in[i].MsgId {
			t.Errorf("Append[%d] = %+v, want SeqId %d, new", i, r, want[i])
		}
	}
	// The same MsgIds again, and twice in one batch: same SeqIds, no new rows.
	again, err := db.Append(ctx, []wire.Message{in[2], in[2], msg(ab)})
	if err != nil {
		t.Fatalf("Append again: %v", err)
	}
	if again[0].SeqId != 2 || !again[0].Duplicate || again[1].SeqId != 2 || !again[1].Duplicate || again[2].SeqId != 4 || again[2].Duplicate {
		t.Errorf("Append(dup, dup, new) = %+v, want 2 dup, 2 dup, 4 new", again)
	}
	if last, _ := db.LastSeq(ctx, ab); last != 4 {
		t.Errorf("LastSeq(%s) = %d, want 4", ab, last)
	}
	h, err := db.History(ctx, ab, 1, 10, 0)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(h) != 3 || h[0].SeqId != 2 || h[0].MsgId != in[2].MsgId || string(h[0].Payload) != `{"text":"hello"}` {
		t.Errorf("History(after 1) = %+v, want SeqIds 2..4 starting with %s", h, in[2].MsgId)
	}
}

// A MsgId is unique per sender: another sender's message under it is a
// message of its own; the same sender's is a retry only if it is the same
// message, and a conflict otherwise, which stores nothing of its job.
func TestAppendDedupesPerSender(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	ctx := t.Context()
	dm := wire.DM("alice", "bob")
	hers := msg(dm)
	his := msg(dm)
	his.MsgId, his.From, his.Device, his.Payload = hers.MsgId, "bob", "d2", []byte(`{"text":"mine now"}`)
	res, err := db.Append(ctx, []wire.Message{his, hers})
	if err != nil || res[0].SeqId != 1 || res[1].SeqId != 2 || res[0].Duplicate || res[1].Duplicate || res[0].From != "bob" || res[1].From != "alice" {
		t.Fatalf("Append(bob's, alice's under one MsgId) = %+v, %v; want both new, SeqIds 1 and 2", res, err)
	}
	// The same message again, its payload encoded otherwise: a retry.
	retry := hers
	retry.Payload = []byte(` { "text" : "hello" } `)
	res, err = db.Append(ctx, []wire.Message{retry, his})
	if err != nil || res[0].SeqId != 2 || !res[0].Duplicate || res[1].SeqId != 1 || !res[1].Duplicate {
		t.Fatalf("Append(retries) = %+v, %v; want duplicates with SeqIds 2 and 1", res, err)
	}
	for _, change := range []func(m *wire.Message){
		func(m *wire.Message) { m.Payload = []byte(`{"text":"other"}`) },
		func(m *wire.Message) { m.Feeds = wire.DM("alice", "carol") },
		func(m *wire.Message) { m.Device = "d3" },
		func(m *wire.Message) { m.TimeCreate = 2 },
		func(m *wire.Message) { m.MsgType = "link" },
		func(m *wire.Message) { m.Sig = "c2ln" },
	} {
		bad := hers
		change(&bad)
		for _, job := range [][]wire.Message{{bad}, {msg(dm), bad}} {
			_, err := db.Append(ctx, job)
			if !errors.Is(err, store.ErrMsgIdReused) || !strings.Contains(err.Error(), hers.MsgId) {
				t.Errorf("Append(%+v) err = %v, want ErrMsgIdReused naming %s", bad, err, hers.MsgId)
			}
		}
	}
	if last, _ := db.LastSeq(ctx, dm); last != 2 {
		t.Errorf("LastSeq after conflicts = %d, want 2 (nothing stored)", last)
	}
	if last, _ := db.LastSeq(ctx, wire.DM("alice", "carol")); last != 0 {
		t.Errorf("LastSeq(dm:alice:carol) = %d, want 0", last)
	}
}

// A database made by the first schema (one MsgId server-wide) is migrated:
// its messages keep their SeqIds and dedupe as before, and another sender
// may now use a MsgId already stored.
func TestMigrateMsgIdPerSender(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	v1, err := os.ReadFile("sql/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	w, r, err := sqlitedb.Open(t.Context(), path, sqlitedb.Options{Migrations: fstest.MapFS{"0001_init.sql": {Data: v1}}})
	if err != nil {
		t.Fatalf("open with the first schema: %v", err)
	}
	dm := wire.DM("alice", "bob")
	old := msg(dm)
	_, err = w.ExecContext(t.Context(), `INSERT INTO messages (feeds, seq, msg_id, msg_type, sender, payload, time_create, device, sig)
		VALUES (?, 1, ?, ?, ?, ?, ?, ?, '')`, dm, old.MsgId, old.MsgType, old.From, old.Payload, old.TimeCreate, old.Device)
	if err == nil {
		_, err = w.ExecContext(t.Context(), `INSERT INTO conversations (feeds, a, b) VALUES (?, 'alice', 'bob')`, dm)
	}
	if err != nil {
		t.Fatalf("insert with the first schema: %v", err)
	}
	r.Close()
	w.Close()

	db := open(t, path)
	ctx := t.Context()
	res, err := db.Append(ctx, []wire.Message{old})
	if err != nil || res[0].SeqId != 1 || !res[0].Duplicate {
		t.Fatalf("Append(the old message) after migrating = %+v, %v; want a duplicate of SeqId 1", res, err)
	}
	his := old
	his.From, his.Device = "bob", "d2"
	res, err = db.Append(ctx, []wire.Message{his})
	if err != nil || res[0].SeqId != 2 || res[0].Duplicate {
		t.Fatalf("Append(bob's message under the old MsgId) = %+v, %v; want new, SeqId 2", res, err)
	}
	changed := old
	changed.Payload = []byte(`{"text":"changed"}`)
	if _, err := db.Append(ctx, []wire.Message{changed}); !errors.Is(err, store.ErrMsgIdReused) {
		t.Errorf("Append(the old MsgId of alice, other text) err = %v, want ErrMsgIdReused", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, path) // reopening applies nothing twice
	if h, err := db.History(ctx, dm, 0, 10, 0); err != nil || len(h) != 2 || h[0].From != "alice" || h[1].From != "bob" {
		t.Errorf("History after reopening = %+v, %v; want alice's then bob's", h, err)
	}
}

// Concurrent appenders share batches; SeqIds stay 1..N without gaps.
func TestConcurrentAppendsHaveNoGaps(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	const writers, each = 8, 200
	feeds := wire.GroupFeeds("g1")
	var wg sync.WaitGroup
	seen := make(chan int64, writers*each)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				res, err := db.Append(context.Background(), []wire.Message{msg(feeds)})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				seen <- res[0].SeqId
			}
		}()
	}
	wg.Wait()
	close(seen)
	got := make(map[int64]bool)
	for s := range seen {
		if got[s] {
			t.Fatalf("SeqId %d assigned twice", s)
		}
		got[s] = true
	}
	for s := int64(1); s <= writers*each; s++ {
		if !got[s] {
			t.Fatalf("SeqId %d missing", s)
		}
	}
}

// A reopened store continues each conversation's SeqIds.
func TestReopenContinuesSeqIds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := store.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	feeds := wire.DM("alice", "bob")
	if _, err := db.Append(t.Context(), []wire.Message{msg(feeds), msg(feeds)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	db = open(t, path)
	res, err := db.Append(t.Context(), []wire.Message{msg(feeds)})
	if err != nil || res[0].SeqId != 3 {
		t.Fatalf("Append after reopen = %+v, %v; want SeqId 3", res, err)
	}
}

// A failing write job leaves nothing behind, and the jobs that share its
// batch still commit.
func TestFailedJobIsUndoneAlone(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	ctx := t.Context()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs[0] = db.Write(ctx, func(ctx context.Context, tx store.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (name, kind, pass_hash, created) VALUES ('x', 'person', 'h', 1)`); err != nil {
				return err
			}
			return boom
		})
	}()
	go func() {
		defer wg.Done()
		errs[1] = db.AddAccount(ctx, store.Account{Name: "y", Kind: "person", PassHash: "h", Created: 1})
	}()
	wg.Wait()
	if !errors.Is(errs[0], boom) || errs[1] != nil {
		t.Fatalf("errors = %v, want boom and nil", errs)
	}
	if _, err := db.Account(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Account(x) after its job failed: err = %v, want ErrNotFound", err)
	}
	if _, err := db.Account(ctx, "y"); err != nil {
		t.Errorf("Account(y): %v", err)
	}
	if err := db.AddAccount(ctx, store.Account{Name: "y", Kind: "person", PassHash: "h", Created: 1}); !errors.Is(err, store.ErrExists) {
		t.Errorf("AddAccount(y) again: err = %v, want ErrExists", err)
	}
}

func TestDevicesAndCursors(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	ctx := t.Context()
	for _, n := range []string{"alice", "bob"} {
		if err := db.AddAccount(ctx, store.Account{Name: n, Kind: "person", PassHash: "h", Created: 1}); err != nil {
			t.Fatal(err)
		}
	}
	feeds := wire.DM("alice", "bob")
	if _, err := db.Append(ctx, []wire.Message{msg(feeds), msg(feeds)}); err != nil {
		t.Fatal(err)
	}
	created, err := db.TouchDevice(ctx, "b1", "bob", time.Now())
	if err != nil || !created {
		t.Fatalf("TouchDevice(b1) = %v, %v; want created", created, err)
	}
	if created, err := db.TouchDevice(ctx, "b1", "bob", time.Now()); err != nil || created {
		t.Fatalf("TouchDevice(b1) again = %v, %v; want not created", created, err)
	}
	if _, err := db.TouchDevice(ctx, "b1", "alice", time.Now()); !errors.Is(err, store.ErrDeviceTaken) {
		t.Fatalf("TouchDevice(b1, alice) err = %v, want ErrDeviceTaken", err)
	}
	cur, err := db.Cursors(ctx, "b1")
	if err != nil || cur[feeds] != 2 {
		t.Fatalf("Cursors(b1) = %v, %v; want %s at 2 (a new device starts at the present)", cur, err, feeds)
	}
	if err := db.SetCursor(ctx, "b1", feeds, 1); err != nil {
		t.Fatal(err)
	}
	if cur, _ := db.Cursors(ctx, "b1"); cur[feeds] != 2 {
		t.Errorf("cursor after a lower ack = %d, want 2 (never back)", cur[feeds])
	}
}

// BenchmarkAppendOne is one message per transaction: the latency floor of
// a lone send.
func BenchmarkAppendOne(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "s.db"))
	feeds := wire.DM("alice", "bob")
	msgs := make([]wire.Message, b.N)
	for i := range msgs {
		msgs[i] = msg(feeds)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := db.Append(context.Background(), msgs[i:i+1]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendConcurrent has 64 appenders, whose messages the writer
// group-commits.
func BenchmarkAppendConcurrent(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "s.db"))
	msgs := make([]wire.Message, b.N)
	for i := range msgs {
		msgs[i] = msg(wire.DM("alice", fmt.Sprintf("u%03d", i%100)))
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += 64 {
				if _, err := db.Append(context.Background(), msgs[i:i+1]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
