package node

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the node's delivery counters. Each is shown in Status and
// exported on the local API's /metrics.
type counters struct {
	sentP2P        atomic.Int64 // own messages a peer device stored
	sentServer     atomic.Int64 // own messages the server stored by send
	failP2P        atomic.Int64 // failed direct attempts
	failServer     atomic.Int64 // failed server attempts
	recvP2P        atomic.Int64 // messages new to this device from direct frames
	recvServer     atomic.Int64 // from server pushes
	recvSync       atomic.Int64 // from history pulls
	sentGossip     atomic.Int64 // own group messages published to a mesh
	failGossip     atomic.Int64 // publishes that reached no mesh peer
	recvGossip     atomic.Int64 // messages new to this device by gossip
	sentRelayed    atomic.Int64 // own messages a peer device stored, over a relayed connection
	recvRelayed    atomic.Int64 // messages new to this device from direct frames over a relayed connection
	failRelay      atomic.Int64 // failed reservations on the server's relay
	refused        atomic.Int64 // incoming messages refused (signature, sender, membership)
	pushed         atomic.Int64 // messages sequenced by history_push
	conflicts      atomic.Int64 // held messages the server answered "conflict" for
	eventsDropped  atomic.Int64 // events a slow subscriber missed
	serverConnects atomic.Int64
	thingCommands  atomic.Int64 // commands handed to the device program or a listener
	thingRejected  atomic.Int64 // commands rejected (bad input, busy, the queue full)
	thingTimeouts  atomic.Int64 // commands answered timeout
	thingBadLines  atomic.Int64 // device program lines that were not feedback
	thingIgnored   atomic.Int64 // results for commands not running
	rulesFired     atomic.Int64
	rulesDropped   atomic.Int64 // firings a loop guard stopped
}

// all names every counter, for Status and /metrics.
func (c *counters) all() map[string]*atomic.Int64 {
	return map[string]*atomic.Int64{
		"sent_p2p":         &c.sentP2P,
		"sent_server":      &c.sentServer,
		"fail_p2p":         &c.failP2P,
		"fail_server":      &c.failServer,
		"received_p2p":     &c.recvP2P,
		"received_server":  &c.recvServer,
		"received_sync":    &c.recvSync,
		"sent_gossip":      &c.sentGossip,
		"fail_gossip":      &c.failGossip,
		"received_gossip":  &c.recvGossip,
		"sent_relayed":     &c.sentRelayed,
		"received_relayed": &c.recvRelayed,
		"fail_relay":       &c.failRelay,
		"refused":          &c.refused,
		"pushed":           &c.pushed,
		"conflicts":        &c.conflicts,
		"events_dropped":   &c.eventsDropped,
		"server_connects":  &c.serverConnects,
		"thing_commands":   &c.thingCommands,
		"thing_rejected":   &c.thingRejected,
		"thing_timeouts":   &c.thingTimeouts,
		"thing_bad_lines":  &c.thingBadLines,
		"thing_ignored":    &c.thingIgnored,
		"rules_fired":      &c.rulesFired,
		"rules_dropped":    &c.rulesDropped,
	}
}

func (c *counters) snapshot() map[string]int64 {
	out := make(map[string]int64)
	for name, v := range c.all() {
		out[name] = v.Load()
	}
	return out
}

// registry returns a Prometheus registry exporting the counters.
func (c *counters) registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	for name, v := range c.all() {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "mqtter", Subsystem: "node", Name: name + "_total",
			Help: "MQTTER node counter " + name + ".",
		}, func() float64 { return float64(v.Load()) }))
	}
	return reg
}

// maxFailures is how many path failures Status keeps.
const maxFailures = 32

// failureLog keeps the latest path failures.
type failureLog struct {
	mu   sync.Mutex
	ring []PathFailure
}

func (f *failureLog) add(p PathFailure) {
	if p.Time == 0 {
		p.Time = time.Now().UnixMilli()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ring = append(f.ring, p)
	if len(f.ring) > maxFailures {
		f.ring = append(f.ring[:0], f.ring[len(f.ring)-maxFailures:]...)
	}
}

func (f *failureLog) list() []PathFailure {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]PathFailure{}, f.ring...)
}
