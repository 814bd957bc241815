package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// rawConn is a bare MQTT 3.1.1 connection built from mochi's packet codec,
// so the fuzzer can put any topic and body on the wire.
type rawConn struct {
	c  net.Conn
	r  *bufio.Reader
	id uint16
}

func dialRaw(t testing.TB, addr, user, pass, clientID string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "tcp://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	rc := &rawConn{c: c, r: bufio.NewReader(c)}
	rc.write(t, servertest.ConnectPacket(clientID, user, pass, 60))
	ack := rc.read(t)
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("connack = %+v", ack)
	}
	t.Cleanup(func() { c.Close() })
	return rc
}

func (rc *rawConn) write(t testing.TB, b []byte) {
	t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func (rc *rawConn) read(t testing.TB) packets.Packet {
	t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := rc.r.ReadByte()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var pk packets.Packet
	pk.ProtocolVersion = 4
	if err := pk.FixedHeader.Decode(b); err != nil {
		t.Fatalf("decode header: %v", err)
	}
	n, _, err := packets.DecodeLength(rc.r)
	if err != nil {
		t.Fatalf("decode length: %v", err)
	}
	body := make([]byte, n)
	if _, err := ioReadFull(rc.r, body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	}
	if err != nil {
		t.Fatalf("decode %v: %v", pk.FixedHeader.Type, err)
	}
	return pk
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// request publishes topic/body at QoS 1 and returns the answer published on
// the identical topic, acknowledging what the server sends meanwhile.
func (rc *rawConn) request(t testing.TB, topic string, body []byte) []byte {
	t.Helper()
	rc.id++
	if rc.id == 0 {
		rc.id = 1
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic, Payload: body, PacketID: rc.id, ProtocolVersion: 4,
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Skipf("not encodable: %v", err)
	}
	rc.write(t, buf.Bytes())
	acked := false
	for {
		in := rc.read(t)
		switch in.FixedHeader.Type {
		case packets.Puback:
			if in.PacketID == rc.id {
				acked = true
			}
		case packets.Publish:
			if in.FixedHeader.Qos == 1 {
				ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: in.PacketID, ProtocolVersion: 4}
				var b bytes.Buffer
				ack.PubackEncode(&b)
				rc.write(t, b.Bytes())
			}
			if in.TopicName == topic {
				if !acked {
					// The PUBACK may follow the answer; both must come.
					for !acked {
						if p := rc.read(t); p.FixedHeader.Type == packets.Puback && p.PacketID == rc.id {
							acked = true
						}
					}
				}
				return in.Payload
			}
		}
	}
}

// FuzzRequest puts arbitrary topics and bodies through a real server: every
// PUBLISH must be acknowledged and answered on its identical topic with a
// well-formed Answer, and the connection must stay up.
func FuzzRequest(f *testing.F) {
	seeds := []struct{ topic, body string }{
		{"im://modulus/send?msg_id=1", `{"MsgId":"01JD0000000000000000000000","Feeds":"dm:alice:bob","MsgType":"text","Payload":{"text":"hi"},"TimeCreate":1}`},
		{"im://modulus/add_friend?msg_id=2", `{"user":"bob"}`},
		{"im://modulus/history?msg_id=3", `{"feeds":"dm:alice:bob","after_seq":0,"limit":10}`},
		{"im://n1/conversations?msg_id=4", `{}`},
		{"im://other/peers?msg_id=5", `{}`},
		{"im://modulus/history_push?msg_id=6", `{"messages":[{"MsgId":"x"}]}`},
		{"local://x/y", ``},
		{"not a topic", `{`},
		{"im://modulus/send?msg_id=7#frag", `null`},
		{"http://127.0.0.1:1/x", `{"Method":"GET"}`},
		{"im://modulus/create_feeds?msg_id=8", `{"name":"g","members":["bob"]}`},
		{"im://modulus/register_device?msg_id=9", `{"peer_id":"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm","addrs":["/ip4/127.0.0.1/tcp/1"]}`},
		{"im://modulus/register_device?msg_id=9a", `{"peer_id":"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm","addrs":[],"challenge":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","sig":"AA=="}`},
		{"im://modulus/device_challenge?msg_id=9b", `{}`},
		{"", `{}`},
		{"im://modulus/describe?msg_id=10", `{"thing":"alice","version":1,"actions":{"toggle":{}}}`},
		{"im://modulus/description?msg_id=11", `{"thing":"lamp"}`},
		{"im://modulus/add_rule?msg_id=12", `{"id":"r1","a":"switch","b":"lamp","when":{"event":"pressed","if":[{"path":"n","op":"gt","value":1}]},"then":{"action":"toggle"},"by":"alice","created":1,"device":"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm","sig":"AA=="}`},
		{"im://modulus/remove_rule?msg_id=13", `{"id":"r1"}`},
		{"im://modulus/list_rules?msg_id=14", `{}`},
		{"im://modulus/list_rules?msg_id=15", `{"thing":"lamp"}`},
		{"im://modulus/send?msg_id=16", `{"MsgId":"01JD0000000000000000000001","Feeds":"dm:alice:lamp","MsgType":"command","Payload":{"action":"toggle","expires":1,"trace":{"origin":"alice","origin_msg":"x","hops":0}},"TimeCreate":1}`},
		{"im://modulus/send?msg_id=17", `{"MsgId":"01JD0000000000000000000002","Feeds":"dm:alice:bob","MsgType":"feedback","Payload":{"kind":"ack","cmd":"x","status":"accepted"},"TimeCreate":1}`},
		// The subscription topics take no PUBLISH: bad topics.
		{"feeds/dm/bob", `{"text":"hi"}`},
		{"presence/bob", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.topic, []byte(s.body))
	}
	inst := servertest.Start(f)
	inst.AddUser(f, "alice", "pa", false)
	inst.AddUser(f, "bob", "pb", false)
	a := servertest.Dial(f, inst, "alice", "pa", "alice-fz")
	b := servertest.Dial(f, inst, "bob", "pb", "bob-fz")
	a.OK("add_friend", map[string]string{"user": "bob"}, nil)
	b.OK("accept_friend", map[string]string{"user": "alice"}, nil)
	for _, name := range []string{"lamp", "switch"} {
		code := inst.AddUser(f, name, "pt", true)
		a.OK("bind_thing", wire.BindThingReq{Thing: name, Code: code}, nil)
	}
	a.OK("associate", wire.AssociateReq{A: "lamp", B: "switch"}, nil)
	a.Close()
	b.Close()
	rc := dialRaw(f, inst.MQTT, "alice", "pa", "alice-raw")
	f.Fuzz(func(t *testing.T, topic string, body []byte) {
		// MQTT itself requires a UTF-8 topic without NUL of at most 64 KiB;
		// the broker drops a connection that breaks that, as it should.
		if !utf8.ValidString(topic) || strings.ContainsRune(topic, 0) || len(topic) > 65535 || len(body) > 1<<20 {
			t.Skip()
		}
		ans := rc.request(t, topic, body)
		a, err := wire.ParseAnswer(ans)
		if err != nil {
			t.Fatalf("answer to %q: %v: %s", topic, err, ans)
		}
		if a.Trace == "" {
			t.Fatalf("answer to %q has no Trace: %s", topic, ans)
		}
		if a.Error != "" && string(a.Result) != "null" {
			t.Fatalf("answer to %q has Error %q and Result %s", topic, a.Error, a.Result)
		}
		if _, err := wire.ParseTopic(topic); err != nil && !strings.Contains(a.Error, "bad") {
			t.Fatalf("bad topic %q answered %s", topic, fmt.Sprint(a))
		}
	})
}
