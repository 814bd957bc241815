package bench

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// A delivery is message number index of run arriving at a link's receiver.
type delivery struct {
	run, index int
	seq        int64 // the SeqId the server gave it; 0 through a plain broker
	at         time.Time
}

// A sink is what a measurement wants to hear about a link's messages.
// Both functions are called from paho's handler goroutine and must not block.
type sink struct {
	deliver func(delivery)
	fail    func(run, index int, err error) // the broker refused the message
}

// A link carries numbered messages from one client to another through a
// broker: through Mosquitto a QoS 1 publish to the receiver's topic, through
// MQTTER an im://modulus/send to a friend.
type link struct {
	name    string
	publish func(run, index int) paho.Token // sends message index of run, asynchronously
	clients []paho.Client                   // to disconnect at the end

	sink       atomic.Pointer[sink]
	mu         sync.Mutex
	violations []string // protocol violations seen, the first few
	lastSeq    int64    // the highest SeqId delivered so far
}

func (l *link) setSink(s *sink) { l.sink.Store(s) }

func (l *link) deliver(d delivery) {
	if d.seq > 0 {
		l.mu.Lock()
		l.lastSeq = max(l.lastSeq, d.seq)
		l.mu.Unlock()
	}
	if s := l.sink.Load(); s != nil && s.deliver != nil {
		s.deliver(d)
	}
}

func (l *link) fail(run, index int, err error) {
	if s := l.sink.Load(); s != nil && s.fail != nil {
		s.fail(run, index, err)
	}
}

// violation records something the broker did against the protocol.
func (l *link) violation(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.violations) < 5 {
		l.violations = append(l.violations, l.name+": "+fmt.Sprintf(format, args...))
	}
}

// seqBase returns the highest SeqId delivered so far on this link.
func (l *link) seqBase() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSeq
}

// takeViolations returns and forgets the recorded violations.
func (l *link) takeViolations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.violations
	l.violations = nil
	return v
}

func (l *link) close() { disconnectAll(l.clients) }

// messageText is the text of message index of run: the receiver reads both
// back from it, so a late message of an earlier run is never counted twice.
func messageText(run, index int) string {
	return fmt.Sprintf("bench r%d m%d", run, index)
}

// parseMessageText undoes messageText.
func parseMessageText(text string) (run, index int, ok bool) {
	rest, ok := strings.CutPrefix(text, "bench r")
	if !ok {
		return 0, 0, false
	}
	r, i, ok := strings.Cut(rest, " m")
	if !ok {
		return 0, 0, false
	}
	run, err1 := strconv.Atoi(r)
	index, err2 := strconv.Atoi(i)
	if err1 != nil || err2 != nil || run < 0 || index < 0 {
		return 0, 0, false
	}
	return run, index, true
}
