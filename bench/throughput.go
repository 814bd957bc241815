package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// FlowResult is what one throughput run measured.
type FlowResult struct {
	Publishers int
	Sent       int           // messages published
	Received   int           // distinct messages received
	Dups       int           // messages received more than once (allowed: at least once)
	Refused    int           // messages the broker answered with an Error
	PubErrors  int           // publishes whose PUBACK failed
	Elapsed    time.Duration // first send to last message received
	BrokerCPU  time.Duration // CPU time the broker process used during the run
	Stalled    bool          // stopped because nothing arrived for a while
	SeqCheck   string        // "ok", "" through a plain broker, or what is wrong
	FirstError string        // the first refusal or publish error
}

// Lost is how many messages sent never arrived.
func (r FlowResult) Lost() int { return r.Sent - r.Received - r.Refused }

// Rate is received messages per second.
func (r FlowResult) Rate() float64 { return Rate(r.Received, r.Elapsed) }

// CPUPerMsg is the broker's CPU time per message received, or 0 when the
// run was too short for /proc's 10 ms ticks to tell.
func (r FlowResult) CPUPerMsg() time.Duration {
	if r.Received == 0 || r.BrokerCPU < 2*time.Second/userHZ {
		return 0
	}
	return r.BrokerCPU / time.Duration(r.Received)
}

// measureThroughput has every link send msgs messages at once, each keeping
// at most window of them sent but not yet received, and measures the total
// rate from the first send to the last receipt. It stops early when nothing
// arrives for stall.
func measureThroughput(ctx context.Context, links []*link, run, msgs, window int, stall time.Duration) FlowResult {
	var progress atomic.Int64
	flows := make([]*flow, len(links))
	for i, l := range links {
		flows[i] = newFlow(l, run, msgs, window, &progress)
		l.setSink(flows[i].sink())
	}
	defer func() {
		for _, l := range links {
			l.setSink(nil)
		}
	}()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for _, f := range flows {
		wg.Go(func() { f.send(stop) })
	}

	res := FlowResult{Publishers: len(links)}
	tick := time.NewTicker(50 * time.Millisecond)
	lastProgress, lastChange := int64(-1), time.Now()
	for !allDone(flows) {
		select {
		case <-ctx.Done():
			res.Stalled = true
		case <-tick.C:
		}
		if p := progress.Load(); p != lastProgress {
			lastProgress, lastChange = p, time.Now()
		} else if time.Since(lastChange) > stall {
			res.Stalled = true
		}
		if res.Stalled {
			break
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()

	var last time.Time
	seqOK, seqChecked := true, false
	for _, f := range flows {
		f.mu.Lock()
		res.Sent += int(f.sent.Load())
		res.Received += f.received
		res.Dups += f.dups
		res.Refused += f.refused
		res.PubErrors += int(f.pubErrors.Load())
		if res.FirstError == "" {
			res.FirstError = f.firstError
		}
		if f.last.After(last) {
			last = f.last
		}
		if len(f.seqs) > 0 {
			seqChecked = true
			if problem := checkSeqs(f.seqBase, f.seqs, msgs); problem != "" && seqOK {
				seqOK = false
				res.SeqCheck = f.l.name + ": " + problem
			}
		}
		f.mu.Unlock()
	}
	if seqChecked && seqOK {
		res.SeqCheck = "ok"
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	return res
}

func allDone(flows []*flow) bool {
	for _, f := range flows {
		select {
		case <-f.done:
		default:
			return false
		}
	}
	return true
}
