// Package servertest starts a real MQTTER server on loopback ports for tests,
// and gives them a small paho client that speaks the request/answer
// protocol.
package servertest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/store"
)

// Instance is a running server.
type Instance struct {
	*server.Server
	Dir  string
	MQTT string // tcp://127.0.0.1:port
	HTTP string // http://127.0.0.1:port
	WS   string // ws://127.0.0.1:port when the config has a WSAddr

	cfg    server.Config
	cancel context.CancelFunc
	done   chan error
}

// Option changes the config of a test server.
type Option func(*server.Config)

// WithConfig lets a test set any config field (DataDir and addresses are
// the harness's).
func WithConfig(fn func(*server.Config)) Option { return Option(fn) }

// Start runs a server in a temporary directory on free loopback ports and
// stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Instance {
	t.Helper()
	cfg := server.Config{DataDir: t.TempDir(), Logger: TestLogger(t)}
	for _, o := range opts {
		o(&cfg)
	}
	inst := &Instance{Dir: cfg.DataDir, cfg: cfg}
	inst.start(t, "127.0.0.1:0", "127.0.0.1:0")
	t.Cleanup(func() { inst.Stop(t) })
	return inst
}

func (i *Instance) start(t testing.TB, mqttAddr, httpAddr string) {
	t.Helper()
	mqttLn := listen(t, mqttAddr)
	httpLn := listen(t, httpAddr)
	srv, err := server.New(context.Background(), i.cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	i.Server, i.cancel, i.done = srv, cancel, make(chan error, 1)
	var wsLn net.Listener
	if i.cfg.WSAddr != "" {
		wsLn = listen(t, i.cfg.WSAddr)
	}
	go func() { i.done <- srv.Serve(ctx, server.Listeners{MQTT: mqttLn, WS: wsLn, HTTP: httpLn}) }()
	select {
	case <-srv.Ready():
	case err := <-i.done:
		t.Fatalf("server stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready after 10s")
	}
	i.MQTT = "tcp://" + mqttLn.Addr().String()
	i.HTTP = "http://" + httpLn.Addr().String()
	if wsLn != nil {
		i.WS = "ws://" + wsLn.Addr().String()
		i.cfg.WSAddr = wsLn.Addr().String() // a restart binds the same port
	}
}

// listen binds addr, retrying a little: a restart reuses the old port.
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var err error
	for range 50 {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			return l
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("listen %s: %v", addr, err)
	return nil
}

// Stop stops the server and waits for it; safe to call twice.
func (i *Instance) Stop(t testing.TB) {
	t.Helper()
	if i.cancel == nil {
		return
	}
	i.cancel()
	i.cancel = nil
	select {
	case err := <-i.done:
		if err != nil {
			t.Errorf("server stopped with error: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("server did not stop within 20s")
	}
}

// Restart stops the server and starts it again on the same data directory
// and ports.
func (i *Instance) Restart(t testing.TB) {
	t.Helper()
	i.Stop(t)
	i.start(t, strings.TrimPrefix(i.MQTT, "tcp://"), strings.TrimPrefix(i.HTTP, "http://"))
}

// AddUser creates a person (or thing) and returns the thing's pairing code.
//
// It stores the password under a cheap hash of the server's own scheme
// (bcrypt at its lowest cost), so that the many logins of a test suite do
// not each pay the production hash cost, which under the race detector is
// about a second. Tests of account creation itself call Server.AddUser.
func (i *Instance) AddUser(t testing.TB, name, password string, thing bool) string {
	t.Helper()
	kind := server.KindPerson
	if thing {
		kind = server.KindThing
	}
	ctx := context.Background()
	err := i.Store().AddAccount(ctx, store.Account{Name: name, Kind: kind, PassHash: cheapHash(t, password), Created: time.Now().UnixMilli()})
	if err != nil {
		t.Fatalf("AddUser(%q): %v", name, err)
	}
	if !thing {
		return ""
	}
	code, _, err := i.NewPairingCode(ctx, name)
	if err != nil {
		t.Fatalf("AddUser(%q): pairing code: %v", name, err)
	}
	return code
}

var (
	schemeOnce sync.Once
	bcryptUsed bool     // the server hashes with bcrypt
	hashes     sync.Map // password → hash, when it does not
)

// cheapHash returns a hash of password that the server accepts: a bcrypt
// hash at the lowest cost if the server uses bcrypt (the cost is part of the
// hash), else the server's own hash, made once per password.
func cheapHash(t testing.TB, password string) string {
	t.Helper()
	schemeOnce.Do(func() {
		probe, err := server.HashPassword("probe")
		bcryptUsed = err == nil && strings.HasPrefix(probe, "$2")
	})
	if bcryptUsed {
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("hash password: %v", err)
		}
		return string(h)
	}
	if h, ok := hashes.Load(password); ok {
		return h.(string)
	}
	h, err := server.HashPassword(password)
	if err != nil {
		t.Fatalf("hash password: %v", err)
	}
	hashes.Store(password, h)
	return h
}

// testWriter routes log lines to t.Log until the test's cleanups are done;
// a line that comes later is dropped (t.Log would panic).
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// TestLogger returns a logger that writes warnings and errors to t.Log
// (everything from debug up when $MQTTER_TEST_LOG is "debug").
func TestLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	level := slog.LevelWarn
	if os.Getenv("MQTTER_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
