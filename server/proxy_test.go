package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func TestHTTPProxy(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/redirect-out":
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
			return
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		}
		w.Header().Set("X-Echo", "yes")
		fmt.Fprintf(w, "%s %s %s|%s|%s", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Test"), body)
	}))
	t.Cleanup(echo.Close)
	var strayHits atomic.Int32
	stray := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { strayHits.Add(1) }))
	t.Cleanup(stray.Close)
	allowed := strings.TrimPrefix(echo.URL, "http://")
	other := strings.TrimPrefix(stray.URL, "http://")

	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.ProxyAllow = []string{allowed} }))
	people(t, inst, "alice")
	alice := dial(t, inst, "alice", "alice-1")

	tests := []struct {
		topic  string
		req    wire.ProxyRequest
		status int
		body   string
	}{
		{"http://" + allowed + "/hello?x=1", wire.ProxyRequest{Method: "GET"}, 200, "GET /hello x=1||"},
		{"http://" + allowed + "/hello", wire.ProxyRequest{}, 200, "GET /hello ||"},
		{"http://" + allowed + "/post", wire.ProxyRequest{Method: "post", Body: "payload", Header: map[string][]string{"X-Test": {"v"}}}, 200, "POST /post |v|payload"},
		{"http://" + allowed + "/frag?y=2#top", wire.ProxyRequest{Method: "GET"}, 200, "GET /frag y=2||"},
		{"http://" + allowed + "/teapot", wire.ProxyRequest{Method: "DELETE"}, 418, "DELETE /teapot ||"},
	}
	for _, tt := range tests {
		a := alice.CallTopic(tt.topic, tt.req)
		var resp wire.ProxyResponse
		if err := a.Decode(&resp); err != nil {
			t.Errorf("proxy %s %s: %v", tt.req.Method, tt.topic, err)
			continue
		}
		if resp.StatusCode != tt.status || resp.Body != tt.body || resp.Err != "" {
			t.Errorf("proxy %s %s = %d %q (Err %q), want %d %q", tt.req.Method, tt.topic, resp.StatusCode, resp.Body, resp.Err, tt.status, tt.body)
		}
		if tt.status == 200 && strings.Join(resp.Header["X-Echo"], ",") != "yes" {
			t.Errorf("proxy %s: Header = %v, want X-Echo: yes", tt.topic, resp.Header)
		}
	}
	if n := hits.Load(); n != int32(len(tests)) {
		t.Errorf("allowed server got %d requests, want %d", n, len(tests))
	}

	refused := []struct {
		topic string
		req   wire.ProxyRequest
	}{
		{"http://" + other + "/x", wire.ProxyRequest{}},
		{"https://" + other + "/x", wire.ProxyRequest{}},
		{"http://localhost:" + strings.Split(allowed, ":")[1] + "/x", wire.ProxyRequest{}},
		{"http://" + strings.Split(allowed, ":")[0] + ":1/x", wire.ProxyRequest{}},
		{"http://alice:secret@" + other + "/x", wire.ProxyRequest{}},
		{"http://" + allowed + "/x", wire.ProxyRequest{Method: "CONNECT"}},
		{"http://" + allowed + "/x", wire.ProxyRequest{Method: "GET\r\nX: y"}},
	}
	for _, r := range refused {
		a := alice.CallTopic(r.topic, r.req)
		if a.Error == "" {
			t.Errorf("proxy %s %s = %s, want an Error", r.req.Method, r.topic, a.Result)
		}
	}
	// A redirect off the allow-list is not followed.
	a := alice.CallTopic("http://"+allowed+"/redirect-out?to="+stray.URL+"/x", wire.ProxyRequest{})
	var resp wire.ProxyResponse
	if err := a.Decode(&resp); err == nil && resp.Err == "" {
		t.Errorf("proxy redirect to %s = %d %q, want refused", other, resp.StatusCode, resp.Body)
	}
	if n := strayHits.Load(); n != 0 {
		t.Errorf("server off the allow-list got %d requests, want 0", n)
	}
	stillUp(t, alice, "proxy requests")

	// A server with no allow-list proxies nothing.
	_, c := start(t, "bob")
	if a := c[0].CallTopic("http://"+allowed+"/hello", wire.ProxyRequest{}); a.Error == "" {
		t.Errorf("proxy on a server without an allow-list = %s, want an Error", a.Result)
	}
}

