package localdb_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
)

// A command moves pending → queued → accepted → done and no further: a
// late ack, a second result or a local timeout never move it back, and
// feedback from another thing is ignored.
func TestCommandStates(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "node.db"))
	ctx := t.Context()
	expires := time.Now().Add(time.Minute).UnixMilli()
	c, err := db.RecordCommand(ctx, localdb.Command{MsgId: "c1", Thing: "lamp", Action: "toggle",
		Input: json.RawMessage(`{"on":true}`), Expires: expires, Trace: json.RawMessage(`{"origin":"alice"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if c.State != localdb.CommandPending || c.Final() || string(c.Input) != `{"on":true}` {
		t.Fatalf("RecordCommand = %+v, want it pending with its input", c)
	}
	steps := []struct {
		thing string
		u     localdb.CommandUpdate
		want  string
		moved bool
	}{
		{"lamp", localdb.CommandUpdate{State: "queued"}, "queued", true},
		{"kettle", localdb.CommandUpdate{State: "done", Result: true, Final: true}, "queued", false},
		{"lamp", localdb.CommandUpdate{State: "accepted"}, "accepted", true},
		{"lamp", localdb.CommandUpdate{State: "queued"}, "accepted", false},
		{"lamp", localdb.CommandUpdate{State: "done", Output: json.RawMessage(`1`), Result: true, Final: true}, "done", true},
		{"lamp", localdb.CommandUpdate{State: "accepted"}, "done", false},
		{"lamp", localdb.CommandUpdate{State: "failed", Error: "x", Result: true, Final: true}, "done", false},
	}
	for i, s := range steps {
		_, moved, err := db.UpdateCommand(ctx, "c1", s.thing, s.u)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.Command(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != s.want || moved != s.moved {
			t.Errorf("step %d (%s %s): state %s moved %v, want %s %v", i, s.thing, s.u.State, got.State, moved, s.want, s.moved)
		}
	}
	if got, _ := db.Command(ctx, "c1"); string(got.Output) != "1" || got.FinalBy != localdb.FinalThing {
		t.Errorf("after done: %+v, want output 1, final by the thing", got)
	}
	if out, err := db.TimeoutCommands(ctx, time.Now().Add(time.Hour), 5*time.Second, "late"); err != nil || len(out) != 0 {
		t.Errorf("TimeoutCommands after done = %v, %v; want none", out, err)
	}
}

// An open command times out after its expiry plus the grace; a result
// that comes later still replaces the local timeout, an ack does not.
func TestCommandTimeout(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "node.db"))
	ctx := t.Context()
	now := time.Now()
	db.RecordCommand(ctx, localdb.Command{MsgId: "c1", Thing: "lamp", Action: "a", Expires: now.UnixMilli()})
	db.RecordCommand(ctx, localdb.Command{MsgId: "c2", Thing: "lamp", Action: "a", Expires: now.Add(time.Hour).UnixMilli()})
	if next, ok, err := db.NextExpiry(ctx); err != nil || !ok || next != now.UnixMilli() {
		t.Errorf("NextExpiry = %d %v %v, want %d", next, ok, err, now.UnixMilli())
	}
	if out, _ := db.TimeoutCommands(ctx, now.Add(time.Second), 5*time.Second, "no result"); len(out) != 0 {
		t.Errorf("timed out %v within the grace", out)
	}
	out, err := db.TimeoutCommands(ctx, now.Add(6*time.Second), 5*time.Second, "no result")
	if err != nil || len(out) != 1 || out[0].MsgId != "c1" || out[0].State != "timeout" || out[0].FinalBy != localdb.FinalLocal {
		t.Fatalf("TimeoutCommands = %+v, %v; want c1 timed out locally", out, err)
	}
	if _, moved, _ := db.UpdateCommand(ctx, "c1", "lamp", localdb.CommandUpdate{State: "accepted"}); moved {
		t.Error("an ack moved a timed-out command")
	}
	c, moved, err := db.UpdateCommand(ctx, "c1", "lamp", localdb.CommandUpdate{State: "done", Result: true, Final: true})
	if err != nil || !moved || c.State != "done" || c.FinalBy != localdb.FinalThing {
		t.Errorf("a late result: %+v moved %v %v, want done by the thing", c, moved, err)
	}
}

// Feedback that comes before its command makes a stub the command fills
// in, keeping the state; a chain link is kept only for a command of ours,
// and at most MaxChain per command.
func TestCommandStubAndChain(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "node.db"))
	ctx := t.Context()
	if _, moved, err := db.UpdateCommand(ctx, "c1", "lamp", localdb.CommandUpdate{State: "accepted"}); err != nil || !moved {
		t.Fatalf("ack before the command: moved %v, %v", moved, err)
	}
	if ok, _ := db.AddChainLink(ctx, "c1", localdb.ChainLink{MsgId: "f0", Thing: "fan", Kind: "result"}); ok {
		t.Error("a chain link was kept for a stub")
	}
	c, err := db.RecordCommand(ctx, localdb.Command{MsgId: "c1", Thing: "lamp", Action: "toggle", Expires: 99})
	if err != nil || c.State != "accepted" || c.Action != "toggle" || c.Expires != 99 {
		t.Fatalf("RecordCommand after its ack = %+v, %v; want accepted, filled in", c, err)
	}
	if ok, _ := db.AddChainLink(ctx, "nope", localdb.ChainLink{MsgId: "f0", Thing: "fan", Kind: "result"}); ok {
		t.Error("a chain link was kept for an unknown command")
	}
	for i := range localdb.MaxChain + 3 {
		db.AddChainLink(ctx, "c1", localdb.ChainLink{MsgId: fmt.Sprintf("f%02d", i), Thing: "fan", Kind: "event",
			Event: "spun", Body: json.RawMessage(`{"rpm":1}`), Hops: 1, At: int64(i)})
	}
	c, _ = db.Command(ctx, "c1")
	if len(c.Chain) != localdb.MaxChain || c.Chain[0].MsgId != "f00" || string(c.Chain[0].Body) != `{"rpm":1}` {
		t.Errorf("chain = %d links, first %+v; want %d from f00", len(c.Chain), c.Chain[0], localdb.MaxChain)
	}
}

// A property keeps the report with the highest rev; events are bounded.
func TestThingPropsAndEvents(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "node.db"))
	ctx := t.Context()
	set := func(rev int64, props string) []string {
		var p map[string]json.RawMessage
		if err := json.Unmarshal([]byte(props), &p); err != nil {
			t.Fatal(err)
		}
		changed, err := db.SetThingProps(ctx, "lamp", p, rev, rev*10, "local")
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	if got := set(3, `{"on":true,"level":5}`); !slices.Equal(got, []string{"level", "on"}) {
		t.Errorf("rev 3 changed %v", got)
	}
	if got := set(2, `{"on":false}`); len(got) != 0 {
		t.Errorf("rev 2 after rev 3 changed %v, want nothing", got)
	}
	if got := set(4, `{"level":7}`); !slices.Equal(got, []string{"level"}) {
		t.Errorf("rev 4 changed %v", got)
	}
	props, err := db.ThingProps(ctx, "lamp")
	if err != nil || len(props) != 2 || string(props[0].Value) != "7" || props[0].Rev != 4 || string(props[1].Value) != "true" || props[1].Rev != 3 {
		t.Errorf("props = %+v, %v; want level 7 (rev 4), on true (rev 3)", props, err)
	}
	for i := range localdb.MaxEventsPerThing + 5 {
		if err := db.AddThingEvent(ctx, localdb.ThingEvent{MsgId: fmt.Sprint(i), Thing: "lamp", Event: "blink", At: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := db.ThingEvents(ctx, "lamp", 0)
	if err != nil || len(evs) != localdb.MaxEventsPerThing || evs[0].MsgId != fmt.Sprint(localdb.MaxEventsPerThing+4) {
		t.Errorf("events: %d, newest %+v, %v", len(evs), evs[0], err)
	}
	if ok, _ := db.SetDescription(ctx, "lamp", 2, []byte(`{"version":2}`)); !ok {
		t.Error("first description not stored")
	}
	if ok, _ := db.SetDescription(ctx, "lamp", 1, []byte(`{"version":1}`)); ok {
		t.Error("a lower version replaced a higher")
	}
	if d, _, err := db.Description(ctx, "lamp"); err != nil || string(d) != `{"version":2}` {
		t.Errorf("Description = %s, %v", d, err)
	}
}

// A thing keeps its newest MaxCommandsPerThing closed commands; open ones
// stay however many close around them, and another thing's are its own.
func TestCommandsPruned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	db := openAt(t, path)
	ctx := t.Context()
	expires := time.Now().Add(time.Hour).UnixMilli()
	record := func(id, thing string, created int64) {
		t.Helper()
		if _, err := db.RecordCommand(ctx, localdb.Command{MsgId: id, Thing: thing, Expires: expires, Created: created}); err != nil {
			t.Fatal(err)
		}
	}
	record("open", "lamp", 1)
	record("kettle", "kettle", 1)
	if _, _, err := db.UpdateCommand(ctx, "kettle", "kettle", localdb.CommandUpdate{State: "done", Result: true, Final: true}); err != nil {
		t.Fatal(err)
	}
	for i := range localdb.MaxCommandsPerThing + 10 {
		id := fmt.Sprintf("c%04d", i)
		record(id, "lamp", int64(10+i))
		if _, _, err := db.UpdateCommand(ctx, id, "lamp", localdb.CommandUpdate{State: "done", Result: true, Final: true}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.Commands(ctx, "lamp", localdb.MaxCommandsPerThing)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Command(ctx, "open"); err != nil {
		t.Errorf("the open command is gone: %v", err)
	}
	if _, err := db.Command(ctx, "kettle"); err != nil {
		t.Errorf("another thing's closed command is gone: %v", err)
	}
	for _, gone := range []string{"c0000", "c0009"} {
		if _, err := db.Command(ctx, gone); err == nil {
			t.Errorf("Command(%s) still there, want it pruned", gone)
		}
	}
	// Pruned a few dozen at a time: between the bound and some room
	// below it, the newest kept (and the open one, the oldest of all).
	if last := all[len(all)-1]; last.MsgId != "open" {
		t.Errorf("the oldest listed is %s, want the open command", last.MsgId)
	} else {
		all = all[:len(all)-1]
	}
	if len(all) > localdb.MaxCommandsPerThing || len(all) < localdb.MaxCommandsPerThing-64 || all[0].MsgId != fmt.Sprintf("c%04d", localdb.MaxCommandsPerThing+9) {
		t.Errorf("Commands(lamp) = %d, newest %s; want at most %d and not far below, newest the last", len(all), all[0].MsgId, localdb.MaxCommandsPerThing)
	}
	if oldest := all[len(all)-1].MsgId; oldest != fmt.Sprintf("c%04d", localdb.MaxCommandsPerThing+10-len(all)) {
		t.Errorf("the oldest kept is %s, want the %dth newest", oldest, len(all))
	}
	// The count the prune goes by survives a reopen and stays exact: more
	// closes never keep more than the bound.
	for i := range 3 * localdb.MaxCommandsPerThing / 2 {
		id := fmt.Sprintf("d%04d", i)
		record(id, "lamp", int64(10_000+i))
		if _, _, err := db.UpdateCommand(ctx, id, "lamp", localdb.CommandUpdate{State: "done", Result: true, Final: true}); err != nil {
			t.Fatal(err)
		}
		if i == localdb.MaxCommandsPerThing/2 {
			db.Close()
			db = openAt(t, path)
		}
	}
	if all, err = db.Commands(ctx, "lamp", localdb.MaxCommandsPerThing); err != nil || len(all) > localdb.MaxCommandsPerThing || len(all) < localdb.MaxCommandsPerThing-64 {
		t.Errorf("after more closes and a reopen: %d kept, %v", len(all), err)
	}
	// The 501st newest closed is gone, the 468th newest kept.
	more := 3 * localdb.MaxCommandsPerThing / 2
	for k, want := range map[int]bool{localdb.MaxCommandsPerThing + 1: false, localdb.MaxCommandsPerThing - 32: true} {
		id := fmt.Sprintf("d%04d", more-k)
		if _, err := db.Command(ctx, id); (err == nil) != want {
			t.Errorf("the %dth newest closed command (%s): %v, want kept %v", k, id, err, want)
		}
	}
	if _, err := db.Command(ctx, "open"); err != nil {
		t.Errorf("the open command is gone: %v", err)
	}
}

// BenchmarkCommandLife is a command's life as a person's node tracks it
// (recorded, accepted, done) on a thing with MaxCommandsPerThing closed
// commands already kept, the steady state of a busy thing.
func BenchmarkCommandLife(b *testing.B) {
	db := open(b)
	ctx := b.Context()
	expires := time.Now().Add(time.Hour).UnixMilli()
	life := func(id string) {
		if _, err := db.RecordCommand(ctx, localdb.Command{MsgId: id, Thing: "lamp", Expires: expires}); err != nil {
			b.Fatal(err)
		}
		for _, u := range []localdb.CommandUpdate{{State: "accepted"}, {State: "done", Result: true, Final: true}} {
			if _, _, err := db.UpdateCommand(ctx, id, "lamp", u); err != nil {
				b.Fatal(err)
			}
		}
	}
	for i := range localdb.MaxCommandsPerThing {
		life(fmt.Sprint("old", i))
	}
	b.ResetTimer()
	for i := range b.N {
		life(fmt.Sprint("c", i))
	}
}
