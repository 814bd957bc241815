package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// subscribeQoS subscribes cl to filter at qos and returns the SUBACK's code
// (the granted QoS, or 0x80). What arrives on it goes with every other
// push, to cl's push queue.
func subscribeQoS(t *testing.T, cl *servertest.Client, filter string, qos byte) byte {
	t.Helper()
	tok := cl.Paho().Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(servertest.Timeout) || tok.Error() != nil {
		t.Fatalf("%s: subscribe %q: %v", cl.Device, filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

// unsubscribe unsubscribes cl from filters and waits for the UNSUBACK.
func unsubscribe(t *testing.T, cl *servertest.Client, filters ...string) {
	t.Helper()
	tok := cl.Paho().Unsubscribe(filters...)
	if !tok.WaitTimeout(servertest.Timeout) || tok.Error() != nil {
		t.Fatalf("%s: unsubscribe %q: %v", cl.Device, filters, tok.Error())
	}
}

// messagesOn waits for n messages on topic, each a PUBLISH with the message
// JSON as its payload, failing on anything else that arrives meanwhile.
func messagesOn(t *testing.T, cl *servertest.Client, topic string, n int) []wire.Message {
	t.Helper()
	var out []wire.Message
	for len(out) < n {
		p := cl.NextAnyPush()
		if p.Topic != topic {
			t.Fatalf("%s: got %q: %s, want only messages on %q", cl.Device, p.Topic, p.Body, topic)
		}
		var m wire.Message
		if err := json.Unmarshal(p.Body, &m); err != nil || m.MsgId == "" {
			t.Fatalf("%s: payload on %q = %s, want a message (%v)", cl.Device, topic, p.Body, err)
		}
		out = append(out, m)
	}
	return out
}

// nothingMore fails if anything arrives at cl within quiet.
func nothingMore(t *testing.T, cl *servertest.Client) {
	t.Helper()
	for _, p := range cl.Drain(quiet) {
		t.Errorf("%s: unexpected %q: %s", cl.Device, p.Topic, p.Body)
	}
}

// waitCursor waits until device's delivery cursor in feeds reaches seq.
func waitCursor(t *testing.T, inst *servertest.Instance, device, feeds string, seq int64) {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for {
		cur, err := inst.Store().Cursors(t.Context(), device)
		if err != nil {
			t.Fatal(err)
		}
		if cur[feeds] >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor of %s in %s = %d, want %d", device, feeds, cur[feeds], seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOffline waits until the server has let device of account go: what is
// sent after that is the device's to fetch at its next connect, not a push
// its closing connection may still take.
func waitOffline(t *testing.T, inst *servertest.Instance, account, device string) {
	t.Helper()
	for deadline := time.Now().Add(servertest.Timeout); ; time.Sleep(20 * time.Millisecond) {
		peers, err := inst.Server.Peers(t.Context(), account, "")
		if err != nil {
			t.Fatal(err)
		}
		online := false
		for _, p := range peers {
			online = online || (p.Device == device && p.Status == wire.StatusOnline)
		}
		if !online {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still online", device)
		}
	}
}

func texts(msgs []wire.Message) []string {
	var out []string
	for _, m := range msgs {
		var p struct{ Text string }
		json.Unmarshal(m.Payload, &p)
		out = append(out, fmt.Sprintf("%d:%s", m.SeqId, p.Text))
	}
	return out
}

// A SUBSCRIBE to a person is a friend request; once accepted, the
// conversation's messages arrive on the subscribed topic in SeqId order,
// and after a reconnect what came meanwhile arrives first, from the
// device's cursor, which the QoS 1 PUBACKs moved.
func TestSubscribeIsAFriendRequest(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	sub := dial(t, inst, "alice", "alice-sub")
	if got := subscribeQoS(t, sub, "feeds/dm/bob", 1); got != 1 {
		t.Fatalf("SUBSCRIBE feeds/dm/bob = %#x, want granted QoS 1", got)
	}
	if ev := relationEvent(t, bob, "request"); ev.User != "alice" {
		t.Errorf("bob's request event = %+v, want from alice", ev)
	}
	wantRelation(t, alice, "bob", "person", "pending-out")
	bob.OK("accept_friend", map[string]string{"user": "alice"}, nil)
	dm := wire.DM("alice", "bob")
	for i := 1; i <= 3; i++ {
		send(t, bob, text(dm, fmt.Sprint(i)))
	}
	got := messagesOn(t, sub, "feeds/dm/bob", 3)
	if want := []string{"1:1", "2:2", "3:3"}; !slices.Equal(texts(got), want) {
		t.Errorf("messages on feeds/dm/bob = %v, want %v", texts(got), want)
	}
	if got[0].From != "bob" || got[0].Feeds != dm {
		t.Errorf("message = %+v, want bob's in %s", got[0], dm)
	}
	nothingMore(t, sub) // no snapshot, presence or relation event unasked
	waitCursor(t, inst, "alice-sub", dm, 3)
	sub.Close()

	send(t, bob, text(dm, "4"))
	send(t, bob, text(dm, "5"))
	sub = dial(t, inst, "alice", "alice-sub")
	if got := subscribeQoS(t, sub, "feeds/dm/bob", 1); got != 1 {
		t.Fatalf("SUBSCRIBE again = %#x, want 1", got)
	}
	if got := texts(messagesOn(t, sub, "feeds/dm/bob", 2)); !slices.Equal(got, []string{"4:4", "5:5"}) {
		t.Errorf("after the reconnect = %v, want the offline 4 and 5 only", got)
	}
	send(t, bob, text(dm, "6"))
	if got := texts(messagesOn(t, sub, "feeds/dm/bob", 1)); !slices.Equal(got, []string{"6:6"}) {
		t.Errorf("live after the replay = %v, want 6", got)
	}
	nothingMore(t, sub)

	// The other side may accept by subscribing too: bob is alice's friend
	// already, so his SUBSCRIBE is a subscription only.
	bobSub := dial(t, inst, "bob", "bob-sub")
	if got := subscribeQoS(t, bobSub, "feeds/dm/+", 0); got != 0 {
		t.Fatalf("bob SUBSCRIBE feeds/dm/+ = %#x, want 0", got)
	}
	send(t, alice, text(dm, "7"))
	if got := texts(messagesOn(t, bobSub, "feeds/dm/alice", 1)); !slices.Equal(got, []string{"7:7"}) {
		t.Errorf("bob's wildcard subscription got %v, want 7 (a new device starts at the last SeqId)", got)
	}
	// QoS 0: written is delivered.
	waitCursor(t, inst, "bob-sub", dm, 7)
}

// Subscribing back to someone who asked accepts, as add_friend does.
func TestSubscribeAcceptsARequest(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	alice.OK("add_friend", map[string]string{"user": "bob"}, nil)
	sub := dial(t, inst, "bob", "bob-sub")
	if got := subscribeQoS(t, sub, "feeds/dm/alice", 1); got != 1 {
		t.Fatalf("SUBSCRIBE = %#x, want 1", got)
	}
	relationEvent(t, alice, "accepted")
	wantRelation(t, bob, "alice", "person", "friend")
}

// UNSUBSCRIBE puts the friendship in the recycle bin, with the server's
// keep time when none is given; a SUBSCRIBE of the one who removed it
// restores it; a former friend's subscription gets nothing.
func TestUnsubscribeRecyclesAndSubscribeRestores(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	sub := dial(t, inst, "alice", "alice-sub")
	subscribeQoS(t, sub, "feeds/dm/bob", 1)
	bobSub := dial(t, inst, "bob", "bob-sub")
	subscribeQoS(t, bobSub, "feeds/dm/alice", 1)

	before := time.Now()
	unsubscribe(t, sub, "feeds/dm/bob")
	relationEvent(t, bob, "removed")
	r := wantRelation(t, alice, "bob", "person", "recycled")
	if exp := before.Add(30 * 24 * time.Hour).UnixMilli(); r.Expires < exp-5000 || r.Expires > exp+5000 {
		t.Errorf("expires = %d, want the server's default keep (30 days) from now, %d", r.Expires, exp)
	}
	dm := wire.DM("alice", "bob")
	wantError(t, "alice's send after the removal", alice.Fail("send", text(dm, "x")), "forbidden")
	wantError(t, "bob's send after the removal", bob.Fail("send", text(dm, "x")), "forbidden")
	nothingMore(t, bobSub)
	nothingMore(t, sub)

	// bob did not remove it: his SUBSCRIBE cannot bring it back.
	bobSub2 := dial(t, inst, "bob", "bob-sub2")
	if got := subscribeQoS(t, bobSub2, "feeds/dm/alice", 1); got != 0x80 {
		t.Errorf("bob SUBSCRIBE to the relation alice removed = %#x, want refused (0x80)", got)
	}
	if got := subscribeQoS(t, sub, "feeds/dm/bob", 1); got != 1 {
		t.Fatalf("alice SUBSCRIBE again = %#x, want 1 (restored)", got)
	}
	relationEvent(t, bob, "restored")
	wantRelation(t, alice, "bob", "person", "friend")
	send(t, bob, text(dm, "back"))
	if got := texts(messagesOn(t, sub, "feeds/dm/bob", 1)); !slices.Equal(got, []string{"1:back"}) {
		t.Errorf("after the restore = %v, want 1:back", got)
	}
}

// A stranger's SUBSCRIBE to a group is an application: the owner hears
// of it, the stranger gets no message until admitted, then gets them on
// the group's topic.
func TestSubscribeToAGroupApplies(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob", "eve")
	alice, bob, eve := c[0], c[1], c[2]
	befriend(t, alice, bob)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "team", Members: []string{"bob"}}, &g)
	topic := "feeds/g/" + strings.TrimPrefix(g.Feeds, "g:")
	sub := dial(t, inst, "eve", "eve-sub")
	if got := subscribeQoS(t, sub, topic, 1); got != 1 {
		t.Fatalf("eve SUBSCRIBE %s = %#x, want 1 (application recorded)", topic, got)
	}
	if ev := relationEvent(t, alice, "group_apply"); ev.User != "eve" || ev.Feeds != g.Feeds {
		t.Errorf("owner's event = %+v, want eve applying to %s", ev, g.Feeds)
	}
	send(t, bob, text(g.Feeds, "members only"))
	nothingMore(t, sub)
	wantError(t, "eve's history before admission", eve.Fail("history", wire.HistoryReq{Feeds: g.Feeds}), "forbidden")

	alice.OK("agree_join_feeds", wire.AgreeJoinReq{Applicant: "eve", Feeds: g.Feeds}, nil)
	send(t, bob, text(g.Feeds, "welcome"))
	if got := texts(messagesOn(t, sub, topic, 1)); !slices.Equal(got, []string{"2:welcome"}) {
		t.Errorf("eve's messages after admission = %v, want 2:welcome", got)
	}
}

// Filters that would reach beyond the subscriber are refused, each with
// SUBACK 0x80, and the connection stays.
func TestSubscribeRefused(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob", "eve")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "team", Members: []string{"bob"}}, &g)
	sub := dial(t, inst, "eve", "eve-sub")
	for _, filter := range []string{
		"#", "+/dm/alice", "+/+/+", "$SYS/#", "feeds/dm:alice:bob", "dm/alice",
		"feeds/dm/eve",       // oneself
		"feeds/dm/nobody",    // no such account
		"feeds/g/NOSUCH",     // no such group
		"presence/alice",     // not a contact
		"feeds/dm/alice/x",   // below a topic name
		"feeds/dm/Alice",     // not an account name
		"feeds/g/" + g.Feeds, // the feeds, not its id
	} {
		if got := subscribeQoS(t, sub, filter, 1); got != 0x80 {
			t.Errorf("eve SUBSCRIBE %q = %#x, want refused (0x80)", filter, got)
		}
	}
	// Wildcards under the subscriber's own roots are granted, as
	// subscriptions only, and reach only its own: nothing of alice and
	// bob's traffic.
	for _, filter := range []string{"feeds/#", "presence/+", "feeds/g/+", "feeds/dm/alice/#", "presence/alice/+"} {
		if got := subscribeQoS(t, sub, filter, 1); got != 1 {
			t.Errorf("eve SUBSCRIBE %q = %#x, want 1", filter, got)
		}
	}
	for _, p := range sub.Drain(quiet) {
		if p.Topic != "presence/eve" {
			t.Errorf("eve-sub got %q %s, want only the presence of eve's own devices", p.Topic, p.Body)
		}
	}
	send(t, alice, text(wire.DM("alice", "bob"), "private"))
	send(t, alice, text(g.Feeds, "team only"))
	alice.OK("presence", wire.PresenceReq{Status: wire.StatusAway}, nil)
	nothingMore(t, sub)
	if !sub.Connected() {
		t.Error("eve's connection is down after refused subscriptions")
	}
	wantRelation(t, alice, "eve", "", "")
}

// A client with a subscription gets only what matches it: subscribed to
// its request's topic it gets the answer, as mosquitto_rr expects, and
// none of the pushes of its CONNECT.
func TestSubscriberGetsOnlyWhatMatches(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	befriend(t, c[0], c[1])
	send(t, c[1], text(wire.DM("alice", "bob"), "waiting")) // news to replay
	sub := dial(t, inst, "alice", "alice-rr")
	topic := wire.RequestTopic("modulus", "list_relations", "rr-1")
	subscribeQoS(t, sub, topic, 1)
	a := sub.CallTopic(topic, wire.Empty{})
	var rels []wire.Relation
	if a.Error != "" || json.Unmarshal(a.Result, &rels) != nil || len(rels) != 1 || rels[0].User != "bob" {
		t.Errorf("answer = %+v, want alice's relations", a)
	}
	nothingMore(t, sub)

	// impush:// filters bring the pushes back, one kind at a time.
	subscribeQoS(t, sub, wire.PushPresence, 0)
	c[1].OK("presence", wire.PresenceReq{Status: wire.StatusAway}, nil)
	if p := presenceOf(t, sub, "bob-1"); p.Status != wire.StatusAway {
		t.Errorf("presence = %+v, want bob away", p)
	}
}

// A thing's presence topic gives the persons bound to it its availability:
// the current status first, then offline at once when its connection
// drops without a DISCONNECT.
func TestThingAvailability(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	people(t, inst, "alice", "bob")
	code := inst.AddUser(t, "lamp", password("lamp"), true)
	alice := dial(t, inst, "alice", "alice-1")
	alice.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: code}, nil)
	lamp := connectRaw(t, inst, "lamp", "lamp-1", 60)
	presenceOf(t, alice, "lamp-1")

	sub := dial(t, inst, "alice", "alice-sub")
	if got := subscribeQoS(t, sub, "presence/lamp", 1); got != 1 {
		t.Fatalf("SUBSCRIBE presence/lamp = %#x, want 1", got)
	}
	p := sub.NextAnyPush()
	var pr wire.Presence
	if p.Topic != "presence/lamp" || json.Unmarshal(p.Body, &pr) != nil || pr.Status != wire.StatusOnline || pr.Device != "lamp-1" {
		t.Fatalf("first on presence/lamp = %q %s, want lamp-1 online", p.Topic, p.Body)
	}
	lamp.Close() // no DISCONNECT: the lamp lost power
	start := time.Now()
	p = sub.NextAnyPush()
	if p.Topic != "presence/lamp" || json.Unmarshal(p.Body, &pr) != nil || pr.Status != wire.StatusOffline || pr.LastSeen == 0 {
		t.Fatalf("after the drop = %q %s, want lamp-1 offline with last_seen", p.Topic, p.Body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("offline after %v, want at once, not after the keep-alive (60 s)", took)
	}
	// A late subscriber gets the last status first.
	late := dial(t, inst, "alice", "alice-late")
	subscribeQoS(t, late, "presence/+", 0)
	for p = late.NextAnyPush(); p.Topic != "presence/lamp"; p = late.NextAnyPush() {
		if p.Topic != "presence/alice" {
			t.Errorf("late subscriber got %q %s, want presence only", p.Topic, p.Body)
		}
	}
	if json.Unmarshal(p.Body, &pr) != nil || pr.Status != wire.StatusOffline {
		t.Errorf("late subscriber's presence/lamp = %s, want lamp offline", p.Body)
	}
	// bob is no contact of the lamp.
	bob := dial(t, inst, "bob", "bob-1")
	if got := subscribeQoS(t, bob, "presence/lamp", 0); got != 0x80 {
		t.Errorf("bob SUBSCRIBE presence/lamp = %#x, want refused", got)
	}
}

// A thing may connect with a retained last will, as standard devices do;
// the server's own offline presence is its will.
func TestRetainedWillAccepted(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t)
	inst.AddUser(t, "lamp", password("lamp"), true)
	conn, err := net.Dial("tcp", strings.TrimPrefix(inst.MQTT, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "lamp-1",
			UsernameFlag: true, Username: []byte("lamp"), PasswordFlag: true, Password: []byte(password("lamp")),
			WillFlag: true, WillRetain: true, WillQos: 1, WillTopic: "tele/lamp/LWT", WillPayload: []byte("Offline"),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	conn.Write(buf.Bytes())
	r := bufio.NewReader(conn)
	ack := readPacket(t, conn, r, 4)
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("CONNECT with a retained will = %v code %#x, want accepted", ack.FixedHeader.Type, ack.ReasonCode)
	}
}

// readPacket reads one MQTT packet of protocol version from r.
func readPacket(t *testing.T, conn net.Conn, r *bufio.Reader, version byte) packets.Packet {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(servertest.Timeout))
	b, err := r.ReadByte()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var pk packets.Packet
	pk.ProtocolVersion = version
	if err := pk.FixedHeader.Decode(b); err != nil {
		t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		t.Fatal(err)
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	}
	if err != nil {
		t.Fatalf("decode %v: %v", pk.FixedHeader.Type, err)
	}
	return pk
}

// dialV5 connects an MQTT 5 rawClient with a clean session, for the user
// properties paho v1 cannot send.
func dialV5(t *testing.T, inst *servertest.Instance, user, device string) *rawClient {
	t.Helper()
	c, ack := dialSession(t, inst, 5, user, device, true, 0)
	if ack.ReasonCode != 0 {
		t.Fatalf("v5 CONNECT = %#x", ack.ReasonCode)
	}
	return c
}

// An MQTT 5 UNSUBSCRIBE's user property keep_seconds sets how long the
// relation stays restorable (never over the server's maximum); once that
// passes it is gone for good, and a new SUBSCRIBE is a new request.
func TestUnsubscribeKeepSecondsAndExpiry(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	v5 := dialV5(t, inst, "alice", "alice-v5")
	v5.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "feeds/dm/bob", Qos: 1}, {Filter: "#", Qos: 1}}})
	if ack := v5.nextOf(packets.Suback); !slices.Equal(ack.ReasonCodes, []byte{1, 0x80}) || ack.PacketID != 1 {
		t.Fatalf("SUBACK = id %d codes %v, want id 1 codes [1 0x80]", ack.PacketID, ack.ReasonCodes)
	}
	unsub := func(id uint16, keep string) packets.Packet {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, ProtocolVersion: 5, PacketID: id,
			Filters: packets.Subscriptions{{Filter: "feeds/dm/bob"}}}
		pk.Properties.User = []packets.UserProperty{{Key: "keep_seconds", Val: keep}}
		v5.write(pk)
		return v5.nextOf(packets.Unsuback)
	}
	if ack := unsub(2, "soon"); !slices.Equal(ack.ReasonCodes, []byte{0x80}) || !strings.Contains(ack.Properties.ReasonString, "keep_seconds") {
		t.Errorf("UNSUBACK with a bad keep_seconds = %v %q, want 0x80 and the reason", ack.ReasonCodes, ack.Properties.ReasonString)
	}
	wantRelation(t, alice, "bob", "person", "friend")
	before := time.Now()
	if ack := unsub(3, "1"); !slices.Equal(ack.ReasonCodes, []byte{0x11}) {
		t.Errorf("UNSUBACK = %v, want [0x11] (the subscription had ended with the first UNSUBSCRIBE)", ack.ReasonCodes)
	}
	r := wantRelation(t, alice, "bob", "person", "recycled")
	if r.Expires < before.Add(time.Second).UnixMilli()-100 || r.Expires > time.Now().Add(time.Second).UnixMilli()+100 {
		t.Errorf("expires = %d, want about 1 s from %d", r.Expires, before.UnixMilli())
	}
	time.Sleep(time.Until(time.UnixMilli(r.Expires)) + 50*time.Millisecond)
	wantRelation(t, alice, "bob", "", "")
	wantError(t, "restore after expiry", alice.Fail("restore_friend", map[string]string{"user": "bob"}), "not found")
	// A new SUBSCRIBE starts over: a friend request.
	v5.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 4,
		Filters: packets.Subscriptions{{Filter: "feeds/dm/bob", Qos: 1}}})
	if ack := v5.nextOf(packets.Suback); !slices.Equal(ack.ReasonCodes, []byte{1}) {
		t.Fatalf("SUBACK = %v, want [1]", ack.ReasonCodes)
	}
	wantRelation(t, alice, "bob", "person", "pending-out")
}
