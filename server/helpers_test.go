package server_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// quiet is how long a test waits to be sure a push does not come.
const quiet = 300 * time.Millisecond

// password is the password the tests give account name.
func password(name string) string { return "pw-" + name }

// people adds persons with their test passwords.
func people(t *testing.T, inst *servertest.Instance, names ...string) {
	t.Helper()
	for _, n := range names {
		inst.AddUser(t, n, password(n), false)
	}
}

// dial connects device of account name with its test password.
func dial(t *testing.T, inst *servertest.Instance, name, device string) *servertest.Client {
	t.Helper()
	return servertest.Dial(t, inst, name, password(name), device)
}

// start starts a server with persons names and connects device "<name>-1"
// of each, in order.
func start(t *testing.T, names ...string) (*servertest.Instance, []*servertest.Client) {
	t.Helper()
	inst := servertest.Start(t)
	people(t, inst, names...)
	var cls []*servertest.Client
	for _, n := range names {
		cls = append(cls, dial(t, inst, n, n+"-1"))
	}
	return inst, cls
}

// befriend makes a and b friends: a asks, b accepts.
func befriend(t *testing.T, a, b *servertest.Client) {
	t.Helper()
	a.OK("add_friend", map[string]string{"user": b.User}, nil)
	b.OK("accept_friend", map[string]string{"user": a.User}, nil)
}

// text returns a new unsigned text message to feeds.
func text(feeds, s string) wire.Message {
	return wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds, MsgType: wire.MsgTypeText,
		Payload: mustJSON(map[string]string{"text": s}), TimeCreate: time.Now().UnixMilli()}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// send sends m and returns where the server put it.
func send(t *testing.T, cl *servertest.Client, m wire.Message) wire.SendResult {
	t.Helper()
	var r wire.SendResult
	cl.OK("send", m, &r)
	if r.MsgId != m.MsgId || r.Feeds != m.Feeds {
		t.Fatalf("send(%s to %s) = %+v, want that MsgId and Feeds", m.MsgId, m.Feeds, r)
	}
	return r
}

// history reads a page of feeds.
func history(t *testing.T, cl *servertest.Client, feeds string, after int64, limit int) wire.HistoryResult {
	t.Helper()
	var h wire.HistoryResult
	cl.OK("history", wire.HistoryReq{Feeds: feeds, AfterSeq: after, Limit: limit}, &h)
	return h
}

// seqIDs lists the SeqIds of msgs.
func seqIDs(msgs []wire.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.SeqId
	}
	return out
}

// span returns [from, from+1, …, to].
func span(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// wantError fails unless the error text contains want.
func wantError(t *testing.T, what, got, want string) {
	t.Helper()
	if got == "" || !strings.Contains(got, want) {
		t.Errorf("%s: Error = %q, want it to contain %q", what, got, want)
	}
}

// relations returns cl's list_relations answer keyed by user.
func relations(t *testing.T, cl *servertest.Client) map[string]wire.Relation {
	t.Helper()
	var rels []wire.Relation
	cl.OK("list_relations", wire.Empty{}, &rels)
	out := make(map[string]wire.Relation)
	for _, r := range rels {
		if _, dup := out[r.User]; dup {
			t.Errorf("%s list_relations lists %s twice: %+v", cl.User, r.User, rels)
		}
		out[r.User] = r
	}
	return out
}

// wantRelation checks cl's relation to user (state "" for none).
func wantRelation(t *testing.T, cl *servertest.Client, user, kind, state string) wire.Relation {
	t.Helper()
	r, ok := relations(t, cl)[user]
	switch {
	case state == "" && ok:
		t.Errorf("%s list_relations[%s] = %+v, want none", cl.User, user, r)
	case state == "":
	case !ok:
		t.Errorf("%s list_relations[%s] = none, want kind %s state %s", cl.User, user, kind, state)
	case r.Kind != kind || r.State != state:
		t.Errorf("%s list_relations[%s] = kind %s state %s, want kind %s state %s", cl.User, user, r.Kind, r.State, kind, state)
	}
	return r
}

// relationEvent waits for the next impush://modulus/relation on cl with
// that event, skipping (and dropping) other pushes.
func relationEvent(t *testing.T, cl *servertest.Client, event string) wire.RelationEvent {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for time.Now().Before(deadline) {
		p := cl.NextPush(wire.PushRelation)
		var ev wire.RelationEvent
		if err := json.Unmarshal(p.Body, &ev); err != nil {
			t.Fatalf("%s: relation push %s: %v", cl.Device, p.Body, err)
		}
		if ev.Event == event {
			return ev
		}
	}
	t.Fatalf("%s: no relation push with event %q", cl.Device, event)
	return wire.RelationEvent{}
}

// presenceOf waits for the next presence push on cl about device.
func presenceOf(t *testing.T, cl *servertest.Client, device string) wire.Presence {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for time.Now().Before(deadline) {
		p := cl.NextPush(wire.PushPresence)
		var pr wire.Presence
		if err := json.Unmarshal(p.Body, &pr); err != nil {
			t.Fatalf("%s: presence push %s: %v", cl.Device, p.Body, err)
		}
		if pr.Device == device {
			return pr
		}
	}
	t.Fatalf("%s: no presence push about %s", cl.Device, device)
	return wire.Presence{}
}

// newsUntil collects cl's news pushes until it has seen SeqId last of
// feeds, or fails after the timeout.
func newsUntil(t *testing.T, cl *servertest.Client, feeds string, last int64) []wire.News {
	t.Helper()
	var out []wire.News
	for {
		n := cl.News()
		out = append(out, n)
		if n.Feeds == feeds && n.Message.SeqId == last {
			return out
		}
	}
}

// newsSeqs groups the SeqIds of news by conversation, in arrival order.
func newsSeqs(news []wire.News) map[string][]int64 {
	out := make(map[string][]int64)
	for _, n := range news {
		out[n.Feeds] = append(out[n.Feeds], n.Message.SeqId)
	}
	return out
}

// decodePushes splits pushes into the news they carry and the topics in
// arrival order, leaving out presence pushes.
func decodePushes(t *testing.T, ps []servertest.Push) (topics []string, news []wire.News) {
	t.Helper()
	for _, p := range ps {
		if p.Topic == wire.PushPresence {
			continue
		}
		topics = append(topics, p.Topic)
		if p.Topic == wire.PushNews {
			var n wire.News
			if err := json.Unmarshal(p.Body, &n); err != nil {
				t.Fatalf("news %s: %v", p.Body, err)
			}
			news = append(news, n)
		}
	}
	return topics, news
}

// groupMembers returns the members of feeds as list_feeds shows them to cl,
// and whether cl sees the group at all.
func groupMembers(t *testing.T, cl *servertest.Client, feeds string) (wire.Group, bool) {
	t.Helper()
	var gs []wire.Group
	cl.OK("list_feeds", wire.Empty{}, &gs)
	for _, g := range gs {
		if g.Feeds == feeds {
			slices.Sort(g.Members)
			return g, true
		}
	}
	return wire.Group{}, false
}
