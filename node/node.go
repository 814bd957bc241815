package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/mqttlink"
	"github.com/mqtter/mqtter/p2p"
	mqsync "github.com/mqtter/mqtter/sync"
	"github.com/mqtter/mqtter/wire"
)

// Defaults for the zero values of Config.
const (
	DefaultAPIAddr       = "127.0.0.1:0"
	DefaultSyncInterval  = 3 * time.Second
	DefaultDirectTimeout = 2 * time.Second
)

// ListenNone, alone in Config.ListenAddrs (--p2p none), makes a node that
// listens nowhere: it dials out, and others reach it through the relay.
const ListenNone = "none"

// DefaultListenAddrs are the libp2p listen addresses when Config has none.
var DefaultListenAddrs = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}

// ErrLoginRefused is returned by Run when the server refuses the account
// and password: retrying will not help.
var ErrLoginRefused = errors.New("the server refused the login")

// metaGroups and metaThingFeeds are the localdb meta keys of the cached
// group list and list of things' feeds (JSON).
const (
	metaGroups     = "groups"
	metaThingFeeds = "thing_feeds"
)

func (c *Config) ensureDefaults() error {
	if c.Home == "" {
		return errors.New("node: Config.Home is required")
	}
	if c.Server == "" {
		return errors.New("node: Config.Server is required")
	}
	u, err := url.Parse(c.Server)
	if err != nil {
		return fmt.Errorf("node: server %q: %w", c.Server, err)
	}
	switch u.Scheme {
	case "tcp", "ssl", "tls", "ws", "wss", "mqtt", "mqtts":
	default:
		return fmt.Errorf("node: server %q: want tcp://HOST:PORT (or ssl://, ws://, wss://)", c.Server)
	}
	if u.Host == "" {
		return fmt.Errorf("node: server %q has no host", c.Server)
	}
	if !wire.ValidAccount(c.User) {
		return fmt.Errorf("node: %q is not an account name", c.User)
	}
	if c.Password == "" {
		return errors.New("node: no password")
	}
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = DefaultListenAddrs
	}
	if len(c.ListenAddrs) == 1 && c.ListenAddrs[0] == ListenNone {
		c.ListenAddrs = []string{} // dial out only: reached through the relay
	}
	if c.APIAddr == "" {
		c.APIAddr = DefaultAPIAddr
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.DirectTimeout <= 0 {
		c.DirectTimeout = DefaultDirectTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Node is a running node. Run makes one and serves until its ctx ends.
type Node struct {
	cfg  Config
	log  *slog.Logger
	key  crypto.PrivKey
	self peer.ID

	db   *localdb.DB
	host *p2p.Host
	link *mqttlink.Link
	// started is closed once start has set up everything: the link's
	// callbacks, which run on its goroutines from the moment it starts,
	// wait for it (or for the node to stop).
	started chan struct{}
	book    *book
	gossip  *p2p.Gossip // the groups' topics
	relay   relaySlot   // the slot on the server's relay
	// gossiped are the MsgIds published by gossip lately.
	gossiped gossipedSet
	ingest   *ingester
	out      *outbox
	syncer   *mqsync.Syncer
	acks     *acker
	thing    *thingRuntime

	events   *events
	counts   counters
	failures failureLog

	ctx    context.Context // cancelled when the node stops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	refreshKick chan struct{}
	cmds        commandNotifier // wakes waits for tracked commands
}

// Run starts a node as cfg says and serves until ctx is cancelled, which
// is a clean stop (nil). It fails at once if the home cannot be used, and
// later only if the server refuses the login (ErrLoginRefused). While the
// server is unreachable the node keeps running and talking directly.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.ensureDefaults(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
		return fmt.Errorf("node: home: %w", err)
	}
	release, err := lockHome(cfg.Home)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer release()
	n, err := start(ctx, cfg)
	if err != nil {
		return err
	}
	api, err := n.serveAPI()
	if err != nil {
		n.close()
		return err
	}
	n.log.Info("node ready", "device", n.self.String(), "addrs", n.host.Addrs(), "api", api.addr)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-n.fatal():
	}
	api.close()
	n.close()
	return runErr
}

