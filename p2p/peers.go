package p2p

import (
	"context"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"
)

// MDNSServiceTag is the mDNS service name nodes announce and look for.
const MDNSServiceTag = "mqtter"

// ConnectedPeers returns the peers with a live connection now, sorted.
func (h *Host) ConnectedPeers() []peer.ID {
	ids := h.h.Network().Peers()
	slices.Sort(ids)
	return ids
}

// IsConnected reports whether a connection to id is open now.
func (h *Host) IsConnected(id peer.ID) bool {
	return h.h.Network().Connectedness(id) == network.Connected
}

// ConnAddrs returns the remote addresses of the connections open to id
// now, sorted: a relayed one holds /p2p-circuit; a direct one names the
// transport (/tcp/, /udp/…/quic-v1) and the address the peer was reached
// at, as seen from here (behind a NAT, its router's mapping).
func (h *Host) ConnAddrs(id peer.ID) []string {
	conns := h.h.Network().ConnsToPeer(id)
	out := make([]string, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.RemoteMultiaddr().String())
	}
	slices.Sort(out)
	return out
}

// Connect opens a connection to id (at addrs, or where the peerstore
// knows it) unless one is open. Streams need no Connect; GossipSub does,
// since it talks only to connected peers.
func (h *Host) Connect(ctx context.Context, id peer.ID, addrs []multiaddr.Multiaddr) error {
	if id == h.h.ID() {
		return nil
	}
	if len(addrs) > 0 {
		h.h.Peerstore().AddAddrs(id, dialAddrs(id, addrs), h.cfg.AddrTTL)
	}
	if err := h.h.Connect(ctx, peer.AddrInfo{ID: id}); err != nil {
		return fmt.Errorf("p2p: connect %s: %w", id, err)
	}
	return nil
}

// AddAddrs remembers addresses of a peer for Config.AddrTTL and forgets an
// earlier failed dial, so a peer that came back is dialled at once.
func (h *Host) AddAddrs(id peer.ID, addrs []multiaddr.Multiaddr) {
	if id == h.h.ID() {
		return
	}
	h.h.Peerstore().AddAddrs(id, dialAddrs(id, addrs), h.cfg.AddrTTL)
	h.clearBackoff(id)
}

func (h *Host) clearBackoff(id peer.ID) {
	if sw, ok := h.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(id)
	}
}

// startDiscovery starts mDNS (when configured) and the connectedness
// notifications.
func (h *Host) startDiscovery() error {
	if h.cfg.OnConnectedness != nil {
		h.h.Network().Notify(&network.NotifyBundle{
			ConnectedF:    func(_ network.Network, c network.Conn) { h.cfg.OnConnectedness(c.RemotePeer(), true) },
			DisconnectedF: func(_ network.Network, c network.Conn) { h.cfg.OnConnectedness(c.RemotePeer(), false) },
		})
	}
	if !h.cfg.MDNS {
		return nil
	}
	h.mdns = mdns.NewMdnsService(h.h, MDNSServiceTag, mdnsNotifee{h})
	return h.mdns.Start()
}

type mdnsNotifee struct{ h *Host }

// HandlePeerFound keeps a found peer's addresses and tells the node. mDNS
// calls it on a goroutine of its own, which Close waits for like the others,
// so OnPeerFound is never called once Close has returned.
func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == n.h.h.ID() || !n.h.track() {
		return
	}
	defer n.h.wg.Done()
	n.h.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, n.h.cfg.AddrTTL)
	if n.h.cfg.OnPeerFound != nil {
		n.h.cfg.OnPeerFound(ai)
	}
}
