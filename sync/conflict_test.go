package sync_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
	mqsync "github.com/mqtter/mqtter/sync"
	"github.com/mqtter/mqtter/wire"
)

// watched is a device's real link to the server, counting its
// history_push calls and, when rewrite is set, changing the rows of a
// history_push answer on their way to the syncer (a server that answers
// wrong).
type watched struct {
	mqsync.Server
	pushes  atomic.Int64
	rewrite func([]map[string]any)
}

func (w *watched) Call(ctx context.Context, method string, req, out any) error {
	if method != wire.MethodHistoryPush {
		return w.Server.Call(ctx, method, req, out)
	}
	w.pushes.Add(1)
	var rows []map[string]any
	if err := w.Server.Call(ctx, method, req, &rows); err != nil {
		return err
	}
	if w.rewrite != nil {
		w.rewrite(rows)
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// syncerOver returns a syncer of d over srv, reporting conflicts to
// conflicts.
func syncerOver(t *testing.T, d *device, srv mqsync.Server, conflicts *[]string) *mqsync.Syncer {
	t.Helper()
	s, err := mqsync.New(mqsync.Config{DB: d.db, Server: srv, Device: d.id, Interval: time.Hour,
		Conflict: func(m wire.Message, err error) { *conflicts = append(*conflicts, m.MsgId) },
		Logger:   servertest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A held message whose (From, MsgId) the server holds for another message
// is answered "conflict": the syncer marks it, tells Conflict once, writes
// no SeqId and never pushes it again, also after a restart; the messages
// pushed with it get theirs.
func TestPushConflictIsMarkedNotRetried(t *testing.T) {
	srv, dm := friends(t)
	laptop := newDevice(t, srv, "alice")
	sent := laptop.write(t, dm, "alice", 3)

	// Alice's other device uses the MsgId of the laptop's second message
	// first, for another message in another conversation.
	phone := servertest.Dial(t, srv, "alice", "alice-pw", "alice-phone")
	defer phone.Close()
	var g wire.FeedsReq
	phone.OK(wire.MethodCreateFeeds, wire.CreateFeedsReq{Name: "notes", Members: []string{}}, &g)
	phone.OK(wire.MethodSend, wire.Message{MsgId: sent[1].MsgId, Feeds: g.Feeds, MsgType: wire.MsgTypeText,
		Payload: json.RawMessage(`{"text":"the phone's"}`), TimeCreate: time.Now().UnixMilli()}, nil)

	w := &watched{Server: laptop.link}
	var conflicts []string
	s := syncerOver(t, laptop, w, &conflicts)
	res, err := s.Run(t.Context(), false)
	if err != nil || res.Pushed != 2 {
		t.Fatalf("push = %+v, %v; want the 2 others pushed", res, err)
	}
	if len(conflicts) != 1 || conflicts[0] != sent[1].MsgId {
		t.Errorf("conflicts = %v, want [%s]", conflicts, sent[1].MsgId)
	}
	h := laptop.history(t, dm)
	seqs := map[string]int64{}
	for _, m := range h {
		seqs[m.MsgId] = m.SeqId
	}
	if len(h) != 3 || seqs[sent[0].MsgId] == 0 || seqs[sent[2].MsgId] == 0 || seqs[sent[1].MsgId] != 0 {
		t.Errorf("SeqIds after the push = %v, want the conflicted %s kept without one", seqs, sent[1].MsgId)
	}
	if c, err := laptop.db.ConflictedMessages(t.Context(), 10); err != nil || len(c) != 1 || c[0].MsgId != sent[1].MsgId {
		t.Errorf("ConflictedMessages = %+v, %v", c, err)
	}
	if c := s.Counts(); c.Conflicts != 1 {
		t.Errorf("Counts = %+v, want 1 conflict", c)
	}

	before := w.pushes.Load()
	if _, err := s.Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	restarted := syncerOver(t, laptop, w, &conflicts)
	if _, err := restarted.Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if got := w.pushes.Load() - before; got != 0 || len(conflicts) != 1 {
		t.Errorf("after the conflict: %d more history_push calls, %d conflicts told; want 0 and 1", got, len(conflicts))
	}
}

// A history_push answer row is matched to the message pushed at its
// position and must name it: a row naming another held message (here one
// sequenced before) gives neither a SeqId.
func TestPushAnswerRowMustNameItsMessage(t *testing.T) {
	srv, dm := friends(t)
	laptop := newDevice(t, srv, "alice")
	first := laptop.write(t, dm, "alice", 1)[0]
	if _, err := laptop.syncer.Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	second := laptop.write(t, dm, "alice", 1)[0]

	w := &watched{Server: laptop.link, rewrite: func(rows []map[string]any) {
		for _, r := range rows {
			r["MsgId"], r["SeqId"] = first.MsgId, 99
		}
	}}
	var conflicts []string
	if _, err := syncerOver(t, laptop, w, &conflicts).Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	h := laptop.history(t, dm)
	if len(h) != 2 || h[0].MsgId != first.MsgId || h[0].SeqId != 1 || h[1].SeqId != 0 {
		t.Fatalf("after a wrong answer: %+v; want the first message still SeqId 1 and the second unsequenced", h)
	}

	// The server's true answer, a retry, sequences it.
	w.rewrite = nil
	if _, err := syncerOver(t, laptop, w, &conflicts).Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if h := laptop.history(t, dm); h[1].MsgId != second.MsgId || h[1].SeqId != 2 {
		t.Errorf("after the true answer: %+v; want the second message SeqId 2", h)
	}
}
