package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// stillUp checks that cl's connection is up and a good request still works.
func stillUp(t *testing.T, cl *servertest.Client, after string) {
	t.Helper()
	if !cl.Connected() {
		t.Fatalf("%s: connection down after %s", cl.Device, after)
	}
	if a := cl.Call("list_relations", wire.Empty{}); a.Error != "" {
		t.Fatalf("%s: list_relations after %s = Error %q, want success", cl.Device, after, a.Error)
	}
}

// answerOn publishes body on topic and returns the answer on the identical
// topic, checking its shape: a Trace, and Result null when Error is set.
func answerOn(t *testing.T, cl *servertest.Client, topic string, qos byte, body []byte) wire.Answer {
	t.Helper()
	raw, err := cl.RawQoS(topic, qos, body)
	if err != nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
	a, err := wire.ParseAnswer(raw)
	if err != nil {
		t.Fatalf("answer on %q = %s, not an Answer: %v", topic, raw, err)
	}
	if a.Trace == "" {
		t.Errorf("answer on %q = %s, want a Trace", topic, raw)
	}
	if a.Error != "" && string(a.Result) != "null" {
		t.Errorf("answer on %q = %s, want Result null with an Error", topic, raw)
	}
	return a
}

func TestBadTopics(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice")
	alice := c[0]
	tests := []struct {
		topic string
		want  string
	}{
		{"not a uri", "bad topic"},
		{"im:/x", "bad topic"},
		{"im://modulus", "bad topic"},
		{"im://modulus?msg_id=1", "bad topic"},
		{"im//modulus/peers", "bad topic"},
		{"://modulus/peers", "bad topic"},
		{"IM://modulus/peers", "bad topic"},
		{"im://modu lus/peers", "bad topic"},
		{"#", "bad topic"},
		{"+/+", "bad topic"},
		{"chat/room", "bad topic"},
		{"$SYS/broker/clients", "bad topic"},
		{"local://node/peers", "unsupported scheme"},
		{"system://node/peers?msg_id=1", "unsupported scheme"},
		{"ftp://127.0.0.1/x", "unsupported scheme"},
		{"impush://modulus/news", "unsupported scheme"},
		{"im://modulus/no_such_method?msg_id=1", "unknown method"},
		{"im://modulus/?msg_id=1", "unknown method"},
		{"im://modulus/send/extra?msg_id=1", "unknown method"},
		{"im://n2/peers?msg_id=1", "no such node"},
		{"im://12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm/send?msg_id=1", "no such node"},
	}
	for _, tt := range tests {
		a := answerOn(t, alice, tt.topic, 1, []byte(`{}`))
		wantError(t, fmt.Sprintf("PUBLISH %q", tt.topic), a.Error, tt.want)
		stillUp(t, alice, fmt.Sprintf("PUBLISH %q", tt.topic))
	}
}

func TestRoutingRules(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice")
	alice := c[0]
	for _, route := range []string{"modulus", "random", "cache", "n1"} {
		a := alice.CallTopic(wire.RequestTopic(route, "list_relations", "r-"+route), wire.Empty{})
		if a.Error != "" || string(a.Result) != "[]" {
			t.Errorf("im://%s/list_relations = Error %q Result %s, want success []", route, a.Error, a.Result)
		}
	}
	a := alice.CallTopic(wire.RequestTopic("n9", "list_relations", "r-n9"), wire.Empty{})
	wantError(t, "im://n9/list_relations", a.Error, wire.AnswerNoSuchNode)

	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.NodeID = "east-7" }))
	people(t, inst, "bob")
	bob := dial(t, inst, "bob", "bob-1")
	if a := bob.CallTopic(wire.RequestTopic("east-7", "list_feeds", "1"), wire.Empty{}); a.Error != "" {
		t.Errorf("im://east-7/list_feeds on node east-7 = Error %q, want success", a.Error)
	}
	a = bob.CallTopic(wire.RequestTopic("n1", "list_feeds", "2"), wire.Empty{})
	wantError(t, "im://n1/list_feeds on node east-7", a.Error, wire.AnswerNoSuchNode)
}

