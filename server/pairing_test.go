package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func TestPairingGuessesInvalidateTheCode(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) {
		c.PairingGuesses, c.LoginBackoff, c.LoginBackoffMax = 5, time.Minute, time.Minute
	}))
	people(t, inst, "mallory", "alice", "bob")
	inst.AddUser(t, "lamp", password("lamp"), true)
	kettleCode := inst.AddUser(t, "kettle", password("kettle"), true)
	mallory, alice, bob := dial(t, inst, "mallory", "mallory-1"), dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	lamp := dial(t, inst, "lamp", "lamp-1")
	var code wire.PairingCode
	lamp.OK("pairing_code", wire.Empty{}, &code)

	for i := range 5 {
		guess := fmt.Sprintf("%09d", i)
		if guess == code.Code {
			guess = "999999999x"
		}
		got := mallory.Fail("bind_thing", wire.BindThingReq{Thing: "lamp", Code: guess})
		if i < 4 {
			wantError(t, fmt.Sprintf("wrong guess %d", i+1), got, "wrong or expired pairing code")
		} else {
			wantError(t, "fifth wrong guess", got, "invalidated")
		}
	}
	// The right code no longer binds, whoever has it.
	wantError(t, "the right code after 5 wrong guesses", alice.Fail("bind_thing", wire.BindThingReq{Thing: "lamp", Code: code.Code}), "invalidated")
	// The guesser is backed off, whatever it guesses at.
	wantError(t, "a sixth guess", mallory.Fail("bind_thing", wire.BindThingReq{Thing: "kettle", Code: "123456789"}), "too many wrong pairing codes")
	// An honest person binding another thing is unaffected, and the
	// guesser's refused guess did not count against that thing's code.
	bob.OK("bind_thing", wire.BindThingReq{Thing: "kettle", Code: kettleCode}, nil)
	// A fresh code works.
	var fresh wire.PairingCode
	lamp.OK("pairing_code", wire.Empty{}, &fresh)
	alice.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: fresh.Code}, nil)
	wantRelation(t, alice, "lamp", "thing", "bound")
	for reason, want := range map[string]float64{"wrong_code": 4, "invalidated": 2, "throttled": 1} {
		name := `mqtter_pairing_refused_total{reason="` + reason + `"}`
		if n := metric(t, inst, name); n != want {
			t.Errorf("%s = %v, want %v", name, n, want)
		}
	}
}

func TestPairingWrongGuessesSurviveRestart(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "mallory", "alice")
	code := inst.AddUser(t, "lamp", password("lamp"), true)
	mallory := dial(t, inst, "mallory", "mallory-1")
	for i := range 3 {
		mallory.Fail("bind_thing", wire.BindThingReq{Thing: "lamp", Code: fmt.Sprintf("x%08d", i)})
	}
	inst.Restart(t)
	mallory = dial(t, inst, "mallory", "mallory-2")
	for i := range 2 {
		mallory.Fail("bind_thing", wire.BindThingReq{Thing: "lamp", Code: fmt.Sprintf("y%08d", i)})
	}
	alice := dial(t, inst, "alice", "alice-1")
	wantError(t, "the right code after 3+2 wrong guesses across a restart", alice.Fail("bind_thing", wire.BindThingReq{Thing: "lamp", Code: code}), "invalidated")
}
