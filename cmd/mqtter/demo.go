package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mqtter/mqtter/mqttlink"
	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/wire"
)

// runDemo runs an embedded server on loopback in a temporary directory and
// walks a few devices through the protocol, printing a transcript.
func runDemo(ctx context.Context, stdout io.Writer) error {
	dir, err := os.MkdirTemp("", "mqtter-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d := &demo{out: stdout, dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil)), pushes: make(chan string, 100)}
	defer d.stop()
	return d.run(ctx)
}

type demo struct {
	out    io.Writer
	dir    string
	log    *slog.Logger
	srv    *server.Server
	cancel context.CancelFunc
	done   chan error
	mqtt   string
	http   string
	links  []*mqttlink.Link
	pushes chan string
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) startServer(ctx context.Context, mqttAddr, httpAddr string) error {
	srv, err := server.New(ctx, server.Config{DataDir: d.dir, Logger: d.log})
	if err != nil {
		return err
	}
	ml, err := net.Listen("tcp", mqttAddr)
	if err != nil {
		return err
	}
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		ml.Close()
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	d.srv, d.cancel, d.done = srv, cancel, make(chan error, 1)
	go func() { d.done <- srv.Serve(sctx, server.Listeners{MQTT: ml, HTTP: hl}) }()
	select {
	case <-srv.Ready():
	case err := <-d.done:
		return err
	}
	d.mqtt, d.http = "tcp://"+ml.Addr().String(), hl.Addr().String()
	return nil
}

func (d *demo) stopServer() error {
	if d.cancel == nil {
		return nil
	}
	d.cancel()
	d.cancel = nil
	return <-d.done
}

func (d *demo) stop() {
	for _, l := range d.links {
		l.Close()
	}
	d.stopServer()
}

func (d *demo) connect(ctx context.Context, user, device string, printPushes bool) (*mqttlink.Link, error) {
	cfg := mqttlink.Config{Server: d.mqtt, User: user, Password: user + "-secret", ClientID: device, Logger: d.log,
		MaxBackoff: 200 * time.Millisecond}
	var l *mqttlink.Link
	if printPushes {
		cfg.OnPush = func(topic string, body []byte) {
			var n wire.News
			if topic != wire.PushNews || json.Unmarshal(body, &n) != nil {
				return
			}
			d.pushes <- fmt.Sprintf("%s got news: %s #%d from %s: %s", device, n.Feeds, n.Message.SeqId, n.Message.From, n.Message.Payload)
			// Acknowledge, so the server does not replay it at the next connect.
			l.Call(ctx, "ack", wire.AckReq{Feeds: n.Feeds, SeqID: n.Message.SeqId}, nil)
		}
	}
	l = mqttlink.Start(cfg)
	d.links = append(d.links, l)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return l, l.Wait(wctx)
}

func (d *demo) expectPush(want string) error {
	select {
	case p := <-d.pushes:
		d.say("  ← %s", p)
		if !strings.Contains(p, want) {
			return fmt.Errorf("expected a push with %q", want)
		}
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("no push with %q within 5s", want)
	}
}

func text(s string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"text": s})
	return b
}

func (d *demo) send(ctx context.Context, l *mqttlink.Link, feeds, msg string) (wire.SendResult, error) {
	m := wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds, MsgType: "text", Payload: text(msg), TimeCreate: time.Now().UnixMilli()}
	var res wire.SendResult
	err := l.Call(ctx, "send", m, &res)
	return res, err
}