// MQTT forbids '#' and '+' in a topic name; a URI topic may hold them in its
// query or fragment, and the answer comes back on the identical topic.
func TestTopicsWithWildcardCharacters(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice")
	alice := c[0]
	for _, topic := range []string{
		"im://modulus/list_relations?msg_id=a+b",
		"im://modulus/list_relations?msg_id=7#frag",
		"im://modulus/list_relations?msg_id=8#",
		"im://modulus/list_relations?msg_id=9&x=+#+",
		"im://random/list_relations?msg_id=1+1=2#section-3",
	} {
		for _, qos := range []byte{0, 1} {
			a := answerOn(t, alice, topic, qos, []byte(`{}`))
			if a.Error != "" || string(a.Result) != "[]" {
				t.Errorf("PUBLISH %q QoS %d = Error %q Result %s, want success []", topic, qos, a.Error, a.Result)
			}
		}
	}
	stillUp(t, alice, "topics with '#' and '+'")
}

func TestQoS0Requests(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	m := text(wire.DM("alice", "bob"), "at most once, but answered")
	a := answerOn(t, alice, wire.RequestTopic("modulus", "send", "q0-1"), 0, mustJSON(m))
	var r wire.SendResult
	if err := a.Decode(&r); err != nil || r.SeqId != 1 {
		t.Errorf("QoS 0 send = %+v (%v), want SeqId 1", r, err)
	}
	if n := bob.News(); n.Message.MsgId != m.MsgId {
		t.Errorf("bob news after QoS 0 send = %s, want %s", n.Message.MsgId, m.MsgId)
	}
	a = answerOn(t, alice, "im://modulus/nope?msg_id=q0-2", 0, []byte(`{}`))
	wantError(t, "QoS 0 unknown method", a.Error, "unknown method")
	stillUp(t, alice, "QoS 0 requests")
}

func TestBadBodies(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	tests := []struct {
		method string
		body   string
		want   string
	}{
		{"add_friend", `not json`, "bad json"},
		{"add_friend", `{"user":`, "bad json"},
		{"add_friend", `{"user":5}`, "bad json"},
		{"add_friend", `["bob"]`, "bad json"},
		{"add_friend", `"bob"`, "bad json"},
		{"add_friend", `{}`, "missing field"},
		{"add_friend", ``, "missing field"},
		{"add_friend", `null`, "missing field"},
		{"add_friend", `{"User":"","user":""}`, "missing field"},
		{"accept_friend", `{}`, "missing field"},
		{"remove_friend", `{"user":"bob","keep_seconds":"long"}`, "bad json"},
		{"history", `{}`, "missing field"},
		{"history", `{"feeds":"dm:alice:bob","limit":"all"}`, "bad json"},
		{"ack", `{"seq_id":1}`, "missing field"},
		{"create_feeds", `{"members":[]}`, "missing field"},
		{"create_feeds", `{"name":"g","members":"bob"}`, "bad json"},
		{"apply_join_feeds", `{}`, "missing field"},
		{"agree_join_feeds", `{"feeds":"g:x"}`, "missing field"},
		{"remove_feeds_member", `{"feeds":"g:x"}`, "missing field"},
		{"dissolve_feeds", `{}`, "missing field"},
		{"bind_thing", `{"code":"1"}`, "missing field"},
		{"unbind_thing", `{}`, "missing field"},
		{"associate", `{"b":"x"}`, "missing field"},
		{"register_device", `{}`, "missing field"},
		{"presence", `{"status":1}`, "bad json"},
		{"send", `{}`, "missing field"},
		{"send", `{"MsgId":"m1"}`, "bad request"},
		{"history_push", `{"messages":{}}`, "bad json"},
		{"history_push", `{"messages":[{}]}`, "missing field"},
		// Forbidden actions.
		{"send", string(mustJSON(text(wire.DM("alice", "bob"), "not friends"))), "forbidden"},
		{"pairing_code", `{}`, "forbidden"},
		{"history", `{"feeds":"dm:bob:carol"}`, "forbidden"},
	}
	for _, tt := range tests {
		a := answerOn(t, alice, wire.RequestTopic("modulus", tt.method, wire.NewMsgID()), 1, []byte(tt.body))
		wantError(t, fmt.Sprintf("%s(%s)", tt.method, tt.body), a.Error, tt.want)
	}
	stillUp(t, alice, "bad bodies")
	// Nothing above changed anything.
	wantRelation(t, bob, "alice", "", "")
}

