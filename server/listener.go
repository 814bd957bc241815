package server

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// netListener serves mochi clients from a listener the caller bound (so
// tests can use port 0). Unlike mochi's own Net listener it survives
// temporary Accept errors (a server out of file descriptors recovers once
// they are freed), admits connections through the server's gate, and on
// Close closes every connection it started, not only the ones mochi knows,
// and waits for them, so nothing outlives the server.
type netListener struct {
	id    string
	ln    net.Listener
	log   *slog.Logger
	gate  *gate
	errs  *acceptErrors
	conns connSet
	quit  chan struct{} // closed by Close: stops an accept backoff

	closeOnce sync.Once
}

var _ listeners.Listener = (*netListener)(nil)

func newNetListener(id string, ln net.Listener, g *gate, m *metrics) *netListener {
	return &netListener{id: id, ln: ln, gate: g, errs: newAcceptErrors(id, m), quit: make(chan struct{})}
}

func (l *netListener) ID() string       { return l.id }
func (l *netListener) Address() string  { return l.ln.Addr().String() }
func (l *netListener) Protocol() string { return "tcp" }

func (l *netListener) Init(log *slog.Logger) error {
	l.log = log
	l.errs.log = log
	return nil
}

// Serve accepts connections until the listener closes. A temporary Accept
// error (out of file descriptors, a connection aborted before it was
// accepted) is retried after a backoff of 5 ms doubling to 1 s, as
// net/http.Server.Serve does; any other error stops the listener, logged.
func (l *netListener) Serve(establish listeners.EstablishFn) {
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if !temporaryAcceptError(err) {
				l.log.Error("mqtt listener stopped", "err", err)
				return
			}
			delay = acceptBackoff(delay)
			l.errs.note(err, delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.quit:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		gc, ok := l.gate.admit(conn)
		if !ok {
			continue
		}
		if !l.conns.add(gc) {
			gc.Close()
			continue
		}
		go func() {
			defer l.conns.done(gc)
			if err := establish(l.id, gc); err != nil {
				l.log.Debug("connection ended", "listener", l.id, "remote", gc.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close stops accepting, closes the clients mochi knows (with a DISCONNECT
// where the protocol has one), then every connection still open (one whose
// CONNECT is being authenticated is not known to mochi yet), and waits for
// their goroutines to end.
func (l *netListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		l.ln.Close()
		close(l.quit)
		closeClients(l.id)
		l.conns.closeAll()
		l.conns.wait()
	})
}

// connSet tracks a listener's connections so Close can close them all: once
// closed it admits none, so none can start after Close has looked.
type connSet struct {
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// add registers c, or reports false once the set is closed.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// done unregisters c (and closes it) when its goroutine ends.
func (s *connSet) done(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeAll closes every registered connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	open := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

func (s *connSet) wait() { s.wg.Wait() }

// temporaryAcceptError reports an Accept error worth retrying: the process
// or system is out of file descriptors or buffers, a connection was aborted
// in the queue, or a timeout.
func temporaryAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// acceptBackoff is net/http's: 5 ms, doubling, at most 1 s.
func acceptBackoff(last time.Duration) time.Duration {
	if last == 0 {
		return 5 * time.Millisecond
	}
	if last *= 2; last > time.Second {
		last = time.Second
	}
	return last
}

// acceptErrors counts a listener's Accept errors and logs them at most once
// every acceptLogEvery, with the number left unlogged, so a server out of
// descriptors does not also flood its log.
type acceptErrors struct {
	id  string
	log *slog.Logger
	m   *metrics

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const acceptLogEvery = 10 * time.Second

func newAcceptErrors(id string, m *metrics) *acceptErrors {
	return &acceptErrors{id: id, m: m, log: slog.Default()}
}

// note counts err and logs it, with the delay before the next Accept when
// retry is not negative.
func (a *acceptErrors) note(err error, retry time.Duration) {
	a.m.acceptErrors.WithLabelValues(a.id).Inc()
	a.mu.Lock()
	now := time.Now()
	if !a.last.IsZero() && now.Sub(a.last) < acceptLogEvery {
		a.suppressed++
		a.mu.Unlock()
		return
	}
	n := a.suppressed
	a.last, a.suppressed = now, 0
	a.mu.Unlock()
	args := []any{"err", err, "unlogged_since_last", n} // the logger names the listener
	if retry >= 0 {
		args = append(args, "retry_in", retry)
	}
	a.log.Warn("accept failed; retrying", args...)
}

// gate admits connections that have not authenticated yet: at most perIP
// from one source address and total from all, each given until timeout to
// deliver its whole CONNECT. A connection over a cap is closed at once.
type gate struct {
	timeout      time.Duration
	perIP, total int
	m            *metrics

	mu   sync.Mutex
	byIP map[string]int
	n    int
}

func newGate(cfg Config, m *metrics) *gate {
	return &gate{timeout: cfg.ConnectTimeout, perIP: cfg.MaxUnauthedPerIP, total: cfg.MaxUnauthed, m: m, byIP: make(map[string]int)}
}

// admit counts c as unauthenticated and sets its CONNECT deadline, or closes
// it and reports false when a cap is reached.
func (g *gate) admit(c net.Conn) (*gatedConn, bool) {
	ip := remoteIP(c)
	g.mu.Lock()
	reason := ""
	switch {
	case g.n >= g.total:
		reason = "total"
	case g.byIP[ip] >= g.perIP:
		reason = "per_ip"
	default:
		g.n++
		g.byIP[ip]++
	}
	g.mu.Unlock()
	if reason != "" {
		g.m.unauthedRefused.WithLabelValues(reason).Inc()
		c.Close()
		return nil, false
	}
	g.m.unauthed.Inc()
	// mochi replaces this deadline with its keep-alive one once it has read
	// the CONNECT, so it bounds only a silent or half-sent CONNECT.
	c.SetDeadline(time.Now().Add(g.timeout))
	return &gatedConn{Conn: c, g: g, ip: ip}, true
}

func (g *gate) release(ip string) {
	g.mu.Lock()
	g.n--
	if g.byIP[ip]--; g.byIP[ip] <= 0 {
		delete(g.byIP, ip)
	}
	g.mu.Unlock()
	g.m.unauthed.Dec()
}

func remoteIP(c net.Conn) string {
	a := c.RemoteAddr()
	if a == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// gatedConn is an accepted connection counted by its gate until it
// authenticates or closes.
type gatedConn struct {
	net.Conn
	g        *gate
	ip       string
	authed   atomic.Bool
	released sync.Once
}

// Read counts a connection that ran out of time before authenticating.
func (c *gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !c.authed.Load() {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.release(func() { c.g.m.connectTimeouts.Inc() })
		}
	}
	return n, err
}

// Close releases the connection's place in the gate.
func (c *gatedConn) Close() error {
	c.release(nil)
	return c.Conn.Close()
}

// authenticated takes the connection out of the gate's counts: from now on
// mochi's keep-alive deadline is what bounds it.
func (c *gatedConn) authenticated() {
	c.authed.Store(true)
	c.release(nil)
}

func (c *gatedConn) release(also func()) {
	c.released.Do(func() {
		c.g.release(c.ip)
		if also != nil {
			also()
		}
	})
}
