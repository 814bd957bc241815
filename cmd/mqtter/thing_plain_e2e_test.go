package main_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// A microcontroller as a thing, as docs/protocol.md ("A thing over plain
// MQTT") describes it: a plain MQTT client of the thing's account, with no
// libp2p and no signatures (paho here, as an MQTT library on a device),
// publishes its description, takes alice's command from a news push,
// checks its expiry and answers ack, state and result as unsigned sends.
// alice's node, which knows nothing of how the lamp is built, sees the
// description, the result and the state; the lamp cannot command alice.
func TestPlainMQTTThing(t *testing.T) {
	t.Parallel()
	data := newAccounts(t, "alice")
	code := pairingCode.FindStringSubmatch(addUser(t, data, "lamp", "lamp-pw", "--thing"))
	if code == nil {
		t.Fatal("user add --thing printed no pairing code")
	}
	srv := startServer(t, data)
	alice := startNode(t, "tcp://"+srv.mqtt, t.TempDir(), "alice", "alice-pw")
	alice.must("thing", "bind", "lamp", code[1])

	lamp, err := servertest.TryDial(t, "tcp://"+srv.mqtt, "lamp", "lamp-pw", "lamp-esp32")
	if err != nil {
		t.Fatalf("the lamp's MQTT client: %v", err)
	}
	lamp.OK(wire.MethodDescribe, thing.Description{Thing: "lamp", Version: 1, Title: "A lamp on a microcontroller",
		Properties: map[string]*thing.Property{"on": {Schema: thing.Schema{Type: "boolean"}, Observable: true}},
		Actions:    map[string]*thing.Action{"toggle": {Title: "Switch"}}}, nil)
	out := alice.must("thing", "describe", "lamp")
	if !strings.Contains(out, "A lamp on a microcontroller") || !strings.Contains(out, "toggle") {
		t.Errorf("thing describe lamp = %q, want the description the lamp published", out)
	}

	done := make(chan cliResult, 1)
	go func() { done <- alice.runCLI("thing", "do", "lamp", "toggle", "--timeout", "20s") }()
	var news wire.News
	for news.Message.MsgType != wire.MsgTypeCommand {
		news = lamp.News() // the lamp never subscribed: pushes come unasked
	}
	cmd, err := thing.ParseCommand(news.Message.Payload)
	if err != nil || cmd.Action != "toggle" || cmd.Expired(time.Now()) || news.Message.SeqId == 0 {
		t.Fatalf("the lamp got %+v (%v), want an unexpired, sequenced toggle", news.Message, err)
	}
	answer := func(fb thing.Feedback) {
		t.Helper()
		fb.Cmd, fb.Trace = news.Message.MsgId, &cmd.Trace
		p, err := json.Marshal(fb)
		if err != nil {
			t.Fatal(err)
		}
		// Unsigned: the server sets From and Device from the connection.
		lamp.OK(wire.MethodSend, wire.Message{MsgId: wire.NewMsgID(), Feeds: news.Feeds, MsgType: wire.MsgTypeFeedback,
			Payload: p, TimeCreate: time.Now().UnixMilli()}, nil)
	}
	answer(thing.Feedback{Kind: thing.KindAck, Status: thing.AckAccepted})
	answer(thing.Feedback{Kind: thing.KindState, Cause: news.Message.MsgId, Rev: 1, Props: map[string]json.RawMessage{"on": json.RawMessage("true")}})
	answer(thing.Feedback{Kind: thing.KindResult, Status: thing.ResultDone, Output: json.RawMessage(`{"on":true}`)})
	if r := <-done; r.code != 0 || !strings.Contains(r.stdout, "done") {
		t.Fatalf("thing do lamp toggle = exit %d\n%s%s, want done", r.code, r.stdout, r.stderr)
	}
	if out := alice.must("thing", "state", "lamp"); !strings.Contains(out, "on = true") {
		t.Errorf("thing state lamp = %q, want on = true as the lamp reported", out)
	}

	// The lamp may answer alice but not command her, nor send feedback in
	// a dm it is not part of.
	c := thing.Command{Action: "toggle", Expires: time.Now().Add(time.Minute).UnixMilli(), Trace: thing.Trace{Origin: "lamp", OriginMsg: "x"}}
	p, _ := json.Marshal(c)
	if e := lamp.Fail(wire.MethodSend, wire.Message{MsgId: wire.NewMsgID(), Feeds: news.Feeds, MsgType: wire.MsgTypeCommand,
		Payload: p, TimeCreate: time.Now().UnixMilli()}); !strings.HasPrefix(e, "forbidden") {
		t.Errorf("the lamp commanding alice = %q, want forbidden", e)
	}
}
