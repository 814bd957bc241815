package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/p2p"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// fixedKey is a device key from a fixed seed, so that the signed seeds stay
// valid in the fuzz cache from one run to the next.
func fixedKey(tb testing.TB, seed byte) (crypto.PrivKey, peer.ID) {
	tb.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(s))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return key, id
}

// newReceiveNode returns a Node with just what handlePacket needs: bob's
// identity, a real store, a book that knows alice's and bob's devices,
// alice as bob's friend and a group of both, and the ingester. It has no host and no server link.
func newReceiveNode(tb testing.TB, self peer.ID, alice peer.ID) *Node {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	db, err := localdb.Open(context.Background(), filepath.Join(tb.TempDir(), databaseFile), log)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg: Config{User: "bob"}, log: log, self: self, db: db,
		book: newBook("bob"),
		ctx:  ctx, cancel: cancel,
	}
	n.book.setPeers([]wire.PeerInfo{
		{User: "alice", Device: alice.String()},
		{User: "bob", Device: self.String()},
	})
	n.book.setRelations([]wire.Relation{{User: "alice", Kind: wire.KindPerson, State: wire.StateFriend}})
	n.book.setGroups([]wire.Group{{Feeds: "g:team", Name: "team", Owner: "alice", Members: []string{"alice", "bob"}}})
	n.events = newEvents(func() {})
	n.ingest = newIngester(n)
	tb.Cleanup(func() {
		n.cancel()
		n.ingest.close()
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return n
}

// storedIDs returns the MsgIds the node holds. Everything handlePacket
// stores is unsequenced, and nothing else writes to this store.
func storedIDs(tb testing.TB, n *Node) map[string]wire.Message {
	tb.Helper()
	msgs, err := n.db.Unsequenced(context.Background(), 0)
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[string]wire.Message, len(msgs))
	for _, m := range msgs {
		out[m.MsgId] = m
	}
	return out
}

