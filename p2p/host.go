package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
)

// ProtocolID is the libp2p protocol of the packet stream (PROTOCOL.md §7).
const ProtocolID protocol.ID = "/mqtter/packet/1.0.0"

// Defaults for the zero values of Config's durations.
const (
	DefaultIdleTimeout    = 2 * time.Minute
	DefaultWriteTimeout   = 30 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	DefaultAddrTTL        = 10 * time.Minute
)

// ErrClosed is returned by Request once the host is closed.
var ErrClosed = errors.New("p2p: host closed")

// Handler answers the packets that arrive on accepted streams.
type Handler interface {
	// HandlePacket handles one request from peer from and returns the body
	// of the answer to send on the identical topic, or nil to send none.
	// Requests on one stream are handled one at a time, in order; ctx is
	// cancelled when the host closes. A Handler that is also an
	// AsyncHandler is called through HandlePacketAsync instead.
	HandlePacket(ctx context.Context, from peer.ID, topic string, body []byte) []byte
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, from peer.ID, topic string, body []byte) []byte

// HandlePacket calls f.
func (f HandlerFunc) HandlePacket(ctx context.Context, from peer.ID, topic string, body []byte) []byte {
	return f(ctx, from, topic, body)
}

// Config is what the node sets for its host.
type Config struct {
	// Key is the device's identity; its peer id is the device id. A nil Key
	// gives a fresh random identity (tests only).
	Key crypto.PrivKey
	// ListenAddrs are multiaddrs such as /ip4/127.0.0.1/tcp/0; none: the
	// host only dials out.
	ListenAddrs []string
	// Authorize reports whether a peer may open a stream to us. A nil
	// Authorize refuses every peer.
	Authorize func(peer.ID) bool
	// Handler answers inbound requests. Required.
	Handler Handler
	// Logger receives the host's logs; slog.Default() when nil.
	Logger *slog.Logger

	// IdleTimeout closes an inbound stream that sends nothing for this long.
	IdleTimeout time.Duration
	// WriteTimeout bounds each frame write.
	WriteTimeout time.Duration
	// RequestTimeout bounds a Request whose ctx has no deadline.
	RequestTimeout time.Duration
	// AddrTTL is how long addresses given to Request stay in the peerstore.
	AddrTTL time.Duration

	// MDNS announces and looks for nodes on the local network (service
	// tag MDNSServiceTag). Off by default; tests leave it off.
	MDNS bool
	// OnPeerFound is told of every peer mDNS finds; it must not block.
	OnPeerFound func(peer.AddrInfo)
	// Announce, when set, are the addresses the host tells peers (by
	// identify) and reports from Addrs instead of the ones it listens
	// on: a port forwarded on a router, or a proxy in front of the host.
	Announce []string
	// Relay dials through circuit relays and upgrades relayed
	// connections by hole punching (DCUtR); see Reserve.
	Relay bool
	// OnConnectedness is told when a connection to a peer opens or
	// closes; it runs on libp2p's goroutines and must not block.
	OnConnectedness func(id peer.ID, connected bool)
}

