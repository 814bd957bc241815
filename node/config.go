package node

import (
	"log/slog"
	"time"
)

// Config is what an operator sets for a node.
type Config struct {
	Home     string // directory of the identity, the database and the api files
	Server   string // tcp://HOST:PORT (also ssl://, ws://)
	User     string
	Password string
	// ListenAddrs are the libp2p listen multiaddrs (--p2p); default TCP and
	// QUIC on every interface, port 0; ListenNone alone: none.
	ListenAddrs []string
	// Announce are the libp2p addresses the node tells peers and the
	// server instead of the ones it listens on (--p2p-announce): a port
	// forwarded on a router, a proxy in front of the node. Empty: the
	// listen addresses.
	Announce []string
	// APIAddr is the local API's listen address; default 127.0.0.1:0.
	APIAddr string
	// NoMDNS turns local network discovery off.
	NoMDNS bool
	// SyncInterval is how often unsequenced messages go up; default 3 s.
	SyncInterval time.Duration
	// DirectTimeout bounds a direct delivery attempt before the server is
	// used instead; default 2 s.
	DirectTimeout time.Duration
	// GossipHeartbeat is how often GossipSub mends the groups' meshes;
	// 0 keeps its default (1 s). Tests make it shorter.
	GossipHeartbeat time.Duration
	// ThingHandler is the device program of a thing (--thing-handler): a
	// command run with /bin/sh -c and kept running, that takes the
	// commands the thing accepts on its stdin and writes feedback on its
	// stdout, one JSON object a line. Empty: none (the local API's
	// /v1/thing/ calls can play its part).
	ThingHandler string
	Logger       *slog.Logger
}
