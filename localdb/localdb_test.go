package localdb_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/wire"
)

const feedsAB = "dm:alice:bob"

// testLogger routes the store's log to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func openAt(t testing.TB, path string) *localdb.DB {
	t.Helper()
	db, err := localdb.Open(t.Context(), path, testLogger(t))
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func open(t testing.TB) *localdb.DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "node.db"))
}

func msg(feeds string, seq int64) wire.Message {
	return wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds, SeqId: seq, MsgType: wire.MsgTypeText,
		From: "alice", Payload: []byte(`{"text":"hello"}`), TimeCreate: time.Now().UnixMilli(), Device: "d1"}
}

func add(t testing.TB, db *localdb.DB, via string, msgs ...wire.Message) []bool {
	t.Helper()
	added, err := db.AddMessages(t.Context(), msgs, via)
	if err != nil {
		t.Fatalf("AddMessages(%d msgs, %s): %v", len(msgs), via, err)
	}
	return added
}

func msgIDs(msgs []wire.Message) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.MsgId)
	}
	return out
}

func storedIDs(msgs []localdb.Stored) []string {
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.MsgId)
	}
	return out
}

func history(t testing.TB, db *localdb.DB, feeds string, limit int) []localdb.Stored {
	t.Helper()
	h, err := db.History(t.Context(), feeds, limit)
	if err != nil {
		t.Fatalf("History(%s, %d): %v", feeds, limit, err)
	}
	return h
}

func TestAddMessagesDedupesAndKeepsFirstVia(t *testing.T) {
	db := open(t)
	a, b := msg(feedsAB, 0), msg(feedsAB, 0)
	if got, want := add(t, db, localdb.ViaP2P, a), []bool{true}; !slices.Equal(got, want) {
		t.Errorf("AddMessages([a], p2p) = %v, want %v", got, want)
	}
	// a again (now from the server, sequenced), b new, b again in the same batch.
	aSeq := a
	aSeq.SeqId = 7
	if got, want := add(t, db, localdb.ViaServer, aSeq, b, b), []bool{false, true, false}; !slices.Equal(got, want) {
		t.Errorf("AddMessages([a, b, b], server) = %v, want %v", got, want)
	}
	h := history(t, db, feedsAB, 0)
	if len(h) != 2 {
		t.Fatalf("History = %d messages, want 2", len(h))
	}
	byID := map[string]localdb.Stored{}
	for _, s := range h {
		byID[s.MsgId] = s
	}
	if got := byID[a.MsgId]; got.Via != localdb.ViaP2P || got.SeqId != 7 {
		t.Errorf("a = via %s seq %d, want via p2p seq 7 (first via kept, SeqId learned)", got.Via, got.SeqId)
	}
	if got := byID[b.MsgId]; got.Via != localdb.ViaServer {
		t.Errorf("b via = %s, want server", got.Via)
	}
	if got := byID[b.MsgId]; string(got.Payload) != string(b.Payload) || got.From != b.From ||
		got.TimeCreate != b.TimeCreate || got.Device != b.Device || got.MsgType != b.MsgType {
		t.Errorf("b stored = %+v, want %+v", got.Message, b)
	}
	// A later copy with another SeqId does not overwrite a known one.
	aOther := a
	aOther.SeqId = 9
	add(t, db, localdb.ViaSync, aOther)
	if got := history(t, db, feedsAB, 0)[0]; got.MsgId != a.MsgId || got.SeqId != 7 {
		t.Errorf("after a second SeqId: %s seq %d, want %s seq 7", got.MsgId, got.SeqId, a.MsgId)
	}
	if _, err := db.AddMessages(t.Context(), []wire.Message{msg(feedsAB, 0)}, "carrier-pigeon"); err == nil {
		t.Errorf("AddMessages(via carrier-pigeon) = nil error, want an error")
	}
}

