package localdb_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/wire"
)

// One batch of feedback, recorded in one transaction, ends as the same
// steps one by one would: the stub its ack makes is filled in by the
// command, acks and results move the command forward only, each change
// is told with the command as it stood then, a state report's rev and a
// chain's links are kept, and a step that fails leaves the others.
func TestRecordFeedback(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "node.db"))
	ctx := t.Context()
	expires := time.Now().Add(time.Minute).UnixMilli()
	upd := func(state string, result bool) localdb.ThingFeedback {
		return localdb.ThingFeedback{Update: &localdb.CommandFeedback{MsgId: "c1", Thing: "lamp",
			CommandUpdate: localdb.CommandUpdate{State: state, Result: result, Final: result}}}
	}
	state := func(rev int64, on string) *localdb.StateReport {
		return &localdb.StateReport{Thing: "lamp", Props: map[string]json.RawMessage{"on": json.RawMessage(on)}, Rev: rev, At: 1}
	}
	link := &localdb.ChainFeedback{Origin: "c1", ChainLink: localdb.ChainLink{MsgId: "f9", Thing: "door", Kind: "event", At: 5}}
	steps := []localdb.ThingFeedback{
		upd("queued", false), // before the command: a stub
		{Record: &localdb.Command{MsgId: "c1", Thing: "lamp", Action: "toggle", Expires: expires}},
		upd("accepted", false),
		{State: state(2, "true"), Link: link},
		{State: state(1, "false")}, // an older rev: no change
		upd("done", true),
		upd("queued", false), // late: no change
		{},                   // fails, alone
		{Event: &localdb.ThingEvent{MsgId: "e1", Thing: "lamp", Event: "overheat", At: 3}},
	}
	outs, err := db.RecordFeedback(ctx, steps)
	if err != nil {
		t.Fatal(err)
	}
	wantState := []string{"queued", "queued", "accepted", "accepted", "", "done", "", "", ""}
	for i, o := range outs {
		got := ""
		if o.Command != nil {
			got = o.Command.State
		}
		if got != wantState[i] {
			t.Errorf("step %d: command state %q, want %q", i, got, wantState[i])
		}
		if (o.Err != nil) != (i == 7) {
			t.Errorf("step %d: err %v", i, o.Err)
		}
	}
	if len(outs[3].Props) != 1 || len(outs[4].Props) != 0 || !outs[8].Kept {
		t.Errorf("props changed %v then %v, event kept %v; want [on], [], true", outs[3].Props, outs[4].Props, outs[8].Kept)
	}
	c, err := db.Command(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.State != "done" || c.FinalBy != localdb.FinalThing || c.Action != "toggle" || len(c.Chain) != 1 {
		t.Errorf("Command = %+v, want it done by the thing, with its action and one link", c)
	}
	props, err := db.ThingProps(ctx, "lamp")
	if err != nil || len(props) != 1 || props[0].Rev != 2 || string(props[0].Value) != "true" {
		t.Errorf("ThingProps = %+v, %v; want on=true at rev 2", props, err)
	}
	evs, err := db.ThingEvents(ctx, "lamp", 0)
	if err != nil || len(evs) != 1 {
		t.Errorf("ThingEvents = %+v, %v; want the one event", evs, err)
	}
}

