package node

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// A bound person's command runs once on the lamp's device program and is
// answered ack accepted, result done and state caused by it, each with
// the command's trace; the same message again, by another path, does not
// run it again; an expired command is answered timeout and never runs; a
// command that does not fit the description is rejected; and lines of
// the program that are not feedback are skipped and counted.
func TestThingRunsACommandOnce(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser(t, "alice", "alice-pw", false)
	srv.AddUser(t, "lamp", "lamp-pw", true)
	ran := ranFile(t)
	alice := startTestNode(t, srv, t.TempDir(), "alice", nil)
	lamp := startTestNode(t, srv, t.TempDir(), "lamp", func(c *Config) {
		c.ThingHandler = deviceCommand("lamp", ran, true)
	})
	bind(t, alice, lamp)
	waitFor(t, "the lamp's description", func() bool { return thingStatus(t, lamp).Description >= 1 })
	ctx := t.Context()

	cmd := sendCommand(t, alice, "lamp", thing.Command{Action: "toggle"})
	fbs := waitFeedback(t, alice, "lamp", cmd, thing.KindResult, thing.ResultDone)
	fbs = waitFeedback(t, alice, "lamp", cmd, thing.KindState, "")
	if !has(fbs, thing.KindAck, thing.AckAccepted) {
		t.Errorf("feedback of %s = %+v, want an ack accepted", cmd, fbs)
	}
	for _, f := range fbs {
		if f.Trace == nil || f.Trace.Origin != "alice" {
			t.Errorf("%s feedback trace = %+v, want the command's (origin alice)", f.Kind, f.Trace)
		}
		if f.Kind == thing.KindState && (f.Rev < 1 || string(f.Props["on"]) != "true") {
			t.Errorf("state = %+v, want on true with a revision", f)
		}
	}
	if got := ranLines(t, ran); len(got) != 1 {
		t.Fatalf("the program ran %v, want the one command", got)
	}

	t.Run("duplicate", func(t *testing.T) {
		h, err := alice.cl.History(ctx, "lamp", 0)
		if err != nil {
			t.Fatal(err)
		}
		var m wire.Message
		for _, e := range h.Messages {
			if e.MsgId == cmd && e.From == "alice" {
				m = e.Message
			}
		}
		if m.MsgId == "" {
			t.Fatalf("alice does not hold %s", cmd)
		}
		// Again on the direct path (the store dedupes it), and as if the
		// server had brought it and the store had not known it.
		body, _ := json.Marshal(&m)
		topic := wire.RequestTopic(lamp.n.self.String(), wire.MethodSend, m.MsgId)
		if _, err := alice.n.host.Request(ctx, lamp.n.self, listenAddrs(t, lamp), topic, body); err != nil {
			t.Fatalf("direct send again: %v", err)
		}
		lamp.n.thing.intake(m, localdb.ViaServer)
		time.Sleep(500 * time.Millisecond)
		if got := ranLines(t, ran); len(got) != 1 {
			t.Errorf("the program ran %v after a duplicate, want the command once", got)
		}
		results := 0
		for _, f := range feedbackOf(t, alice, "lamp", cmd) {
			if f.Kind == thing.KindResult {
				results++
			}
		}
		if results != 1 {
			t.Errorf("%d results for %s, want 1", results, cmd)
		}
	})

	t.Run("expired", func(t *testing.T) {
		old := sendCommand(t, alice, "lamp", thing.Command{Action: "toggle", Expires: time.Now().Add(-time.Second).UnixMilli()})
		fbs := waitFeedback(t, alice, "lamp", old, thing.KindResult, thing.ResultTimeout)
		if has(fbs, thing.KindAck, thing.AckAccepted) {
			t.Errorf("an expired command was accepted: %+v", fbs)
		}
		if got := ranLines(t, ran); len(got) != 1 {
			t.Errorf("the program ran %v, want the expired command not run", got)
		}
	})

	t.Run("expires too far away", func(t *testing.T) {
		far := sendCommand(t, alice, "lamp", thing.Command{Action: "toggle", Expires: time.Now().Add(thing.MaxExpiry + time.Hour).UnixMilli()})
		fbs := waitFeedback(t, alice, "lamp", far, thing.KindAck, thing.AckRejected)
		for _, f := range fbs {
			if f.Kind == thing.KindAck && !strings.Contains(f.Error, "expires more than") {
				t.Errorf("rejection = %q, want the reason (expires too far away)", f.Error)
			}
		}
		if got := ranLines(t, ran); len(got) != 1 {
			t.Errorf("the program ran %v, want a command that may wait days not run", got)
		}
	})

	t.Run("wrong input", func(t *testing.T) {
		bad := sendCommand(t, alice, "lamp", thing.Command{Action: "set", Input: json.RawMessage(`{"brightness":500}`)})
		fbs := waitFeedback(t, alice, "lamp", bad, thing.KindAck, thing.AckRejected)
		for _, f := range fbs {
			if f.Kind == thing.KindAck && !strings.Contains(f.Error, "maximum") {
				t.Errorf("rejection = %q, want the reason (over the maximum)", f.Error)
			}
		}
		unknown := sendCommand(t, alice, "lamp", thing.Command{Action: "explode"})
		waitFeedback(t, alice, "lamp", unknown, thing.KindAck, thing.AckRejected)
		if got := ranLines(t, ran); len(got) != 1 {
			t.Errorf("the program ran %v, want rejected commands not run", got)
		}
	})

	// Bound after the program described the lamp, alice is told since.
	waitFor(t, "alice to hold the lamp's description", func() bool {
		h, err := alice.cl.History(ctx, "lamp", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range h.Messages {
			if fb, err := thing.ParseFeedback(m.Payload); err == nil && fb.Kind == thing.KindDescription {
				return fb.Description.Thing == "lamp" && fb.Description.Actions["toggle"] != nil
			}
		}
		return false
	})
	if st := thingStatus(t, lamp); st.BadLines < 4 || st.Program != ProgramRunning {
		t.Errorf("status = %+v, want the 4 bad lines counted and the program running", st)
	}
}

// A command that comes while no device program runs is answered queued;
// it runs when a listener of the local API comes (which answers through
// the API), or times out if none comes before its expiry. A result for
// a command not running is refused.
func TestThingQueuesUntilAListenerComes(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser(t, "alice", "alice-pw", false)
	srv.AddUser(t, "lamp", "lamp-pw", true)
	alice := startTestNode(t, srv, t.TempDir(), "alice", nil)
	lamp := startTestNode(t, srv, t.TempDir(), "lamp", nil)
	bind(t, alice, lamp)
	ctx := t.Context()

	short := sendCommand(t, alice, "lamp", thing.Command{Action: "toggle", Expires: time.Now().Add(1500 * time.Millisecond).UnixMilli()})
	waitFeedback(t, alice, "lamp", short, thing.KindAck, thing.AckQueued)
	waitFeedback(t, alice, "lamp", short, thing.KindResult, thing.ResultTimeout)

	long := sendCommand(t, alice, "lamp", thing.Command{Action: "toggle"})
	waitFeedback(t, alice, "lamp", long, thing.KindAck, thing.AckQueued)

	got := make(chan thing.Invocation, 4)
	lctx, cancel := t.Context(), func() {}
	done := make(chan error, 1)
	go func() {
		done <- lamp.cl.ThingInvocations(lctx, func(inv thing.Invocation) error {
			got <- inv
			return nil
		})
	}()
	defer func() { cancel(); lamp.stop(); <-done }()
	var inv thing.Invocation
	select {
	case inv = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the listener got no invocation")
	}
	if inv.Cmd != long || inv.Action != "toggle" || inv.From != "alice" {
		t.Fatalf("invocation = %+v, want %s toggle from alice", inv, long)
	}
	if err := lamp.cl.ThingFeedback(ctx, thing.Feedback{Kind: thing.KindResult, Cmd: inv.Cmd, Status: thing.ResultDone}); err != nil {
		t.Fatalf("post the result: %v", err)
	}
	waitFeedback(t, alice, "lamp", long, thing.KindAck, thing.AckAccepted)
	waitFeedback(t, alice, "lamp", long, thing.KindResult, thing.ResultDone)
	err := lamp.cl.ThingFeedback(ctx, thing.Feedback{Kind: thing.KindResult, Cmd: inv.Cmd, Status: thing.ResultDone})
	if ce, ok := err.(*CallError); !ok || ce.Status != 409 {
		t.Errorf("a second result = %v, want a 409", err)
	}
	if err := lamp.cl.ThingFeedback(ctx, thing.Feedback{Kind: "ack", Cmd: inv.Cmd, Status: "accepted"}); err == nil {
		t.Error("an ack from the program was taken, want it refused")
	}
}

// A command the device program holds when the node stops is answered
// failed when the node starts again, and is not run again.
func TestThingInterruptedCommandIsNotRunAgain(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser(t, "alice", "alice-pw", false)
	srv.AddUser(t, "lamp", "lamp-pw", true)
	ran := ranFile(t)
	lampHome := t.TempDir()
	alice := startTestNode(t, srv, t.TempDir(), "alice", nil)
	lamp := startTestNode(t, srv, lampHome, "lamp", func(c *Config) { c.ThingHandler = deviceCommand("hang", ran, false) })
	bind(t, alice, lamp)
	waitFor(t, "the lamp's description", func() bool { return thingStatus(t, lamp).Description >= 1 })

	cmd := sendCommand(t, alice, "lamp", thing.Command{Action: "toggle"})
	waitFor(t, "the program to get the command", func() bool { return len(ranLines(t, ran)) == 1 })
	waitFeedback(t, alice, "lamp", cmd, thing.KindAck, thing.AckAccepted)
	lamp.stop()

	// A command the node stored and then died before it took it (as if
	// the process had ended between the two) is taken at the restart.
	lost := wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.DM("alice", "lamp"), MsgType: wire.MsgTypeCommand,
		From: "alice", TimeCreate: time.Now().UnixMilli()}
	lost.Payload, _ = json.Marshal(thing.Command{Action: "toggle", Expires: time.Now().Add(time.Minute).UnixMilli(),
		Trace: thing.Trace{Origin: "alice", OriginMsg: lost.MsgId}})
	if err := lost.Sign(alice.n.key); err != nil {
		t.Fatal(err)
	}
	db, err := localdb.Open(t.Context(), filepath.Join(lampHome, databaseFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddMessages(t.Context(), []wire.Message{lost}, localdb.ViaP2P); err != nil {
		t.Fatal(err)
	}
	db.Close()

	lamp = startTestNode(t, srv, lampHome, "lamp", func(c *Config) { c.ThingHandler = deviceCommand("lamp", ran, false) })
	fbs := waitFeedback(t, alice, "lamp", cmd, thing.KindResult, thing.ResultFailed)
	for _, f := range fbs {
		if f.Kind == thing.KindResult && f.Error != errInterrupted {
			t.Errorf("result error = %q, want %q", f.Error, errInterrupted)
		}
	}
	waitFeedback(t, alice, "lamp", lost.MsgId, thing.KindResult, thing.ResultDone)
	time.Sleep(300 * time.Millisecond)
	if got := ranLines(t, ran); len(got) != 2 || !strings.HasPrefix(got[1], lost.MsgId) {
		t.Errorf("ran %v, want the interrupted command once and then the one not taken", got)
	}
	tc, err := lamp.n.db.ThingCommand(t.Context(), cmd, "alice")
	if err != nil || tc.State != localdb.CommandAnswered || tc.Outcome != thing.ResultFailed {
		t.Errorf("kept command = %+v, %v, want answered failed", tc, err)
	}
}

// Only a person bound to the thing commands it: a friend's own node
// refuses to send one, the thing's node refuses it on the direct path,
// and a stranger's device cannot even open a stream.
func TestThingRefusesCommandsOfOthers(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser(t, "bob", "bob-pw", false)
	srv.AddUser(t, "carol", "carol-pw", false)
	srv.AddUser(t, "lamp", "lamp-pw", true)
	ran := ranFile(t)
	bob := startTestNode(t, srv, t.TempDir(), "bob", nil)
	carol := startTestNode(t, srv, t.TempDir(), "carol", nil)
	lamp := startTestNode(t, srv, t.TempDir(), "lamp", func(c *Config) { c.ThingHandler = deviceCommand("lamp", ran, false) })
	ctx := t.Context()
	if err := bob.cl.Call(ctx, wire.MethodAddFriend, wire.UserReq{User: "lamp"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := lamp.cl.Call(ctx, wire.MethodAcceptFriend, wire.UserReq{User: "bob"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the friendship in both books", func() bool {
		return knows(bob, lamp, wire.StateFriend) && knows(lamp, bob, wire.StateFriend)
	})

	c := thing.Command{Action: "toggle", Expires: time.Now().Add(time.Minute).UnixMilli(),
		Trace: thing.Trace{Origin: "bob", OriginMsg: wire.NewMsgID()}}
	payload, _ := json.Marshal(&c)
	if _, err := bob.cl.Send(ctx, SendRequest{To: "lamp", MsgType: wire.MsgTypeCommand, Payload: payload}); err == nil {
		t.Error("bob's node sent a command to a thing bob is only a friend of")
	}
	for _, from := range []*testNode{bob, carol} {
		m := wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.DM(from.n.cfg.User, "lamp"), MsgType: wire.MsgTypeCommand,
			From: from.n.cfg.User, Payload: payload, TimeCreate: time.Now().UnixMilli()}
		if err := m.Sign(from.n.key); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(&m)
		topic := wire.RequestTopic(lamp.n.self.String(), wire.MethodSend, m.MsgId)
		a, err := from.n.host.Request(ctx, lamp.n.self, listenAddrs(t, lamp), topic, body)
		if err == nil {
			if ans, perr := wire.ParseAnswer(a); perr == nil && ans.Err() == nil {
				t.Errorf("%s's command was stored by the lamp", from.n.cfg.User)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	if got := ranLines(t, ran); len(got) != 0 {
		t.Errorf("the lamp ran %v, want nothing", got)
	}
}

// A new device of the thing restores the history with sync: the commands
// in it, unexpired as they are, do not run again there.
func TestThingRestoredHistoryRunsNothing(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser(t, "alice", "alice-pw", false)
	srv.AddUser(t, "lamp", "lamp-pw", true)
	ran, ranAgain := ranFile(t), ranFile(t)
	alice := startTestNode(t, srv, t.TempDir(), "alice", nil)
	lamp := startTestNode(t, srv, t.TempDir(), "lamp", func(c *Config) { c.ThingHandler = deviceCommand("lamp", ran, false) })
	bind(t, alice, lamp)
	waitFor(t, "the lamp's description", func() bool { return thingStatus(t, lamp).Description >= 1 })
	cmd := sendCommand(t, alice, "lamp", thing.Command{Action: "toggle", Expires: time.Now().Add(10 * time.Minute).UnixMilli()})
	waitFeedback(t, alice, "lamp", cmd, thing.KindResult, thing.ResultDone)
	waitFor(t, "the command sequenced", func() bool {
		st, err := alice.cl.Status(t.Context())
		return err == nil && st.Unsynced == 0
	})
	lamp.stop()

	again := startTestNode(t, srv, t.TempDir(), "lamp", func(c *Config) { c.ThingHandler = deviceCommand("lamp", ranAgain, false) })
	waitFor(t, "the new device to restore the command", func() bool {
		h, err := again.cl.History(t.Context(), "alice", 0)
		if err != nil {
			return false
		}
		for _, m := range h.Messages {
			if m.MsgId == cmd {
				return m.Via == localdb.ViaSync
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond)
	if got := ranLines(t, ranAgain); len(got) != 0 {
		t.Errorf("the restored device ran %v, want nothing", got)
	}
	if _, err := again.n.db.ThingCommand(t.Context(), cmd, "alice"); err == nil {
		t.Error("the restored device took the command from history")
	}
}
