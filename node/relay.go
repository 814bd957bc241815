package node

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/p2p"
)

// The node's slot on the server's relay (docs/protocol.md, "The relay"):
// the server names its relay in the answer to register_device; the node
// reserves a slot there, registers its relayed addresses beside its own,
// and renews the slot before it ends. Related devices that cannot dial it
// directly reach it through the relay, and hole-punch from there.

// relayRetry bounds the wait before a failed reservation is tried again.
const (
	relayRetryMin = 2 * time.Second
	relayRetryMax = time.Minute
	// relayRenewBefore is how long before its end a slot is renewed.
	relayRenewBefore = 5 * time.Minute
)

// pathRelay names the relay in path failures: a reservation that failed.
const pathRelay = "relay"

var errRelayAddrs = errors.New("relay: the server named no usable relay address")

// relaySlot is what the node knows of its slot.
type relaySlot struct {
	mu     sync.Mutex
	relay  []string // the server's relay, as register_device last said
	res    p2p.Reservation
	err    string
	kickCh chan struct{}
}

// told takes the relay addresses of a register_device answer.
func (r *relaySlot) told(addrs []string) {
	r.mu.Lock()
	changed := !slices.Equal(r.relay, addrs)
	r.relay = slices.Clone(addrs)
	held := len(r.res.Addrs) > 0
	r.mu.Unlock()
	if changed || !held {
		r.kick()
	}
}

func (r *relaySlot) kick() {
	select {
	case r.kickCh <- struct{}{}:
	default:
	}
}

// relayAddrs returns the relayed addresses held now.
func (r *relaySlot) relayAddrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Now().After(r.res.Expires) {
		return nil
	}
	return slices.Clone(r.res.Addrs)
}

// advertised are the addresses the node registers: its own and, while it
// holds a slot, its relayed ones.
func (n *Node) advertised() []string {
	return append(n.host.Addrs(), n.relay.relayAddrs()...)
}

// relayLoop reserves a slot on the server's relay whenever the server
// names one, re-registers the addresses that gives, and renews the slot
// before it ends; a failure is logged, shown in status, and tried again
// with backoff.
func (n *Node) relayLoop() {
	defer n.wg.Done()
	retry := relayRetryMin
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.relay.kickCh:
		case <-timer.C:
		}
		n.relay.mu.Lock()
		relay := slices.Clone(n.relay.relay)
		n.relay.mu.Unlock()
		if len(relay) == 0 {
			continue // no relay: nothing to hold
		}
		next, err := n.reserve(relay)
		if err != nil {
			n.relay.mu.Lock()
			n.relay.err = err.Error()
			n.relay.mu.Unlock()
			n.recordFailure(pathRelay, "", "", err)
			timer.Reset(retry)
			retry = min(2*retry, relayRetryMax)
			continue
		}
		retry = relayRetryMin
		timer.Reset(next)
	}
}

// reserve takes a slot on the relay and, when its relayed addresses
// changed, registers them; it returns when to renew.
func (n *Node) reserve(relay []string) (time.Duration, error) {
	var addrs []multiaddr.Multiaddr
	for _, a := range relay {
		ma, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			continue
		}
		addrs = append(addrs, ma)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil || len(infos) == 0 {
		return 0, errRelayAddrs
	}
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	res, err := n.host.Reserve(ctx, infos[0])
	if err != nil {
		return 0, err
	}
	n.relay.mu.Lock()
	changed := !slices.Equal(n.relay.res.Addrs, res.Addrs)
	n.relay.res, n.relay.err = res, ""
	n.relay.mu.Unlock()
	if changed {
		n.log.Info("relay: slot reserved", "addrs", res.Addrs, "until", res.Expires.Format(time.RFC3339))
		if n.link.Connected() {
			if _, err := n.link.RegisterDevice(ctx, n.key, n.advertised()); err != nil {
				n.log.Warn("register the relayed addresses", "err", err)
			}
		}
	}
	return max(time.Until(res.Expires)-relayRenewBefore, 30*time.Second), nil
}

// relayStatus is the slot as status shows it.
func (n *Node) relayStatus() *RelayStatus {
	n.relay.mu.Lock()
	defer n.relay.mu.Unlock()
	if len(n.relay.relay) == 0 {
		return nil
	}
	st := &RelayStatus{Relay: slices.Clone(n.relay.relay), Error: n.relay.err, HolePunch: n.host.HolePunching()}
	if time.Now().Before(n.relay.res.Expires) {
		st.Addrs, st.Expires = slices.Clone(n.relay.res.Addrs), n.relay.res.Expires.UnixMilli()
	}
	return st
}
