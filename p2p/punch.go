package p2p

import (
	"errors"
	"slices"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
)

// Relayed connections that opened before hole punching could (docs/
// protocol.md, "The relay", "When punching starts"). go-libp2p's hole
// punching service starts only once the host knows a public address of its
// own; it punches (DCUtR) from the relayed connections that reach the host
// after that, on the side they reached, and only once, when they open. A
// relayed connection that reached the host before, or whose punch the
// peer refused because its own punching had not started yet, would stay
// relayed until the relay's limits end it. So the host punches again:
//
//   - once its own punching starts, to every peer it holds only relayed
//     connections to, one of them inbound;
//   - when such a peer's punching starts (identify push: the peer now
//     speaks DCUtR), to that peer.
//
// A punch that fails leaves the relayed connection as it is (**choice**:
// not closed and dialled again, which would break the streams in flight
// on it and the gossip that runs over it); the next relayed connection is
// punched by go-libp2p when it opens.

// holePuncher is the part of go-libp2p's hole punching service used here.
type holePuncher interface {
	DirectConnect(peer.ID) error
}

// captureHolePuncher is a holepunch option that keeps the service go-libp2p
// makes, so that the host can ask it to punch.
func captureHolePuncher(into *holePuncher) holepunch.Option {
	return func(s *holepunch.Service) error {
		*into = s
		return nil
	}
}

// watchPunching punches the relayed connections that opened before
// punching could, as the events say they now can (see above).
func (h *Host) watchPunching() error {
	if h.hps == nil {
		return nil
	}
	sub, err := h.h.EventBus().Subscribe([]any{new(event.EvtLocalProtocolsUpdated), new(event.EvtPeerProtocolsUpdated)})
	if err != nil {
		return err
	}
	h.wg.Go(func() {
		defer sub.Close()
		ready := false
		started := func() {
			if ready || !h.HolePunching() {
				return
			}
			ready = true
			for _, p := range h.h.Network().Peers() {
				h.punchRelayed(p, "own hole punching started")
			}
		}
		started()
		for {
			select {
			case <-h.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				switch e := e.(type) {
				case event.EvtLocalProtocolsUpdated:
					if slices.Contains(e.Added, holepunch.Protocol) {
						started()
					}
				case event.EvtPeerProtocolsUpdated:
					if ready && slices.Contains(e.Added, holepunch.Protocol) {
						h.punchRelayed(e.Peer, "peer's hole punching started")
					}
				}
			}
		}
	})
	return nil
}

// punchRelayed hole-punches to p when every connection to it is relayed
// and one of them reached this host (DCUtR starts on that side: a host
// refuses a punch started over a connection it accepted), once identify on it has
// said that p speaks DCUtR. One punch per peer at a time.
func (h *Host) punchRelayed(p peer.ID, why string) {
	var in network.Conn
	for _, c := range h.h.Network().ConnsToPeer(p) {
		st := c.Stat()
		if !st.Limited {
			return // direct already
		}
		if st.Direction == network.DirInbound && in == nil {
			in = c
		}
	}
	if in == nil {
		return
	}
	h.mu.Lock()
	if _, busy := h.punching[p]; busy || h.closed {
		h.mu.Unlock()
		return
	}
	h.punching[p] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		defer func() {
			h.mu.Lock()
			delete(h.punching, p)
			h.mu.Unlock()
		}()
		if ids, ok := h.h.(interface{ IDService() identify.IDService }); ok {
			select {
			case <-ids.IDService().IdentifyWait(in):
			case <-h.ctx.Done():
				return
			}
		}
		if ok, _ := h.h.Peerstore().SupportsProtocols(p, holepunch.Protocol); len(ok) == 0 {
			return // not yet: its identify push will say when
		}
		log := h.log.With("remote", p.String(), "why", why)
		log.Debug("p2p: hole punch of a relayed connection")
		// DirectConnect ends when the punch does or the host closes; the
		// wait here ends with the host in any case.
		done := make(chan error, 1)
		go func() { done <- h.hps.DirectConnect(p) }()
		select {
		case err := <-done:
			switch {
			case err == nil:
				log.Info("p2p: relayed connection hole-punched")
			case errors.Is(err, holepunch.ErrHolePunchActive):
			default:
				log.Info("p2p: hole punch failed; the connection stays relayed", "err", err)
			}
		case <-h.ctx.Done():
		}
	}()
}