// The methods that take {} must still refuse a body that is not JSON.
func TestBadJSONToMethodsWithoutArguments(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice")
	alice := c[0]
	for _, method := range []string{"peers", "list_relations", "list_feeds", "conversations", "token"} {
		a := answerOn(t, alice, wire.RequestTopic("modulus", method, wire.NewMsgID()), 1, []byte(`{not json`))
		wantError(t, method+"({not json)", a.Error, "bad json")
	}
	stillUp(t, alice, "bad JSON to argument-less methods")
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	_, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")

	// A message with the largest payload fits in a request.
	big := text(dm, "")
	big.Payload = mustJSON(strings.Repeat("p", wire.MaxPayloadLen-2))
	if len(big.Payload) != wire.MaxPayloadLen {
		t.Fatalf("payload is %d bytes, want %d", len(big.Payload), wire.MaxPayloadLen)
	}
	send(t, alice, big)
	if n := bob.News(); n.Message.MsgId != big.MsgId || len(n.Message.Payload) != wire.MaxPayloadLen {
		t.Errorf("bob news of the largest payload = %s with %d bytes, want %s with %d", n.Message.MsgId, len(n.Message.Payload), big.MsgId, wire.MaxPayloadLen)
	}

	// A body of exactly the limit is taken; one byte more is refused.
	padded := func(m wire.Message, size int) []byte {
		b := mustJSON(m)
		return append(b, bytes.Repeat([]byte(" "), size-len(b))...)
	}
	atLimit := text(dm, "padded to the limit")
	a := answerOn(t, alice, wire.RequestTopic("modulus", "send", "limit"), 1, padded(atLimit, wire.DefaultMaxBody))
	if a.Error != "" {
		t.Errorf("send of a body of exactly %d bytes = Error %q, want success", wire.DefaultMaxBody, a.Error)
	}
	over := text(dm, "one byte over")
	a = answerOn(t, alice, wire.RequestTopic("modulus", "send", "over"), 1, padded(over, wire.DefaultMaxBody+1))
	wantError(t, fmt.Sprintf("send of %d bytes", wire.DefaultMaxBody+1), a.Error, "too large")
	a = answerOn(t, alice, wire.RequestTopic("modulus", "send", "far-over"), 1, padded(text(dm, "x"), 3*wire.DefaultMaxBody))
	wantError(t, fmt.Sprintf("send of %d bytes", 3*wire.DefaultMaxBody), a.Error, "too large")
	stillUp(t, alice, "bodies over the limit")

	h := history(t, bob, dm, 0, 0)
	if len(h.Messages) != 2 || h.Messages[1].MsgId != atLimit.MsgId {
		t.Errorf("history after the limit tests = %d messages, want the largest payload and the one at the limit", len(h.Messages))
	}
	// history_push is held to the same limit.
	big2 := big
	big2.MsgId = wire.NewMsgID()
	push, _ := json.Marshal(wire.HistoryPushReq{Messages: []wire.Message{big, big2}})
	a = answerOn(t, alice, wire.RequestTopic("modulus", "history_push", "hp-over"), 1, push)
	wantError(t, fmt.Sprintf("history_push of %d bytes", len(push)), a.Error, "too large")
	stillUp(t, alice, "a history_push over the limit")
}
