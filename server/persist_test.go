package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// rawClient is a bare MQTT connection (3.1.1 or 5) that acknowledges
// nothing unless told, for what paho does on its own (PUBACKs) or cannot
// send (MQTT 5 properties).
type rawClient struct {
	t       *testing.T
	version byte
	conn    net.Conn
	r       *bufio.Reader
}

// dialSession connects as user with client id device; expiry is the MQTT 5
// Session Expiry Interval (ignored for 3.1.1). It returns the CONNACK.
func dialSession(t *testing.T, inst *servertest.Instance, version byte, user, device string, clean bool, expiry uint32) (*rawClient, packets.Packet) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(inst.MQTT, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, version: version, conn: conn, r: bufio.NewReader(conn)}
	name := "MQTT"
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName: []byte(name), Clean: clean, Keepalive: 60, ClientIdentifier: device,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(password(user)),
		},
	}
	if version == 5 && expiry > 0 {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = expiry, true
	}
	c.write(pk)
	ack := c.next()
	if ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("CONNECT answered with %v", ack.FixedHeader.Type)
	}
	return c, ack
}

func (c *rawClient) write(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) next() packets.Packet { return readPacket(c.t, c.conn, c.r, c.version) }

// subscribe sends a SUBSCRIBE of filter at QoS 1 with the user property
// expires_seconds when expires is not "", and returns the SUBACK.
func (c *rawClient) subscribe(id uint16, filter, expires string) packets.Packet {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}}
	if expires != "" {
		pk.Properties.User = []packets.UserProperty{{Key: "expires_seconds", Val: expires}}
	}
	c.write(pk)
	return c.nextOf(packets.Suback)
}

// nextOf skips packets until one of type typ.
func (c *rawClient) nextOf(typ byte) packets.Packet {
	for {
		if pk := c.next(); pk.FixedHeader.Type == typ {
			return pk
		}
	}
}

