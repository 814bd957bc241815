package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// feedMsg is the lamp's (or another thing's) unsigned state report in the
// feed of thing.
func feedMsg(thingName string, fb thing.Feedback) wire.Message {
	return wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.ThingFeeds(thingName), MsgType: wire.MsgTypeFeedback,
		Payload: mustJSON(fb), TimeCreate: time.Now().UnixMilli()}
}

func lampState(on bool) thing.Feedback {
	return thing.Feedback{Kind: thing.KindState, Props: map[string]json.RawMessage{"on": mustJSON(on)}, Rev: time.Now().UnixNano(), Cause: thing.CauseLocal}
}

// conversationFeeds lists the feeds of cl's conversations.
func conversationFeeds(t *testing.T, cl *servertest.Client) []string {
	t.Helper()
	var convs []wire.Conversation
	cl.OK(wire.MethodConversations, wire.Empty{}, &convs)
	var out []string
	for _, c := range convs {
		out = append(out, c.Feeds)
	}
	return out
}

// thingFeeds returns cl's list_thing_feeds answer by feeds.
func thingFeeds(t *testing.T, cl *servertest.Client) map[string][]string {
	t.Helper()
	var list []wire.Group
	cl.OK(wire.MethodListThingFeeds, wire.Empty{}, &list)
	out := make(map[string][]string)
	for _, g := range list {
		out[g.Feeds] = g.Members
	}
	return out
}

// A thing writes its state once into its feed; the persons bound to it
// and the things associated with it get it pushed, list the feed among
// their conversations and may pull it; nobody else may.
func TestThingFeedReaders(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	st := send(t, h.lamp, feedMsg("lamp", lampState(true)))
	if st.SeqId != 1 {
		t.Errorf("the lamp's first state in its feed got SeqId %d, want 1", st.SeqId)
	}
	for _, reader := range []*servertest.Client{h.alice, h.sw} {
		if n := reader.News(); n.Feeds != "t:lamp" || n.Message.MsgId != st.MsgId || n.Message.From != "lamp" {
			t.Errorf("%s: news %s %s from %s, want the lamp's state in t:lamp", reader.User, n.Feeds, n.Message.MsgId, n.Message.From)
		}
		if h := history(t, reader, "t:lamp", 0, 0); len(h.Messages) != 1 || h.Messages[0].MsgId != st.MsgId {
			t.Errorf("%s: history(t:lamp) = %d messages, want the state", reader.User, len(h.Messages))
		}
		if got := conversationFeeds(t, reader); !slices.Contains(got, "t:lamp") || !slices.Contains(got, "t:switch") {
			t.Errorf("%s: conversations %v, want t:lamp and t:switch among them", reader.User, got)
		}
	}
	if got := conversationFeeds(t, h.lamp); !slices.Contains(got, "t:lamp") {
		t.Errorf("lamp: conversations %v, want its own feed among them", got)
	}
	want := map[string][]string{"t:lamp": {"alice", "lamp", "switch"}, "t:switch": {"alice", "lamp", "switch"}}
	for _, cl := range []*servertest.Client{h.alice, h.lamp, h.sw} {
		if got := thingFeeds(t, cl); len(got) != 2 || !slices.Equal(got["t:lamp"], want["t:lamp"]) || !slices.Equal(got["t:switch"], want["t:switch"]) {
			t.Errorf("%s: list_thing_feeds = %v, want %v", cl.User, got, want)
		}
	}
	if got := thingFeeds(t, h.kettle); len(got) != 1 || !slices.Equal(got["t:kettle"], []string{"kettle"}) {
		t.Errorf("kettle: list_thing_feeds = %v, want its own feed, read by itself only", got)
	}
	for _, cl := range []*servertest.Client{h.bob, h.carol, h.dave} {
		cl.NoPush(wire.PushNews, quiet)
		wantError(t, cl.User+" pulls t:lamp", cl.Fail("history", wire.HistoryReq{Feeds: "t:lamp"}), "forbidden")
		wantError(t, cl.User+" acks in t:lamp", cl.Fail("ack", wire.AckReq{Feeds: "t:lamp", SeqID: 1}), "forbidden")
		if got := conversationFeeds(t, cl); slices.Contains(got, "t:lamp") {
			t.Errorf("%s: conversations %v hold t:lamp", cl.User, got)
		}
		if got := thingFeeds(t, cl); len(got) != 0 {
			t.Errorf("%s: list_thing_feeds = %v, want none", cl.User, got)
		}
	}
	// A reader offline gets what it missed when it connects again.
	h.sw.Close()
	missed := send(t, h.lamp, feedMsg("lamp", lampState(false)))
	h.alice.News()
	sw := dial(t, h.inst, "switch", h.sw.Device)
	if got := newsUntil(t, sw, "t:lamp", missed.SeqId); got[len(got)-1].Message.MsgId != missed.MsgId {
		t.Errorf("switch, back: the last news of t:lamp is %s, want the state it missed", got[len(got)-1].Message.MsgId)
	}

	// A person has no feed anyone reads.
	wantError(t, "alice pulls a person's feed", h.alice.Fail("history", wire.HistoryReq{Feeds: "t:dave"}), "forbidden")
}

