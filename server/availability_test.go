package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
)

// waitMetric waits until name reads want.
func waitMetric(t *testing.T, inst *servertest.Instance, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for {
		got := metric(t, inst, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s = %v, want %v", name, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialFrom opens a TCP connection to addr from the loopback address from
// (127.0.0.x: Linux answers the whole 127/8 on lo).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d (reading and
// dropping whatever it sends first).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// stillOpen reports whether c is open after a short wait.
func stillOpen(c net.Conn) bool { return !closedWithin(c, 300*time.Millisecond) }

func mqttAddr(inst *servertest.Instance) string { return strings.TrimPrefix(inst.MQTT, "tcp://") }

// A connection that sends nothing, and one that sends half a CONNECT, are
// closed once the connect timeout passes, and counted.
func TestConnectTimeoutClosesSilentConnections(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) {
		c.ConnectTimeout, c.WSAddr = 500*time.Millisecond, "127.0.0.1:0"
	}))
	people(t, inst, "alice")
	silent := dialFrom(t, "127.0.0.1", mqttAddr(inst))
	half := dialFrom(t, "127.0.0.1", mqttAddr(inst))
	pk := servertest.ConnectPacket("alice-1", "alice", password("alice"), 30)
	if _, err := half.Write(pk[:len(pk)/2]); err != nil {
		t.Fatal(err)
	}
	// Over WebSocket: upgraded, then silent.
	ws := dialFrom(t, "127.0.0.1", strings.TrimPrefix(inst.WS, "ws://"))
	io.WriteString(ws, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
	if st, err := http.ReadResponse(bufio.NewReader(ws), nil); err != nil || st.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("websocket upgrade = %v, %v", st, err)
	}
	for name, c := range map[string]net.Conn{"silent": silent, "half CONNECT": half, "silent websocket": ws} {
		if !closedWithin(c, 5*time.Second) {
			t.Errorf("%s connection still open 5s after a 500ms connect timeout", name)
		}
	}
	if n := metric(t, inst, "mqtter_connect_timeouts_total"); n != 3 {
		t.Errorf("mqtter_connect_timeouts_total = %v, want 3", n)
	}
	waitMetric(t, inst, "mqtter_unauthed_connections", 0)
	// A client that does send its CONNECT in time stays past the timeout.
	alice := dial(t, inst, "alice", "alice-1")
	time.Sleep(time.Second)
	alice.OK("conversations", struct{}{}, nil)
}

// Connections not yet authenticated are capped per source IP and in all;
// one over a cap is closed at once and counted, authenticated ones do not
// count, and a real client gets in once the silent ones are gone.
func TestUnauthenticatedConnectionCaps(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) {
		c.ConnectTimeout, c.MaxUnauthedPerIP, c.MaxUnauthed = time.Minute, 3, 5
	}))
	people(t, inst, "alice")
	addr := mqttAddr(inst)
	var held []net.Conn
	for range 3 {
		held = append(held, dialFrom(t, "127.0.0.1", addr))
	}
	waitMetric(t, inst, "mqtter_unauthed_connections", 3)
	if c := dialFrom(t, "127.0.0.1", addr); !closedWithin(c, 5*time.Second) {
		t.Error("a 4th silent connection from one IP (cap 3) stays open")
	}
	if _, err := servertest.TryDial(t, inst.MQTT, "alice", password("alice"), "alice-1"); err == nil {
		t.Error("CONNECT from an IP at its cap succeeded")
	}
	for range 2 {
		held = append(held, dialFrom(t, "127.0.0.2", addr))
	}
	waitMetric(t, inst, "mqtter_unauthed_connections", 5)
	if c := dialFrom(t, "127.0.0.3", addr); !closedWithin(c, 5*time.Second) {
		t.Error("a 6th silent connection (total cap 5) stays open")
	}
	for i, c := range held {
		if !stillOpen(c) {
			t.Errorf("silent connection %d under the caps was closed", i)
		}
	}
	if got := metric(t, inst, `mqtter_unauthed_refused_total{cap="per_ip"}`); got < 2 {
		t.Errorf(`mqtter_unauthed_refused_total{cap="per_ip"} = %v, want at least 2`, got)
	}
	if got := metric(t, inst, `mqtter_unauthed_refused_total{cap="total"}`); got != 1 {
		t.Errorf(`mqtter_unauthed_refused_total{cap="total"} = %v, want 1`, got)
	}

	for _, c := range held {
		c.Close()
	}
	waitMetric(t, inst, "mqtter_unauthed_connections", 0)
	var clients []*servertest.Client
	for i := range 4 { // more than the per-IP cap: authenticated ones do not count
		clients = append(clients, dial(t, inst, "alice", "alice-"+strconv.Itoa(i)))
	}
	for range 3 {
		held = append(held, dialFrom(t, "127.0.0.1", addr))
	}
	waitMetric(t, inst, "mqtter_unauthed_connections", 3)
	for _, cl := range clients {
		cl.OK("conversations", struct{}{}, nil)
	}
}