// publishes reads n PUBLISHes on topic and returns their messages' texts.
func (c *rawClient) publishes(topic string, n int, ack bool) []string {
	c.t.Helper()
	var out []wire.Message
	for len(out) < n {
		pk := c.nextOf(packets.Publish)
		if pk.TopicName != topic {
			c.t.Fatalf("PUBLISH on %q, want %q", pk.TopicName, topic)
		}
		var m wire.Message
		if err := json.Unmarshal(pk.Payload, &m); err != nil {
			c.t.Fatalf("payload %s: %v", pk.Payload, err)
		}
		if ack && pk.FixedHeader.Qos == 1 {
			c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
		out = append(out, m)
	}
	return texts(out)
}

// onTopic returns the texts of the messages among pushes on topic.
func onTopic(t *testing.T, ps []servertest.Push, topic string) []string {
	t.Helper()
	var out []wire.Message
	for _, p := range ps {
		if p.Topic == topic {
			var m wire.Message
			if err := json.Unmarshal(p.Body, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	return texts(out)
}

// A paho client with clean session false keeps its subscription across
// connections and a server restart: at the next CONNECT (no SUBSCRIBE)
// the session is present, what came meanwhile arrives first in SeqId
// order, then new messages. A clean connect ends the session.
func TestPersistentSessionResumes(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	sub, present := servertest.DialSession(t, inst, "alice", password("alice"), "alice-keep", false)
	if present {
		t.Error("first CONNECT: session present, want a new session")
	}
	if got := subscribeQoS(t, sub, "feeds/dm/bob", 1); got != 1 {
		t.Fatalf("SUBSCRIBE = %#x, want 1", got)
	}
	send(t, bob, text(dm, "1"))
	if got := texts(messagesOn(t, sub, "feeds/dm/bob", 1)); !slices.Equal(got, []string{"1:1"}) {
		t.Fatalf("got %v, want 1:1", got)
	}
	waitCursor(t, inst, "alice-keep", dm, 1)
	sub.Close()

	send(t, bob, text(dm, "2"))
	send(t, bob, text(dm, "3"))
	sub, present = servertest.DialSession(t, inst, "alice", password("alice"), "alice-keep", false)
	if !present {
		t.Error("reconnect: session not present")
	}
	if got := texts(messagesOn(t, sub, "feeds/dm/bob", 2)); !slices.Equal(got, []string{"2:2", "3:3"}) {
		t.Errorf("after the reconnect, without SUBSCRIBE = %v, want 2:2 3:3", got)
	}
	send(t, bob, text(dm, "4"))
	if got := texts(messagesOn(t, sub, "feeds/dm/bob", 1)); !slices.Equal(got, []string{"4:4"}) {
		t.Errorf("live = %v, want 4:4", got)
	}
	nothingMore(t, sub)
	waitCursor(t, inst, "alice-keep", dm, 4)
	sub.Close()

	// A server restart keeps the session.
	send(t, bob, text(dm, "5"))
	inst.Restart(t)
	bob = dial(t, inst, "bob", "bob-2")
	sub, present = servertest.DialSession(t, inst, "alice", password("alice"), "alice-keep", false)
	if !present {
		t.Error("after a server restart: session not present")
	}
	if got := texts(messagesOn(t, sub, "feeds/dm/bob", 1)); !slices.Equal(got, []string{"5:5"}) {
		t.Errorf("after a server restart = %v, want 5:5", got)
	}
	waitCursor(t, inst, "alice-keep", dm, 5)
	sub.Close()

	// A clean connect ends it: the next persistent one starts empty, and
	// the client takes answers and pushes unasked again.
	clean, present := servertest.DialSession(t, inst, "alice", password("alice"), "alice-keep", true)
	if present {
		t.Error("clean connect: session present")
	}
	clean.Close()
	send(t, bob, text(dm, "6"))
	sub, present = servertest.DialSession(t, inst, "alice", password("alice"), "alice-keep", false)
	if present {
		t.Error("after a clean connect: session present, want it ended")
	}
	if got := onTopic(t, sub.Drain(quiet), "feeds/dm/bob"); len(got) != 0 {
		t.Errorf("after a clean connect got %v on feeds/dm/bob, want nothing", got)
	}
	if sub.NextPush(wire.PushNews).Topic != wire.PushNews {
		t.Error("no news push unasked")
	}
}

// A QoS 1 message the subscriber did not acknowledge before the drop is
// sent again at the next CONNECT of the session (MQTT 3.1.1, raw, so that
// nothing acknowledges it).
func TestPersistentSessionResendsUnacked(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	raw, ack := dialSession(t, inst, 4, "alice", "alice-raw", false, 0)
	if ack.ReasonCode != 0 || ack.SessionPresent {
		t.Fatalf("CONNACK = %#x present %v, want 0, new", ack.ReasonCode, ack.SessionPresent)
	}
	if sa := raw.subscribe(1, "feeds/dm/bob", ""); !slices.Equal(sa.ReasonCodes, []byte{1}) {
		t.Fatalf("SUBACK = %v", sa.ReasonCodes)
	}
	send(t, bob, text(dm, "1"))
	send(t, bob, text(dm, "2"))
	if got := raw.publishes("feeds/dm/bob", 1, true); !slices.Equal(got, []string{"1:1"}) {
		t.Fatalf("got %v", got)
	}
	waitCursor(t, inst, "alice-raw", dm, 1)
	if got := raw.publishes("feeds/dm/bob", 1, false); !slices.Equal(got, []string{"2:2"}) {
		t.Fatalf("got %v", got)
	}
	raw.conn.Close() // 2 unacknowledged
	send(t, bob, text(dm, "3"))
	raw, ack = dialSession(t, inst, 4, "alice", "alice-raw", false, 0)
	if ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("reconnect CONNACK = %#x present %v, want 0, present", ack.ReasonCode, ack.SessionPresent)
	}
	if got := raw.publishes("feeds/dm/bob", 2, true); !slices.Equal(got, []string{"2:2", "3:3"}) {
		t.Errorf("after the reconnect = %v, want the unacknowledged 2:2 again, then 3:3", got)
	}
	waitCursor(t, inst, "alice-raw", dm, 3)
}

// A SUBSCRIBE is recorded in the stored session even when the client
// leaves before its SUBACK: the recording is not dropped with the
// connection's other queued work.
func TestPersistentSubscribeThenGone(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	for i := range 5 {
		device := fmt.Sprintf("alice-gone-%d", i)
		raw, _ := dialSession(t, inst, 4, "alice", device, false, 0)
		raw.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: "feeds/dm/bob", Qos: 1}}})
		raw.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
		raw.conn.Close()
		waitOffline(t, inst, "alice", device)
		r := send(t, bob, text(dm, device))
		raw, ack := dialSession(t, inst, 4, "alice", device, false, 0)
		if !ack.SessionPresent {
			t.Fatalf("%s: session not present", device)
		}
		if got := raw.publishes("feeds/dm/bob", 1, true); len(got) != 1 || got[0] != fmt.Sprintf("%d:%s", r.SeqId, device) {
			t.Fatalf("%s: after the reconnect got %v, want the message sent while away (SeqId %d)", device, got, r.SeqId)
		}
		raw.conn.Close()
	}
}

