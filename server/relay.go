package server

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/wire"
)

// The server's libp2p relay (docs/protocol.md, "The relay"): a host of
// its own, with a stable identity kept in the data directory, running the
// circuit relay v2 service for the devices registered here, so that two
// nodes that cannot dial each other still talk directly through it, and
// can hole-punch from there.

// relayKeyFile holds the relay host's Ed25519 key, in the data directory.
const relayKeyFile = "relay.key"

// startRelay starts the relay host when the config names listen addresses.
func (s *Server) startRelay() error {
	if len(s.cfg.RelayListen) == 0 {
		return nil
	}
	key, err := wire.LoadIdentity(filepath.Join(s.cfg.DataDir, relayKeyFile))
	if err != nil {
		return fmt.Errorf("server: relay: %w", err)
	}
	res := relayv2.DefaultResources()
	res.MaxReservations = s.cfg.RelayMaxReservations
	res.MaxCircuits = s.cfg.RelayMaxCircuits
	res.MaxReservationsPerIP = s.cfg.RelayMaxReservations // households share an address
	res.MaxReservationsPerASN = s.cfg.RelayMaxReservations
	res.Limit = &relayv2.RelayLimit{Duration: s.cfg.RelayLimitDuration, Data: s.cfg.RelayLimitData}
	h, err := libp2p.New(
		libp2p.ListenAddrStrings(s.cfg.RelayListen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableMetrics(),
		libp2p.Identity(key),
		// The relay serves only once its host believes it is reachable:
		// a server is, by its job.
		libp2p.ForceReachabilityPublic(),
		// Dial-backs that tell nodes whether they are reachable (AutoNAT).
		libp2p.EnableNATService(),
		libp2p.EnableRelayService(relayv2.WithResources(res), relayv2.WithACL(relayACL{s})),
	)
	if err != nil {
		return fmt.Errorf("server: relay: %w", err)
	}
	s.relay = h
	s.log.Info("relay listening", "addrs", s.RelayAddrs())
	return nil
}

// RelayAddrs are the relay host's addresses, each ending in /p2p/<id>;
// none without a relay.
func (s *Server) RelayAddrs() []string {
	if s.relay == nil {
		return nil
	}
	return hostAddrs(s.relay)
}

func hostAddrs(h host.Host) []string {
	suffix := "/p2p/" + h.ID().String()
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String()+suffix)
	}
	return out
}

// relayACL lets only devices bound to an account here reserve a slot or
// open a circuit, to a device bound here too. Who may then talk over the
// circuit is the nodes' own rule (a device of a related account), as on
// any connection.
type relayACL struct{ s *Server }

func (a relayACL) registered(id peer.ID) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.s.db.DeviceAccount(ctx, id.String())
	return err == nil
}

func (a relayACL) AllowReserve(p peer.ID, addr ma.Multiaddr) bool {
	ok := a.registered(p)
	if !ok {
		a.s.metrics.relayRefused.Inc()
		a.s.log.Info("relay: refused a reservation", "peer", p.String(), "addr", addr.String())
	}
	return ok
}

func (a relayACL) AllowConnect(src peer.ID, srcAddr ma.Multiaddr, dest peer.ID) bool {
	ok := a.registered(src) && a.registered(dest)
	if !ok {
		a.s.metrics.relayRefused.Inc()
		a.s.log.Info("relay: refused a circuit", "src", src.String(), "dest", dest.String())
	}
	return ok
}
