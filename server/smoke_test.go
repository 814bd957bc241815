package server_test

import (
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func TestSmokeFriendSendPush(t *testing.T) {
	inst := servertest.Start(t)
	inst.AddUser(t, "alice", "pa", false)
	inst.AddUser(t, "bob", "pb", false)
	a := servertest.Dial(t, inst, "alice", "pa", "alice-1")
	b := servertest.Dial(t, inst, "bob", "pb", "bob-1")
	a.OK("add_friend", map[string]string{"user": "bob"}, nil)
	b.NextPush(wire.PushRelation)
	b.OK("accept_friend", map[string]string{"user": "alice"}, nil)
	m := wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.DM("alice", "bob"), MsgType: "text",
		Payload: []byte(`{"text":"hi"}`), TimeCreate: time.Now().UnixMilli()}
	var res wire.SendResult
	a.OK("send", m, &res)
	if res.SeqId != 1 {
		t.Fatalf("send SeqId = %d, want 1", res.SeqId)
	}
	n := b.News()
	if n.Message.MsgId != m.MsgId || n.Message.From != "alice" || n.Message.SeqId != 1 {
		t.Fatalf("news = %+v", n)
	}
}
