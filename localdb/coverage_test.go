package localdb_test

import (
	"testing"

	"github.com/mqtter/mqtter/localdb"
)

func TestCoverageAdvanceAndRefused(t *testing.T) {
	db := open(t)
	ctx := t.Context()
	if c, err := db.Coverage(ctx, feedsAB); err != nil || c != (localdb.Coverage{}) || !c.Complete() {
		t.Fatalf("Coverage(unknown) = %+v, %v, want zero and complete", c, err)
	}
	// Pushes bring 1, 2 and 4 of 5: the cursor stops at the gap.
	add(t, db, localdb.ViaServer, msg(feedsAB, 1), msg(feedsAB, 2), msg(feedsAB, 4))
	if cur, err := db.Advance(ctx, feedsAB, 5); err != nil || cur != 2 {
		t.Fatalf("Advance = %d, %v, want 2", cur, err)
	}
	c, _ := db.Coverage(ctx, feedsAB)
	if c.HeldThrough != 2 || c.LastSeq != 5 || c.Complete() {
		t.Errorf("Coverage with a gap = %+v (complete %v), want held 2 of 5, incomplete", c, c.Complete())
	}
	// An unsequenced message does not count; 3 and 5 close the gap.
	add(t, db, localdb.ViaP2P, msg(feedsAB, 0))
	add(t, db, localdb.ViaSync, msg(feedsAB, 3), msg(feedsAB, 5))
	if cur, err := db.Advance(ctx, feedsAB, 3); err != nil || cur != 5 {
		t.Fatalf("Advance after the gap closed = %d, %v, want 5", cur, err)
	}
	if c, _ = db.Coverage(ctx, feedsAB); c.HeldThrough != 5 || c.LastSeq != 5 || !c.Complete() {
		t.Errorf("Coverage = %+v, want 5 of 5, complete (a lower last seq never moves it back)", c)
	}
	if err := db.NoteLastSeq(ctx, feedsAB, 7); err != nil {
		t.Fatal(err)
	}
	if c, _ = db.Coverage(ctx, feedsAB); c.LastSeq != 7 || c.Complete() {
		t.Errorf("Coverage after NoteLastSeq(7) = %+v, want incomplete", c)
	}
	bad := msg(feedsAB, 6)
	if err := db.AddRefused(ctx, bad, "bad signature"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddRefused(ctx, bad, "bad signature again"); err != nil {
		t.Errorf("AddRefused twice = %v, want nil", err)
	}
	if err := db.SetCursor(ctx, feedsAB, 7); err != nil {
		t.Fatal(err)
	}
	if c, _ = db.Coverage(ctx, feedsAB); c.HeldThrough != 7 || c.Refused != 1 || c.Complete() {
		t.Errorf("Coverage with a refused message = %+v, want refused 1 and incomplete", c)
	}
	r, err := db.RefusedMessages(ctx, 10)
	if err != nil || len(r) != 1 || r[0].MsgId != bad.MsgId || r[0].Reason != "bad signature again" || r[0].SeqId != 6 {
		t.Errorf("RefusedMessages = %+v, %v, want the one message with its latest reason", r, err)
	}
}
