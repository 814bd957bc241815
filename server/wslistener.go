package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener serves MQTT over WebSocket (subprotocol "mqtt", binary
// frames) from a listener the caller bound, so a bind error is reported at
// start and tests can use port 0; it waits for its connections on Close.
type wsListener struct {
	id   string
	ln   net.Listener
	log  *slog.Logger
	hs   *http.Server
	gate *gate
	errs *acceptErrors

	establish listeners.EstablishFn
	conns     connSet // the upgraded connections, which http.Server forgets
	closeOnce sync.Once
}

var _ listeners.Listener = (*wsListener)(nil)

var upgrader = websocket.Upgrader{
	Subprotocols: []string{"mqtt", "mqttv3.1"},
	// MQTT clients are not browsers sending cookies; any origin may connect.
	CheckOrigin: func(*http.Request) bool { return true },
}

func newWSListener(id string, ln net.Listener, g *gate, m *metrics) *wsListener {
	return &wsListener{id: id, ln: ln, gate: g, errs: newAcceptErrors(id, m)}
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "ws" }

func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	l.errs.log = log
	// The timeouts bound the upgrade request; the upgraded connection gets
	// the gate's CONNECT deadline, which replaces them.
	l.hs = &http.Server{
		Handler:           http.HandlerFunc(l.upgrade),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return nil
}

func (l *wsListener) upgrade(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the client
	}
	conn, ok := l.gate.admit(&wsConn{Conn: c.NetConn(), ws: c})
	if !ok {
		return
	}
	if !l.conns.add(conn) {
		conn.Close()
		return
	}
	defer l.conns.done(conn)
	if err := l.establish(l.id, conn); err != nil {
		l.log.Debug("connection ended", "listener", l.id, "remote", r.RemoteAddr, "err", err)
	}
}

// Serve serves until Close. http.Server retries temporary Accept errors
// itself (5 ms doubling to 1 s); countingListener counts and logs them.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	if err := l.hs.Serve(countingListener{l.ln, l.errs}); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener stopped", "listener", l.id, "err", err)
	}
}

// Close stops accepting, closes the clients mochi knows, then every
// upgraded connection still open, and waits for them.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.hs.Shutdown(ctx) // hijacked connections are not waited for here
		closeClients(l.id)
		l.conns.closeAll()
		l.conns.wait()
	})
}

// countingListener counts and logs the Accept errors http.Server retries.
type countingListener struct {
	net.Listener
	errs *acceptErrors
}

func (c countingListener) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.errs.note(err, -1)
	}
	return conn, err
}

// wsConn carries an MQTT byte stream in WebSocket binary messages.
type wsConn struct {
	net.Conn // the raw connection: addresses, deadlines, Close
	ws       *websocket.Conn
	r        io.Reader // the message being read
	wmu      sync.Mutex
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
