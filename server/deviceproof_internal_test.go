package server

import (
	"testing"
	"time"
)

// A challenge verifies for the account and device it was made for, until it
// expires, and for nothing else.
func TestChallengeCheck(t *testing.T) {
	k := newProofKey()
	now := time.Now()
	c := k.challenge("alice", "dev", now.Add(challengeTTL))
	if err := k.check("alice", "dev", c, now); err != nil {
		t.Fatalf("check of a fresh challenge: %v", err)
	}
	for _, tt := range []struct {
		name, account, device, c string
		at                       time.Time
	}{
		{"another account", "bob", "dev", c, now},
		{"another device", "alice", "dev2", c, now},
		{"expired", "alice", "dev", c, now.Add(challengeTTL + time.Second)},
		{"another server", "alice", "dev", newProofKey().challenge("alice", "dev", now.Add(challengeTTL)), now},
		{"too far ahead", "alice", "dev", k.challenge("alice", "dev", now.Add(2*challengeTTL)), now},
		{"empty", "alice", "dev", "", now},
		{"cut", "alice", "dev", c[:len(c)-1], now},
	} {
		if err := k.check(tt.account, tt.device, tt.c, tt.at); err == nil {
			t.Errorf("check(%s) = nil, want an error", tt.name)
		}
	}
}

// check takes any string from the network without panicking, and accepts
// only what challenge made.
func FuzzChallengeCheck(f *testing.F) {
	k := newProofKey()
	now := time.Now()
	good := k.challenge("alice", "dev", now.Add(challengeTTL))
	f.Add(good)
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("!!!!")
	f.Fuzz(func(t *testing.T, c string) {
		if err := k.check("alice", "dev", c, now); err == nil && c != good {
			t.Errorf("check accepted %q, which challenge did not make", c)
		}
	})
}
