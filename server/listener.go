package server

import (
	"log/slog"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// netListener serves mochi clients from a listener the caller bound (so
// tests can use port 0). Unlike mochi's own Net listener it waits, on Close,
// for every connection it started, so nothing outlives the server.
type netListener struct {
	id  string
	ln  net.Listener
	log *slog.Logger

	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ listeners.Listener = (*netListener)(nil)

func newNetListener(id string, ln net.Listener) *netListener {
	return &netListener{id: id, ln: ln}
}

func (l *netListener) ID() string       { return l.id }
func (l *netListener) Address() string  { return l.ln.Addr().String() }
func (l *netListener) Protocol() string { return "tcp" }

func (l *netListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve accepts connections until the listener closes.
func (l *netListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := establish(l.id, conn); err != nil {
				l.log.Debug("connection ended", "listener", l.id, "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close stops accepting, closes the clients and waits for their
// connections to end.
func (l *netListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		l.ln.Close()
		closeClients(l.id)
		l.wg.Wait()
	})
}
