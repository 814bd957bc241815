package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/store"
)

func TestExpiresAt(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"", 0, ""},
		{"1", now.UnixMilli() + 1000, ""},
		{"86400", now.UnixMilli() + 3600_000, ""}, // cut to the longest, 1 h
		{"9223372036854775807", now.UnixMilli() + 3600_000, ""},
		{"0", 0, "over 0"},
		{"-5", 0, "over 0"},
		{"1.5", 0, "expires_seconds"},
		{"soon", 0, "expires_seconds"},
		{"99999999999999999999", 0, "out of range"},
	} {
		got, err := expiresAt(tc.in, now, time.Hour)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("expiresAt(%q) = %d, %v, want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expiresAt(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}

// The expires_seconds of a SUBSCRIBE comes from the network: any string
// gives an error or a time within the longest, never a panic.
func FuzzExpiresAt(f *testing.F) {
	for _, s := range []string{"", "1", "60", "0", "-1", "1e3", "soon", "99999999999999999999", " 5"} {
		f.Add(s)
	}
	now := time.UnixMilli(1_700_000_000_000)
	f.Fuzz(func(t *testing.T, v string) {
		got, err := expiresAt(v, now, time.Hour)
		switch {
		case err != nil:
			if got != 0 {
				t.Errorf("expiresAt(%q) = %d with error %v", v, got, err)
			}
		case v == "":
			if got != 0 {
				t.Errorf("expiresAt(\"\") = %d, want 0", got)
			}
		case got <= now.UnixMilli() || got > now.Add(time.Hour).UnixMilli():
			t.Errorf("expiresAt(%q) = %d, want within (now, now+1h]", v, got)
		}
	})
}

// The server's sweep ends the temporary subscriptions whose time came
// while their client was away: the pending request one made is withdrawn,
// a relation it did not make stays; and it deletes sessions that ended.
func TestSweepPersistent(t *testing.T) {
	ctx := t.Context()
	s, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Now()
	err = s.db.Write(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := store.PutRelation(ctx, tx, store.Relation{A: "alice", B: "carol", Kind: store.KindFriend, State: store.StatePending, Actor: "alice", Since: 1}); err != nil {
			return err
		}
		return store.PutRelation(ctx, tx, store.Relation{A: "alice", B: "bob", Kind: store.KindFriend, State: store.StateActive, Actor: "bob", Since: 1})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, opened, err := s.db.OpenSession(ctx, store.SessionOpen{ClientID: "alice-d", Account: "alice", Keep: time.Hour, Max: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	past := now.Add(-time.Second).UnixMilli()
	if err := s.db.PutSessionSubs(ctx, "alice-d", []store.SessionSub{
		{Filter: "feeds/dm/carol", Expires: past, Made: true},
		{Filter: "feeds/dm/bob", Expires: past},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.CloseSession(ctx, "alice-d", opened, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = s.db.OpenSession(ctx, store.SessionOpen{ClientID: "gone-d", Account: "dave", Keep: time.Millisecond, Max: 1}, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.CloseSession(ctx, "gone-d", now.Add(-time.Hour).UnixNano(), time.Millisecond, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}

	s.sweepPersistent(ctx)
	if r, err := s.db.Relation(ctx, "alice", "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice–carol after the sweep = %+v, %v, want the request withdrawn", r, err)
	}
	if r, err := s.db.Relation(ctx, "alice", "bob"); err != nil || r.State != store.StateActive {
		t.Errorf("alice–bob after the sweep = %+v, %v, want the friendship kept", r, err)
	}
	if ended, err := s.db.TakeExpiredSubs(ctx, now.Add(time.Minute), 10); err != nil || len(ended) != 0 {
		t.Errorf("expired subscriptions left = %+v, %v", ended, err)
	}
	if n, err := s.db.PurgeSessions(ctx, now); err != nil || n != 0 {
		t.Errorf("PurgeSessions after the sweep = %d, %v, want 0 (the sweep purged dave's)", n, err)
	}
	if present, _, _, err := s.db.OpenSession(ctx, store.SessionOpen{ClientID: "gone-d", Account: "dave", Max: 1}, now); err != nil || present {
		t.Errorf("dave's ended session present = %v, %v", present, err)
	}
}
