package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

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
