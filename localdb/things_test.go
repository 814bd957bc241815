package localdb_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/wire"
)

// A command is new only the first time it is seen (per sender), its state
// survives a reopen, and the open ones are what a restart takes up.
func TestThingCommandsRunAtMostOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	db := openAt(t, path)
	ctx := t.Context()
	for i, tc := range []struct {
		id, from string
		want     bool
	}{
		{"c1", "alice", true}, {"c1", "alice", false}, {"c1", "bob", true}, {"c2", "alice", true},
	} {
		got, err := seen(ctx, db, tc.id, tc.from)
		if err != nil || got != tc.want {
			t.Errorf("%d: seen(%s, %s) = %v, %v, want %v", i, tc.id, tc.from, got, err, tc.want)
		}
	}
	if err := db.SetCommandState(ctx, "c1", "alice", localdb.CommandRunning, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.SetCommandState(ctx, "c1", "bob", localdb.CommandAnswered, "done"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetCommandState(ctx, "nope", "alice", localdb.CommandAnswered, "done"); !errors.Is(err, localdb.ErrNotFound) {
		t.Errorf("SetCommandState(unknown) = %v, want ErrNotFound", err)
	}
	if err := db.SetCommandState(ctx, "c2", "alice", "exploded", ""); err == nil {
		t.Error("SetCommandState took an unknown state")
	}
	rev1, err := nextStateRev(ctx, db, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := nextStateRev(ctx, db, 100); err != nil || rev != 100 {
		t.Errorf("nextStateRev(100) = %d, %v, want 100", rev, err)
	}
	db.Close()

	db = openAt(t, path)
	defer db.Close()
	open, err := db.OpenCommands(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 || open[0].MsgId != "c1" || open[0].State != localdb.CommandRunning || open[1].MsgId != "c2" || open[1].State != localdb.CommandReceived {
		t.Errorf("OpenCommands after a reopen = %+v, want c1 running and c2 received", open)
	}
	if isNew, err := seen(ctx, db, "c1", "alice"); isNew || err != nil {
		t.Errorf("seen after a reopen = %v, %v, want false", isNew, err)
	}
	if rev, err := nextStateRev(ctx, db, 0); err != nil || rev != 101 || rev1 != 1 {
		t.Errorf("revisions %d then %d after a reopen, want 1 and 101", rev1, rev)
	}
	if c, err := db.ThingCommand(ctx, "c1", "bob"); err != nil || c.Outcome != "done" {
		t.Errorf("ThingCommand = %+v, %v, want answered done", c, err)
	}
}

// The commands stored and never recorded are found (directly or from the
// server, to others, in the window); recording one takes it off.
func TestUnrecordedCommands(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "node.db"))
	defer db.Close()
	ctx := t.Context()
	now := time.Now().UnixMilli()
	command := func(from string, made int64) wire.Message {
		m := msg("dm:alice:lamp", 0)
		m.MsgType, m.From, m.TimeCreate = wire.MsgTypeCommand, from, made
		return m
	}
	direct, pushed, old, own, synced := command("alice", now), command("alice", now), command("alice", now-10_000), command("lamp", now), command("alice", now)
	text := msg("dm:alice:lamp", 0)
	add(t, db, localdb.ViaP2P, direct, old, text)
	add(t, db, localdb.ViaServer, pushed)
	add(t, db, localdb.ViaLocal, own)
	add(t, db, localdb.ViaSync, synced)
	got, err := db.UnrecordedCommands(ctx, "lamp", now-5_000)
	if err != nil {
		t.Fatal(err)
	}
	if ids := msgIDs(got); len(ids) != 2 || ids[0] != direct.MsgId || ids[1] != pushed.MsgId {
		t.Errorf("UnrecordedCommands = %v, want %s and %s", ids, direct.MsgId, pushed.MsgId)
	}
	if _, err := seen(ctx, db, direct.MsgId, "alice"); err != nil {
		t.Fatal(err)
	}
	got, _ = db.UnrecordedCommands(ctx, "lamp", now-5_000)
	if ids := msgIDs(got); len(ids) != 1 || ids[0] != pushed.MsgId {
		t.Errorf("UnrecordedCommands after one was recorded = %v, want %s", ids, pushed.MsgId)
	}
}

// A thing's node records a new command with its ack: Outgoing.Seen makes
// it known (CommandKnown) in the same commit
// as the mark that it runs, and Outgoing.StateRev keeps the revision
// counter with the state that carries it, never lowering it.
func TestOutgoingRecordsSeenCommandsAndStateRev(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	db := openAt(t, path)
	ctx := t.Context()
	if known, err := db.CommandKnown(ctx, "c1", "alice"); known || err != nil {
		t.Fatalf("CommandKnown before = %v, %v", known, err)
	}
	ack := wire.Message{MsgId: "a1", Feeds: "dm:alice:lamp", MsgType: wire.MsgTypeFeedback, From: "lamp", Payload: []byte(`{}`), TimeCreate: 1}
	err := db.EnqueueAll(ctx, localdb.Outgoing{
		Messages: []wire.Message{ack},
		Seen:     []localdb.SeenCommand{{MsgId: "c1", From: "alice", Payload: []byte(`{"action":"toggle"}`)}},
		Marks:    []localdb.CommandMark{{MsgId: "c1", From: "alice", State: localdb.CommandRunning}},
		StateRev: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.EnqueueAll(ctx, localdb.Outgoing{StateRev: 3}); err != nil { // lower: kept 7
		t.Fatal(err)
	}
	db.Close()
	db = openAt(t, path)
	defer db.Close()
	if known, err := db.CommandKnown(ctx, "c1", "alice"); !known || err != nil {
		t.Errorf("CommandKnown after = %v, %v, want true", known, err)
	}
	if known, _ := db.CommandKnown(ctx, "c1", "bob"); known {
		t.Error("CommandKnown: another sender's c1 is known")
	}
	if isNew, err := seen(ctx, db, "c1", "alice"); isNew || err != nil {
		t.Errorf("seen after Seen = %v, %v, want false", isNew, err)
	}
	if c, err := db.ThingCommand(ctx, "c1", "alice"); err != nil || c.State != localdb.CommandRunning {
		t.Errorf("ThingCommand = %+v, %v, want running (the mark after the record)", c, err)
	}
	if rev, err := db.LastStateRev(ctx); rev != 7 || err != nil {
		t.Errorf("LastStateRev = %d, %v, want 7", rev, err)
	}
	if rev, err := nextStateRev(ctx, db, 0); rev != 8 || err != nil {
		t.Errorf("nextStateRev = %d, %v, want 8", rev, err)
	}
}

// seen is how a thing's node takes a command: new unless CommandKnown,
// and then recorded (Outgoing.Seen).
func seen(ctx context.Context, db *localdb.DB, id, from string) (bool, error) {
	known, err := db.CommandKnown(ctx, id, from)
	if err != nil || known {
		return false, err
	}
	return true, db.EnqueueAll(ctx, localdb.Outgoing{Seen: []localdb.SeenCommand{{MsgId: id, From: from, Payload: []byte(`{}`)}}})
}

// nextStateRev is how a thing's node gives out a state revision: above
// the last (LastStateRev), at least atLeast, kept (Outgoing.StateRev).
func nextStateRev(ctx context.Context, db *localdb.DB, atLeast int64) (int64, error) {
	last, err := db.LastStateRev(ctx)
	if err != nil {
		return 0, err
	}
	rev := max(last+1, atLeast)
	return rev, db.EnqueueAll(ctx, localdb.Outgoing{StateRev: rev})
}
