package wire

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

func TestNewMsgID(t *testing.T) {
	before := time.Now().Add(-time.Millisecond)
	id := NewMsgID()
	u, err := ulid.ParseStrict(id)
	if err != nil || len(id) != 26 {
		t.Fatalf("NewMsgID() = %q, want a 26-character ULID (%v)", id, err)
	}
	if ts := ulid.Time(u.Time()); ts.Before(before) || ts.After(time.Now().Add(time.Millisecond)) {
		t.Errorf("NewMsgID() time = %v, want about now", ts)
	}
	m := Message{MsgId: id, Feeds: "dm:alice:bob", MsgType: "text", From: "alice", Payload: []byte(`{}`)}
	if err := m.Validate(); err != nil {
		t.Errorf("Validate of a message with MsgId %q = %v, want nil", id, err)
	}
}

// TestNewMsgIDOrderedConcurrent checks that ids are unique under concurrent
// use and that each goroutine sees them strictly increasing.
func TestNewMsgIDOrderedConcurrent(t *testing.T) {
	const goroutines, perG = 8, 2000
	var (
		mu  sync.Mutex
		all []string
		wg  sync.WaitGroup
	)
	for range goroutines {
		wg.Go(func() {
			ids := make([]string, perG)
			for i := range ids {
				ids[i] = NewMsgID()
				if i > 0 && ids[i] <= ids[i-1] {
					t.Errorf("NewMsgID() = %q after %q, want increasing", ids[i], ids[i-1])
					return
				}
			}
			mu.Lock()
			all = append(all, ids...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	if n := len(slices.Compact(all)); n != goroutines*perG {
		t.Errorf("NewMsgID() made %d distinct ids out of %d", n, goroutines*perG)
	}
}
