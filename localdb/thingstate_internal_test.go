package localdb

import (
	"fmt"
	"path/filepath"
	"testing"
)

// The events of every thing stay within the bound plus the prune's
// period, however the things' events interleave with the table's ids.
func TestThingEventsStayBounded(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "node.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	things := []string{"door", "lamp", "kettle"}
	for i := range 20 * MaxEventsPerThing {
		// kettle gets the ids the prune runs at: door and lamp must be pruned too
		th := things[min(i%eventsPruneEvery, 2)%len(things)]
		if err := db.AddThingEvent(ctx, ThingEvent{MsgId: fmt.Sprint(i), Thing: th, Event: "e", At: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, th := range things {
		var n int
		if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM thing_events WHERE thing = ?`, th).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > MaxEventsPerThing+eventsPruneEvery || n < MaxEventsPerThing {
			t.Errorf("%s keeps %d events, want %d to %d", th, n, MaxEventsPerThing, MaxEventsPerThing+eventsPruneEvery)
		}
	}
	evs, err := db.ThingEvents(ctx, "lamp", 0)
	if err != nil || len(evs) != MaxEventsPerThing {
		t.Fatalf("ThingEvents(lamp) = %d, %v", len(evs), err)
	}
}
