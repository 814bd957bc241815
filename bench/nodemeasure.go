package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mqtter/mqtter/node"
)

// arrivals records when the bench read each message's events: stored at
// the receiving node, and the sender's receipt.
type arrivals struct {
	mu     sync.Mutex
	at     map[string]arrival // by MsgId
	notify chan struct{}      // a token after every change
}

type arrival struct {
	stored, receipt time.Time
	via             string // how the receiver got it
}

func newArrivals() *arrivals {
	return &arrivals{at: make(map[string]arrival), notify: make(chan struct{}, 1)}
}

func (a *arrivals) note(id string, f func(*arrival)) {
	a.mu.Lock()
	v := a.at[id]
	f(&v)
	a.at[id] = v
	a.mu.Unlock()
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// wait waits until id is stored (and has its receipt, if receipt), and
// forgets it.
func (a *arrivals) wait(ctx context.Context, id string, receipt bool, timeout time.Duration) (arrival, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		a.mu.Lock()
		v, ok := a.at[id]
		done := ok && !v.stored.IsZero() && (!receipt || !v.receipt.IsZero())
		if done {
			delete(a.at, id)
		}
		a.mu.Unlock()
		if done {
			return v, nil
		}
		select {
		case <-a.notify:
		case <-timer.C:
			return v, fmt.Errorf("message %s: no event within %v (stored %v, receipt %v)", id, timeout, !v.stored.IsZero(), !v.receipt.IsZero())
		case <-ctx.Done():
			return v, ctx.Err()
		}
	}
}

// follow reads the event streams of the receiving node (messages stored)
// and of the sending node (receipts) into a, until ctx ends; the returned
// function waits for both readers.
func (a *arrivals) follow(ctx context.Context, from, to *node.Client) func() error {
	var g errgroup.Group
	g.Go(func() error {
		return to.Events(ctx, func(ev node.Event) error {
			now := time.Now()
			if ev.Type != node.EventMessage {
				return nil
			}
			var e node.HistoryEntry
			if err := json.Unmarshal(ev.Data, &e); err != nil {
				return err
			}
			if e.Via != "local" {
				a.note(e.MsgId, func(v *arrival) { v.stored, v.via = now, e.Via })
			}
			return nil
		})
	})
	g.Go(func() error {
		return from.Events(ctx, func(ev node.Event) error {
			now := time.Now()
			if ev.Type != node.EventReceipt {
				return nil
			}
			var r node.Receipt
			if err := json.Unmarshal(ev.Data, &r); err != nil {
				return err
			}
			a.note(r.MsgId, func(v *arrival) { v.receipt = now })
			return nil
		})
	})
	return g.Wait
}

// apiSamples are the times of an API latency run.
type apiSamples struct {
	stored, answered []time.Duration
	via              map[string]int // how many took each path
}

// apiLatency sends warmup+n messages through from's local API to dest
// (a user or a feeds id), one after another, each once the previous one is
// stored at to, and times each from the API call until to's event stream
// says it is stored, and until from's says the peer answered (its
// receipt; direct path only). It keeps the last n.
func apiLatency(ctx context.Context, from, to *nodeProc, dest string, receipts bool, warmup, n int, timeout time.Duration) (apiSamples, error) {
	res := apiSamples{via: map[string]int{}}
	ctx, cancel := context.WithCancel(ctx)
	a := newArrivals()
	wait := a.follow(ctx, from.api, to.api)
	defer func() {
		cancel()
		_ = wait()
	}()
	// The event streams are live once a probe's events come through; a
	// node may also need a moment to learn of a new group.
	var probeErr error
	for try := 0; try < 20; try++ {
		r, err := from.api.Send(ctx, node.SendRequest{To: dest, Text: "nodebench probe"})
		if err == nil {
			_, err = a.wait(ctx, r.MsgId, receipts, 500*time.Millisecond)
		} else if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
		if probeErr = err; err == nil {
			break
		}
	}
	if probeErr != nil {
		return res, fmt.Errorf("probe message (events from both nodes): %w", probeErr)
	}
	for i := range warmup + n {
		start := time.Now()
		r, err := from.api.Send(ctx, node.SendRequest{To: dest, Text: fmt.Sprintf("nodebench latency %d: the quick brown fox jumps over the lazy dog", i)})
		if err != nil {
			return res, fmt.Errorf("message %d: %w", i, err)
		}
		v, err := a.wait(ctx, r.MsgId, receipts, timeout)
		if err != nil {
			return res, fmt.Errorf("message %d: %w", i, err)
		}
		if i < warmup {
			continue
		}
		res.via[v.via]++
		res.stored = append(res.stored, v.stored.Sub(start))
		if receipts {
			res.answered = append(res.answered, v.receipt.Sub(start))
		}
	}
	return res, nil
}

// apiThroughput sends msgs messages through from's local API to dest,
// from senders concurrent callers, and times them until to's counter (as
// /metrics shows it, read every 10 ms) has grown by msgs.
func apiThroughput(ctx context.Context, path string, from, to *nodeProc, dest, counter string, msgs, senders int, timeout time.Duration) NodeFlow {
	flow := NodeFlow{Path: path, How: fmt.Sprintf("%d concurrent callers of %s's local API, counted at %s's %s", senders, from.user, to.user, counter)}
	base, err := to.counter(ctx, counter)
	if err != nil {
		flow.Err = err.Error()
		return flow
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fromCPU, toCPU := from.cpuTime(), to.cpuTime()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for s := range senders {
		share := msgs / senders
		if s < msgs%senders {
			share++
		}
		g.Go(func() error {
			for i := range share {
				req := node.SendRequest{To: dest, Text: fmt.Sprintf("nodebench flow %d/%d: the quick brown fox jumps over the lazy dog", s, i)}
				if _, err := from.api.Send(gctx, req); err != nil {
					return err
				}
			}
			return nil
		})
	}
	sent := make(chan error, 1)
	go func() { sent <- g.Wait() }()
	last, lastChange := base, time.Now()
	for {
		select {
		case err := <-sent:
			if err != nil {
				flow.Err = fmt.Sprintf("send: %v", err)
				return flow
			}
			sent = nil
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			flow.Err = ctx.Err().Error()
			return flow
		}
		v, err := to.counter(ctx, counter)
		if err != nil {
			flow.Err = err.Error()
			return flow
		}
		now := time.Now()
		if v != last {
			last, lastChange = v, now
		}
		flow.Msgs, flow.Elapsed = int(min(v-base, int64(msgs))), now.Sub(start)
		if v-base >= int64(msgs) {
			break
		}
		if now.Sub(lastChange) > timeout {
			flow.Err = fmt.Sprintf("stalled: %d of %d stored after %v", v-base, msgs, now.Sub(start).Round(time.Millisecond))
			break
		}
	}
	if sent != nil {
		if flow.Err != "" {
			cancel() // stalled: the callers give up
		}
		if err := <-sent; err != nil && flow.Err == "" {
			flow.Err = fmt.Sprintf("send: %v", err)
		}
	}
	if flow.Msgs > 0 {
		flow.SenderCPU = (from.cpuTime() - fromCPU) / time.Duration(flow.Msgs)
		flow.ReceiverCPU = (to.cpuTime() - toCPU) / time.Duration(flow.Msgs)
	}
	return flow
}