// TestSlowProxyHostBlocksNobody has ten accounts send four proxy requests
// each to a host that does not answer until the test lets it. Each
// account gets two in flight and an Error for the rest, at most the proxy
// pool's size reach the host at once, and meanwhile another client's send
// is answered: the proxy never holds the request workers.
func TestSlowProxyHostBlocksNobody(t *testing.T) {
	release := make(chan struct{})
	var running, most atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "slow")
	}))
	t.Cleanup(slow.Close)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	host := strings.TrimPrefix(slow.URL, "http://")

	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) {
		c.ProxyAllow = []string{host}
		c.Workers = 8 // as many as the proxy pool, so the old code runs out
		c.ProxyTimeout = 60 * time.Second
	}))
	people(t, inst, "zed", "amy")
	zed, amy := dial(t, inst, "zed", "zed-1"), dial(t, inst, "amy", "amy-1")
	befriend(t, zed, amy)

	const accounts, each = 10, 4
	var cls []*servertest.Client
	for i := range accounts {
		name := fmt.Sprintf("u%d", i)
		people(t, inst, name)
		cls = append(cls, dial(t, inst, name, name+"-1"))
	}
	for _, cl := range cls {
		for j := range each {
			body := mustJSON(wire.ProxyRequest{Method: "GET"})
			tok := cl.Paho().Publish(fmt.Sprintf("http://%s/slow?n=%d", host, j), 1, false, []byte(body))
			if !tok.WaitTimeout(servertest.Timeout) || tok.Error() != nil {
				t.Fatalf("publish proxy request: %v", tok.Error())
			}
		}
	}
	// The excess is refused at once, while the rest still waits.
	answers := make([][]wire.Answer, accounts)
	collect := func(want func(i int) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for i, cl := range cls {
			for !want(i) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: answers %+v, still waiting", cl.Device, answers[i])
				}
				for _, p := range cl.Drain(100 * time.Millisecond) {
					if !strings.HasPrefix(p.Topic, "http://") {
						continue // a push
					}
					a, err := wire.ParseAnswer(p.Body)
					if err != nil {
						t.Fatalf("%s: %s is not an answer: %v", cl.Device, p.Body, err)
					}
					answers[i] = append(answers[i], a)
				}
			}
		}
	}
	collect(func(i int) bool { return len(answers[i]) >= each-2 })
	for i := range cls {
		if len(answers[i]) != each-2 {
			t.Fatalf("%s got %d answers before the host answered, want %d refusals", cls[i].Device, len(answers[i]), each-2)
		}
		for _, a := range answers[i] {
			wantError(t, "proxy request over the account's limit", a.Error, "too many proxy requests")
		}
	}
	for deadline := time.Now().Add(30 * time.Second); running.Load() < 8; {
		if time.Now().After(deadline) {
			t.Fatalf("%d proxy requests reached the slow host, want the pool's 8", running.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Every proxy slot is busy; a send is answered all the same.
	send(t, zed, text(wire.DM("zed", "amy"), "not stuck behind the proxy"))
	if n := amy.News(); n.Message.From != "zed" {
		t.Errorf("amy got news %+v, want zed's message", n)
	}
	free()

	collect(func(i int) bool { return len(answers[i]) >= each })
	for i := range cls {
		for _, a := range answers[i][each-2:] {
			var resp wire.ProxyResponse
			if err := a.Decode(&resp); err != nil || resp.StatusCode != 200 || resp.Body != "slow" {
				t.Errorf("%s: proxy answer %+v (%v), want 200 slow", cls[i].Device, resp, err)
			}
		}
	}
	if m := most.Load(); m > 8 {
		t.Errorf("%d proxy requests ran at once, want at most the pool's 8", m)
	}
}
