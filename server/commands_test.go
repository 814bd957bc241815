package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// A person commands a thing only if bound to it; only a thing sends
// feedback; both payloads must parse. send, history_push and the s2s push
// apply the same rule.
func TestCommandRuleOnTheServer(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	bindAgain(t, h.bob, h.lamp)
	h.bob.OK("unbind_thing", wire.BindThingReq{Thing: "lamp"}, nil)
	h.dave.OK("add_friend", wire.UserReq{User: "lamp"}, nil) // a friend, not an owner
	h.lamp.OK("accept_friend", wire.UserReq{User: "dave"}, nil)
	h.lamp.Drain(quiet)

	send(t, h.alice, commandMsg("alice", "lamp", personCommand("alice", "toggle")))
	if n := h.lamp.News(); n.Message.MsgType != wire.MsgTypeCommand || n.Message.From != "alice" {
		t.Errorf("lamp news = %s from %s, want alice's command", n.Message.MsgType, n.Message.From)
	}
	send(t, h.lamp, feedbackMsg("lamp", "alice", thing.Feedback{Kind: thing.KindAck, Cmd: "x", Status: thing.AckAccepted}))
	send(t, h.dave, text(wire.DM("dave", "lamp"), "hello lamp")) // a friend may talk to it
	if n := h.lamp.News(); n.Message.From != "dave" {
		t.Errorf("lamp news from %s, want dave's text", n.Message.From)
	}

	badFeedback := feedbackMsg("lamp", "alice", thing.Feedback{Kind: "gossip"})
	for _, tt := range []struct {
		name string
		cl   *servertest.Client
		m    wire.Message
		want string
	}{
		{"a stranger commanding", h.carol, commandMsg("carol", "lamp", personCommand("carol", "toggle")), "forbidden"},
		{"a former owner commanding", h.bob, commandMsg("bob", "lamp", personCommand("bob", "toggle")), "forbidden"},
		{"a friend (not bound) commanding", h.dave, commandMsg("dave", "lamp", personCommand("dave", "toggle")), "not allowed: dave is not bound to lamp"},
		{"a person sending feedback", h.alice, feedbackMsg("alice", "lamp", thing.Feedback{Kind: thing.KindAck, Cmd: "x", Status: thing.AckAccepted}), "only a thing sends feedback"},
		{"a person commanding a person", h.alice, commandMsg("alice", "dave", personCommand("alice", "toggle")), "forbidden: message"},
		{"a malformed command", h.alice, commandMsg("alice", "lamp", thing.Command{Action: "toggle"}), "bad request: message"},
		{"a command that is not JSON", h.alice, func() wire.Message {
			m := commandMsg("alice", "lamp", personCommand("alice", "toggle"))
			m.Payload = []byte(`"on"`)
			return m
		}(), "bad request"},
		{"malformed feedback", h.lamp, badFeedback, "bad feedback"},
		{"a person's command with a grant", h.alice, func() wire.Message {
			r := newRule(t, h.aliceKey, "g", "switch", "lamp", "alice", "toggle")
			c := personCommand("alice", "toggle")
			c.Grant = &r
			return commandMsg("alice", "lamp", c)
		}(), "carries no grant"},
	} {
		wantError(t, "send: "+tt.name, tt.cl.Fail("send", tt.m), tt.want)
		wantError(t, "history_push: "+tt.name, tt.cl.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{tt.m}}), tt.want)
	}
	h.lamp.NoPush(wire.PushNews, quiet)
	wantNothingIn(t, h.lamp, wire.DM("carol", "lamp"))

	// The s2s push writes as From, under the same rule.
	push := h.inst.HTTP + "/v1/s2s/push"
	for _, tt := range []struct {
		name string
		m    wire.Message
		want int
	}{
		{"a stranger's command", func() wire.Message {
			m := commandMsg("carol", "lamp", personCommand("carol", "toggle"))
			m.From = "carol"
			return m
		}(), http.StatusForbidden},
		{"a friend's command", func() wire.Message {
			m := commandMsg("dave", "lamp", personCommand("dave", "toggle"))
			m.From = "dave"
			return m
		}(), http.StatusForbidden},
		{"a malformed command", func() wire.Message {
			m := commandMsg("alice", "lamp", thing.Command{Action: "toggle"})
			m.From = "alice"
			return m
		}(), http.StatusBadRequest},
	} {
		if status, body := call(t, http.MethodPost, push, bearer(s2sSecret), mustJSON(tt.m)); status != tt.want {
			t.Errorf("POST /v1/s2s/push (%s) = %d %s, want %d", tt.name, status, body, tt.want)
		}
	}
	ok := commandMsg("alice", "lamp", personCommand("alice", "toggle"))
	ok.From = "alice"
	if status, body := call(t, http.MethodPost, push, bearer(s2sSecret), mustJSON(ok)); status != http.StatusOK {
		t.Errorf("POST /v1/s2s/push (the owner's command) = %d %s, want 200", status, body)
	}
}