// The person's side of one direct command's burst (ack, state, result),
// recorded one operation at a time with the command read back after each
// change, as before RecordFeedback, and in one transaction.
func BenchmarkFeedbackBurst(b *testing.B) {
	expires := time.Now().Add(time.Hour).UnixMilli()
	props := map[string]json.RawMessage{"on": json.RawMessage(`true`)}
	ack := localdb.CommandUpdate{State: "accepted"}
	done := localdb.CommandUpdate{State: "done", Result: true, Final: true}
	setup := func(b *testing.B) (*localdb.DB, func(int) string) {
		db := open(b)
		id := func(i int) string { return fmt.Sprint("c", i) }
		return db, id
	}
	b.Run("one-by-one", func(b *testing.B) {
		db, id := setup(b)
		ctx := b.Context()
		for i := range b.N {
			if _, err := db.RecordCommand(ctx, localdb.Command{MsgId: id(i), Thing: "lamp", Expires: expires}); err != nil {
				b.Fatal(err)
			}
			if _, _, err := db.UpdateCommand(ctx, id(i), "lamp", ack); err != nil {
				b.Fatal(err)
			}
			if _, err := db.SetThingProps(ctx, "lamp", props, int64(i), int64(i), id(i)); err != nil {
				b.Fatal(err)
			}
			if _, _, err := db.UpdateCommand(ctx, id(i), "lamp", done); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-transaction", func(b *testing.B) {
		db, id := setup(b)
		ctx := b.Context()
		for i := range b.N {
			if _, err := db.RecordCommand(ctx, localdb.Command{MsgId: id(i), Thing: "lamp", Expires: expires}); err != nil {
				b.Fatal(err)
			}
			_, err := db.RecordFeedback(ctx, []localdb.ThingFeedback{
				{Update: &localdb.CommandFeedback{MsgId: id(i), Thing: "lamp", CommandUpdate: ack}},
				{State: &localdb.StateReport{Thing: "lamp", Props: props, Rev: int64(i), At: int64(i), Cause: id(i)}},
				{Update: &localdb.CommandFeedback{MsgId: id(i), Thing: "lamp", CommandUpdate: done}},
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Ingest stores a batch and records the feedback of the messages new to
// it in the same commit: a message seen before records nothing again, a
// step that fails leaves its message stored, and steps must match msgs.
func TestIngestRecordsFeedbackOfNewMessages(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "node.db"))
	ctx := t.Context()
	expires := time.Now().Add(time.Minute).UnixMilli()
	if _, err := db.RecordFeedback(ctx, []localdb.ThingFeedback{{Record: &localdb.Command{MsgId: "c1", Thing: "lamp", Action: "toggle", Expires: expires}}}); err != nil {
		t.Fatal(err)
	}
	msg := func(id string) wire.Message {
		return wire.Message{MsgId: id, Feeds: "dm:alice:lamp", MsgType: wire.MsgTypeFeedback, From: "lamp", Payload: []byte(`{}`), TimeCreate: 1}
	}
	upd := func(state string, result bool) *localdb.ThingFeedback {
		return &localdb.ThingFeedback{Update: &localdb.CommandFeedback{MsgId: "c1", Thing: "lamp",
			CommandUpdate: localdb.CommandUpdate{State: state, Result: result, Final: result}}}
	}
	msgs := []wire.Message{msg("f1"), msg("f2"), msg("f3"), msg("f4")}
	steps := []*localdb.ThingFeedback{upd("accepted", false), nil, {}, upd("done", true)}
	added, outs, err := db.Ingest(ctx, msgs, localdb.ViaP2P, steps)
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if !added[i] {
			t.Errorf("message %d not added", i)
		}
	}
	if outs[0].Command == nil || outs[0].Command.State != "accepted" || outs[3].Command == nil || outs[3].Command.State != "done" {
		t.Errorf("outcomes %+v, want the command accepted then done", outs)
	}
	if outs[2].Err == nil || outs[1].Err != nil {
		t.Errorf("outcome errors %v, %v; want only the empty step's", outs[1].Err, outs[2].Err)
	}
	// The same batch again (another path): nothing new, nothing recorded.
	added, outs, err = db.Ingest(ctx, msgs, localdb.ViaServer, []*localdb.ThingFeedback{upd("queued", false), nil, nil, upd("failed", true)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if added[i] || outs[i].Command != nil {
			t.Errorf("again: message %d added %v, outcome %+v", i, added[i], outs[i])
		}
	}
	if c, err := db.Command(ctx, "c1"); err != nil || c.State != "done" {
		t.Errorf("Command = %+v, %v, want done", c, err)
	}
	if _, _, err := db.Ingest(ctx, msgs, localdb.ViaP2P, steps[:1]); err == nil {
		t.Error("Ingest took fewer steps than messages")
	}
}