func TestHistoryOrder(t *testing.T) {
	db := open(t)
	// Stored in this local order: u1, s3, u2, s1, s2, u3, and one in another
	// conversation that must not show.
	u1, s3, u2, s1, s2, u3 := msg(feedsAB, 0), msg(feedsAB, 3), msg(feedsAB, 0), msg(feedsAB, 1), msg(feedsAB, 2), msg(feedsAB, 0)
	add(t, db, localdb.ViaP2P, u1, s3)
	add(t, db, localdb.ViaServer, u2, s1)
	add(t, db, localdb.ViaSync, s2, msg("dm:alice:carol", 0), u3)
	all := []string{s1.MsgId, s2.MsgId, s3.MsgId, u1.MsgId, u2.MsgId, u3.MsgId}
	tests := []struct {
		limit int
		want  []string
	}{
		{0, all},
		{-1, all},
		{6, all},
		{100, all},
		{5, all[1:]},
		{3, all[3:]},
		{2, all[4:]},
		{1, all[5:]},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			if got := storedIDs(history(t, db, feedsAB, tt.limit)); !slices.Equal(got, tt.want) {
				t.Errorf("History(%s, %d) = %v, want %v", feedsAB, tt.limit, got, tt.want)
			}
		})
	}
	// The oldest first, and local order grows.
	h := history(t, db, feedsAB, 0)
	for i := 4; i < len(h); i++ {
		if h[i].LocalOrder <= h[i-1].LocalOrder {
			t.Errorf("unsequenced LocalOrder %d after %d, want growing", h[i].LocalOrder, h[i-1].LocalOrder)
		}
	}
	if got := history(t, db, "g:nobody", 10); len(got) != 0 {
		t.Errorf("History(g:nobody) = %d messages, want 0", len(got))
	}
}

func TestSetSeqsMovesIntoSeqOrder(t *testing.T) {
	db := open(t)
	s1, u1, u2, u3 := msg(feedsAB, 1), msg(feedsAB, 0), msg(feedsAB, 0), msg(feedsAB, 0)
	add(t, db, localdb.ViaLocal, s1, u1, u2, u3)
	unseq, err := db.Unsequenced(t.Context(), 0)
	if err != nil {
		t.Fatalf("Unsequenced: %v", err)
	}
	if got, want := msgIDs(unseq), []string{u1.MsgId, u2.MsgId, u3.MsgId}; !slices.Equal(got, want) {
		t.Errorf("Unsequenced(0) = %v, want %v", got, want)
	}
	if unseq, _ = db.Unsequenced(t.Context(), 2); !slices.Equal(msgIDs(unseq), []string{u1.MsgId, u2.MsgId}) {
		t.Errorf("Unsequenced(2) = %v, want %v", msgIDs(unseq), []string{u1.MsgId, u2.MsgId})
	}
	// The server sequenced u2 before u1; u3 stays unsequenced.
	if err := db.SetSeqs(t.Context(), map[localdb.MsgKey]int64{localdb.KeyOf(&u2): 2, localdb.KeyOf(&u1): 3, {From: "alice", MsgId: "unknown"}: 4}); err != nil {
		t.Fatalf("SetSeqs: %v", err)
	}
	h := history(t, db, feedsAB, 0)
	if got, want := storedIDs(h), []string{s1.MsgId, u2.MsgId, u1.MsgId, u3.MsgId}; !slices.Equal(got, want) {
		t.Errorf("History after SetSeqs = %v, want %v", got, want)
	}
	if got := []int64{h[0].SeqId, h[1].SeqId, h[2].SeqId, h[3].SeqId}; !slices.Equal(got, []int64{1, 2, 3, 0}) {
		t.Errorf("SeqIds after SetSeqs = %v, want [1 2 3 0]", got)
	}
	if unseq, _ = db.Unsequenced(t.Context(), 0); !slices.Equal(msgIDs(unseq), []string{u3.MsgId}) {
		t.Errorf("Unsequenced after SetSeqs = %v, want [%s]", msgIDs(unseq), u3.MsgId)
	}
	if err := db.SetSeqs(t.Context(), map[localdb.MsgKey]int64{localdb.KeyOf(&u3): 0}); err == nil {
		t.Errorf("SetSeqs(seq 0) = nil error, want an error")
	}
}