// A thing commands an associated thing only under a rule the server holds,
// for that rule's action.
func TestThingCommandsUnderRule(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	r := newRule(t, h.aliceKey, "switch-toggles-lamp", "switch", "lamp", "alice", "toggle")
	h.alice.OK(wire.MethodAddRule, r, nil)
	h.lamp.Drain(quiet)

	underRule := commandMsg("switch", "lamp", ruleCommand(&r))
	send(t, h.sw, underRule)
	if n := h.lamp.News(); n.Message.MsgId != underRule.MsgId {
		t.Errorf("lamp news = %s, want the command under the rule", n.Message.MsgId)
	}
	var res []wire.SeqResult
	h.sw.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{commandMsg("switch", "lamp", ruleCommand(&r))}}, &res)

	notAdded := newRule(t, h.aliceKey, "never-added", "switch", "lamp", "alice", "toggle")
	tampered := r
	tampered.Then.Action = "dim"
	otherAction := ruleCommand(&r)
	otherAction.Action = "dim"
	withWrite := ruleCommand(&r)
	withWrite.Write = map[string]json.RawMessage{"on": json.RawMessage("true")}
	for _, tt := range []struct {
		name string
		c    thing.Command
		want string
	}{
		{"without a grant", personCommand("switch", "toggle"), "only under a rule"},
		{"with a grant for another action", otherAction, "allows the action toggle only"},
		{"writing properties under a grant", withWrite, "allows the action toggle only"},
		{"with a grant the server does not hold", ruleCommand(&notAdded), "no rule of the server's"},
		{"with a tampered grant", ruleCommand(&tampered), "signature does not match"},
		{"with no hop", func() thing.Command { c := ruleCommand(&r); c.Trace.Hops = 0; return c }(), "at least one hop"},
	} {
		m := commandMsg("switch", "lamp", tt.c)
		wantError(t, "send: a thing commanding "+tt.name, h.sw.Fail("send", m), tt.want)
		wantError(t, "history_push: a thing commanding "+tt.name, h.sw.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{m}}), tt.want)
	}
	// The lamp may not command the switch under a rule from the switch to it.
	reverse := commandMsg("lamp", "switch", ruleCommand(&r))
	wantError(t, "a command against the rule's direction", h.lamp.Fail("send", reverse), "is a rule from switch to lamp")

	// A command the switch sent directly, before the rule was removed, the
	// lamp may still hand over (signed by the switch); the switch itself may
	// no longer send one.
	direct := signMsg(t, h.swKey, "switch", commandMsg("switch", "lamp", ruleCommand(&r)))
	h.alice.OK(wire.MethodRemoveRule, thing.RuleID{ID: r.ID}, nil)
	wantError(t, "send under a removed rule", h.sw.Fail("send", commandMsg("switch", "lamp", ruleCommand(&r))), "no rule of the server's")
	h.lamp.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{direct}}, &res)
	if len(res) != 1 || res[0].SeqId == 0 {
		t.Errorf("history_push of the switch's signed command = %+v, want it sequenced", res)
	}
	// A relayed command must still parse.
	junk := commandMsg("switch", "lamp", thing.Command{Action: "toggle"})
	junk = signMsg(t, h.swKey, "switch", junk)
	wantError(t, "relaying a malformed command", h.lamp.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{junk}}), "bad request: message")
	// Feedback relayed must come from a thing.
	fromAlice := signMsg(t, h.aliceKey, "alice", feedbackMsg("alice", "lamp", thing.Feedback{Kind: thing.KindAck, Cmd: "x", Status: thing.AckAccepted}))
	wantError(t, "relaying a person's feedback", h.lamp.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{fromAlice}}), "alice is not a thing")
}
