package localdb_test

import (
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/sqlitedb"
	"github.com/mqtter/mqtter/wire"
)

// bobsCopy is bob's message under alice's MsgId.
func bobsCopy(m wire.Message) wire.Message {
	b := m
	b.From, b.Device, b.Payload = "bob", "d2", []byte(`{"text":"bob's, same MsgId"}`)
	return b
}

// A MsgId is unique per sender: alice's and bob's messages with the same
// MsgId are two messages, the same (From, MsgId) twice is one.
func TestMsgIdUniquePerSender(t *testing.T) {
	db := open(t)
	a := msg(feedsAB, 0)
	b := bobsCopy(a)
	if got := add(t, db, localdb.ViaP2P, a, b, a); got[0] != true || got[1] != true || got[2] != false {
		t.Errorf("AddMessages(alice's, bob's, alice's again) added %v, want [true true false]", got)
	}
	if got := add(t, db, localdb.ViaSync, b); got[0] {
		t.Errorf("bob's message again was added")
	}
	h := history(t, db, feedsAB, 0)
	if len(h) != 2 || h[0].From != "alice" || h[1].From != "bob" {
		t.Fatalf("history = %+v, want alice's and bob's message", h)
	}
}

// A SeqId lands only on the message the server sequenced: bob's, not
// alice's with the same MsgId, and not a message of another content under
// the same (From, MsgId).
func TestSeqIdWriteBackTouchesOnlyThatMessage(t *testing.T) {
	db := open(t)
	a := msg(feedsAB, 0)
	b := bobsCopy(a)
	add(t, db, localdb.ViaP2P, a, b)
	if err := db.SetSeqs(t.Context(), map[localdb.MsgKey]int64{localdb.KeyOf(&b): 7}); err != nil {
		t.Fatal(err)
	}
	seqOf := func(from string) int64 {
		for _, s := range history(t, db, feedsAB, 0) {
			if s.From == from {
				return s.SeqId
			}
		}
		t.Fatalf("no message from %s", from)
		return 0
	}
	if seqOf("bob") != 7 || seqOf("alice") != 0 {
		t.Errorf("after SetSeqs(bob's) SeqIds are alice %d, bob %d; want 0 and 7", seqOf("alice"), seqOf("bob"))
	}

	// A pull brings "alice's" MsgId with a SeqId but other content: the
	// server holds another message, whose SeqId is not this one's.
	other := a
	other.SeqId, other.Payload = 8, []byte(`{"text":"not what alice's device holds"}`)
	add(t, db, localdb.ViaSync, other)
	if seqOf("alice") != 0 {
		t.Errorf("a SeqId of another message under alice's (From, MsgId) was recorded: %d", seqOf("alice"))
	}
	same := a
	same.SeqId = 9
	add(t, db, localdb.ViaSync, same)
	if seqOf("alice") != 9 {
		t.Errorf("alice's own message, pulled, SeqId = %d, want 9", seqOf("alice"))
	}
}

// A conflicted message stays stored but leaves the outbox, Unsequenced and
// the pending count, and is listed; bob's message with the same MsgId is
// untouched.
func TestMarkConflict(t *testing.T) {
	db := open(t)
	a := msg(feedsAB, 0)
	if err := db.Enqueue(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	b := bobsCopy(a)
	add(t, db, localdb.ViaP2P, b)
	if ob, err := db.Outbox(t.Context()); err != nil || len(ob) != 1 || ob[0].From != "alice" {
		t.Fatalf("Outbox = %+v, %v; want alice's message only", ob, err)
	}
	for i, want := range []bool{true, false} {
		fresh, err := db.MarkConflict(t.Context(), a, "conflict: MsgId already used by another message")
		if err != nil || fresh != want {
			t.Fatalf("MarkConflict #%d = %v, %v; want %v", i+1, fresh, err, want)
		}
	}
	if ob, err := db.Outbox(t.Context()); err != nil || len(ob) != 0 {
		t.Errorf("Outbox after the conflict = %+v, %v; want empty", ob, err)
	}
	unseq, err := db.Unsequenced(t.Context(), 0)
	if err != nil || len(unseq) != 1 || unseq[0].From != "bob" {
		t.Errorf("Unsequenced = %+v, %v; want bob's message only", unseq, err)
	}
	if outbox, pending, err := db.Pending(t.Context()); err != nil || outbox != 0 || pending != 1 {
		t.Errorf("Pending = %d, %d, %v; want 0, 1", outbox, pending, err)
	}
	c, err := db.ConflictedMessages(t.Context(), 10)
	if err != nil || len(c) != 1 || c[0].From != "alice" || c[0].MsgId != a.MsgId || c[0].Feeds != feedsAB {
		t.Errorf("ConflictedMessages = %+v, %v; want alice's message", c, err)
	}
	if h := history(t, db, feedsAB, 0); len(h) != 2 {
		t.Errorf("history holds %d messages, want both still", len(h))
	}
}

// A database made by the schema before MsgIds were per sender opens, keeps
// its messages and refused list, takes another sender's message under a
// held MsgId, and opens again.
func TestMigrateToMsgIdPerSender(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	schema, err := localdb.Schema()
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
	for _, name := range []string{"0001_init.sql", "0002_coverage.sql"} {
		b, err := fs.ReadFile(schema, name)
		if err != nil {
			t.Fatal(err)
		}
		old[name] = &fstest.MapFile{Data: b}
	}
	w, r, err := sqlitedb.Open(t.Context(), path, sqlitedb.Options{Migrations: old})
	if err != nil {
		t.Fatalf("open with the old schema: %v", err)
	}
	a := msg(feedsAB, 3)
	if _, err := w.Exec(`INSERT INTO messages (msg_id, feeds, seq, msg_type, sender, payload, time_create, device, sig, via)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', 'sync')`, a.MsgId, a.Feeds, a.SeqId, a.MsgType, a.From, []byte(a.Payload), a.TimeCreate, a.Device); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(`INSERT INTO refused (msg_id, feeds, seq, reason, at) VALUES ('r1', ?, 2, 'bad signature', 1)`, feedsAB); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(`INSERT INTO messages (msg_id, feeds, seq, msg_type, sender, payload, time_create, device, sig, via)
		VALUES (?, ?, 0, 'text', 'bob', x'7b7d', 1, 'd2', '', 'p2p')`, a.MsgId, a.Feeds); err == nil {
		t.Fatal("the old schema took a second message under one MsgId; the test's premise is wrong")
	}
	r.Close()
	w.Close()

	for range 2 {
		db, err := localdb.Open(t.Context(), path, testLogger(t))
		if err != nil {
			t.Fatalf("open the old database: %v", err)
		}
		add(t, db, localdb.ViaP2P, bobsCopy(a))
		h, err := db.History(t.Context(), feedsAB, 0)
		if err != nil || len(h) != 2 || h[0].MsgId != a.MsgId || h[0].SeqId != 3 || h[1].From != "bob" {
			t.Errorf("history after the migration = %+v, %v; want the old message and bob's", h, err)
		}
		if c, err := db.Coverage(t.Context(), feedsAB); err != nil || c.Refused != 1 {
			t.Errorf("coverage = %+v, %v; want the one refused message kept", c, err)
		}
		if rs, err := db.RefusedMessages(t.Context(), 10); err != nil || len(rs) != 1 || rs[0].MsgId != "r1" {
			t.Errorf("refused = %+v, %v; want r1", rs, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