// start opens the store, the host and the link.
func start(ctx context.Context, cfg Config) (*Node, error) {
	key, err := loadIdentity(cfg.Home)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	log := cfg.Logger.With("user", cfg.User)
	db, err := localdb.Open(ctx, filepath.Join(cfg.Home, databaseFile), log)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	nctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg: cfg, log: log, key: key, self: self, db: db,
		book: newBook(cfg.User),
		ctx:  nctx, cancel: cancel,
		refreshKick: make(chan struct{}, 1),
	}
	n.relay.kickCh = make(chan struct{}, 1)
	n.events = newEvents(func() { n.counts.eventsDropped.Add(1) })
	n.thing = newThingRuntime(n)
	if err := n.loadCaches(ctx); err != nil {
		db.Close()
		cancel()
		return nil, err
	}
	n.ingest = newIngester(n)
	// The outbox exists before the host: a connection, inbound at once or
	// dialled for a group's mesh, kicks it.
	n.out = newOutbox(n)
	n.host, err = p2p.New(ctx, p2p.Config{
		Key:         key,
		ListenAddrs: cfg.ListenAddrs,
		Announce:    cfg.Announce,
		Authorize:   n.book.authorized,
		Handler:     packetHandler{n},
		Logger:      log,
		MDNS:        !cfg.NoMDNS,
		OnPeerFound: n.peerFound,
		Relay:       true,
		OnConnectedness: func(id peer.ID, connected bool) {
			if connected {
				n.out.kick()
			}
		},
	})
	// Before the link runs, a failure undoes what started: the context
	// first, which the ingester waits for.
	fail := func(err error) (*Node, error) {
		cancel()
		n.ingest.close()
		if n.host != nil {
			n.host.Close()
		}
		db.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	if err != nil {
		return fail(err)
	}
	if err := n.startGossip(); err != nil {
		return fail(err)
	}
	if n.syncer, err = n.newSyncer(); err != nil {
		return fail(err)
	}
	n.acks = newAcker(n)
	n.started = make(chan struct{})
	n.link = mqttlink.Start(mqttlink.Config{
		Server: cfg.Server, User: cfg.User, Password: cfg.Password, ClientID: self.String(),
		OnConnect: n.onConnect,
		OnPush:    n.onPush,
		OnState:   n.onServerState,
		Logger:    log,
	})
	if err := n.out.start(ctx); err != nil {
		n.close()
		return nil, err
	}
	if err := n.thing.start(ctx); err != nil {
		n.close()
		return nil, err
	}
	n.syncGossip(ctx) // the groups' topics, from the cached book
	n.wg.Add(5)
	go n.relayLoop()
	go n.meshLoop()
	go n.sweepCommands()
	go n.refreshLoop()
	go func() {
		defer n.wg.Done()
		n.syncer.Loop(n.ctx)
	}()
	close(n.started)
	return n, nil
}

// loadCaches fills the book from what localdb kept of the server's last
// answers, so the node accepts its peers before (or without) the server.
func (n *Node) loadCaches(ctx context.Context) error {
	peers, err := n.db.Peers(ctx)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.book.setPeers(peers)
	rels, err := n.db.Relations(ctx)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.book.setRelations(rels)
	for _, c := range []struct {
		key, what string
		set       func([]wire.Group)
	}{{metaGroups, "group list", n.book.setGroups}, {metaThingFeeds, "list of things' feeds", n.book.setThingFeeds}} {
		raw, err := n.db.Get(ctx, c.key)
		if errors.Is(err, localdb.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		var list []wire.Group
		if err := json.Unmarshal([]byte(raw), &list); err != nil {
			n.log.Warn("cached "+c.what+" unreadable; waiting for the server's", "err", err)
			continue
		}
		c.set(list)
	}
	return nil
}

// fatal delivers the error that ends the node: a refused login.
func (n *Node) fatal() <-chan error {
	ch := make(chan error, 1)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := n.link.Wait(n.ctx)
		if errors.Is(err, mqttlink.ErrRefused) {
			ch <- fmt.Errorf("%w: user %s at %s: %v", ErrLoginRefused, n.cfg.User, n.cfg.Server, err)
		}
	}()
	return ch
}

// close stops the node in the reverse order of start: the work loops, the
// link and the host (so nothing new arrives), the ingester, the store.
func (n *Node) close() {
	n.cancel()
	n.events.closeAll()
	n.thing.close() // the device program stops before what it sends through
	n.out.stop()
	n.link.Close()
	if n.gossip != nil {
		n.gossip.Close()
	}
	if err := n.host.Close(); err != nil {
		n.log.Debug("host close", "err", err)
	}
	n.wg.Wait()
	n.acks.wait()
	n.ingest.close()
	if err := n.db.Close(); err != nil {
		n.log.Warn("close database", "err", err)
	}
}

// peerFound takes a device that mDNS found on the local network.
func (n *Node) peerFound(ai peer.AddrInfo) {
	if !n.book.authorized(ai.ID) {
		return // not a device of a related account: nothing to say to it
	}
	n.book.addFound(ai.ID.String(), ai.Addrs)
	n.host.AddAddrs(ai.ID, ai.Addrs)
	n.log.Debug("mdns: found a related device", "device", ai.ID.String())
	n.out.kick()
}

// recordFailure makes a path failure visible: log, counter, Status.
func (n *Node) recordFailure(path string, to peer.ID, msgID string, err error) {
	f := PathFailure{Path: path, MsgId: msgID, Error: err.Error()}
	if to != "" {
		f.Peer = to.String()
	}
	switch path {
	case localdb.ViaP2P:
		n.counts.failP2P.Add(1)
	case localdb.ViaGossip:
		n.counts.failGossip.Add(1)
	case pathRelay:
		n.counts.failRelay.Add(1)
	default:
		n.counts.failServer.Add(1)
	}
	n.failures.add(f)
	n.log.Info("delivery path failed", "path", path, "peer", f.Peer, "msg_id", msgID, "err", err)
}
