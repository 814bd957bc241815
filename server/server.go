package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"golang.org/x/sync/errgroup"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// Server is one MQTTER service node: broker, IM service and HTTP API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	db       Store
	mqtt     *mqtt.Server
	relay    host.Host // the libp2p relay; nil without one
	sessions *registry
	dir      *directory
	verified *verifiedCache
	metrics  *metrics
	workers  chan struct{} // a slot per running request worker
	done     chan struct{} // closed when the server stops taking requests
	proxy    *proxy
	guard    *authGuard  // login and pairing throttles
	gate     *gate       // caps and deadlines for connections not yet authenticated
	stopping atomic.Bool // set when shutdown starts: no CONNECT is accepted after

	byClient sync.Map        // *mqtt.Client → *session
	owners   lasting[string] // device → account, which never changes once bound
	kinds    lasting[string] // account → kind, which never changes
	proofKey proofKey        // signs device challenges
	plain    plainThings     // rules and expiries of things without a node
	adapters *adapters       // things adopted through firmware adapters

	mu      sync.Mutex
	addrs   map[string]string // listener name → bound address
	ready   chan struct{}
	closing sync.Once
}

// New opens the server's store in cfg.DataDir; Serve or Run starts it.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.fillDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	db, err := store.Open(ctx, filepath.Join(cfg.DataDir, "mqtter.db"), cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		db:       db,
		sessions: newRegistry(),
		verified: newVerifiedCache(),
		workers:  make(chan struct{}, cfg.Workers),
		done:     make(chan struct{}),
		addrs:    make(map[string]string),
		ready:    make(chan struct{}),
		proofKey: newProofKey(),
	}
	s.dir = newDirectory(db)
	s.adapters = newAdapters(s)
	db.LimitDevices(s.deviceLimit())
	s.metrics = newMetrics(s)
	s.proxy = newProxy(cfg.ProxyAllow, cfg.ProxyWorkers, cfg.ProxyPerUser, cfg.ProxyTimeout)
	s.guard = newAuthGuard(cfg)
	s.gate = newGate(cfg, s.metrics)
	return s, nil
}

// Store gives tools in this module (user add) the server's store.
func (s *Server) Store() Store { return s.db }

// Listeners are already-bound sockets for Serve; a nil one is not served.
type Listeners struct {
	MQTT net.Listener // MQTT over TCP
	WS   net.Listener // MQTT over WebSocket
	HTTP net.Listener // the HTTP API
}

// Run binds the addresses of the config and serves until ctx is cancelled.
func (s *Server) Run(ctx context.Context) error {
	var ls Listeners
	var err error
	listen := func(addr string) net.Listener {
		if addr == "" || err != nil {
			return nil
		}
		var l net.Listener
		l, err = net.Listen("tcp", addr)
		return l
	}
	ls.MQTT = listen(s.cfg.MQTTAddr)
	ls.WS = listen(s.cfg.WSAddr)
	ls.HTTP = listen(s.cfg.HTTPAddr)
	if err != nil {
		for _, l := range []net.Listener{ls.MQTT, ls.WS, ls.HTTP} {
			if l != nil {
				l.Close()
			}
		}
		return fmt.Errorf("server: listen: %w", err)
	}
	return s.Serve(ctx, ls)
}

// Serve serves on ls until ctx is cancelled, then shuts down and closes the
// store. Cancellation is a clean stop and returns nil.
func (s *Server) Serve(ctx context.Context, ls Listeners) error {
	defer s.Close()
	var tlsConf *tls.Config
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("server: load TLS key pair: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	// Sessions marked connected were left so by a server that stopped:
	// their time away starts now.
	if err := s.db.DisconnectSessions(ctx, time.Now()); err != nil {
		return fmt.Errorf("server: persistent sessions: %w", err)
	}
	s.mqtt = mqtt.New(&mqtt.Options{
		Logger:                   s.log.With("component", "broker"),
		Capabilities:             s.capabilities(),
		ClientNetWriteBufferSize: 4096,
		ClientNetReadBufferSize:  2048,
		SysTopicResendInterval:   3600,
	})
	if err := s.mqtt.AddHook(&hook{srv: s}, nil); err != nil {
		return fmt.Errorf("server: add hook: %w", err)
	}
	for _, b := range []struct {
		name string
		ln   net.Listener
		make func(id string, ln net.Listener) listeners.Listener
	}{
		{"mqtt", ls.MQTT, func(id string, ln net.Listener) listeners.Listener { return newNetListener(id, ln, s.gate, s.metrics) }},
		{"ws", ls.WS, func(id string, ln net.Listener) listeners.Listener { return newWSListener(id, ln, s.gate, s.metrics) }},
	} {
		if b.ln == nil {
			continue
		}
		l := b.ln
		if tlsConf != nil {
			l = tls.NewListener(l, tlsConf)
		}
		s.setAddr(b.name, b.ln.Addr().String())
		if err := s.mqtt.AddListener(b.make(b.name, l)); err != nil {
			return fmt.Errorf("server: %s listener: %w", b.name, err)
		}
	}
	if err := s.startRelay(); err != nil {
		return err
	}
	if err := s.mqtt.Serve(); err != nil {
		return fmt.Errorf("server: start broker: %w", err)
	}

	g, ctx := errgroup.WithContext(ctx)
	if ls.HTTP != nil {
		hs := &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		// A request must arrive within HTTPReadTimeout (a slow-loris is
		// cut off); the answer gets two minutes, long enough for a 30 s
		// /debug/pprof/profile (pprof refuses a profile longer than that).
		hs.ReadHeaderTimeout = min(hs.ReadHeaderTimeout, s.cfg.HTTPReadTimeout)
		hs.ReadTimeout = s.cfg.HTTPReadTimeout
		hs.WriteTimeout = 2 * time.Minute
		hs.IdleTimeout = 2 * time.Minute
		s.setAddr("http", ls.HTTP.Addr().String())
		g.Go(func() error {
			var err error
			if tlsConf != nil {
				hs.TLSConfig = tlsConf
				err = hs.ServeTLS(ls.HTTP, "", "")
			} else {
				err = hs.Serve(ls.HTTP)
			}
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("server: http: %w", err)
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return hs.Shutdown(sctx)
		})
	}
	g.Go(func() error { s.purgeLoop(ctx); return nil })
	g.Go(func() error { s.trimLoop(ctx); return nil })
	s.log.Info("server ready", "node", s.cfg.NodeID, "mqtt", s.Addr("mqtt"), "ws", s.Addr("ws"), "http", s.Addr("http"))
	close(s.ready)
	<-ctx.Done()
	s.stopping.Store(true)
	return g.Wait()
}

func (s *Server) capabilities() *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	// Bodies over MaxBody get an Error answer; only far larger packets are
	// refused by the broker itself (closing the connection).
	c.MaximumPacketSize = uint32(4*s.cfg.MaxBody + wire.MaxTopicLen + 64)
	// Nothing is broadcast through mochi's queues; keep them small.
	c.MaximumClientWritesPending = 64
	c.MaximumQos = 1
	c.RetainAvailable = 0
	// The broker keeps no session: persistent sessions live in the store
	// (persist.go).
	c.MaximumSessionExpiryInterval = 0
	return c
}

