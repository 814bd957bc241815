package node

import (
	"sync"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// ackDelay lets acks of a burst of pushes coalesce into one per
// conversation.
const ackDelay = 50 * time.Millisecond

// acker moves this device's delivery cursors on the server (ack) for
// pushed messages once they are stored, one ack per conversation for a
// burst. An ack that fails is sent again later; one never sent only means
// the server pushes those messages again at the next connect, where they
// are deduplicated.
type acker struct {
	n       *Node
	mu      sync.Mutex
	pending map[string]int64 // feeds → highest stored SeqId not yet acked
	timer   *time.Timer
	wg      sync.WaitGroup
}

func newAcker(n *Node) *acker { return &acker{n: n, pending: make(map[string]int64)} }

// note records that feeds is stored up to seq.
func (a *acker) note(feeds string, seq int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if seq <= a.pending[feeds] {
		return
	}
	a.pending[feeds] = seq
	if a.timer == nil && a.n.ctx.Err() == nil {
		a.wg.Add(1)
		a.timer = time.AfterFunc(ackDelay, a.flush)
	}
}

func (a *acker) flush() {
	defer a.wg.Done()
	a.mu.Lock()
	batch := a.pending
	a.pending = make(map[string]int64)
	a.timer = nil
	a.mu.Unlock()
	var failed bool
	for feeds, seq := range batch {
		err := a.n.link.Call(a.n.ctx, wire.MethodAck, wire.AckReq{Feeds: feeds, SeqID: seq}, nil)
		if err != nil {
			failed = true
			a.mu.Lock()
			if a.pending[feeds] < seq {
				a.pending[feeds] = seq
			}
			a.mu.Unlock()
		}
	}
	if failed && a.n.ctx.Err() == nil {
		a.mu.Lock()
		if a.timer == nil {
			a.wg.Add(1)
			a.timer = time.AfterFunc(time.Second, a.flush)
		}
		a.mu.Unlock()
	}
}

// wait waits for a flush in progress; none starts once the node's ctx is
// done.
func (a *acker) wait() {
	a.mu.Lock()
	if a.timer != nil && a.timer.Stop() {
		a.timer = nil
		a.wg.Done()
	}
	a.mu.Unlock()
	a.wg.Wait()
}
