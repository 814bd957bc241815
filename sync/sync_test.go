package sync_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	_ "modernc.org/sqlite"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/mqttlink"
	"github.com/mqtter/mqtter/server/servertest"
	mqsync "github.com/mqtter/mqtter/sync"
	"github.com/mqtter/mqtter/wire"
)

// device is one of an account's devices: its key, its own SQLite file, a
// real paho link to the test server and a syncer.
type device struct {
	key    crypto.PrivKey
	id     string
	db     *localdb.DB
	link   *mqttlink.Link
	syncer *mqsync.Syncer

	progress []mqsync.Progress
	refused  []string
}

func newDevice(t *testing.T, srv *servertest.Instance, user string) *device {
	t.Helper()
	d := &device{}
	d.key, d.id = servertest.NewDeviceKey(t)
	db, err := localdb.Open(t.Context(), filepath.Join(t.TempDir(), "node.db"), servertest.TestLogger(t))
	if err != nil {
		t.Fatalf("localdb: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	d.db = db
	d.link = mqttlink.Start(mqttlink.Config{Server: srv.MQTT, User: user, Password: user + "-pw",
		ClientID: d.id, Logger: servertest.TestLogger(t)})
	t.Cleanup(d.link.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := d.link.Wait(ctx); err != nil {
		t.Fatalf("%s's device connects: %v", user, err)
	}
	if _, err := d.link.RegisterDevice(ctx, d.key, nil); err != nil {
		t.Fatalf("%s's device registers: %v", user, err)
	}
	d.syncer, err = mqsync.New(mqsync.Config{DB: db, Server: d.link, Device: d.id, Interval: time.Hour,
		Progress: func(p mqsync.Progress) { d.progress = append(d.progress, p) },
		Refused:  func(m wire.Message, err error) { d.refused = append(d.refused, m.MsgId) },
		Logger:   servertest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// write stores n signed messages of this device in feeds as sent here,
// without SeqIds, and returns them.
func (d *device) write(t *testing.T, feeds, from string, n int) []wire.Message {
	t.Helper()
	msgs := make([]wire.Message, n)
	for i := range msgs {
		m := wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds, From: from, MsgType: wire.MsgTypeText,
			Payload: []byte(fmt.Sprintf(`{"text":"message %d"}`, i)), TimeCreate: time.Now().UnixMilli()}
		if err := m.Sign(d.key); err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	if _, err := d.db.AddMessages(t.Context(), msgs, localdb.ViaLocal); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func (d *device) history(t *testing.T, feeds string) []localdb.Stored {
	t.Helper()
	h, err := d.db.History(t.Context(), feeds, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (d *device) coverage(t *testing.T, feeds string) localdb.Coverage {
	t.Helper()
	c, err := d.db.Coverage(t.Context(), feeds)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func friends(t *testing.T) (*servertest.Instance, string) {
	t.Helper()
	srv := servertest.Start(t)
	srv.AddUser(t, "alice", "alice-pw", false)
	srv.AddUser(t, "bob", "bob-pw", false)
	return srv, befriend(t, srv, "alice", "bob")
}

// befriend makes accounts a and b (passwords "<name>-pw") friends through
// setup clients of their own, and returns their dm.
func befriend(t *testing.T, srv *servertest.Instance, a, b string) string {
	t.Helper()
	ca := servertest.Dial(t, srv, a, a+"-pw", a+"-setup-"+b)
	cb := servertest.Dial(t, srv, b, b+"-pw", b+"-setup-"+a)
	ca.OK(wire.MethodAddFriend, wire.UserReq{User: b}, nil)
	cb.OK(wire.MethodAcceptFriend, wire.UserReq{User: a}, nil)
	ca.Close()
	cb.Close()
	return wire.DM(a, b)
}

func ids(h []localdb.Stored) []string {
	out := make([]string, len(h))
	for i, m := range h {
		out[i] = m.MsgId
	}
	return out
}

func TestPushThenRestoreOnANewDevice(t *testing.T) {
	srv, dm := friends(t)
	laptop := newDevice(t, srv, "alice")
	const n = 2500 // three history pages and a half
	sent := laptop.write(t, dm, "alice", n)

	res, err := laptop.syncer.Run(t.Context(), false)
	if err != nil || res.Pushed != n {
		t.Fatalf("push = %+v, %v, want %d pushed", res, err, n)
	}
	h := laptop.history(t, dm)
	for i, m := range h {
		if m.SeqId != int64(i+1) || m.MsgId != sent[i].MsgId {
			t.Fatalf("after the push, message %d = %s SeqId %d, want %s SeqId %d", i, m.MsgId, m.SeqId, sent[i].MsgId, i+1)
		}
	}
	if c := laptop.coverage(t, dm); c.HeldThrough != n || !c.Complete() {
		t.Errorf("the pushing device's coverage = %+v, want all %d held", c, n)
	}
	if res, err := laptop.syncer.Run(t.Context(), true); err != nil || res.Pushed != 0 || res.Pulled != 0 {
		t.Errorf("a second round = %+v, %v, want nothing to push or pull", res, err)
	}

	// A new device of the same account, and one of bob, restore it all.
	for _, who := range []string{"alice", "bob"} {
		fresh := newDevice(t, srv, who)
		res, err := fresh.syncer.Run(t.Context(), true)
		if err != nil || res.Pulled != n {
			t.Fatalf("%s's new device: pull = %+v, %v, want %d pulled", who, res, err, n)
		}
		if got := ids(fresh.history(t, dm)); !slices.Equal(got, ids(h)) {
			t.Errorf("%s's new device holds %d messages, not the pushing device's list", who, len(got))
		}
		for _, m := range fresh.history(t, dm) {
			if m.Via != localdb.ViaSync {
				t.Fatalf("restored message %s via %q, want sync", m.MsgId, m.Via)
			}
		}
		if c := fresh.coverage(t, dm); c.HeldThrough != n || c.LastSeq != n || !c.Complete() {
			t.Errorf("%s's new device coverage = %+v, want complete through %d", who, c, n)
		}
		last := fresh.progress[len(fresh.progress)-1]
		if !last.Done || last.Err != nil || last.Fetched != n || last.Total != n || len(fresh.progress) < 4 {
			t.Errorf("%s's progress: %d reports, last %+v; want a report a page and a final one of %d", who, len(fresh.progress), last, n)
		}
	}
}

func TestTamperedHistoryIsRefused(t *testing.T) {
	srv, dm := friends(t)
	laptop := newDevice(t, srv, "alice")
	sent := laptop.write(t, dm, "alice", 5)
	if _, err := laptop.syncer.Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	laptop.link.Close()

	// Someone with the server's disk changes what message 3 says.
	srv.Stop(t)
	raw, err := sql.Open("sqlite", filepath.Join(srv.Dir, "mqtter.db"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := raw.Exec(`UPDATE messages SET payload = ? WHERE feeds = ? AND seq = 3`, `{"text":"send money"}`, dm)
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
	if n, _ := r.RowsAffected(); n != 1 {
		t.Fatalf("tamper changed %d rows, want 1", n)
	}
	raw.Close()
	srv.Restart(t)

	fresh := newDevice(t, srv, "bob")
	res, err := fresh.syncer.Run(t.Context(), true)
	if err != nil || res.Pulled != 4 {
		t.Fatalf("pull = %+v, %v, want the 4 untouched messages", res, err)
	}
	got := ids(fresh.history(t, dm))
	want := []string{sent[0].MsgId, sent[1].MsgId, sent[3].MsgId, sent[4].MsgId}
	if !slices.Equal(got, want) {
		t.Errorf("history = %v, want %v: the tampered message is not shown", got, want)
	}
	if !slices.Equal(fresh.refused, []string{sent[2].MsgId}) {
		t.Errorf("refused = %v, want the tampered %s", fresh.refused, sent[2].MsgId)
	}
	if c := fresh.coverage(t, dm); c.Refused != 1 || c.Complete() {
		t.Errorf("coverage = %+v, want 1 refused and incomplete", c)
	}
	rs, err := fresh.db.RefusedMessages(t.Context(), 10)
	if err != nil || len(rs) != 1 || rs[0].SeqId != 3 || rs[0].Reason == "" {
		t.Errorf("RefusedMessages = %+v, %v, want message 3 with a reason", rs, err)
	}
	if c := fresh.syncer.Counts(); c.Refused != 1 || c.Pulled != 4 {
		t.Errorf("Counts = %+v, want 4 pulled, 1 refused", c)
	}
}

func TestGapAfterPushesIsPulled(t *testing.T) {
	srv, dm := friends(t)
	laptop := newDevice(t, srv, "alice")
	sent := laptop.write(t, dm, "alice", 10)
	if _, err := laptop.syncer.Run(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	desk := newDevice(t, srv, "alice")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go desk.syncer.Loop(ctx)

	// Only the last message reached this device as a push: the syncer
	// sees the gap below it once pushes pause, and pulls the rest.
	last := sent[9]
	last.SeqId = 10
	if _, err := desk.db.AddMessages(t.Context(), []wire.Message{last}, localdb.ViaServer); err != nil {
		t.Fatal(err)
	}
	desk.syncer.Saw(dm, 10)
	deadline := time.Now().Add(10 * time.Second)
	for desk.coverage(t, dm).HeldThrough < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("coverage after a gap = %+v, want it pulled through 10", desk.coverage(t, dm))
		}
		time.Sleep(20 * time.Millisecond)
	}
	h := desk.history(t, dm)
	if len(h) != 10 || h[9].Via != localdb.ViaServer || h[0].Via != localdb.ViaSync {
		t.Errorf("history = %d messages (first via %q, last via %q), want 10, pulled below the pushed one", len(h), h[0].Via, h[len(h)-1].Via)
	}
	if !desk.coverage(t, dm).Complete() {
		t.Errorf("coverage = %+v, want complete", desk.coverage(t, dm))
	}
}