// FuzzHandlePacket feeds arbitrary frames to the direct stream handler. It
// must never panic, must always answer with a well-formed answer whose
// Error has one of the known kinds, and must accept (and store before
// answering) only a valid, unsequenced message signed by the very device
// that sent it, which belongs to From, in a conversation of this account;
// a refused message is not stored.
func FuzzHandlePacket(f *testing.F) {
	aliceKey, alice := fixedKey(f, 1)
	_, bob := fixedKey(f, 2)
	strangerKey, stranger := fixedKey(f, 3)
	n := newReceiveNode(f, bob, alice)

	send := wire.RequestTopic(bob.String(), wire.MethodSend, "1")
	message := func(mutate func(*wire.Message), key crypto.PrivKey) []byte {
		m := wire.Message{
			MsgId: "01JD0000000000000000000001", Feeds: wire.DM("alice", "bob"), MsgType: wire.MsgTypeText,
			From: "alice", Payload: json.RawMessage(`{"text":"hi"}`), TimeCreate: 1732240000000,
		}
		if mutate != nil {
			mutate(&m)
		}
		if key != nil {
			if err := m.Sign(key); err != nil {
				f.Fatal(err)
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	tampered := message(nil, aliceKey)
	tampered = []byte(strings.Replace(string(tampered), `"hi"`, `"hI"`, 1))

	seeds := []struct {
		name      string
		topic     string
		body      []byte
		fromAlice bool
		want      string // the answer's Error prefix; "" for success
	}{
		{"dm", send, message(nil, aliceKey), true, ""},
		{"group", send, message(func(m *wire.Message) { m.MsgId = "g1"; m.Feeds = "g:team" }, aliceKey), true, ""},
		{"again", send, message(nil, aliceKey), true, ""}, // a duplicate is answered like the first
		{"tampered", send, tampered, true, errForbidden},
		{"unsigned", send, message(nil, nil), true, errForbidden},
		{"sequenced", send, message(func(m *wire.Message) { m.MsgId = "s1"; m.SeqId = 7 }, aliceKey), true, errBadRequest},
		{"relayed", send, message(func(m *wire.Message) { m.MsgId = "r1" }, aliceKey), false, errForbidden},
		{"stranger's device", send, message(func(m *wire.Message) { m.MsgId = "x1" }, strangerKey), false, errForbidden},
		{"as someone else", send, message(func(m *wire.Message) { m.MsgId = "c1"; m.From = "carol"; m.Feeds = wire.DM("bob", "carol") }, aliceKey), true, errForbidden},
		{"not our dm", send, message(func(m *wire.Message) { m.MsgId = "d1"; m.Feeds = wire.DM("alice", "carol") }, aliceKey), true, errForbidden},
		{"not our group", send, message(func(m *wire.Message) { m.MsgId = "g2"; m.Feeds = "g:other" }, aliceKey), true, errForbidden},
		{"bad type", send, message(func(m *wire.Message) { m.MsgId = "t1"; m.MsgType = "shout" }, aliceKey), true, errBadRequest},
		{"other device", wire.RequestTopic(alice.String(), wire.MethodSend, "1"), message(nil, aliceKey), true, wire.AnswerNoSuchNode},
		{"push scheme", "impush://" + bob.String() + "/send", message(nil, aliceKey), true, wire.AnswerUnsupportedScheme},
		{"unknown method", wire.RequestTopic(bob.String(), "recall", "1"), message(nil, aliceKey), true, errUnknownMethod},
		{"bad topic", "not a topic", nil, true, errBadRequest},
		{"empty", "", nil, true, errBadRequest},
		{"empty body", send, nil, true, errBadRequest},
		{"null body", send, []byte("null"), true, errBadRequest},
		{"wrong types", send, []byte(`{"MsgId":1,"Payload":"x"}`), true, errBadRequest},
		{"deep payload", send, []byte(`{"MsgId":"p1","Feeds":"dm:alice:bob","MsgType":"text","From":"alice","Payload":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`), true, errBadRequest},
	}
	for _, s := range seeds {
		// The seeds must reach the paths they are for, or the fuzzer
		// would spend its time short of the signature check.
		a, err := wire.ParseAnswer(n.handlePacket(context.Background(), peerFor(s.fromAlice, alice, stranger), s.topic, s.body))
		if err != nil {
			f.Fatalf("seed %s: %v", s.name, err)
		}
		if s.want == "" && a.Error != "" || s.want != "" && !strings.HasPrefix(a.Error, s.want+":") {
			f.Fatalf("seed %s: answer Error %q, want prefix %q", s.name, a.Error, s.want)
		}
		f.Add(s.topic, s.body, s.fromAlice)
	}
	if got := storedIDs(f, n); len(got) != 2 {
		f.Fatalf("after the seeds the store holds %d messages, want the 2 accepted ones: %v", len(got), got)
	}

	f.Fuzz(func(t *testing.T, topic string, body []byte, fromAlice bool) {
		from := peerFor(fromAlice, alice, stranger)
		before := storedIDs(t, n)
		raw := n.handlePacket(context.Background(), from, topic, body)
		checkDirectAnswer(t, bob, alice, from, topic, body, raw, before, storedIDs(t, n), nil)
	})
}

// FuzzHandleBurst feeds arbitrary frames to the direct stream handler as
// one burst (as a peer writes them back to back): each gets exactly one
// answer, under the rules of FuzzHandlePacket, whatever the others are.
func FuzzHandleBurst(f *testing.F) {
	aliceKey, alice := fixedKey(f, 1)
	_, bob := fixedKey(f, 2)
	_, stranger := fixedKey(f, 3)
	n := newReceiveNode(f, bob, alice)
	send := wire.RequestTopic(bob.String(), wire.MethodSend, "1")
	signedText := func(id, text string) []byte {
		m := wire.Message{MsgId: id, Feeds: wire.DM("alice", "bob"), MsgType: wire.MsgTypeText,
			From: "alice", Payload: json.RawMessage(`{"text":"` + text + `"}`), TimeCreate: 1732240000000}
		if err := m.Sign(aliceKey); err != nil {
			f.Fatal(err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	good := signedText("01JD0000000000000000000011", "one")
	f.Add(send, good, send, signedText("01JD0000000000000000000012", "two"), 5, true)
	f.Add(send, good, send, []byte(strings.Replace(string(good), `"one"`, `"One"`, 1)), 4, true)
	f.Add(send, []byte(`{"MsgId":`), "not a topic", good, 3, true)
	f.Add(wire.RequestTopic(bob.String(), "recall", "1"), good, send, good, 2, false)
	f.Fuzz(func(t *testing.T, topic1 string, body1 []byte, topic2 string, body2 []byte, count int, fromAlice bool) {
		from := peerFor(fromAlice, alice, stranger)
		count = 2 + abs(count)%7 // 2 to 8 requests, alternating the two
		before := storedIDs(t, n)
		answers := make([]chan []byte, count)
		reqs := make([]p2p.Request, count)
		for i := range reqs {
			topic, body := topic1, body1
			if i%2 == 1 {
				topic, body = topic2, body2
			}
			ch := make(chan []byte, 2)
			answers[i] = ch
			reqs[i] = p2p.Request{Topic: topic, Body: body, Answer: func(b []byte) { ch <- b }}
		}
		n.handleBurst(from, reqs)
		// A message refused in one place may be accepted in another.
		accepted := map[string]bool{}
		raws := make([][]byte, count)
		for i, ch := range answers {
			select {
			case raws[i] = <-ch:
			case <-time.After(10 * time.Second):
				t.Fatalf("request %d of the burst never answered", i)
			}
			if len(ch) != 0 {
				t.Fatalf("request %d of the burst answered twice", i)
			}
			if a, err := wire.ParseAnswer(raws[i]); err == nil && a.Error == "" {
				var m wire.Message
				if json.Unmarshal(reqs[i].Body, &m) == nil {
					accepted[m.MsgId] = true
				}
			}
		}
		after := storedIDs(t, n)
		for i := range reqs {
			checkDirectAnswer(t, bob, alice, from, reqs[i].Topic, reqs[i].Body, raws[i], before, after, accepted)
		}
	})
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

// checkDirectAnswer checks raw, the answer to a direct request (topic,
// body) from device from to bob's node, whose store held before and then
// after: well formed, of a known kind,
// and an accepted message valid, signed by alice's device, stored; a
// refused one not stored, unless before held it or the same burst accepted
// it elsewhere (alsoAccepted).
func checkDirectAnswer(t *testing.T, bob, alice, from peer.ID, topic string, body, raw []byte, before, after map[string]wire.Message, alsoAccepted map[string]bool) {
	t.Helper()
	kinds := []string{errBadRequest, errForbidden, errUnknownMethod, wire.AnswerUnsupportedScheme, wire.AnswerNoSuchNode}
	var m wire.Message
	decoded := json.Unmarshal(body, &m) == nil
	a, err := wire.ParseAnswer(raw)
	if err != nil {
		t.Fatalf("handlePacket(%q, %q) = %q, not an answer: %v", topic, body, raw, err)
	}

	if a.Error != "" {
		if string(a.Result) != "null" {
			t.Fatalf("failed answer %q carries a Result", raw)
		}
		if !knownKind(a.Error, kinds) {
			t.Fatalf("handlePacket(%q, %q) Error %q is of no known kind", topic, body, a.Error)
		}
		if _, was := before[m.MsgId]; decoded && !was && !alsoAccepted[m.MsgId] {
			if _, now := after[m.MsgId]; now {
				t.Fatalf("refused message stored: %q (%s)", body, a.Error)
			}
		}
		if !decoded && len(after) != len(before) && alsoAccepted == nil {
			t.Fatalf("refused message stored: %q (%s)", body, a.Error)
		}
		return
	}

	tp, err := wire.ParseTopic(topic)
	if err != nil || tp.Scheme != wire.SchemeIM || tp.Host != bob.String() || tp.Method() != wire.MethodSend {
		t.Fatalf("accepted a packet on topic %q (%+v, %v)", topic, tp, err)
	}
	if !decoded {
		t.Fatalf("accepted a body that does not decode: %q", body)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("accepted an invalid message: %v", err)
	}
	if err := m.Verify(); err != nil {
		t.Fatalf("accepted a message whose signature fails: %v", err)
	}
	if m.SeqId != 0 || m.Device != from.String() || m.From != "alice" || from != alice {
		t.Fatalf("accepted %+v from %s", m, from)
	}
	var result map[string]string
	if err := a.Decode(&result); err != nil || result["MsgId"] != m.MsgId {
		t.Fatalf("answer %q: result %v, %v; want MsgId %q", raw, result, err, m.MsgId)
	}
	got, ok := after[m.MsgId]
	if !ok {
		t.Fatalf("answered %s before it was stored", m.MsgId)
	}
	if _, dup := before[m.MsgId]; !dup && (got.From != m.From || got.Device != m.Device || got.Feeds != m.Feeds || got.Sig != m.Sig) {
		t.Fatalf("stored %+v, want %+v", got, m)
	}
}

func peerFor(fromAlice bool, alice, stranger peer.ID) peer.ID {
	if fromAlice {
		return alice
	}
	return stranger
}

func knownKind(msg string, kinds []string) bool {
	for _, k := range kinds {
		if strings.HasPrefix(msg, k+":") {
			return true
		}
	}
	return false
}

// FuzzValidateGossip feeds arbitrary gossiped messages, on arbitrary
// topics, to the validator of the group topics and things' feeds. It must
// never panic, and must accept only a valid, unsequenced message of the
// topic's group, signed by a device of From, and From a member, or in the
// feed t:alice (which bob's book lists), alice's own state or event;
// whatever it accepts it hands on parsed, as it was signed.
func FuzzValidateGossip(f *testing.F) {
	aliceKey, alice := fixedKey(f, 1)
	_, bob := fixedKey(f, 2)
	strangerKey, _ := fixedKey(f, 3)
	n := newReceiveNode(f, bob, alice)
	n.book.setThingFeeds([]wire.Group{{Feeds: "t:alice", Name: "alice", Owner: "alice", Members: []string{"alice", "bob"}}})
	signed := func(feeds string, key crypto.PrivKey, mutate func(*wire.Message)) []byte {
		m := wire.Message{MsgId: "01JD0000000000000000000021", Feeds: feeds, MsgType: wire.MsgTypeText,
			From: "alice", Payload: json.RawMessage(`{"text":"hi all"}`), TimeCreate: 1732240000000}
		if err := m.Sign(key); err != nil {
			f.Fatal(err)
		}
		if mutate != nil {
			mutate(&m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	signedWith := func(feeds string, key crypto.PrivKey, before func(*wire.Message)) []byte {
		m := wire.Message{MsgId: "01JD0000000000000000000022", Feeds: feeds, From: "alice", TimeCreate: 1732240000000}
		before(&m)
		if err := m.Sign(key); err != nil {
			f.Fatal(err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	team := gossipTopic("g:team")
	good := signed("g:team", aliceKey, nil)
	f.Add(team, good)
	f.Add(gossipTopic("g:other"), good)
	f.Add(team, signed(wire.DM("alice", "bob"), aliceKey, nil))
	f.Add(team, signed("g:team", strangerKey, nil))
	f.Add(team, signed("g:team", aliceKey, func(m *wire.Message) { m.SeqId = 7 }))
	f.Add(team, signed("g:team", aliceKey, func(m *wire.Message) { m.From = "bob" }))
	f.Add(team, []byte(strings.Replace(string(good), "hi all", "hi All", 1)))
	f.Add("/mqtter/feeds/1/", []byte(`{"MsgId":`))
	feed := gossipTopic("t:alice")
	state := func(m *wire.Message) {
		m.MsgType, m.Payload = wire.MsgTypeFeedback, json.RawMessage(`{"kind":"state","props":{"on":true},"rev":1,"cause":"local"}`)
	}
	f.Add(feed, signedWith("t:alice", aliceKey, state))
	f.Add(feed, signed("t:alice", aliceKey, nil))
	f.Add(gossipTopic("t:bob"), signedWith("t:bob", aliceKey, state))
	f.Add(feed, signedWith("t:alice", aliceKey, func(m *wire.Message) {
		state(m)
		m.Payload = json.RawMessage(`{"kind":"result","cmd":"c","status":"done"}`)
	}))
	f.Fuzz(func(t *testing.T, topic string, data []byte) {
		val, v := n.validateGossip(context.Background(), alice, topic, data)
		if v != p2p.Accept {
			if val != nil {
				t.Fatalf("verdict %v with a value %v", v, val)
			}
			return
		}
		m, ok := val.(*wire.Message)
		if !ok {
			t.Fatalf("accepted with value %T, want *wire.Message", val)
		}
		feeds, ok := feedsOfTopic(topic)
		if !ok || feeds != "g:team" && feeds != "t:alice" || m.Feeds != feeds {
			t.Fatalf("accepted %s on topic %q", m.Feeds, topic)
		}
		if feeds == "t:alice" {
			fb, err := thing.ParseFeedback(m.Payload)
			if m.MsgType != wire.MsgTypeFeedback || err != nil || fb.Kind != thing.KindState && fb.Kind != thing.KindEvent {
				t.Fatalf("accepted a %s (%v) in alice's feed", m.MsgType, err)
			}
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted an invalid message: %v", err)
		}
		if m.SeqId != 0 || m.Verify() != nil || m.From != "alice" || m.Device != alice.String() {
			t.Fatalf("accepted %+v: want unsequenced, signed by alice's device", m)
		}
	})
}
