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

// BenchmarkCommandRoundTrip is the person's side of one direct command
// once a thing has a full record of closed commands: the command recorded
// with its enqueue, then its ack, state and result ingested in one batch.
func BenchmarkCommandRoundTrip(b *testing.B) {
	db := openAt(b, filepath.Join(b.TempDir(), "node.db"))
	ctx := b.Context()
	dm := wire.DM("alice", "lamp")
	n := 0
	one := func() {
		n++
		id := fmt.Sprintf("c%08d", n)
		cmd := wire.Message{MsgId: id, Feeds: dm, MsgType: wire.MsgTypeCommand, From: "alice", Payload: []byte(`{"action":"toggle"}`), TimeCreate: int64(n)}
		row := localdb.Command{MsgId: id, Thing: "lamp", Action: "toggle", Expires: time.Now().Add(time.Minute).UnixMilli(), Created: int64(n)}
		if err := db.EnqueueAll(ctx, localdb.Outgoing{Messages: []wire.Message{cmd}, Commands: []localdb.Command{row}}); err != nil {
			b.Fatal(err)
		}
		msgs := make([]wire.Message, 3)
		for i := range msgs {
			msgs[i] = wire.Message{MsgId: fmt.Sprintf("f%08d-%d", n, i), Feeds: dm, MsgType: wire.MsgTypeFeedback, From: "lamp", Payload: []byte(`{}`), TimeCreate: int64(n)}
		}
		upd := func(state string, result bool) *localdb.ThingFeedback {
			return &localdb.ThingFeedback{Update: &localdb.CommandFeedback{MsgId: id, Thing: "lamp",
				CommandUpdate: localdb.CommandUpdate{State: state, Result: result, Final: result}}}
		}
		state := &localdb.ThingFeedback{State: &localdb.StateReport{Thing: "lamp", Props: map[string]json.RawMessage{"on": json.RawMessage(`true`)}, Rev: int64(n), At: int64(n)}}
		if _, _, err := db.Ingest(ctx, msgs, localdb.ViaP2P, []*localdb.ThingFeedback{upd("accepted", false), state, upd("done", true)}); err != nil {
			b.Fatal(err)
		}
	}
	for range localdb.MaxCommandsPerThing + 10 {
		one()
	}
	b.ResetTimer()
	for b.Loop() {
		one()
	}
}

// BenchmarkIngestThingReport is a thing's node taking an associated
// thing's state and event and a rule's command, one burst, once it holds
// a full record of the other's events.
func BenchmarkIngestThingReport(b *testing.B) {
	db := openAt(b, filepath.Join(b.TempDir(), "node.db"))
	ctx := b.Context()
	dm := wire.DM("door", "lamp")
	n := 0
	one := func() {
		n++
		msgs := make([]wire.Message, 3)
		for i := range msgs {
			msgs[i] = wire.Message{MsgId: fmt.Sprintf("m%08d-%d", n, i), Feeds: dm, MsgType: wire.MsgTypeFeedback, From: "door", Payload: []byte(`{}`), TimeCreate: int64(n)}
		}
		msgs[2].MsgType = wire.MsgTypeCommand
		state := &localdb.ThingFeedback{State: &localdb.StateReport{Thing: "door", Props: map[string]json.RawMessage{"open": json.RawMessage(`true`)}, Rev: int64(n), At: int64(n)}}
		event := &localdb.ThingFeedback{Event: &localdb.ThingEvent{MsgId: msgs[1].MsgId, Thing: "door", Event: "opened", At: int64(n)}}
		if _, _, err := db.Ingest(ctx, msgs, localdb.ViaP2P, []*localdb.ThingFeedback{state, event, nil}); err != nil {
			b.Fatal(err)
		}
	}
	for range 2 * localdb.MaxEventsPerThing {
		one()
	}
	b.ResetTimer()
	for b.Loop() {
		one()
	}
}