// Only the thing writes its feed, and only state and events, by any way
// in: send, history_push (its own or relayed) and the s2s push.
func TestThingFeedWriters(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	doorCode := h.inst.AddUser(t, "door", password("door"), true)
	door, doorKey := signedUser(t, h.inst, "door")
	h.alice.OK("bind_thing", wire.BindThingReq{Thing: "door", Code: doorCode}, nil)
	h.alice.Drain(quiet)

	signedState := signMsg(t, doorKey, "door", feedMsg("door", lampState(true)))
	forgedByAlice := signMsg(t, h.aliceKey, "alice", feedMsg("door", lampState(false)))
	forgedBySwitch := signMsg(t, h.swKey, "switch", feedMsg("door", lampState(false)))
	for _, tt := range []struct {
		name string
		cl   *servertest.Client
		m    wire.Message
		want string
	}{
		{"a bound person, unsigned", h.alice, feedMsg("door", lampState(true)), "forbidden"},
		{"a bound person, signed", h.alice, forgedByAlice, "forbidden"},
		{"another thing", h.sw, forgedBySwitch, "forbidden"},
		{"another thing, unsigned", h.lamp, feedMsg("door", lampState(true)), "forbidden"},
		{"a stranger", h.bob, feedMsg("door", lampState(true)), "forbidden"},
		{"the thing, a text", door, func() wire.Message {
			m := text("t:door", "hello")
			return m
		}(), "forbidden"},
		{"the thing, a result", door, feedMsg("door", thing.Feedback{Kind: thing.KindResult, Cmd: "c1", Status: "done"}), "forbidden"},
		{"the thing, its description", door, feedMsg("door", thing.Feedback{Kind: thing.KindDescription,
			Description: &thing.Description{Thing: "door", Version: 1}}), "forbidden"},
		{"the thing, a command", door, func() wire.Message {
			m := commandMsg("door", "lamp", personCommand("door", "toggle"))
			m.Feeds = "t:door"
			return m
		}(), "forbidden"},
		{"the thing, malformed state", door, feedMsg("door", thing.Feedback{Kind: thing.KindState}), "bad request"},
		{"a person's feed", h.alice, feedMsg("alice", lampState(true)), "forbidden"},
	} {
		wantError(t, "send: "+tt.name, tt.cl.Fail("send", tt.m), tt.want)
		wantError(t, "history_push: "+tt.name, tt.cl.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{tt.m}}), tt.want)
	}
	// A stranger cannot relay the thing's signed state either.
	wantError(t, "a stranger relays", h.bob.Fail("history_push", wire.HistoryPushReq{Messages: []wire.Message{signedState}}), "forbidden")
	h.alice.NoPush(wire.PushNews, quiet)
	wantNothingIn(t, h.alice, "t:door")

	// The s2s push writes as From, under the same rule.
	push := h.inst.HTTP + "/v1/s2s/push"
	forged := feedMsg("door", lampState(true))
	forged.From = "alice"
	if status, body := call(t, http.MethodPost, push, bearer(s2sSecret), mustJSON(forged)); status != http.StatusForbidden {
		t.Errorf("POST /v1/s2s/push (alice into t:door) = %d %s, want 403", status, body)
	}

	// A reader relays the thing's signed state (it came by gossip): stored
	// under the thing, pushed to the other readers.
	var rows []wire.SeqResult
	h.alice.OK("history_push", wire.HistoryPushReq{Messages: []wire.Message{signedState}}, &rows)
	if len(rows) != 1 || rows[0].SeqId != 1 || rows[0].From != "door" {
		t.Fatalf("alice relays the door's state: %+v, want SeqId 1 from door", rows)
	}
	if n := door.News(); n.Message.MsgId != signedState.MsgId {
		t.Errorf("door: news %s, want its own state relayed by alice", n.Message.MsgId)
	}
	own := send(t, door, feedMsg("door", thing.Feedback{Kind: thing.KindEvent, Event: "opened", Cause: thing.CauseLocal}))
	if own.SeqId != 2 {
		t.Errorf("the door's event got SeqId %d, want 2", own.SeqId)
	}
	ok := feedMsg("door", lampState(false))
	ok.From = "door"
	if status, body := call(t, http.MethodPost, push, bearer(s2sSecret), mustJSON(ok)); status != http.StatusOK {
		t.Errorf("POST /v1/s2s/push (the door's own state) = %d %s, want 200", status, body)
	}
}