// MQTT 5: a Session Expiry Interval keeps the session (the CONNACK grants
// it, cut to the server's maximum); clean start false resumes it; a
// DISCONNECT with interval 0 ends it.
func TestPersistentSessionMQTT5(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	raw, ack := dialSession(t, inst, 5, "alice", "alice-v5", false, 60)
	if ack.ReasonCode != 0 || ack.SessionPresent || ack.Properties.SessionExpiryInterval != 60 {
		t.Fatalf("CONNACK = %#x present %v expiry %d, want 0, new, 60", ack.ReasonCode, ack.SessionPresent, ack.Properties.SessionExpiryInterval)
	}
	raw.subscribe(1, "feeds/dm/bob", "")
	raw.conn.Close()
	send(t, bob, text(dm, "1"))
	// 0xFFFFFFFF (never) is cut to the server's maximum, 30 days.
	raw, ack = dialSession(t, inst, 5, "alice", "alice-v5", false, 0xFFFFFFFF)
	if !ack.SessionPresent || ack.Properties.SessionExpiryInterval != 30*24*3600 {
		t.Fatalf("resume CONNACK: present %v expiry %d, want present, 2592000", ack.SessionPresent, ack.Properties.SessionExpiryInterval)
	}
	if got := raw.publishes("feeds/dm/bob", 1, true); !slices.Equal(got, []string{"1:1"}) {
		t.Errorf("after the reconnect = %v, want 1:1", got)
	}
	bob.Drain(100 * time.Millisecond) // the presence of the first drop
	d := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}
	d.Properties.SessionExpiryInterval, d.Properties.SessionExpiryIntervalFlag = 0, true
	raw.write(d)
	raw.conn.Close()
	// Once the server told bob alice-v5 is gone it has taken the
	// DISCONNECT: a redial (which would itself keep a session) finds none.
	deadline := time.Now().Add(servertest.Timeout)
	for !offline(bob.Drain(100*time.Millisecond), "alice-v5") {
		if time.Now().After(deadline) {
			t.Fatal("no presence push: alice-v5 never went offline")
		}
	}
	if _, ack = dialSession(t, inst, 5, "alice", "alice-v5", false, 60); ack.SessionPresent {
		t.Fatal("session still present after DISCONNECT with Session Expiry Interval 0")
	}
}

// A persistent session is the client id's under the account that opened
// it: another account cannot connect with that client id, and were the
// id's device handed over, the store gives the new account nothing of it.
func TestPersistentSessionNotInherited(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob", "carol")
	befriend(t, c[0], c[1])
	sub, _ := servertest.DialSession(t, inst, "alice", password("alice"), "alice-own", false)
	subscribeQoS(t, sub, "feeds/dm/bob", 1)
	sub.Close()
	if _, err := servertest.TryDialSession(t, inst, "carol", password("carol"), "alice-own", false); err == nil {
		t.Fatal("carol connected with alice's client id")
	}
	present, subs, _, err := inst.Store().OpenSession(t.Context(), store.SessionOpen{ClientID: "alice-own", Account: "carol", Max: 1}, time.Now())
	if err != nil || present || len(subs) != 0 {
		t.Errorf("OpenSession as carol = %v %v %v, want a new, empty session", present, subs, err)
	}
}