func TestUnsequencedByDevice(t *testing.T) {
	db := open(t)
	if last, err := db.LastLocalOrder(t.Context()); err != nil || last != 0 {
		t.Fatalf("LastLocalOrder of an empty store = %d, %v, want 0", last, err)
	}
	mine1, theirs1, done, theirs2, mine2 := msg(feedsAB, 0), msg(feedsAB, 0), msg(feedsAB, 1), msg(feedsAB, 0), msg(feedsAB, 0)
	theirs1.Device, theirs2.Device = "d2", "d2"
	add(t, db, localdb.ViaLocal, mine1)
	add(t, db, localdb.ViaP2P, theirs1, done)
	through, err := db.LastLocalOrder(t.Context())
	if err != nil {
		t.Fatalf("LastLocalOrder: %v", err)
	}
	add(t, db, localdb.ViaP2P, theirs2)
	add(t, db, localdb.ViaLocal, mine2)
	if got, err := db.UnsequencedOf(t.Context(), "d1", 0); err != nil || !slices.Equal(msgIDs(got), []string{mine1.MsgId, mine2.MsgId}) {
		t.Errorf("UnsequencedOf(d1) = %v, %v, want %v", msgIDs(got), err, []string{mine1.MsgId, mine2.MsgId})
	}
	if got, _ := db.UnsequencedOf(t.Context(), "d1", 1); !slices.Equal(msgIDs(got), []string{mine1.MsgId}) {
		t.Errorf("UnsequencedOf(d1, 1) = %v, want [%s]", msgIDs(got), mine1.MsgId)
	}
	// Only what was held at the mark, and only other devices' messages.
	if got, err := db.UnsequencedNotOf(t.Context(), "d1", through, "", 0); err != nil || !slices.Equal(msgIDs(got), []string{theirs1.MsgId}) {
		t.Errorf("UnsequencedNotOf(d1, %d) = %v, %v, want [%s]", through, msgIDs(got), err, theirs1.MsgId)
	}
	last, _ := db.LastLocalOrder(t.Context())
	if got, _ := db.UnsequencedNotOf(t.Context(), "d1", last, "", 0); !slices.Equal(msgIDs(got), []string{theirs1.MsgId, theirs2.MsgId}) {
		t.Errorf("UnsequencedNotOf(d1, %d) = %v, want [%s %s]", last, msgIDs(got), theirs1.MsgId, theirs2.MsgId)
	}
}

func TestOutboxSurvivesReopenUntilDelivered(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "node.db")
	db, err := localdb.Open(ctx, path, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	m1, m2, m3 := msg(feedsAB, 0), msg(feedsAB, 0), msg(feedsAB, 0)
	for _, m := range []wire.Message{m1, m2, m3, m1} {
		if err := db.Enqueue(ctx, m); err != nil {
			t.Fatalf("Enqueue(%s): %v", m.MsgId, err)
		}
	}
	if err := db.OutboxAttempt(ctx, m1.MsgId, "no route"); err != nil {
		t.Fatalf("OutboxAttempt: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}

	db = openAt(t, path)
	out, err := db.Outbox(ctx)
	if err != nil {
		t.Fatalf("Outbox: %v", err)
	}
	if got, want := msgIDs(out), []string{m1.MsgId, m2.MsgId, m3.MsgId}; !slices.Equal(got, want) {
		t.Errorf("Outbox after reopen = %v, want %v", got, want)
	}
	st, err := db.OutboxState(ctx, m1.MsgId)
	if err != nil {
		t.Fatalf("OutboxState: %v", err)
	}
	if st.Attempts != 1 || st.LastError != "no route" || st.LastAttempt == 0 {
		t.Errorf("OutboxState(m1) = %+v, want 1 attempt, last error %q, a time", st, "no route")
	}
	if h := history(t, db, feedsAB, 0); len(h) != 3 || h[0].Via != localdb.ViaLocal {
		t.Errorf("History = %d messages (first via %q), want 3 via local", len(h), h[0].Via)
	}

	if err := db.Delivered(ctx, m2.MsgId, "p2p"); err != nil {
		t.Fatalf("Delivered(m2, p2p): %v", err)
	}
	if err := db.Delivered(ctx, m2.MsgId, "server"); err != nil {
		t.Errorf("Delivered(m2, server) again = %v, want nil", err)
	}
	if err := db.Delivered(ctx, m3.MsgId, "pigeon"); err == nil {
		t.Errorf("Delivered(m3, pigeon) = nil error, want an error")
	}
	if out, _ = db.Outbox(ctx); !slices.Equal(msgIDs(out), []string{m1.MsgId, m3.MsgId}) {
		t.Errorf("Outbox after Delivered(m2) = %v, want %v", msgIDs(out), []string{m1.MsgId, m3.MsgId})
	}
	if queued, unseq, err := db.Pending(ctx); err != nil || queued != 2 || unseq != 3 {
		t.Errorf("Pending after Delivered(m2) = %d, %d, %v; want 2 queued, 3 unsequenced", queued, unseq, err)
	}
	if err := db.OutboxAttempt(ctx, m2.MsgId, "x"); !errors.Is(err, localdb.ErrNotFound) {
		t.Errorf("OutboxAttempt(delivered) = %v, want ErrNotFound", err)
	}
	if _, err := db.OutboxState(ctx, m2.MsgId); !errors.Is(err, localdb.ErrNotFound) {
		t.Errorf("OutboxState(delivered) = %v, want ErrNotFound", err)
	}
}

func TestReplaceRelationsAndPeers(t *testing.T) {
	db := open(t)
	ctx := t.Context()
	first := []wire.Relation{
		{User: "bob", Kind: wire.KindPerson, State: wire.StateFriend, Since: 1},
		{User: "carol", Kind: wire.KindPerson, State: wire.StateRecycled, Since: 2, Expires: 3},
	}
	second := []wire.Relation{{User: "lamp", Kind: wire.KindThing, State: wire.StateBound, Since: 4}}
	for _, rels := range [][]wire.Relation{first, second, nil} {
		if err := db.ReplaceRelations(ctx, rels); err != nil {
			t.Fatalf("ReplaceRelations: %v", err)
		}
		got, err := db.Relations(ctx)
		if err != nil {
			t.Fatalf("Relations: %v", err)
		}
		if !slices.Equal(got, rels) {
			t.Errorf("Relations() = %+v, want %+v", got, rels)
		}
	}

	peersA := []wire.PeerInfo{
		{User: "bob", Device: "12D3KooWbob1", Status: wire.StatusOnline, Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}},
		{User: "bob", Device: "12D3KooWbob2", Status: wire.StatusOffline, Addrs: []string{}},
	}
	peersB := []wire.PeerInfo{{User: "carol", Device: "12D3KooWcarol", Status: wire.StatusAway,
		Addrs: []string{"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/udp/2/quic-v1"}}}
	for _, peers := range [][]wire.PeerInfo{peersA, peersB} {
		if err := db.ReplacePeers(ctx, peers); err != nil {
			t.Fatalf("ReplacePeers: %v", err)
		}
		got, err := db.Peers(ctx)
		if err != nil {
			t.Fatalf("Peers: %v", err)
		}
		if !slices.EqualFunc(got, peers, func(a, b wire.PeerInfo) bool {
			return a.User == b.User && a.Device == b.Device && a.Status == b.Status && slices.Equal(a.Addrs, b.Addrs)
		}) {
			t.Errorf("Peers() = %+v, want %+v", got, peers)
		}
	}
	tests := []struct {
		device, want string
		err          error
	}{
		{"12D3KooWcarol", "carol", nil},
		{"12D3KooWbob1", "", localdb.ErrNotFound}, // replaced away
		{"", "", localdb.ErrNotFound},
	}
	for _, tt := range tests {
		got, err := db.PeerAccount(ctx, tt.device)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("PeerAccount(%q) = %q, %v, want %q, %v", tt.device, got, err, tt.want, tt.err)
		}
	}
}

