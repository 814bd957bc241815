package server_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob", "carol", "dave")
	lampCode := inst.AddUser(t, "lamp", password("lamp"), true)
	alice, bob := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	carol, dave := dial(t, inst, "carol", "carol-1"), dial(t, inst, "dave", "dave-1")
	befriend(t, alice, bob)
	befriend(t, alice, dave)
	alice.OK("remove_friend", map[string]any{"user": "dave", "keep_seconds": 3600}, nil)
	carol.OK("add_friend", map[string]string{"user": "alice"}, nil)
	alice.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: lampCode}, nil)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "g", Members: []string{"bob"}}, &g)
	dm := wire.DM("alice", "bob")
	var sent []wire.Message
	for i := range 3 {
		m := text(dm, fmt.Sprint("before ", i))
		send(t, alice, m)
		sent = append(sent, m)
	}
	send(t, bob, text(g.Feeds, "g1"))
	send(t, bob, text(g.Feeds, "g2"))
	bob.OK("ack", wire.AckReq{Feeds: dm, SeqID: 2}, nil)
	var tok wire.Token
	alice.OK("token", wire.Empty{}, &tok)
	relsBefore := relations(t, alice)
	var feedsBefore []wire.Group
	alice.OK("list_feeds", wire.Empty{}, &feedsBefore)
	histBefore := history(t, alice, dm, 0, 0)
	for _, cl := range []*servertest.Client{alice, bob, carol, dave} {
		cl.Close()
	}

	inst.Restart(t)

	alice = dial(t, inst, "alice", "alice-1")
	if got := relations(t, alice); !maps.Equal(got, relsBefore) {
		t.Errorf("list_relations after restart = %+v, want %+v", got, relsBefore)
	}
	var feedsAfter []wire.Group
	alice.OK("list_feeds", wire.Empty{}, &feedsAfter)
	if len(feedsAfter) != 1 || feedsAfter[0].Feeds != g.Feeds || !slices.Equal(feedsAfter[0].Members, feedsBefore[0].Members) {
		t.Errorf("list_feeds after restart = %+v, want %+v", feedsAfter, feedsBefore)
	}
	histAfter := history(t, alice, dm, 0, 0)
	a, _ := json.Marshal(histAfter)
	b, _ := json.Marshal(histBefore)
	if string(a) != string(b) {
		t.Errorf("history after restart = %s, want %s", a, b)
	}
	alice.OK("restore_friend", map[string]string{"user": "dave"}, nil)

	// SeqIds continue; MsgIds still dedupe.
	if got := send(t, alice, text(dm, "after")).SeqId; got != 4 {
		t.Errorf("first dm send after restart: SeqId = %d, want 4", got)
	}
	if got := send(t, alice, text(g.Feeds, "after")).SeqId; got != 3 {
		t.Errorf("first group send after restart: SeqId = %d, want 3", got)
	}
	if got := send(t, alice, sent[2]).SeqId; got != 3 {
		t.Errorf("retried send of SeqId 3 after restart: SeqId = %d, want 3", got)
	}
	var res []wire.SeqResult
	alice.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{sent[0], text(dm, "pushed")}}, &res)
	if len(res) != 2 || res[0].SeqId != 1 || res[1].SeqId != 5 {
		t.Errorf("history_push after restart = %+v, want SeqIds 1 and 5", res)
	}

	// bob's cursor survived: dm from 3, the group from the start.
	_, _, news := replayed(t, inst, "bob", "bob-1", map[string]int64{dm: 5, g.Feeds: 3})
	want := map[string][]int64{dm: {3, 4, 5}, g.Feeds: {1, 2, 3}}
	if got := newsSeqs(news); !slices.Equal(got[dm], want[dm]) || !slices.Equal(got[g.Feeds], want[g.Feeds]) {
		t.Errorf("bob's replay after restart = %v, want %v", got, want)
	}
	// Device bindings and API tokens survived.
	if cl, err := servertest.TryDial(t, inst.MQTT, "carol", password("carol"), "bob-1"); err == nil {
		cl.Close()
		t.Errorf("carol CONNECT as bob-1 after restart = accepted, want refused")
	}
	status, ans := apiGet(t, inst, "/v1/history?feeds="+url.QueryEscape(dm), bearer(tok.Token))
	var h wire.HistoryResult
	if err := ans.Decode(&h); status != 200 || err != nil || h.LastSeqID != 5 {
		t.Errorf("GET /v1/history with a token from before the restart = %d %+v (%v), want 200 last 5", status, h, err)
	}
}