// A person unbound from a thing stops reading its feed at once: no push,
// no pull, not among its conversations; the other readers are told, so
// their nodes drop its devices from the feed's mesh.
func TestThingFeedUnbind(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	before := send(t, h.lamp, feedMsg("lamp", lampState(true)))
	h.alice.News()
	h.sw.News()

	h.alice.OK("unbind_thing", wire.BindThingReq{Thing: "lamp"}, nil)
	if ev := relationEvent(t, h.sw, "group_members"); ev.User != "alice" || ev.Feeds != "t:lamp" {
		t.Errorf("switch: relation event %+v, want group_members of t:lamp about alice", ev)
	}
	after := send(t, h.lamp, feedMsg("lamp", lampState(false)))
	if n := h.sw.News(); n.Message.MsgId != after.MsgId {
		t.Errorf("switch: news %s, want the state sent after the unbinding", n.Message.MsgId)
	}
	h.alice.NoPush(wire.PushNews, quiet)
	wantError(t, "the former owner pulls", h.alice.Fail("history", wire.HistoryReq{Feeds: "t:lamp"}), "forbidden")
	if got := conversationFeeds(t, h.alice); slices.Contains(got, "t:lamp") {
		t.Errorf("alice: conversations %v still hold t:lamp", got)
	}
	if got := thingFeeds(t, h.sw)["t:lamp"]; !slices.Equal(got, []string{"lamp", "switch"}) {
		t.Errorf("switch: readers of t:lamp %v, want lamp and switch", got)
	}
	// The feed is whole for those who still read it.
	var held wire.HistoryResult
	h.sw.OK("history", wire.HistoryReq{Feeds: "t:lamp"}, &held)
	if len(held.Messages) != 2 || held.Messages[0].MsgId != before.MsgId {
		t.Fatalf("switch: history(t:lamp) = %d messages, want both states", len(held.Messages))
	}

	// Bound again, it reads the feed again, history included.
	bindAgain(t, h.alice, h.lamp)
	if h := history(t, h.alice, "t:lamp", 0, 0); len(h.Messages) != 2 {
		t.Errorf("alice bound again: history(t:lamp) = %d messages, want 2", len(h.Messages))
	}
}

// A reader may subscribe to feeds/t/<thing> and gets the feed's messages
// there; a subscription makes nobody a reader: a stranger's and a friend's
// of the owner are refused and get nothing.
func TestThingFeedSubscription(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	st := send(t, h.lamp, feedMsg("lamp", lampState(true)))
	sub := dial(t, h.inst, "alice", "alice-sub")
	if code := subscribeQoS(t, sub, "feeds/t/lamp", 1); code != 1 {
		t.Fatalf("alice subscribes to feeds/t/lamp: SUBACK %#x, want 1", code)
	}
	if got := messagesOn(t, sub, "feeds/t/lamp", 1); got[0].MsgId != st.MsgId {
		t.Errorf("alice's subscription replayed %s, want the lamp's state", got[0].MsgId)
	}
	next := send(t, h.lamp, feedMsg("lamp", lampState(false)))
	if got := messagesOn(t, sub, "feeds/t/lamp", 1); got[0].MsgId != next.MsgId {
		t.Errorf("alice's subscription got %s, want the lamp's new state", got[0].MsgId)
	}
	for _, who := range []string{"bob", "dave"} {
		cl := dial(t, h.inst, who, who+"-sub")
		if code := subscribeQoS(t, cl, "feeds/t/lamp", 1); code != 0x80 {
			t.Errorf("%s subscribes to feeds/t/lamp: SUBACK %#x, want 0x80", who, code)
		}
		send(t, h.lamp, feedMsg("lamp", lampState(true)))
		nothingMore(t, cl)
	}
}

// A thing without a node may write its feed too (unsigned, as all its
// messages): its readers get the report, and the server runs its rules on
// it as on a report in a dm.
func TestPlainThingFeedFiresRules(t *testing.T) {
	t.Parallel()
	h := newPlainHome(t)
	rule := h.addRule(t, "door-lamp", "door", "opened", "lamp", "toggle")
	h.door.Drain(quiet)
	h.lamp.Drain(quiet)

	ev := feedMsg("door", thing.Feedback{Kind: thing.KindEvent, Event: "opened", Cause: thing.CauseLocal})
	send(t, h.door, ev)
	if n := h.alice.News(); n.Feeds != "t:door" || n.Message.MsgId != ev.MsgId || n.Message.From != "door" {
		t.Errorf("alice: news %s %s from %s, want the door's event in t:door", n.Feeds, n.Message.MsgId, n.Message.From)
	}
	m, c := nextCommand(t, h.lamp)
	if m.From != "door" || c.Action != "toggle" || c.Trace.Rule != rule.ID || c.Trace.OriginMsg != ev.MsgId {
		t.Errorf("the rule's command: from %s, %+v; want the door's toggle under %s caused by %s", m.From, c, rule.ID, ev.MsgId)
	}
	h.bob.NoPush(wire.PushNews, quiet)
}