// The HTTP API closes a client that never finishes its request headers,
// and one that never finishes its body.
func TestHTTPSlowLorisClosed(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.HTTPReadTimeout = time.Second }))
	addr := strings.TrimPrefix(inst.HTTP, "http://")
	headers := dialFrom(t, "127.0.0.1", addr)
	io.WriteString(headers, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	body := dialFrom(t, "127.0.0.1", addr)
	io.WriteString(body, "POST /v1/s2s/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	for name, c := range map[string]net.Conn{"headers": headers, "body": body} {
		if !closedWithin(c, 5*time.Second) {
			t.Errorf("HTTP request with unfinished %s still open 5s after a 1s read timeout", name)
		}
	}
}

// A CONNECT with a correct password whose (slow, production-cost) bcrypt
// check is still running when the server is told to stop does not keep it
// running: Serve returns within the bound, the port is free, and the client
// is not accepted. The client keeps pinging, as a node does. Looped to hit
// the race.
func TestShutdownDuringAuthentication(t *testing.T) {
	t.Parallel()
	for i := range 3 {
		shutdownDuringAuth(t, i, time.Duration(i*4)*time.Millisecond)
	}
}

func shutdownDuringAuth(t *testing.T, i int, delay time.Duration) {
	srv, err := server.New(t.Context(), server.Config{DataDir: t.TempDir(), Logger: servertest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AddUser(t.Context(), "alice", "alice-pw", server.KindPerson); err != nil { // production bcrypt cost
		t.Fatal(err)
	}
	mqttLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, server.Listeners{MQTT: mqttLn, HTTP: httpLn}) }()
	<-srv.Ready()

	c, err := net.Dial("tcp", mqttLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var accepted atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.Close()
	wg.Add(2)
	go func() { // read: note an accepted CONNACK
		defer wg.Done()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err == nil && buf[0] == 0x20 && buf[3] == 0 {
			accepted.Store(true)
		}
		io.Copy(io.Discard, c)
	}()
	if _, err := c.Write(servertest.ConnectPacket("alice-1", "alice", "alice-pw", 2)); err != nil {
		t.Fatal(err)
	}
	go func() { // ping, as a node does, until the connection ends
		defer wg.Done()
		for {
			time.Sleep(500 * time.Millisecond)
			if _, err := c.Write([]byte{0xC0, 0}); err != nil {
				return
			}
		}
	}()
	time.Sleep(delay)
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("run %d: Serve = %v", i, err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("run %d: Serve still running 15s after cancel with a CONNECT in authentication", i)
		c.Close()
		<-served
		return
	}
	if l, err := net.Listen("tcp", mqttLn.Addr().String()); err != nil {
		t.Errorf("run %d: MQTT port still bound after Serve returned: %v", i, err)
	} else {
		l.Close()
	}
	c.Close()
	wg.Wait()
	if accepted.Load() {
		t.Errorf("run %d: a CONNECT authenticated during shutdown was accepted", i)
	}
}