func (s *Server) setAddr(name, addr string) {
	s.mu.Lock()
	s.addrs[name] = addr
	s.mu.Unlock()
}

// Addr returns the bound address of a listener ("mqtt", "ws", "http"), or "".
func (s *Server) Addr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[name]
}

// Ready is closed once every listener accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Close stops the broker (disconnecting every client), waits for the
// requests in hand and closes the store. It is safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.closing.Do(func() {
		s.stopping.Store(true)
		if s.mqtt != nil {
			s.stopBroker()
		}
		if s.relay != nil {
			if err := s.relay.Close(); err != nil {
				s.log.Warn("close the relay host", "err", err)
			}
		}
		close(s.done)
		s.adapters.wait()
		s.proxy.close()
		// Wait for every worker to finish its request before the store closes.
		for range cap(s.workers) {
			s.workers <- struct{}{}
		}
		err = s.db.Close()
	})
	return err
}

// stopBroker closes the broker, which closes every connection and waits
// for their goroutines, for at most ShutdownTimeout: a connection stuck in
// a hook must not keep the process (and its ports) alive, so past that the
// server logs what it gave up on and goes on stopping.
func (s *Server) stopBroker() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.mqtt.Close()
	}()
	t := time.NewTimer(s.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("broker did not stop in time; stopping without it", "timeout", s.cfg.ShutdownTimeout)
	}
}

func (s *Server) purgeLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.sweepSessions()
		s.sweepPersistent(ctx)
		gone, err := s.db.PurgeExpired(ctx, time.Now())
		if err != nil {
			s.log.Warn("purge recycled relations", "err", err)
			continue
		}
		for _, r := range gone {
			s.dir.forget(r.A, r.B)
			s.log.Info("recycled relation purged", "a", r.A, "b", r.B)
		}
	}
}

// sweepSessions unregisters sessions whose connection ended without
// OnDisconnect (mochi skips it when the CONNACK cannot be
// written).
func (s *Server) sweepSessions() {
	s.sessions.mu.RLock()
	var dead []*session
	for _, sess := range s.sessions.byDevice {
		// Give a normal disconnect a minute to run its hook first.
		if stop := sess.cl.StopTime(); sess.cl.Closed() && stop > 0 && time.Now().Unix()-stop > 60 {
			dead = append(dead, sess)
		}
	}
	s.sessions.mu.RUnlock()
	for _, sess := range dead {
		if s.sessions.remove(sess) {
			s.byClient.Delete(sess.cl)
			s.closePersistent(sess)
			s.metrics.connections.Dec()
			s.log.Info("swept a dead session", "account", sess.account, "device", sess.device)
		}
	}
}

// trimLoop gives memory back after a burst of connects or disconnects has
// settled: a collection shrinks the goroutine stacks that grew during the
// burst (the runtime sizes new stacks by the recent average, which SQLite's
// deep calls raise) and returns freed pages to the OS. An idle server does
// not collect by itself, so without this the burst's peak stays resident.
func (s *Server) trimLoop(ctx context.Context) {
	const settle = 2 * time.Second
	t := time.NewTicker(settle)
	defer t.Stop()
	last, trimmed := s.sessions.count(), s.sessions.count()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := s.sessions.count()
		if n == last && abs(n-trimmed) >= 100 {
			debug.FreeOSMemory()
			trimmed = n
		}
		last = n
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
