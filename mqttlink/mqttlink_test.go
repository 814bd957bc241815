package mqttlink_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtter/mqtter/mqttlink"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func start(t *testing.T, inst *servertest.Instance, user, pass, device string, cfg mqttlink.Config) *mqttlink.Link {
	t.Helper()
	cfg.Server, cfg.User, cfg.Password, cfg.ClientID = inst.MQTT, user, pass, device
	cfg.MaxBackoff = 200 * time.Millisecond
	l := mqttlink.Start(cfg)
	t.Cleanup(l.Close)
	return l
}

func TestCallAndPush(t *testing.T) {
	inst := servertest.Start(t)
	inst.AddUser(t, "alice", "pa", false)
	inst.AddUser(t, "bob", "pb", false)
	pushes := make(chan string, 10)
	a := start(t, inst, "alice", "pa", "a1", mqttlink.Config{})
	b := start(t, inst, "bob", "pb", "b1", mqttlink.Config{OnPush: func(topic string, body []byte) { pushes <- topic }})
	ctx := t.Context()
	for _, l := range []*mqttlink.Link{a, b} {
		if err := l.Wait(ctx); err != nil {
			t.Fatalf("Wait: %v", err)
		}
	}
	if err := a.Call(ctx, "add_friend", wire.UserReq{User: "bob"}, nil); err != nil {
		t.Fatalf("add_friend: %v", err)
	}
	deadline := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case topic := <-pushes:
			got = topic == wire.PushRelation
		case <-deadline:
			t.Fatal("bob got no relation push")
		}
	}
	var rels []wire.Relation
	if err := b.Call(ctx, "list_relations", struct{}{}, &rels); err != nil {
		t.Fatalf("list_relations: %v", err)
	}
	if len(rels) != 1 || rels[0].User != "alice" || rels[0].State != "pending-in" {
		t.Fatalf("list_relations = %+v, want alice pending-in", rels)
	}
	err := a.Call(ctx, "no_such_method", struct{}{}, nil)
	var ae *wire.AnswerError
	if !errors.As(err, &ae) {
		t.Fatalf("unknown method: err = %v, want an AnswerError", err)
	}
}

func TestRefusedLogin(t *testing.T) {
	inst := servertest.Start(t)
	inst.AddUser(t, "alice", "pa", false)
	l := start(t, inst, "alice", "wrong", "a1", mqttlink.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := l.Wait(ctx); !errors.Is(err, mqttlink.ErrRefused) {
		t.Fatalf("Wait with a wrong password = %v, want ErrRefused", err)
	}
}

func TestReconnectRunsOnConnectAgain(t *testing.T) {
	inst := servertest.Start(t)
	inst.AddUser(t, "alice", "pa", false)
	var connects atomic.Int32
	l := start(t, inst, "alice", "pa", "a1", mqttlink.Config{
		OnConnect: func(context.Context, *mqttlink.Link) { connects.Add(1) },
	})
	ctx := t.Context()
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	inst.Restart(t)
	deadline := time.Now().Add(15 * time.Second)
	for connects.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("OnConnect ran %d times after a server restart, want 2", connects.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := l.Call(ctx, "conversations", struct{}{}, nil); err != nil {
		t.Fatalf("call after reconnect: %v", err)
	}
}

func TestCallWhileDown(t *testing.T) {
	inst := servertest.Start(t)
	inst.AddUser(t, "alice", "pa", false)
	l := start(t, inst, "alice", "pa", "a1", mqttlink.Config{})
	if err := l.Wait(t.Context()); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	inst.Stop(t)
	deadline := time.Now().Add(10 * time.Second)
	for l.Connected() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := l.Call(t.Context(), "conversations", struct{}{}, nil); !errors.Is(err, mqttlink.ErrNotConnected) {
		t.Fatalf("Call with the server down = %v, want ErrNotConnected", err)
	}
}

// After three server restarts close together the link is back within a few
// seconds of the last one: paho's own reconnect had doubled its wait by
// then and stayed away up to its 30 s maximum.
func TestBackSoonAfterRepeatedRestarts(t *testing.T) {
	inst := servertest.Start(t)
	inst.AddUser(t, "alice", "pa", false)
	// The default backoff, as a node runs it.
	l := mqttlink.Start(mqttlink.Config{Server: inst.MQTT, User: "alice", Password: "pa", ClientID: "a1",
		Logger: servertest.TestLogger(t)})
	t.Cleanup(l.Close)
	if err := l.Wait(t.Context()); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	for i := range 3 {
		inst.Stop(t)
		// Down long enough for several failed attempts to grow the backoff.
		time.Sleep(3 * time.Second)
		if l.Connected() {
			t.Fatalf("restart %d: link still up with the server stopped", i)
		}
		inst.Restart(t)
	}
	const bound = 4 * time.Second
	back := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("link not back within %v of the last restart: %v", bound, err)
	}
	t.Logf("back %v after the last restart", time.Since(back).Round(time.Millisecond))
	if err := l.Call(t.Context(), "conversations", struct{}{}, nil); err != nil {
		t.Fatalf("call after reconnect: %v", err)
	}
}
