package store_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/store"
)

// A persistent session: stored with its subscriptions, resumed by the
// same account only, kept its keep time after a close, ended by a clean
// open, bounded per account, expired and purged, and carried over a
// restart that left it marked connected.
func TestSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db := open(t, path)
	ctx := t.Context()
	now := time.UnixMilli(1_000_000_000)
	keep := time.Hour
	opener := func(id, account string, clean bool, keep time.Duration) store.SessionOpen {
		return store.SessionOpen{ClientID: id, Account: account, Clean: clean, Keep: keep, Max: 2}
	}
	mustOpen := func(o store.SessionOpen, at time.Time) (bool, []store.SessionSub, int64) {
		t.Helper()
		present, subs, opened, err := db.OpenSession(ctx, o, at)
		if err != nil {
			t.Fatalf("OpenSession(%+v): %v", o, err)
		}
		return present, subs, opened
	}

	present, _, opened := mustOpen(opener("d1", "alice", false, keep), now)
	if present {
		t.Fatal("new session present")
	}
	subs := []store.SessionSub{{Filter: "feeds/dm/bob", QoS: 1}, {Filter: "presence/+", Expires: now.Add(time.Minute).UnixMilli(), Made: true}}
	if err := db.PutSessionSubs(ctx, "d1", subs); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSessionSubs(ctx, "nobody", subs); err != nil {
		t.Fatal(err) // no session: nothing stored
	}
	if err := db.CloseSession(ctx, "d1", opened+1, 0, now); err != nil {
		t.Fatal(err) // another connection's close: ignored
	}
	if err := db.CloseSession(ctx, "d1", opened, keep, now); err != nil {
		t.Fatal(err)
	}

	// Another account never inherits it.
	if present, got, _ := mustOpen(opener("d1", "mallory", false, 0), now); present || len(got) != 0 {
		t.Errorf("mallory's open = %v %v, want nothing of alice's", present, got)
	}
	mustOpen(opener("d1", "alice", false, keep), now)
	if err := db.PutSessionSubs(ctx, "d1", subs); err != nil {
		t.Fatal(err)
	}
	present, got, _ := mustOpen(opener("d1", "alice", false, keep), now)
	if !present || !slices.Equal(got, subs) {
		t.Errorf("resume = %v %+v, want present %+v", present, got, subs)
	}

	// The bound counts live sessions of the account.
	mustOpen(opener("d2", "alice", false, keep), now)
	if _, _, _, err := db.OpenSession(ctx, opener("d3", "alice", false, keep), now); !errors.Is(err, store.ErrTooManySessions) {
		t.Errorf("third session: %v, want ErrTooManySessions", err)
	}
	if present, _, _ := mustOpen(opener("d3", "alice", true, 0), now); present {
		t.Error("clean open without keep stored a session")
	}
	mustOpen(opener("d4", "bob", false, keep), now) // another account's own bound

	// Temporary subscriptions end at their time.
	if ended, err := db.TakeExpiredSubs(ctx, now.Add(2*time.Minute), 10); err != nil || len(ended) != 1 ||
		ended[0].ClientID != "d1" || ended[0].Account != "alice" || ended[0].Filter != "presence/+" || !ended[0].Made {
		t.Errorf("TakeExpiredSubs = %+v, %v, want d1's presence/+", ended, err)
	}

	// A restart leaves d1 marked connected: DisconnectSessions starts its
	// time away; it ends after keep, and PurgeSessions deletes it.
	db.Close()
	db = open(t, path)
	if err := db.DisconnectSessions(ctx, now); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PurgeSessions(ctx, now.Add(keep-time.Second)); err != nil || n != 0 {
		t.Errorf("purge before the keep time = %d %v, want 0", n, err)
	}
	if n, err := db.PurgeSessions(ctx, now.Add(keep+time.Second)); err != nil || n != 3 {
		t.Errorf("purge after the keep time = %d %v, want 3 (d1, d2, d4)", n, err)
	}
	if present, _, _ := mustOpen(opener("d1", "alice", false, keep), now.Add(keep+time.Second)); present {
		t.Error("purged session present")
	}
}
