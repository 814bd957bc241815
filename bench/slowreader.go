package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqtter/mqtter/wire"
)

// SlowReaderConfig sets up the never-reading-client attack on a real
// `mqtter server`.
type SlowReaderConfig struct {
	MQTTer   string        // built mqtter binary
	Dir      string        // run files; "" for a temporary directory
	Conns    int           // never-reading connections
	Requests int           // history requests each of them sends
	Messages int           // messages of 150 KiB in the conversation they ask for
	Watch    time.Duration // how long RSS is sampled after the attack starts
}

// SlowReaderResult is the server's resident memory before and during the
// attack.
type SlowReaderResult struct {
	Before int64 // bytes, history filled, no attacker
	Peak   int64 // bytes, the highest sample while the attackers ran
	After  int64 // bytes, at the end of the watch
	Sent   int   // history requests the attackers got written
}

// Print writes the figures.
func (r SlowReaderResult) Print(w io.Writer, cfg SlowReaderConfig) {
	fmt.Fprintf(w, "never-reading clients: %d connections × %d history requests (limit 1000) over %d messages of 150 KiB\n",
		cfg.Conns, cfg.Requests, cfg.Messages)
	fmt.Fprintf(w, "server RSS before %6.0f MiB   peak %6.0f MiB   after %v %6.0f MiB   requests written %d\n",
		mib(r.Before), mib(r.Peak), cfg.Watch, mib(r.After), r.Sent)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// RunSlowReader fills a conversation, then lets cfg.Conns raw MQTT
// connections ask for its whole history over and over without reading a
// byte, and samples the server's VmRSS meanwhile.
func RunSlowReader(ctx context.Context, cfg SlowReaderConfig) (SlowReaderResult, error) {
	var res SlowReaderResult
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "slowreader-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	srv, err := startMQTTer(ctx, cfg.MQTTer, dir, "server", []string{"alice", "bob"})
	if err != nil {
		return res, err
	}
	defer srv.stop()

	// alice and bob become friends; alice fills their conversation.
	answers := make(chan []byte, 16)
	onMsg := func(topic string, body []byte) {
		if strings.HasPrefix(topic, "im://") {
			answers <- body
		}
	}
	alice, err := dial(ctx, dialSpec{url: srv.url(), clientID: "alice-1", user: "alice", password: benchPassword}, onMsg)
	if err != nil {
		return res, err
	}
	defer alice.Disconnect(100)
	bob, err := dial(ctx, dialSpec{url: srv.url(), clientID: "bob-1", user: "bob", password: benchPassword}, onMsg)
	if err != nil {
		return res, err
	}
	defer bob.Disconnect(100)
	n := 0
	do := func(pub func(topic string, body []byte) error, method string, body any) error {
		n++
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		if err := pub(wire.RequestTopic("modulus", method, fmt.Sprintf("r%d", n)), b); err != nil {
			return err
		}
		select {
		case a := <-answers:
			ans, err := wire.ParseAnswer(a)
			if err != nil {
				return err
			}
			if ans.Error != "" {
				return fmt.Errorf("%s: %s", method, ans.Error)
			}
			return nil
		case <-time.After(30 * time.Second):
			return fmt.Errorf("%s: no answer", method)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	pubAlice := func(topic string, body []byte) error { return wait(ctx, alice.Publish(topic, 1, false, body)) }
	pubBob := func(topic string, body []byte) error { return wait(ctx, bob.Publish(topic, 1, false, body)) }
	if err := do(pubAlice, wire.MethodAddFriend, map[string]string{"user": "bob"}); err != nil {
		return res, err
	}
	if err := do(pubBob, wire.MethodAcceptFriend, map[string]string{"user": "alice"}); err != nil {
		return res, err
	}
	feeds := wire.DM("alice", "bob")
	text, _ := json.Marshal(map[string]string{"text": strings.Repeat("x", 150<<10)})
	for range cfg.Messages {
		m := wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds, MsgType: wire.MsgTypeText, Payload: text, TimeCreate: time.Now().UnixMilli()}
		if err := do(pubAlice, wire.MethodSend, m); err != nil {
			return res, err
		}
	}
	time.Sleep(2 * time.Second)
	if res.Before, err = srv.rss(); err != nil {
		return res, err
	}

	// The attack.
	actx, cancel := context.WithTimeout(ctx, cfg.Watch)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := neverRead(actx, srv.addr, "alice", fmt.Sprintf("alice-slow-%d", i), feeds, cfg.Requests)
			mu.Lock()
			res.Sent += sent
			mu.Unlock()
		}()
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		rss, err := srv.rss()
		if err == nil {
			res.Peak = max(res.Peak, rss)
			res.After = rss
		}
		select {
		case <-tick.C:
			continue
		case <-actx.Done():
		}
		break
	}
	wg.Wait()
	return res, nil
}

// neverRead connects as user/device, sends requests history requests for
// feeds and never reads; it returns how many it got written, and closes
// the connection when ctx ends.
func neverRead(ctx context.Context, addr, user, device, feeds string, requests int) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0
	}
	defer conn.Close()
	go func() { <-ctx.Done(); conn.Close() }()
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 600, ClientIdentifier: device,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(benchPassword)}}
	if pk.ConnectEncode(&buf) != nil {
		return 0
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return 0
	}
	body, _ := json.Marshal(wire.HistoryReq{Feeds: feeds, Limit: 1000})
	sent := 0
	for i := range requests {
		buf.Reset()
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 4,
			TopicName: wire.RequestTopic("modulus", wire.MethodHistory, fmt.Sprintf("h%d", i)), Payload: body}
		if pk.PublishEncode(&buf) != nil {
			return sent
		}
		if _, err := conn.Write(buf.Bytes()); err != nil {
			return sent
		}
		sent++
	}
	<-ctx.Done()
	return sent
}
