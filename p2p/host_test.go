package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/wire"
)

// testWriter routes a logger to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// echoHandler answers every request with wire.OK carrying topic and body,
// and nothing to a topic ending in "/silent".
var echoHandler = HandlerFunc(func(_ context.Context, _ peer.ID, topic string, body []byte) []byte {
	if len(topic) >= 7 && topic[len(topic)-7:] == "/silent" {
		return nil
	}
	b, err := wire.OK("", topic+"|"+string(body))
	if err != nil {
		panic(err)
	}
	return b
})

func newTestHost(tb testing.TB, mutate func(*Config)) *Host {
	tb.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{
		Key:         key,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Handler:     echoHandler,
		Logger:      slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := New(tb.Context(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close() })
	return h
}

// authorizeLater lets a test set who may connect after the hosts exist.
type authorizeLater struct {
	mu  sync.Mutex
	ids map[peer.ID]bool
}

func (a *authorizeLater) set(hosts ...*Host) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = make(map[peer.ID]bool)
	for _, h := range hosts {
		a.ids[h.ID()] = true
	}
}

func (a *authorizeLater) authorize(p peer.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids[p]
}

func addrsOf(tb testing.TB, h *Host) []multiaddr.Multiaddr {
	tb.Helper()
	var out []multiaddr.Multiaddr
	for _, s := range h.Addrs() {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		tb.Fatal("host has no addresses")
	}
	return out
}

// pair returns a client and a server that accepts the client; mutate, if
// not nil, adjusts both configs.
func pair(tb testing.TB, mutate func(*Config)) (client, server *Host) {
	tb.Helper()
	var auth authorizeLater
	client = newTestHost(tb, mutate)
	server = newTestHost(tb, func(c *Config) {
		c.Authorize = auth.authorize
		if mutate != nil {
			mutate(c)
		}
	})
	auth.set(client)
	return client, server
}

func wantEcho(tb testing.TB, answer []byte, topic, body string) {
	tb.Helper()
	a, err := wire.ParseAnswer(answer)
	if err != nil {
		tb.Fatalf("ParseAnswer(%q): %v", answer, err)
	}
	var got string
	if err := a.Decode(&got); err != nil {
		tb.Fatalf("Decode(%q): %v", answer, err)
	}
	if want := topic + "|" + body; got != want {
		tb.Fatalf("answer = %q, want %q", got, want)
	}
}

func TestAddrs(t *testing.T) {
	h := newTestHost(t, nil)
	for _, s := range h.Addrs() {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			t.Fatalf("Addrs() has %q: %v", s, err)
		}
		if _, id := peer.SplitAddr(a); id != h.ID() {
			t.Errorf("Addrs() has %q, want it to end in /p2p/%s", s, h.ID())
		}
	}
}

