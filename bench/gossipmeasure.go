package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/wire"
)

// fanout records, for each message, which members have stored it (as
// their event streams say), when the last of them did, and how.
type fanout struct {
	mu      sync.Mutex
	members int
	at      map[string]*spread // by MsgId
	notify  chan struct{}      // a token after every change
}

type spread struct {
	got  map[int]bool // by member index
	last time.Time
	via  map[string]int
}

func newFanout(members int) *fanout {
	return &fanout{members: members, at: make(map[string]*spread), notify: make(chan struct{}, 1)}
}

func (f *fanout) stored(id string, member int, via string, at time.Time) {
	f.mu.Lock()
	s := f.at[id]
	if s == nil {
		s = &spread{got: make(map[int]bool), via: make(map[string]int)}
		f.at[id] = s
	}
	if !s.got[member] {
		s.got[member] = true
		s.via[via]++
		s.last = at
	}
	f.mu.Unlock()
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// wait waits until every member stored id, and forgets it.
func (f *fanout) wait(ctx context.Context, id string, timeout time.Duration) (spread, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		f.mu.Lock()
		s := f.at[id]
		done := s != nil && len(s.got) == f.members
		if done {
			delete(f.at, id)
		}
		f.mu.Unlock()
		if done {
			return *s, nil
		}
		select {
		case <-f.notify:
		case <-timer.C:
			f.mu.Lock()
			got := 0
			if s := f.at[id]; s != nil {
				got = len(s.got)
			}
			delete(f.at, id)
			f.mu.Unlock()
			return spread{}, fmt.Errorf("message %s: stored by %d of %d members within %v", id, got, f.members, timeout)
		case <-ctx.Done():
			return spread{}, ctx.Err()
		}
	}
}

// storedEvent is what the bench reads of a node's "message" event.
type storedEvent struct {
	MsgId string `json:"MsgId"`
	Feeds string `json:"Feeds"`
	Via   string `json:"Via"`
}

// follow reads every member's event stream into w.events until close.
func (w *gossipWorld) follow(ctx context.Context) error {
	w.events = newFanout(len(w.members))
	ctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	for i, m := range w.members {
		g.Go(func() error {
			return m.api.Events(ctx, func(ev node.Event) error {
				now := time.Now()
				if ev.Type != node.EventMessage {
					return nil
				}
				var e storedEvent
				if err := json.Unmarshal(ev.Data, &e); err != nil {
					return fmt.Errorf("%s's event: %w", m.user, err)
				}
				if e.Feeds == w.group {
					w.events.stored(e.MsgId, i, e.Via, now)
				}
				return nil
			})
		})
	}
	w.stopEv = func() {
		cancel()
		_ = g.Wait()
	}
	// The streams are live once a probe has reached every member.
	var err error
	for try := 0; try < 20; try++ {
		m := w.message("probe", try)
		body, _ := json.Marshal(&m)
		if _, err = w.gossip.Publish(ctx, w.topic, body); err == nil {
			_, err = w.events.wait(ctx, m.MsgId, time.Second)
		}
		if err == nil {
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("probe messages by gossip (events from every member): %w", err)
}

// message returns a signed group text of the sender's device.
func (w *gossipWorld) message(what string, i int) wire.Message {
	payload, _ := json.Marshal(map[string]string{"text": fmt.Sprintf("gossipbench %s %d: the quick brown fox jumps over the lazy dog", what, i)})
	m := wire.Message{MsgId: wire.NewMsgID(), Feeds: w.group, MsgType: wire.MsgTypeText, From: gossipSender,
		Payload: payload, TimeCreate: time.Now().UnixMilli()}
	if err := m.Sign(w.device.key); err != nil {
		panic(err) // an Ed25519 key always signs
	}
	return m
}

// measure sends warmup+n group messages on path one after another, each
// once the previous one is stored by every member, and times each from
// the send until the last member's event stream says it stored it. The
// messages are signed and encoded before the clock starts. It keeps the
// last n, and the CPU time of the run's processes over them.
func (w *gossipWorld) measure(ctx context.Context, path string, warmup, n int, timeout time.Duration) FanoutRow {
	row := FanoutRow{Size: len(w.members), Path: path, Via: map[string]int{}}
	msgs := make([]wire.Message, warmup+n)
	bodies := make([][]byte, len(msgs))
	for i := range msgs {
		msgs[i] = w.message(path, i)
		bodies[i], _ = json.Marshal(&msgs[i])
	}
	send := func(i int) error {
		if path == PathGossip {
			_, err := w.gossip.Publish(ctx, w.topic, bodies[i])
			return err
		}
		var sr wire.SendResult
		return w.device.link.Call(ctx, wire.MethodSend, msgs[i], &sr)
	}
	var samples []time.Duration
	var cpu0 time.Duration
	for i := range msgs {
		if i == warmup {
			cpu0 = w.cpuTime()
		}
		start := time.Now()
		if err := send(i); err != nil {
			row.Err = fmt.Sprintf("message %d: %v", i, err)
			break
		}
		s, err := w.events.wait(ctx, msgs[i].MsgId, timeout)
		if err != nil {
			row.Err = fmt.Sprintf("message %d: %v", i, err)
			break
		}
		if i < warmup {
			continue
		}
		samples = append(samples, s.last.Sub(start))
		for via, c := range s.via {
			row.Via[via] += c
		}
	}
	if len(samples) > 0 {
		row.CPU = (w.cpuTime() - cpu0) / time.Duration(len(samples)*len(w.members))
	}
	row.Latency = Summarize(samples)
	return row
}
