package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// rawDial opens a bare MQTT 3.1.1 connection as user/device and sends its
// CONNECT; nothing is ever read from it.
func rawDial(t *testing.T, inst *servertest.Instance, user, device string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(inst.MQTT, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(servertest.ConnectPacket(device, user, password(user), 60)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// rawPublish writes a QoS 0 PUBLISH; it reports false once the connection
// no longer takes writes.
func rawPublish(conn net.Conn, topic string, body []byte) bool {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 4, TopicName: topic, Payload: body}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return false
	}
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := conn.Write(buf.Bytes())
	return err == nil
}

// offline reports whether ps hold a presence push saying device is offline.
func offline(ps []servertest.Push, device string) bool {
	for _, p := range ps {
		var pr wire.Presence
		if p.Topic == wire.PushPresence && json.Unmarshal(p.Body, &pr) == nil && pr.Device == device && pr.Status == "offline" {
			return true
		}
	}
	return false
}

// TestNeverReadingClientIsBounded fills a conversation with large messages,
// then has a raw client ask for its whole history over and over without
// ever reading an answer. The server must not queue those answers without
// bound: its heap and the client's queued bytes stay bounded, the client is
// disconnected as too slow, and another client is served all along.
func TestNeverReadingClientIsBounded(t *testing.T) {
	const budget = 2 << 20
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) {
		c.SessionBudget = budget
		c.SlowTimeout = 3 * time.Second
	}))
	people(t, inst, "alice", "bob")
	alice, bob := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	befriend(t, alice, bob)
	feeds := wire.DM("alice", "bob")
	big := strings.Repeat("x", 150<<10)
	for range 100 { // 15 MiB of history
		send(t, alice, text(feeds, big))
	}
	alice.Close()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse

	conn := rawDial(t, inst, "alice", "alice-attacker")
	presenceOf(t, bob, "alice-attacker") // connected
	body := mustJSON(wire.HistoryReq{Feeds: feeds, Limit: 1000})
	var peak uint64
	sample := func() {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	for i := 0; i < 60; i++ {
		if !rawPublish(conn, wire.RequestTopic("modulus", wire.MethodHistory, fmt.Sprintf("h%d", i)), body) {
			break // the server stopped reading us: back-pressure
		}
		sample()
	}
	// Another client is served while the attacker's answers pile up.
	carol := dial(t, inst, "bob", "bob-2")
	h := history(t, carol, feeds, 99, 10)
	if len(h.Messages) != 1 || h.LastSeqID != 100 {
		t.Errorf("bob's history after 99 = %v, last %d; want [100], 100", seqIDs(h.Messages), h.LastSeqID)
	}
	send(t, bob, text(feeds, "still served"))

	// The attacker is disconnected as too slow.
	deadline := time.Now().Add(60 * time.Second)
	for {
		sample()
		if offline(bob.Drain(500*time.Millisecond), "alice-attacker") {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Log(string(buf[:runtime.Stack(buf, true)]))
			t.Fatal("the never-reading client was not disconnected")
		}
	}
	sample()
	if grown := int64(peak) - int64(base); grown > 256<<20 {
		t.Errorf("heap in use grew by %d MiB during the attack, want it bounded", grown>>20)
	}
	// Twice the budget, and one answer (a page of at most 1 MiB of bodies)
	// that came while the requests already waited.
	if got := metric(t, inst, "mqtter_outbound_session_peak_bytes"); got > 2*budget+(2<<20) {
		t.Errorf("one client had %.0f bytes queued, want at most about twice its budget (%d)", got, budget)
	}
	if got := metric(t, inst, "mqtter_slow_clients_total"); got < 1 {
		t.Errorf("mqtter_slow_clients_total = %v, want the attacker counted", got)
	}
	// Nothing stays counted once the attacker's last write gave up.
	for deadline := time.Now().Add(30 * time.Second); metric(t, inst, "mqtter_outbound_bytes") != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("mqtter_outbound_bytes = %v after the attacker left, want 0", metric(t, inst, "mqtter_outbound_bytes"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHistoryPageBytes checks that a page stops at the byte limit, that a
// message larger than the limit still comes alone, and that paging on from
// the last SeqId reads the whole conversation.
func TestHistoryPageBytes(t *testing.T) {
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.HistoryBytes = 100 << 10 }))
	people(t, inst, "alice", "bob")
	alice, bob := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	befriend(t, alice, bob)
	feeds := wire.DM("alice", "bob")
	for range 10 {
		send(t, alice, text(feeds, strings.Repeat("y", 30<<10)))
	}
	send(t, alice, text(feeds, strings.Repeat("z", 200<<10)))
	send(t, alice, text(feeds, "small"))

	h := history(t, bob, feeds, 0, 1000)
	if len(h.Messages) != 4 || h.LastSeqID != 12 {
		t.Fatalf("first page = %v, last %d; want 4 messages of 30 KiB (reaching 100 KiB), last 12", seqIDs(h.Messages), h.LastSeqID)
	}
	h = history(t, bob, feeds, 10, 1000)
	if got := seqIDs(h.Messages); len(got) != 1 || got[0] != 11 {
		t.Fatalf("page after 10 = %v, want the 200 KiB message alone", got)
	}
	var all []int64
	for after := int64(0); after < h.LastSeqID; {
		p := history(t, bob, feeds, after, 1000)
		if len(p.Messages) == 0 {
			t.Fatalf("empty page after %d of %d", after, p.LastSeqID)
		}
		all = append(all, seqIDs(p.Messages)...)
		after = p.Messages[len(p.Messages)-1].SeqId
	}
	if fmt.Sprint(all) != fmt.Sprint(span(1, 12)) {
		t.Errorf("paged history = %v, want 1…12", all)
	}
}
