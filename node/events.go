package node

import (
	"encoding/json"
	"sync"
)

// subscriberBuffer is how many events a subscriber may fall behind before
// it is dropped (its stream ends, and it can reconnect and re-read state).
const subscriberBuffer = 1024

// events fans node events out to the local API's event streams.
type events struct {
	mu      sync.Mutex
	subs    map[chan Event]struct{}
	dropped func() // counts a dropped subscriber
}

func newEvents(dropped func()) *events {
	return &events{subs: make(map[chan Event]struct{}), dropped: dropped}
}

// subscribe returns a channel of events, closed when the subscriber is
// dropped for falling behind or by cancel.
func (e *events) subscribe() (<-chan Event, func()) {
	ch := make(chan Event, subscriberBuffer)
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.subs[ch]; ok {
			delete(e.subs, ch)
			close(ch)
		}
	}
}

// publish sends an event of type typ with data (JSON-encoded) to every
// subscriber, never blocking.
func (e *events) publish(typ string, data any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.subs) == 0 {
		return
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return
	}
	ev := Event{Type: typ, Data: raw}
	for ch := range e.subs {
		select {
		case ch <- ev:
		default:
			delete(e.subs, ch)
			close(ch)
			e.dropped()
		}
	}
}

// closeAll ends every stream.
func (e *events) closeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.subs {
		delete(e.subs, ch)
		close(ch)
	}
}