// An account may hold MaxSessions persistent sessions: one more is
// refused with a clear error (MQTT 5: quota exceeded and the reason), a
// clean one still connects, and ending one makes room.
func TestPersistentSessionBound(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.MaxSessions = 2 }))
	people(t, inst, "alice")
	for i := range 2 {
		cl, _ := servertest.DialSession(t, inst, "alice", password("alice"), fmt.Sprint("keep-", i), false)
		cl.Close()
	}
	if _, err := servertest.TryDialSession(t, inst, "alice", password("alice"), "keep-2", false); err == nil {
		t.Error("a third persistent session (3.1.1) connected")
	}
	_, ack := dialSession(t, inst, 5, "alice", "keep-3", false, 60)
	if ack.ReasonCode != packets.ErrQuotaExceeded.Code || !strings.Contains(ack.Properties.ReasonString, "at most 2") {
		t.Errorf("third MQTT 5 session: CONNACK %#x %q, want quota exceeded and the bound", ack.ReasonCode, ack.Properties.ReasonString)
	}
	servertest.DialSession(t, inst, "alice", password("alice"), "keep-4", true) // clean: nothing stored
	end, _ := servertest.DialSession(t, inst, "alice", password("alice"), "keep-0", true)
	end.Close()
	if _, present := servertest.DialSession(t, inst, "alice", password("alice"), "keep-2", false); present {
		t.Error("new session present")
	}
}

// A SUBSCRIBE with expires_seconds is temporary: at that time its filter
// stops and the friend request it made, still pending, is withdrawn; a
// friendship that was there before it stays. A bad expires_seconds is
// refused.
func TestTemporarySubscription(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob", "carol")
	alice, bob, carol := c[0], c[1], c[2]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	raw, _ := dialSession(t, inst, 5, "alice", "alice-tmp", true, 0)
	if sa := raw.subscribe(1, "feeds/dm/bob", "soon"); !slices.Equal(sa.ReasonCodes, []byte{0x80}) ||
		!strings.Contains(sa.Properties.ReasonString, "expires_seconds") {
		t.Errorf("SUBACK with a bad expires_seconds = %v %q, want 0x80 and the reason", sa.ReasonCodes, sa.Properties.ReasonString)
	}
	// bob's subscription ends at 1 s, carol's at 2 s.
	if sa := raw.subscribe(2, "feeds/dm/bob", "1"); !slices.Equal(sa.ReasonCodes, []byte{1}) {
		t.Fatalf("SUBACK = %v", sa.ReasonCodes)
	}
	start := time.Now()
	if sa := raw.subscribe(3, "feeds/dm/carol", "2"); !slices.Equal(sa.ReasonCodes, []byte{1}) {
		t.Fatalf("SUBACK = %v", sa.ReasonCodes)
	}
	relationEvent(t, carol, "request")
	send(t, bob, text(dm, "1"))
	if got := raw.publishes("feeds/dm/bob", 1, true); !slices.Equal(got, []string{"1:1"}) {
		t.Fatalf("got %v", got)
	}
	if ev := relationEvent(t, carol, "withdrawn"); ev.User != "alice" {
		t.Errorf("carol's event = %+v, want alice's request withdrawn", ev)
	}
	if took := time.Since(start); took < 1900*time.Millisecond {
		t.Errorf("withdrawn after %v, want after the 2 s expiry", took)
	}
	wantRelation(t, alice, "carol", "", "")
	wantRelation(t, alice, "bob", "person", "friend")
	// The filter stopped: bob's next message is not sent on it.
	send(t, bob, text(dm, "2"))
	raw.conn.SetReadDeadline(time.Now().Add(quiet))
	if b, err := raw.r.ReadByte(); err == nil {
		t.Errorf("after the expiry got a packet (first byte %#x), want nothing on feeds/dm/bob", b)
	}
}

// A temporary subscription of a persistent session whose time comes while
// its client is away ends at the next CONNECT (or the server's sweep):
// it is not restored, the permanent ones are, and the friendship its request led to (accepted
// meanwhile) goes to the recycle bin, as an UNSUBSCRIBE puts it.
func TestTemporarySubscriptionEndsWhileAway(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "carol")
	alice, carol := c[0], c[1]
	raw, _ := dialSession(t, inst, 5, "alice", "alice-away", false, 60)
	if sa := raw.subscribe(1, "feeds/dm/carol", "1"); !slices.Equal(sa.ReasonCodes, []byte{1}) {
		t.Fatalf("SUBACK = %v", sa.ReasonCodes)
	}
	raw.subscribe(2, "presence/alice", "")
	raw.conn.Close()
	start := time.Now()
	relationEvent(t, carol, "request")
	carol.OK("accept_friend", map[string]string{"user": "alice"}, nil)
	time.Sleep(time.Until(start.Add(1100 * time.Millisecond)))
	raw, ack := dialSession(t, inst, 5, "alice", "alice-away", false, 60)
	if !ack.SessionPresent {
		t.Fatal("session not present")
	}
	if ev := relationEvent(t, carol, "removed"); ev.User != "alice" {
		t.Errorf("carol's event = %+v, want alice's removal", ev)
	}
	wantRelation(t, alice, "carol", "person", "recycled")
	// The permanent subscription was restored: alice's presence arrives.
	if pk := raw.nextOf(packets.Publish); pk.TopicName != "presence/alice" {
		t.Errorf("PUBLISH on %q, want presence/alice", pk.TopicName)
	}
}