func TestCursorsAndMeta(t *testing.T) {
	db := open(t)
	ctx := t.Context()
	if got, err := db.Cursor(ctx, feedsAB); got != 0 || err != nil {
		t.Errorf("Cursor(unset) = %d, %v, want 0, nil", got, err)
	}
	for _, tc := range []struct{ set, want int64 }{{5, 5}, {9, 9}, {3, 9}} { // never back
		if err := db.SetCursor(ctx, feedsAB, tc.set); err != nil {
			t.Fatalf("SetCursor(%d): %v", tc.set, err)
		}
		if got, err := db.Cursor(ctx, feedsAB); got != tc.want || err != nil {
			t.Errorf("Cursor after SetCursor(%d) = %d, %v, want %d, nil", tc.set, got, err, tc.want)
		}
	}
	if _, err := db.Get(ctx, "device"); !errors.Is(err, localdb.ErrNotFound) {
		t.Errorf("Get(unset) error = %v, want ErrNotFound", err)
	}
	for _, v := range []string{"one", "two"} {
		if err := db.Set(ctx, "device", v); err != nil {
			t.Fatalf("Set: %v", err)
		}
		if got, err := db.Get(ctx, "device"); got != v || err != nil {
			t.Errorf("Get(device) = %q, %v, want %q, nil", got, err, v)
		}
	}
}

func TestReopenContinuesLocalOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	var last int64
	for round := range 3 {
		db, err := localdb.Open(t.Context(), path, testLogger(t))
		if err != nil {
			t.Fatalf("Open (round %d): %v", round, err)
		}
		add(t, db, localdb.ViaP2P, msg(feedsAB, 0), msg(feedsAB, 0))
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	db := openAt(t, path)
	h := history(t, db, feedsAB, 0)
	if len(h) != 6 {
		t.Fatalf("History = %d messages, want 6", len(h))
	}
	for i, s := range h {
		if s.LocalOrder <= last {
			t.Errorf("History[%d].LocalOrder = %d, want > %d", i, s.LocalOrder, last)
		}
		last = s.LocalOrder
	}
}

