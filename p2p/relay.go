package p2p

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/observedaddrs"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/multiformats/go-multiaddr"
)

// Relayed connections (docs/protocol.md, "The relay"): with Config.Relay a
// host dials through circuit relays and hole-punches (DCUtR) from a
// relayed connection to a direct one; Reserve takes a slot on a relay so
// that others reach it there. A relayed connection is limited (in time and
// bytes, by the relay); streams are opened on it all the same, and the
// handler can tell (Relayed).

// A node behind a NAT is seen by few others (the server's relay, the
// devices it talks to), and go-libp2p trusts an observed address only once
// four distinct observers reported it: such a node would never know its
// public address and never hole-punch. One observer is enough here
// (**choice**): the worst a lying observer can do is make a hole punch
// try an address that leads nowhere, after which the relayed connection
// stays in use. It is a process-wide setting of go-libp2p, made before
// any host exists.
func init() { observedaddrs.ActivationThresh = 1 }

// preferDirect ranks the addresses of a dial as go-libp2p does, but a
// relayed address waits RelayDelay whenever the peer has a direct one, even
// a private one: go-libp2p delays relays only behind a public address, so
// on a LAN the circuit through a relay the host is already connected to
// often won the race, and two nodes side by side talked through the server's
// relay, within its limits.
func preferDirect(addrs []multiaddr.Multiaddr) []network.AddrDelay {
	res := swarm.DefaultDialRanker(addrs)
	direct := slices.ContainsFunc(addrs, func(a multiaddr.Multiaddr) bool { return !isCircuit(a) })
	if !direct {
		return res
	}
	for i := range res {
		if isCircuit(res[i].Addr) {
			res[i].Delay = max(res[i].Delay, swarm.RelayDelay)
		}
	}
	return res
}

// isCircuit reports whether a is a relayed address.
func isCircuit(a multiaddr.Multiaddr) bool {
	_, err := a.ValueForProtocol(multiaddr.P_CIRCUIT)
	return err == nil
}

// relayedKey marks the context of requests that came over a relayed
// connection.
type relayedKey struct{}

// Relayed reports whether the requests handled under ctx came over a
// relayed (limited) connection.
func Relayed(ctx context.Context) bool {
	v, _ := ctx.Value(relayedKey{}).(bool)
	return v
}

// Reservation is a slot held on a relay.
type Reservation struct {
	// Addrs are where others reach this host through the relay, each
	// ending in /p2p-circuit/p2p/<this host>.
	Addrs   []string
	Expires time.Time
}

// Reserve takes (or renews) a slot on the relay ai.
func (h *Host) Reserve(ctx context.Context, ai peer.AddrInfo) (Reservation, error) {
	if err := h.h.Connect(ctx, ai); err != nil {
		return Reservation{}, fmt.Errorf("p2p: relay %s: %w", ai.ID, err)
	}
	r, err := client.Reserve(ctx, h.h, ai)
	if err != nil {
		return Reservation{}, fmt.Errorf("p2p: reserve on relay %s: %w", ai.ID, err)
	}
	out := Reservation{Expires: r.Expiration}
	suffix := "/p2p/" + ai.ID.String() + "/p2p-circuit/p2p/" + h.h.ID().String()
	addrs := r.Addrs
	if len(addrs) == 0 {
		addrs = ai.Addrs
	}
	for _, a := range addrs {
		if transport, id := peer.SplitAddr(a); id != "" {
			a = transport
		}
		out.Addrs = append(out.Addrs, a.String()+suffix)
	}
	return out, nil
}

// Limited reports whether every open connection to id is relayed (it
// has one at least): what goes to id now goes through a relay.
func (h *Host) Limited(id peer.ID) bool {
	conns := h.h.Network().ConnsToPeer(id)
	for _, c := range conns {
		if !c.Stat().Limited {
			return false
		}
	}
	return len(conns) > 0
}

// HolePunching reports whether hole punching has started: go-libp2p
// starts it (and answers DCUtR) only once the host knows a public address
// of its own, which it looks for at 0.25 s, then at doubling intervals up
// to 5 s. A relayed connection that opened before is punched then
// (punch.go).
func (h *Host) HolePunching() bool {
	return h.cfg.Relay && slices.Contains(h.h.Mux().Protocols(), holepunch.Protocol)
}

// Reachability is what the host has learnt of its own reachability:
// "public", "private" or "unknown".
func (h *Host) Reachability() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reach == "" {
		return network.ReachabilityUnknown.String()
	}
	return h.reach
}

// watchReachability follows the host's reachability events.
func (h *Host) watchReachability() error {
	sub, err := h.h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return err
	}
	h.wg.Go(func() {
		defer sub.Close()
		for {
			select {
			case <-h.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				r := e.(event.EvtLocalReachabilityChanged).Reachability
				h.mu.Lock()
				h.reach = r.String()
				h.mu.Unlock()
				h.log.Info("p2p: reachability", "is", r.String())
			}
		}
	})
	return nil
}