// mosquitto_sub -c keeps its session: what bob sends while it is away
// arrives at its next run on feeds/dm/bob, which that run does not even
// subscribe to, in order; likewise over MQTT 5 with -x (session expiry).
func TestMosquittoPersistentSession(t *testing.T) {
	t.Parallel()
	mosquittoTool(t, "mosquitto_sub")
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	for _, tc := range []struct {
		device string
		args   []string
	}{
		{"alice-mqc", []string{"-c"}},
		{"alice-mqc5", []string{"-c", "-V", "5", "-x", "600"}},
	} {
		type result struct {
			out string
			err error
		}
		first := make(chan result, 1)
		go func() {
			out, err := runMosquitto(t, inst, "mosquitto_sub", "alice", tc.device, append(tc.args, "-t", "feeds/dm/bob", "-q", "1", "-v", "-C", "1", "-W", "15")...)
			first <- result{out, err}
		}()
		// Once the device is known its cursors are set (a conversation
		// that starts later starts at 0), and what comes after them
		// reaches the subscription, made before or after.
		last, _ := inst.Store().LastSeq(t.Context(), dm)
		for deadline := time.Now().Add(servertest.Timeout); ; time.Sleep(20 * time.Millisecond) {
			if owner, err := inst.Store().DeviceAccount(t.Context(), tc.device); err == nil && owner == "alice" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never connected", tc.device)
			}
		}
		send(t, bob, text(dm, "first"))
		res := <-first
		if res.err != nil {
			t.Fatal(res.err)
		}
		if _, msgs := subLines(t, res.out); len(msgs) != 1 || msgs[0].SeqId != last+1 {
			t.Fatalf("%s: first run got %v, want SeqId %d", tc.device, seqIDs(msgs), last+1)
		}
		waitCursor(t, inst, tc.device, dm, last+1)
		// mosquitto_sub disconnects after its one message, but a push
		// reaching it before that is acknowledged and dropped.
		waitOffline(t, inst, "alice", tc.device)
		send(t, bob, text(dm, "away 1"))
		send(t, bob, text(dm, "away 2"))
		out := mosquitto(t, inst, "mosquitto_sub", "alice", tc.device, append(tc.args, "-t", "feeds/g/+", "-q", "1", "-v", "-C", "2", "-W", "15")...)
		topics, msgs := subLines(t, out)
		if !slices.Equal(topics, []string{"feeds/dm/bob", "feeds/dm/bob"}) || !slices.Equal(seqIDs(msgs), []int64{last + 2, last + 3}) {
			t.Errorf("%s: second run got %v %v, want SeqIds %d %d on feeds/dm/bob", tc.device, topics, seqIDs(msgs), last+2, last+3)
		}
	}
}

// An UNSUBSCRIBE ends the filter in the stored session too: at the next
// CONNECT only the filters left are in force.
func TestPersistentSessionUnsubscribe(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	sub, _ := servertest.DialSession(t, inst, "alice", password("alice"), "alice-unsub", false)
	subscribeQoS(t, sub, "feeds/dm/bob", 1)
	subscribeQoS(t, sub, "presence/bob", 0)
	unsubscribe(t, sub, "presence/bob")
	sub.Close()
	sub, present := servertest.DialSession(t, inst, "alice", password("alice"), "alice-unsub", false)
	if !present {
		t.Fatal("session not present")
	}
	dial(t, inst, "bob", "bob-2") // presence news of bob, which no filter takes now
	send(t, bob, text(dm, "1"))
	if got := texts(messagesOn(t, sub, "feeds/dm/bob", 1)); !slices.Equal(got, []string{"1:1"}) {
		t.Errorf("got %v, want 1:1 and no presence", got)
	}
	nothingMore(t, sub)
}