func (c *Config) ensureDefaults() error {
	if c.Handler == nil {
		return errors.New("p2p: Config.Handler is required")
	}
	if c.Authorize == nil {
		c.Authorize = func(peer.ID) bool { return false }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.AddrTTL <= 0 {
		c.AddrTTL = DefaultAddrTTL
	}
	return nil
}

// Host is a libp2p host that serves and sends packets.
type Host struct {
	cfg    Config
	log    *slog.Logger
	h      host.Host
	mdns   mdns.Service
	ctx    context.Context // cancelled by Close; handlers run under it
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	reach  string // reachability, as the last event said
	peers  map[peer.ID]*peerLink
	// punching are the peers a relayed connection to is being punched
	// to (punch.go).
	punching map[peer.ID]struct{}
	hps      holePuncher    // go-libp2p's hole punching; nil without Relay
	wg       sync.WaitGroup // stream handlers and outbound readers

	closeOnce sync.Once
	closeErr  error
}

// BaseOptions are the libp2p options every MQTTER host is made with,
// listening on listen: TCP and QUIC, Noise, yamux, ping, no relay, no
// metrics. Benchmarks use them for a bare host to compare against.
func BaseOptions(listen ...string) []libp2p.Option {
	return []libp2p.Option{
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Ping(true),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}
}

// New builds and starts a host listening on cfg.ListenAddrs. The ctx only
// bounds construction; Close stops the host.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("p2p: new host: %w", err)
	}
	opts := BaseOptions(cfg.ListenAddrs...)
	if len(cfg.ListenAddrs) == 0 {
		opts = append(opts, libp2p.NoListenAddrs) // not libp2p's defaults
	}
	if cfg.Key != nil {
		opts = append(opts, libp2p.Identity(cfg.Key))
	}
	if len(cfg.Announce) > 0 {
		announce, err := parseAddrs(cfg.Announce)
		if err != nil {
			return nil, fmt.Errorf("p2p: announce: %w", err)
		}
		opts = append(opts, libp2p.AddrsFactory(func([]multiaddr.Multiaddr) []multiaddr.Multiaddr { return announce }))
	}
	var hps holePuncher
	if cfg.Relay {
		opts = append(opts, libp2p.EnableRelay(), libp2p.EnableHolePunching(captureHolePuncher(&hps)),
			libp2p.SwarmOpts(swarm.WithDialRanker(preferDirect)))
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: new host: %w", err)
	}
	hctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		cfg:    cfg,
		log:    cfg.Logger.With("peer", lh.ID().String()),
		h:      lh,
		ctx:    hctx,
		cancel: cancel,
		peers:  make(map[peer.ID]*peerLink),

		punching: make(map[peer.ID]struct{}),
		hps:      hps,
	}
	lh.SetStreamHandler(ProtocolID, h.handleStream)
	if err := h.watchReachability(); err != nil {
		h.Close()
		return nil, fmt.Errorf("p2p: reachability: %w", err)
	}
	if err := h.watchPunching(); err != nil {
		h.Close()
		return nil, fmt.Errorf("p2p: hole punching: %w", err)
	}
	if err := h.startDiscovery(); err != nil {
		h.Close()
		return nil, fmt.Errorf("p2p: mdns: %w", err)
	}
	return h, nil
}

// ID is the host's peer id (the device id).
func (h *Host) ID() peer.ID { return h.h.ID() }

// Addrs returns the host's listen addresses as full multiaddrs ending in
// /p2p/<id>, ready to hand to another node.
func (h *Host) Addrs() []string {
	suffix := "/p2p/" + h.h.ID().String()
	addrs := h.h.Addrs()
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String()+suffix)
	}
	return out
}

// Close stops serving, closes every stream and connection and waits for the
// host's goroutines. It is safe to call more than once.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		var open []*outStream
		for _, l := range h.peers {
			if l.st != nil {
				open = append(open, l.st)
			}
		}
		h.peers = nil
		h.mu.Unlock()

		h.cancel()
		if h.mdns != nil {
			h.mdns.Close()
		}
		h.h.RemoveStreamHandler(ProtocolID)
		for _, st := range open {
			st.fail(ErrClosed)
		}
		h.closeErr = h.h.Close()
		h.wg.Wait()
	})
	return h.closeErr
}

// track registers a goroutine with Close; it reports false once closing.
func (h *Host) track() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

// parseAddrs parses multiaddrs that name no peer (the host's own).
func parseAddrs(addrs []string) ([]multiaddr.Multiaddr, error) {
	out := make([]multiaddr.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		m, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", a, err)
		}
		if _, id := peer.SplitAddr(m); id != "" {
			return nil, fmt.Errorf("%q names a peer; give the address alone", a)
		}
		out = append(out, m)
	}
	return out, nil
}