func TestConcurrentSendsOneGroup(t *testing.T) {
	t.Parallel()
	const clients, each = 5, 200
	inst := servertest.Start(t)
	names := make([]string, clients)
	for i := range names {
		names[i] = fmt.Sprint("user", i)
	}
	people(t, inst, names...)
	cls := make([]*servertest.Client, clients)
	for i, n := range names {
		cls[i] = dial(t, inst, n, n+"-1")
	}
	for _, cl := range cls[1:] {
		befriend(t, cls[0], cl)
	}
	var g wire.FeedsReq
	cls[0].OK("create_feeds", wire.CreateFeedsReq{Name: "busy", Members: names[1:]}, &g)

	var wg sync.WaitGroup
	sent := make([][]string, clients) // MsgIds each client sent, in order
	errs := make(chan error, clients*each)
	for i, cl := range cls {
		wg.Go(func() {
			last := int64(0)
			for k := range each {
				m := text(g.Feeds, fmt.Sprint(cl.User, " ", k))
				raw, err := cl.Raw(wire.RequestTopic("modulus", "send", m.MsgId), mustJSON(m))
				if err != nil {
					errs <- err
					return
				}
				ans, err := wire.ParseAnswer(raw)
				var r wire.SendResult
				if err == nil {
					err = ans.Decode(&r)
				}
				if err != nil {
					errs <- fmt.Errorf("%s send %d: %v", cl.User, k, err)
					return
				}
				if r.SeqId <= last {
					errs <- fmt.Errorf("%s send %d: SeqId %d after %d, want increasing", cl.User, k, r.SeqId, last)
				}
				last = r.SeqId
				sent[i] = append(sent[i], m.MsgId)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	var all []wire.Message
	for after := int64(0); ; {
		h := history(t, cls[0], g.Feeds, after, 1000)
		all = append(all, h.Messages...)
		if len(h.Messages) == 0 || h.Messages[len(h.Messages)-1].SeqId >= h.LastSeqID {
			if h.LastSeqID != clients*each {
				t.Errorf("history last_seq_id = %d, want %d", h.LastSeqID, clients*each)
			}
			break
		}
		after = h.Messages[len(h.Messages)-1].SeqId
	}
	if got := seqIDs(all); !slices.Equal(got, span(1, clients*each)) {
		t.Fatalf("history SeqIds = %d values from %v, want exactly 1..%d", len(got), got[:min(len(got), 5)], clients*each)
	}
	// Every sent message is there once, and each sender's in its order.
	at := make(map[string]int64)
	for _, m := range all {
		if _, dup := at[m.MsgId]; dup {
			t.Errorf("MsgId %s stored twice", m.MsgId)
		}
		at[m.MsgId] = m.SeqId
	}
	for i, ids := range sent {
		prev := int64(0)
		for k, id := range ids {
			seq, ok := at[id]
			if !ok || seq <= prev {
				t.Errorf("%s message %d: SeqId %d (stored %v) after %d, want stored and in send order", names[i], k, seq, ok, prev)
				break
			}
			prev = seq
		}
	}
	// Every member got every message it did not send itself.
	for _, cl := range cls {
		got := 0
		for got < (clients-1)*each {
			cl.News()
			got++
		}
	}
}
