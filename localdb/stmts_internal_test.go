package localdb

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// Write transactions reuse their statements once prepared, and writers
// that overlap (the one connection held by one while another's first use
// of a statement waits to be prepared) neither deadlock nor fail, nor do
// readers meanwhile, whose statements are prepared once too; a closed DB
// prepares nothing more.
func TestStatementsPreparedOnceAndShared(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "node.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	dm := wire.DM("alice", "lamp")
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 50 {
				m := wire.Message{MsgId: fmt.Sprintf("w%d-%d", w, i), Feeds: dm, MsgType: wire.MsgTypeText, From: "alice", Payload: []byte(`{}`), TimeCreate: 1}
				out := Outgoing{Messages: []wire.Message{m}, Seen: []SeenCommand{{MsgId: m.MsgId, From: "bob", Payload: []byte(`{}`)}}, StateRev: int64(i + 1)}
				if err := db.EnqueueAll(ctx, out); err != nil {
					t.Error(err)
					return
				}
				if _, err := db.RecordFeedback(ctx, []ThingFeedback{{Update: &CommandFeedback{MsgId: m.MsgId, Thing: "lamp", CommandUpdate: CommandUpdate{State: "accepted"}}}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 2 { // readers meanwhile, through the read pool's statements
		wg.Go(func() {
			for i := range 100 {
				if _, err := db.CommandKnown(ctx, fmt.Sprintf("w0-%d", i%50), "bob"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("writers stuck: a statement's prepare and a transaction wait for each other")
	}
	db.stmts.mu.Lock()
	n, want := len(db.stmts.stmts), len(db.stmts.want)
	db.stmts.mu.Unlock()
	if n < 5 || want != 0 {
		t.Errorf("%d statements prepared, %d waiting; want the writers' several, none waiting", n, want)
	}
	if known, err := db.CommandKnown(ctx, "w5-49", "bob"); !known || err != nil {
		t.Errorf("CommandKnown = %v, %v after the writers", known, err)
	}
	db.readStmts.mu.Lock()
	n = len(db.readStmts.stmts)
	db.readStmts.mu.Unlock()
	if n != 1 {
		t.Errorf("%d read statements prepared, want CommandKnown's one", n)
	}
	db.Close()
	if st := db.stmts.get("SELECT 1"); st != nil || len(db.stmts.want) != 0 {
		t.Error("a closed DB's cache hands out or notes statements")
	}
	if st := db.readStmts.prepareNow(ctx, "SELECT 1"); st != nil {
		t.Error("a closed DB's read cache prepares statements")
	}
}
