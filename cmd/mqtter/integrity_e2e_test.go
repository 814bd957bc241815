package main_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// TestMsgIdTakenByTheRecipient is the MsgId race with real nodes: alice's
// message reaches bob's node directly while the server is down; when the
// server is back, bob (from a plain MQTT client of his account) sends his
// own text under alice's MsgId before alice's node can push hers. In the
// end alice's message, with her text, is on the server, on both nodes and
// on a new device of alice's, and bob's is there as bob's own.
func TestMsgIdTakenByTheRecipient(t *testing.T) {
	t.Parallel()
	srv, data, alice, bob := aliceAndBob(t)
	if err := srv.stop(t); err != nil {
		t.Fatalf("server after SIGTERM: %v", err)
	}
	alice.eventually(15*time.Second, "it sees the server gone", func() (bool, string) {
		st := alice.status()
		return st.Server == node.ServerDisconnected, st.Server
	})
	id := alice.send("bob", "the real text")
	if m := bob.received("alice", id); m.Via != "p2p" {
		t.Fatalf("bob got %s via %q, want p2p", id, m.Via)
	}

	srv = startServerAt(t, data, srv.mqtt, srv.http)
	evil, err := servertest.TryDial(t, "tcp://"+srv.mqtt, "bob", "bob-pw", "bob-plain")
	if err != nil {
		t.Fatalf("bob's plain client: %v", err)
	}
	var res wire.SendResult
	evil.OK("send", wire.Message{MsgId: id, Feeds: "dm:alice:bob", MsgType: "text",
		Payload: json.RawMessage(`{"text":"bob's text under alice's MsgId"}`), TimeCreate: time.Now().UnixMilli()}, &res)
	t.Logf("bob's message under %s got SeqId %d", id, res.SeqId)

	newcomer := startNode(t, "tcp://"+srv.mqtt, t.TempDir(), "alice", "alice-pw")
	want := map[string]string{"alice": "the real text", "bob": "bob's text under alice's MsgId"}
	holds := func(h []node.HistoryEntry) (bool, string) {
		got := make(map[string]string)
		for _, m := range h {
			if m.MsgId != id {
				continue
			}
			var p struct{ Text string }
			if err := json.Unmarshal(m.Payload, &p); err != nil || m.SeqId == 0 {
				return false, fmt.Sprintf("%s of %s: SeqId %d payload %s", id, m.From, m.SeqId, m.Payload)
			}
			if _, dup := got[m.From]; dup {
				return false, fmt.Sprintf("%s of %s twice", id, m.From)
			}
			got[m.From] = p.Text
		}
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("%s: %v, want %v", id, got, want)
	}
	for _, n := range []*nodeProc{alice, bob, newcomer} {
		n.eventually(30*time.Second, "it holds both messages under their authors", func() (bool, string) {
			n.cli("sync")
			return holds(n.history(map[string]string{"alice": "bob", "bob": "alice"}[n.user]))
		})
	}
	u := "http://" + srv.http + "/v1/history?limit=100&feeds=" + url.QueryEscape("dm:alice:bob")
	status, body := get(t, u, "alice:alice-pw")
	var page wire.HistoryResult
	if err := wire.DecodeAnswer([]byte(body), &page); status != 200 || err != nil {
		t.Fatalf("GET %s = %d %v: %s", u, status, err, body)
	}
	var entries []node.HistoryEntry
	for _, m := range page.Messages {
		entries = append(entries, node.HistoryEntry{Message: m})
	}
	if ok, why := holds(entries); !ok {
		t.Errorf("the server's history: %s", why)
	}
	if st := alice.status(); st.Outbox != 0 {
		t.Errorf("alice's outbox = %d, want 0", st.Outbox)
	}
}