func TestConcurrentAddMessagesLoseNothing(t *testing.T) {
	db := open(t)
	const workers, batches, perBatch = 8, 10, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			feeds := fmt.Sprintf("g:team%d", w%3)
			for range batches {
				batch := make([]wire.Message, perBatch)
				for i := range batch {
					batch[i] = msg(feeds, 0)
				}
				if _, err := db.AddMessages(context.Background(), batch, localdb.ViaP2P); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AddMessages: %v", err)
	}
	all, err := db.Unsequenced(t.Context(), 0)
	if err != nil {
		t.Fatalf("Unsequenced: %v", err)
	}
	if got, want := len(all), workers*batches*perBatch; got != want {
		t.Errorf("Unsequenced(0) = %d messages, want %d", got, want)
	}
	seen := map[string]bool{}
	for _, m := range all {
		if seen[m.MsgId] {
			t.Errorf("MsgId %s stored twice", m.MsgId)
		}
		seen[m.MsgId] = true
	}
}

func BenchmarkAddMessages(b *testing.B) {
	db := open(b)
	const batchSize = 500
	batch := make([]wire.Message, batchSize)
	payload := []byte(`{"text":"a message of a typical length, about one line of chat text here"}`)
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		for j := range batch {
			batch[j] = msg("g:bench", int64(i*batchSize+j+1))
			batch[j].Payload = payload
		}
		if _, err := db.AddMessages(b.Context(), batch, localdb.ViaSync); err != nil {
			b.Fatalf("AddMessages: %v", err)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkAddOneMessage is the commit a direct message waits for before
// its answer, when messages come one at a time.
func BenchmarkAddOneMessage(b *testing.B) {
	db := open(b)
	for b.Loop() {
		if _, err := db.AddMessages(b.Context(), []wire.Message{msg(feedsAB, 0)}, localdb.ViaP2P); err != nil {
			b.Fatalf("AddMessages: %v", err)
		}
	}
}

// EnqueueAll commits a burst at once: the messages queued in order, the
// commands among them tracked, received commands marked; and nothing of
// it when any part fails.
func TestEnqueueAll(t *testing.T) {
	ctx := t.Context()
	db := open(t)
	if _, err := seen(ctx, db, "cmd1", "bob"); err != nil {
		t.Fatal(err)
	}
	m1, m2 := msg(feedsAB, 0), msg(feedsAB, 0)
	out := localdb.Outgoing{
		Messages: []wire.Message{m1, m2},
		Commands: []localdb.Command{{MsgId: m2.MsgId, Thing: "bob", Expires: 1}},
		Marks: []localdb.CommandMark{{MsgId: "cmd1", From: "bob", State: localdb.CommandAnswered, Outcome: "done"},
			{MsgId: "never-seen", From: "bob", State: localdb.CommandAnswered}},
	}
	if err := db.EnqueueAll(ctx, out); err != nil {
		t.Fatalf("EnqueueAll: %v", err)
	}
	got, err := db.Outbox(ctx)
	if err != nil || !slices.Equal(msgIDs(got), []string{m1.MsgId, m2.MsgId}) {
		t.Errorf("Outbox = %v, %v; want [%s %s]", msgIDs(got), err, m1.MsgId, m2.MsgId)
	}
	if c, err := db.Command(ctx, m2.MsgId); err != nil || c.State != localdb.CommandPending {
		t.Errorf("Command(%s) = %+v, %v; want it pending", m2.MsgId, c, err)
	}
	if c, err := db.ThingCommand(ctx, "cmd1", "bob"); err != nil || c.State != localdb.CommandAnswered || c.Outcome != "done" {
		t.Errorf("ThingCommand(cmd1) = %+v, %v; want answered, done", c, err)
	}

	m3 := msg(feedsAB, 0)
	bad := localdb.Outgoing{Messages: []wire.Message{m3},
		Marks: []localdb.CommandMark{{MsgId: "cmd1", From: "bob", State: "bogus"}}}
	if err := db.EnqueueAll(ctx, bad); err == nil {
		t.Errorf("EnqueueAll with a bad mark = nil error, want one")
	}
	if got, _ := db.Outbox(ctx); len(got) != 2 {
		t.Errorf("Outbox after a failed EnqueueAll = %v, want the 2 from before", msgIDs(got))
	}
}