func TestRequestAnswer(t *testing.T) {
	client, server := pair(t, nil)
	topic := wire.RequestTopic(server.ID().String(), "send", "1")
	answer, err := client.Request(t.Context(), server.ID(), addrsOf(t, server), topic, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, answer, topic, "hello")

	// The second request reuses the connection: no addresses needed.
	answer, err = client.Request(t.Context(), server.ID(), nil, topic, []byte("again"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, answer, topic, "again")
}

func TestPipelinedRequests(t *testing.T) {
	client, server := pair(t, nil)
	addrs := addrsOf(t, server)
	const workers, each = 8, 125
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				topic := wire.RequestTopic(server.ID().String(), "send", fmt.Sprintf("%d-%d", w, i))
				body := fmt.Sprintf("body %d %d", w, i)
				answer, err := client.Request(t.Context(), server.ID(), addrs, topic, []byte(body))
				if err != nil {
					errs <- err
					continue
				}
				a, err := wire.ParseAnswer(answer)
				var got string
				if err == nil {
					err = a.Decode(&got)
				}
				if err != nil {
					errs <- err
				} else if want := topic + "|" + body; got != want {
					errs <- fmt.Errorf("answer = %q, want %q", got, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestUnauthorizedPeerRefused(t *testing.T) {
	stranger := newTestHost(t, nil)
	friend, server := pair(t, nil)
	topic := wire.RequestTopic(server.ID().String(), "send", "1")
	_, err := stranger.Request(t.Context(), server.ID(), addrsOf(t, server), topic, nil)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("stranger's Request error = %v, want ErrRefused", err)
	}
	t.Logf("stranger: %v", err)
	answer, err := friend.Request(t.Context(), server.ID(), addrsOf(t, server), topic, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, answer, topic, "x")
}

func TestGarbageFrameResetsStream(t *testing.T) {
	client, server := pair(t, nil)
	client.h.Peerstore().AddAddrs(server.ID(), dialAddrs(server.ID(), addrsOf(t, server)), time.Minute)
	s, err := client.h.NewStream(t.Context(), server.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	// A length prefix that overflows 64 bits.
	if _, err := s.Write(bytes.Repeat([]byte{0xff}, 11)); err != nil {
		t.Fatal(err)
	}
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := s.Read(make([]byte, 1))
	if !errors.Is(err, &network.StreamError{ErrorCode: codeBadFrame, Remote: true}) || n != 0 {
		t.Fatalf("Read after garbage = %d, %v; want a reset with code %#x", n, err, codeBadFrame)
	}
	t.Logf("read after garbage: %v", err)

	topic := wire.RequestTopic(server.ID().String(), "send", "2")
	answer, err := client.Request(t.Context(), server.ID(), nil, topic, []byte("still"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, answer, topic, "still")
}

func TestDeadStreamReopened(t *testing.T) {
	client, server := pair(t, func(c *Config) { c.IdleTimeout = 100 * time.Millisecond })
	addrs := addrsOf(t, server)
	topic := wire.RequestTopic(server.ID().String(), "send", "1")
	for i := range 3 {
		answer, err := client.Request(t.Context(), server.ID(), addrs, topic, []byte("x"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		wantEcho(t, answer, topic, "x")
		time.Sleep(300 * time.Millisecond) // the server resets the idle stream
	}
}

func TestUnansweredRequest(t *testing.T) {
	client, server := pair(t, nil)
	silent := "im://" + server.ID().String() + "/silent"
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := client.Request(ctx, server.ID(), addrsOf(t, server), silent, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Request(silent) error = %v, want deadline exceeded", err)
	}
	// The stale waiter is skipped when the next answer arrives.
	topic := wire.RequestTopic(server.ID().String(), "send", "2")
	answer, err := client.Request(t.Context(), server.ID(), nil, topic, []byte("y"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, answer, topic, "y")
}

func TestRequestTooLarge(t *testing.T) {
	client, server := pair(t, nil)
	_, err := client.Request(t.Context(), server.ID(), addrsOf(t, server), "im://x/send", make([]byte, wire.DefaultMaxBody+1))
	if !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("Request(huge body) error = %v, want ErrFrameTooLarge", err)
	}
}

func TestCloseIdempotentAndNoLeak(t *testing.T) {
	run := func() {
		client, server := pair(t, nil)
		topic := wire.RequestTopic(server.ID().String(), "send", "1")
		if _, err := client.Request(t.Context(), server.ID(), addrsOf(t, server), topic, nil); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := client.Close(); err != nil {
				t.Errorf("client.Close: %v", err)
			}
			if err := server.Close(); err != nil {
				t.Errorf("server.Close: %v", err)
			}
		}
		if _, err := client.Request(t.Context(), server.ID(), nil, topic, nil); !errors.Is(err, ErrClosed) {
			t.Errorf("Request after Close error = %v, want ErrClosed", err)
		}
	}
	run() // warm up libp2p's process-wide goroutines
	before := runtime.NumGoroutine()
	run()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A direct answer has a Trace of its own even when the handler left it
// empty; one the handler set is kept.
func TestAnswersCarryTrace(t *testing.T) {
	client, server := pair(t, func(c *Config) {
		c.Handler = HandlerFunc(func(_ context.Context, _ peer.ID, topic string, body []byte) []byte {
			if string(body) == "fail" {
				return wire.Fail("", "bad request: no")
			}
			if string(body) == "traced" {
				a, _ := wire.OK("0123456789abcdef", "ok")
				return a
			}
			a, _ := wire.OK("", "ok")
			return a
		})
	})
	seen := map[string]bool{}
	for _, body := range []string{"ok", "ok", "fail", "traced"} {
		topic := wire.RequestTopic(server.ID().String(), "send", body)
		raw, err := client.Request(t.Context(), server.ID(), addrsOf(t, server), topic, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		a, err := wire.ParseAnswer(raw)
		if err != nil {
			t.Fatalf("ParseAnswer(%q): %v", raw, err)
		}
		if len(a.Trace) != 16 || seen[a.Trace] {
			t.Errorf("answer to %q has Trace %q, want a fresh 16-digit one", body, a.Trace)
		}
		seen[a.Trace] = true
		if body == "traced" && a.Trace != "0123456789abcdef" {
			t.Errorf("handler's Trace replaced by %q", a.Trace)
		}
		if body == "fail" && a.Error != "bad request: no" {
			t.Errorf("Error = %q after adding the Trace", a.Error)
		}
	}
}

// forwarder relays TCP connections on a loopback port to the address set
// later, counting them: the stand-in for a router's forwarded port.
type forwarder struct {
	ln     net.Listener
	target atomic.Value // string
	conns  atomic.Int64
}

func newForwarder(tb testing.TB) *forwarder {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &forwarder{ln: ln}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", f.target.Load().(string))
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return f
}

// A host that announces another address (a forwarded port) tells only
// that one, and is reached through it.
func TestAnnounceAddrs(t *testing.T) {
	fwd := newForwarder(t)
	announce := "/ip4/127.0.0.1/tcp/" + strconv.Itoa(fwd.ln.Addr().(*net.TCPAddr).Port)
	client, server := pair(t, func(c *Config) { c.Announce = []string{announce} })
	var real string
	for _, a := range server.h.Network().ListenAddresses() {
		if port, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
			real = "127.0.0.1:" + port
		}
	}
	if real == "" {
		t.Fatal("the server listens on no TCP port")
	}
	fwd.target.Store(real)
	if got, want := server.Addrs(), []string{announce + "/p2p/" + server.ID().String()}; !slices.Equal(got, want) {
		t.Fatalf("Addrs() = %v, want only the announced %v", got, want)
	}
	topic := wire.RequestTopic(server.ID().String(), "send", "1")
	answer, err := client.Request(t.Context(), server.ID(), addrsOf(t, server), topic, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, answer, topic, "hello")
	if fwd.conns.Load() == 0 {
		t.Error("the request did not come through the announced address")
	}
	// What identify told the client is the announced address only.
	for _, a := range client.h.Peerstore().Addrs(server.ID()) {
		if a.String() != announce {
			t.Errorf("the client learnt %s, an address the server does not announce", a)
		}
	}
}

func TestAnnounceRefusesBadAddrs(t *testing.T) {
	for _, bad := range []string{"not-a-multiaddr", "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STGsAYbTHCyR3ydREk"} {
		_, err := New(t.Context(), Config{Handler: echoHandler, Announce: []string{bad}})
		if err == nil || !strings.Contains(err.Error(), "announce") {
			t.Errorf("New with Announce %q: err = %v, want an announce error", bad, err)
		}
	}
}