func (d *demo) run(ctx context.Context) error {
	d.say("MQTTER demo: an embedded server on loopback, data in a temporary directory\n")
	if err := d.startServer(ctx, "127.0.0.1:0", "127.0.0.1:0"); err != nil {
		return err
	}
	d.say("server: MQTT %s, HTTP http://%s", d.mqtt, d.http)
	for _, u := range []struct{ name, kind string }{{"alice", server.KindPerson}, {"bob", server.KindPerson}, {"lamp", server.KindThing}} {
		code, err := d.srv.AddUser(ctx, u.name, u.name+"-secret", u.kind)
		if err != nil {
			return err
		}
		d.say("user add %s (%s)%s", u.name, u.kind, map[bool]string{true: ", pairing code " + code}[code != ""])
	}
	alice, err := d.connect(ctx, "alice", "alice-laptop", false)
	if err != nil {
		return err
	}
	bob, err := d.connect(ctx, "bob", "bob-phone", true)
	if err != nil {
		return err
	}
	d.say("\nalice and bob connect; alice asks bob to be friends, bob accepts")
	if err := alice.Call(ctx, "add_friend", wire.UserReq{User: "bob"}, nil); err != nil {
		return err
	}
	if err := bob.Call(ctx, "accept_friend", wire.UserReq{User: "alice"}, nil); err != nil {
		return err
	}
	dm := wire.DM("alice", "bob")
	for i, m := range []string{"hi bob", "lunch at noon?"} {
		res, err := d.send(ctx, alice, dm, m)
		if err != nil {
			return err
		}
		d.say("alice sends %q → stored as %s #%d", m, res.Feeds, res.SeqId)
		if res.SeqId != int64(i+1) {
			return fmt.Errorf("SeqId %d, want %d", res.SeqId, i+1)
		}
		if err := d.expectPush(m); err != nil {
			return err
		}
	}

	d.say("\nbob's phone goes offline; alice writes; when the phone is back it gets what was saved")
	bob.Close()
	if _, err := d.send(ctx, alice, dm, "are you there?"); err != nil {
		return err
	}
	d.say("alice sends \"are you there?\" while bob is offline")
	if _, err := d.connect(ctx, "bob", "bob-phone", true); err != nil {
		return err
	}
	if err := d.expectPush("are you there?"); err != nil {
		return err
	}
	d.say("bob's new laptop connects: a new device starts at the present and pulls the history")
	laptop, err := d.connect(ctx, "bob", "bob-laptop", true)
	if err != nil {
		return err
	}
	var hist wire.HistoryResult
	if err := laptop.Call(ctx, "history", wire.HistoryReq{Feeds: dm}, &hist); err != nil {
		return err
	}
	for _, m := range hist.Messages {
		d.say("  bob-laptop history: #%d %s: %s", m.SeqId, m.From, m.Payload)
	}

	d.say("\nthe server restarts; nothing is lost and SeqIds continue")
	mqttAddr, httpAddr := strings.TrimPrefix(d.mqtt, "tcp://"), d.http
	if err := d.stopServer(); err != nil {
		return err
	}
	if err := d.startServer(ctx, mqttAddr, httpAddr); err != nil {
		return err
	}
	if err := alice.Wait(ctx); err != nil {
		return err
	}
	for alice.Call(ctx, "conversations", struct{}{}, nil) != nil {
		time.Sleep(50 * time.Millisecond) // until alice has reconnected
	}
	res, err := d.send(ctx, alice, dm, "back after the restart")
	if err != nil {
		return err
	}
	d.say("alice sends again → %s #%d", res.Feeds, res.SeqId)

	d.say("\nalice binds the lamp with its pairing code, then talks to it")
	var pc wire.PairingCode
	lamp, err := d.connect(ctx, "lamp", "lamp-1", true)
	if err != nil {
		return err
	}
	if err := lamp.Call(ctx, "pairing_code", struct{}{}, &pc); err != nil {
		return err
	}
	if err := alice.Call(ctx, "bind_thing", wire.BindThingReq{Thing: "lamp", Code: pc.Code}, nil); err != nil {
		return err
	}
	if _, err := d.send(ctx, alice, wire.DM("alice", "lamp"), "on"); err != nil {
		return err
	}
	for {
		// bob's devices print theirs too.
		p := <-d.pushes
		d.say("  ← %s", p)
		if strings.HasPrefix(p, "lamp-1") {
			break
		}
	}

	d.say("\nthe HTTP API: GET /v1/conversations as alice")
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.http+"/v1/conversations", nil)
	req.SetBasicAuth("alice", "alice-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.say("  %s %s", resp.Status, strings.TrimSpace(string(body)))
	d.say("\ndemo done")
	return nil
}
