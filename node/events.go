package node

import (
	"encoding/json"
	"sync"
)

// subscriberBuffer is how many events a subscriber may fall behind before
// it is dropped (its stream ends, and it can reconnect and re-read state).
const subscriberBuffer = 1024

// fanout sends values to subscribers, each with a buffer of its own,
// never blocking: one that falls behind is dropped (its channel closed).
// The event stream and a thing's invocation listeners are two of them.
type fanout[T any] struct {
	mu      sync.Mutex
	subs    map[chan T]struct{}
	buffer  int
	dropped func() // counts a dropped subscriber; may be nil
}

func newFanout[T any](buffer int, dropped func()) *fanout[T] {
	return &fanout[T]{subs: make(map[chan T]struct{}), buffer: buffer, dropped: dropped}
}

// subscribe returns a channel of values, closed when the subscriber is
// dropped for falling behind or by cancel.
func (f *fanout[T]) subscribe() (<-chan T, func()) {
	ch := make(chan T, f.buffer)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

// count returns how many subscribers there are now.
func (f *fanout[T]) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// send sends v to every subscriber, dropping those whose buffer is full.
func (f *fanout[T]) send(v T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- v:
		default:
			delete(f.subs, ch)
			close(ch)
			if f.dropped != nil {
				f.dropped()
			}
		}
	}
}

// closeAll ends every subscription.
func (f *fanout[T]) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}

// events fans node events out to the local API's event streams.
type events struct{ *fanout[Event] }

func newEvents(dropped func()) *events {
	return &events{newFanout[Event](subscriberBuffer, dropped)}
}

// publish sends an event of type typ with data (JSON-encoded) to every
// subscriber, never blocking; with none, data is not even encoded.
func (e *events) publish(typ string, data any) {
	if e.count() == 0 {
		return
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return
	}
	e.send(Event{Type: typ, Data: raw})
}
