package server

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestThrottleTableIsBoundedAndForgets(t *testing.T) {
	th := newThrottle(3, time.Second, 4*time.Second, 100)
	now := time.Unix(1_000_000, 0)
	for i := range 1000 {
		th.fail(fmt.Sprint("key", i), now)
	}
	if n := th.len(); n > 100 {
		t.Errorf("table holds %d keys after 1000 distinct failures, want at most 100", n)
	}
	for range 3 {
		th.fail("guesser", now)
	}
	if blocked, d := th.blocked("guesser", now); !blocked || d != time.Second {
		t.Errorf("after 3 failures: blocked %v for %v, want blocked for 1s", blocked, d)
	}
	th.fail("guesser", now)
	if _, d := th.blocked("guesser", now); d != 2*time.Second {
		t.Errorf("after 4 failures: back-off %v, want 2s (doubled)", d)
	}
	for range 40 {
		th.fail("guesser", now)
	}
	if _, d := th.blocked("guesser", now); d != 4*time.Second {
		t.Errorf("after 44 failures: back-off %v, want the 4s cap", d)
	}
	if blocked, _ := th.blocked("guesser", now.Add(5*time.Second)); blocked {
		t.Error("still blocked once the back-off ended")
	}
	// Stale keys are swept when room is needed.
	later := now.Add(9 * time.Second)
	th.fail("newcomer", later)
	if n := th.len(); n != 1 {
		t.Errorf("table holds %d keys once all but one are stale, want 1", n)
	}
	th.fail("guesser", later)
	if blocked, _ := th.blocked("guesser", later); blocked {
		t.Error("a forgotten key is blocked at its first new failure")
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":             "127.0.0.1",
		"[::ffff:10.1.2.3]:1":        "10.1.2.3",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::1]:80":    "2001:db8:1:2::/64",
		"garbage":                    "garbage",
	} {
		if got := sourceKey(in); got != want {
			t.Errorf("sourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHashGateLeavesRoomForOthers(t *testing.T) {
	g := newHashGate(2)
	rel, err := g.acquire(context.Background(), "addr a", "account x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.acquire(ctx, "addr a", "account y"); err == nil {
		t.Error("a second check of the same address got a slot while the first runs")
	}
	rel2, err := g.acquire(context.Background(), "addr b", "account z")
	if err != nil {
		t.Errorf("another address and account: %v, want a slot", err)
	} else {
		rel2()
	}
	rel()
	rel3, err := g.acquire(context.Background(), "addr a", "account y")
	if err != nil {
		t.Errorf("after release: %v", err)
	} else {
		rel3()
	}
}
