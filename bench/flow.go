package bench

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// A flow is one link's part of a throughput run.
type flow struct {
	l        *link
	run      int
	msgs     int
	slots    chan struct{} // one per message sent and not yet received
	progress *atomic.Int64 // shared by the run: bumped on every first receipt or refusal
	seqBase  int64         // the link's highest SeqId before the run

	sent, pubErrors atomic.Int64

	mu         sync.Mutex
	state      []byte // per message: 0 pending, 1 received, 2 refused
	received   int
	dups       int
	refused    int
	firstError string
	last       time.Time
	seqs       []int64
	done       chan struct{} // closed when every message is received or refused
}

func newFlow(l *link, run, msgs, window int, progress *atomic.Int64) *flow {
	return &flow{
		l: l, run: run, msgs: msgs, progress: progress, seqBase: l.seqBase(),
		slots: make(chan struct{}, window),
		state: make([]byte, msgs),
		done:  make(chan struct{}),
	}
}

func (f *flow) sink() *sink {
	return &sink{deliver: f.deliver, fail: f.fail}
}

func (f *flow) deliver(d delivery) {
	if d.run != f.run || d.index >= f.msgs {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state[d.index] != 0 {
		f.dups++
		return
	}
	f.state[d.index] = 1
	f.received++
	if d.at.After(f.last) {
		f.last = d.at
	}
	if d.seq > 0 {
		f.seqs = append(f.seqs, d.seq)
	}
	f.settled()
}

func (f *flow) fail(run, index int, err error) {
	if run != f.run || index >= f.msgs {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state[index] != 0 {
		return
	}
	f.state[index] = 2
	f.refused++
	if f.firstError == "" {
		f.firstError = err.Error()
	}
	f.settled()
}

// settled frees a window slot for a message that arrived or was refused.
// f.mu is held.
func (f *flow) settled() {
	select {
	case <-f.slots:
	default:
	}
	f.progress.Add(1)
	if f.received+f.refused == f.msgs {
		close(f.done)
	}
}

// send publishes the flow's messages, waiting for a window slot before each,
// until all are sent or stop closes. PUBACKs are checked as they come.
func (f *flow) send(stop <-chan struct{}) {
	tokens := make(chan paho.Token, cap(f.slots)+1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for tok := range tokens {
			select {
			case <-tok.Done():
				if tok.Error() != nil {
					f.pubErrors.Add(1)
				}
			case <-stop:
				return
			}
		}
	})
	defer wg.Wait()
	defer close(tokens)
	for i := range f.msgs {
		select {
		case f.slots <- struct{}{}:
		case <-stop:
			return
		}
		tok := f.l.publish(f.run, i)
		f.sent.Add(1)
		select {
		case tokens <- tok:
		case <-stop:
			return
		}
	}
}

// checkSeqs says what is wrong with the SeqIds one receiver got in a run of
// msgs messages in a conversation whose last SeqId was base before: they
// must be exactly base+1 … base+msgs. It returns "" when they are.
func checkSeqs(base int64, seqs []int64, msgs int) string {
	s := slices.Clone(seqs)
	slices.Sort(s)
	for i, seq := range s {
		if i > 0 && seq == s[i-1] {
			return fmt.Sprintf("SeqId %d given to two messages", seq)
		}
		if want := base + 1 + int64(i); seq != want {
			return fmt.Sprintf("SeqIds %d…%d expected, first unexpected %d", base+1, base+int64(msgs), seq)
		}
	}
	if len(s) != msgs {
		return fmt.Sprintf("SeqIds %d…%d expected, got %d of them", base+1, base+int64(msgs), len(s))
	}
	return ""
}
