package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// writeAPIFiles makes home look like the home of a node serving addr.
func writeAPIFiles(t *testing.T, home, addr, token string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, APITokenFile), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, APIAddrFile), []byte(addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDialNoFiles(t *testing.T) {
	home := t.TempDir()
	_, err := Dial(home)
	if !errors.Is(err, ErrNoNode) {
		t.Fatalf("Dial(empty home) = %v, want ErrNoNode", err)
	}
	for _, want := range []string{"no node running in " + home, "mqtter node --home " + home} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Dial(empty home) = %q, want it to say %q", err, want)
		}
	}
	if _, err := Dial(filepath.Join(home, "missing")); !errors.Is(err, ErrNoNode) {
		t.Errorf("Dial(missing home) = %v, want ErrNoNode", err)
	}
}

func TestDialStaleAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // what a crashed node leaves behind
	home := t.TempDir()
	writeAPIFiles(t, home, addr, "tok")
	if _, err := Dial(home); !errors.Is(err, ErrNoNode) {
		t.Fatalf("Dial(stale api.addr) = %v, want ErrNoNode", err)
	}
}

func TestDialRefusesNonLoopback(t *testing.T) {
	home := t.TempDir()
	writeAPIFiles(t, home, "192.0.2.1:80", "tok")
	_, err := Dial(home)
	if err == nil || errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Dial(non-loopback api.addr) = %v, want a loopback error", err)
	}
}

func TestReadEvents(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []Event
	}{
		{"one", "event: message\ndata: {\"type\":\"message\",\"data\":{\"a\":1}}\n\n",
			[]Event{{"message", json.RawMessage(`{"a":1}`)}}},
		{"comments and keep-alives", ": mqtter events\n\n: keep-alive\n\nevent: server\ndata: {\"type\":\"server\",\"data\":{}}\n\n",
			[]Event{{"server", json.RawMessage(`{}`)}}},
		{"multi-line data", "event: receipt\ndata: {\"type\":\"receipt\",\ndata: \"data\":[1,\ndata:2]}\n\n",
			[]Event{{"receipt", json.RawMessage("[1,\n2]")}}},
		{"crlf and no space", "event:presence\r\ndata:{\"type\":\"presence\",\"data\":null}\r\n\r\n",
			[]Event{{"presence", json.RawMessage("null")}}},
		{"type from the event field", "event: relation\ndata: {\"data\":{\"user\":\"bob\"}}\n\n",
			[]Event{{"relation", json.RawMessage(`{"user":"bob"}`)}}},
		{"id, retry, no data, unfinished", "id: 7\nretry: 100\nevent: x\n\ndata: {\"type\":\"a\"}\n\ndata: {\"type\":\"b\"}\n",
			[]Event{{"a", nil}}},
		{"two", "data: {\"type\":\"a\"}\n\n\n\ndata: {\"type\":\"b\"}\n\n",
			[]Event{{"a", nil}, {"b", nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Event
			err := readEvents(strings.NewReader(tt.stream), func(ev Event) error {
				got = append(got, ev)
				return nil
			})
			if !errors.Is(err, ErrStreamClosed) {
				t.Errorf("readEvents = %v, want ErrStreamClosed", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readEvents(%q) = %q, want %q", tt.stream, got, tt.want)
			}
		})
	}
}

func TestReadEventsErrors(t *testing.T) {
	if err := readEvents(strings.NewReader("data: {nope\n\n"), func(Event) error { return nil }); err == nil || errors.Is(err, ErrStreamClosed) {
		t.Errorf("readEvents(bad JSON) = %v, want a decoding error", err)
	}
	stop := errors.New("stop")
	n := 0
	err := readEvents(strings.NewReader("data: {}\n\ndata: {}\n\n"), func(Event) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("readEvents with fn failing = %v after %d events, want stop after 1", err, n)
	}
}

// fakeAPI answers the local API's routes with fixed bodies so that a test
// sees how the client encodes requests and decodes answers.
func fakeAPI(t *testing.T) *http.ServeMux {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"user":"alice","device":"12D3KooWA","server":"connected","addrs":["/ip4/127.0.0.1/tcp/1/p2p/12D3KooWA"],"peers":[],"outbox":2,"unsynced":3}`)
	})
	mux.HandleFunc("POST /v1/send", func(w http.ResponseWriter, r *http.Request) {
		var req SendRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.To != "bob" || req.Text != "hi there" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"got %+v, %v"}`, req, err)
			return
		}
		io.WriteString(w, `{"MsgId":"01M","Feeds":"dm:alice:bob"}`)
	})
	mux.HandleFunc("GET /v1/history", func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Get("with") != "g:1 2" || q.Get("limit") != "5" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"query %q"}`, r.URL.RawQuery)
			return
		}
		io.WriteString(w, `{"feeds":"g:1","messages":[{"MsgId":"m1","Feeds":"g:1","SeqId":1,"From":"bob","Payload":{"text":"yo"},"Via":"p2p"}]}`)
	})
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `[{"user":"bob","device":"12D3KooWB","status":"online","addrs":[],"connected":true}]`)
	})
	mux.HandleFunc("POST /v1/sync", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"pushed":4,"pulled":1}`)
	})
	mux.HandleFunc("POST /v1/call/{method}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.PathValue("method") {
		case "list_relations":
			if string(body) != "{}" {
				t.Errorf("list_relations body = %s, want {}", body)
			}
			io.WriteString(w, `[{"user":"bob","kind":"person","state":"friend","since":1}]`)
		case "add_friend":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":"server: forbidden: not a friend: bob"}`)
		case "teapot":
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "short and stout\n")
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	return mux
}

// startFake serves h on loopback behind a token check and returns a
// client dialled through the api files.
func startFake(t *testing.T, h http.Handler) *Client {
	t.Helper()
	const token = "s3cret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"missing or wrong token"}`)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	home := t.TempDir()
	writeAPIFiles(t, home, strings.TrimPrefix(srv.URL, "http://"), token)
	c, err := Dial(home)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

func TestClientCalls(t *testing.T) {
	c := startFake(t, fakeAPI(t))
	ctx := t.Context()

	st, err := c.Status(ctx)
	if err != nil || st.User != "alice" || st.Server != ServerConnected || st.Outbox != 2 || len(st.Addrs) != 1 {
		t.Errorf("Status = %+v, %v", st, err)
	}
	sr, err := c.Send(ctx, SendRequest{To: "bob", Text: "hi there"})
	if err != nil || sr != (SendResult{MsgId: "01M", Feeds: "dm:alice:bob"}) {
		t.Errorf("Send = %+v, %v", sr, err)
	}
	h, err := c.History(ctx, "g:1 2", 5)
	if err != nil || len(h.Messages) != 1 || h.Messages[0].Via != "p2p" || h.Messages[0].SeqId != 1 {
		t.Errorf("History = %+v, %v", h, err)
	}
	peers, err := c.Peers(ctx)
	if err != nil || len(peers) != 1 || !peers[0].Connected {
		t.Errorf("Peers = %+v, %v", peers, err)
	}
	sy, err := c.Sync(ctx)
	if err != nil || sy != (SyncResult{Pushed: 4, Pulled: 1}) {
		t.Errorf("Sync = %+v, %v", sy, err)
	}
	var raw json.RawMessage
	if err := c.Call(ctx, "list_relations", nil, &raw); err != nil || !strings.Contains(string(raw), `"friend"`) {
		t.Errorf("Call(list_relations) = %s, %v", raw, err)
	}
	if err := c.Call(ctx, "list_relations", struct{}{}, nil); err != nil {
		t.Errorf("Call(list_relations, out nil) = %v", err)
	}
}

// DialWith makes every connection, the check and the requests', with the
// dialer given; one that fails makes it ErrNoNode.
func TestDialWith(t *testing.T) {
	srv := httptest.NewServer(fakeAPI(t))
	t.Cleanup(srv.Close)
	home := t.TempDir()
	writeAPIFiles(t, home, strings.TrimPrefix(srv.URL, "http://"), "s3cret")
	var dials atomic.Int32
	c, err := DialWith(home, func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := dials.Load(); n < 2 {
		t.Errorf("the dialer made %d connections, want the check's and the request's", n)
	}
	refuse := func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no way there")}
	}
	if _, err := DialWith(home, refuse); !errors.Is(err, ErrNoNode) {
		t.Errorf("DialWith(a failing dialer) = %v, want ErrNoNode", err)
	}
}

func TestClientErrors(t *testing.T) {
	c := startFake(t, fakeAPI(t))
	ctx := t.Context()
	tests := []struct {
		method string
		status int
		msg    string
	}{
		{"add_friend", http.StatusForbidden, "server: forbidden: not a friend: bob"},
		{"teapot", http.StatusTeapot, "short and stout"},
		{"nothing", http.StatusNotFound, "local api: 404 Not Found"},
	}
	for _, tt := range tests {
		err := c.Call(ctx, tt.method, map[string]string{"user": "bob"}, nil)
		var ce *CallError
		if !errors.As(err, &ce) || ce.Status != tt.status || ce.Msg != tt.msg || err.Error() != tt.msg {
			t.Errorf("Call(%s) = %#v, want CallError{%d, %q}", tt.method, err, tt.status, tt.msg)
		}
	}

	c.token = "wrong"
	_, err := c.Status(ctx)
	var ce *CallError
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Errorf("Status with a wrong token = %v, want a 401 CallError", err)
	}
}

func TestClientGoneIsNoNode(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	home := t.TempDir()
	writeAPIFiles(t, home, strings.TrimPrefix(srv.URL, "http://"), "tok")
	c, err := Dial(home)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close() // the node stops after Dial
	if _, err := c.Status(t.Context()); !errors.Is(err, ErrNoNode) {
		t.Errorf("Status after the node stopped = %v, want ErrNoNode", err)
	}
}

func TestClientEvents(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": mqtter events\n\nevent: message\ndata: {\"type\":\"message\",\"data\":{\"MsgId\":\"m1\"}}\n\n")
		w.(http.Flusher).Flush()
		if r.URL.Query().Get("end") == "" {
			<-r.Context().Done() // a live stream, until the client leaves
		}
	})
	c := startFake(t, mux)

	// The client ends the stream: a clean stop.
	ctx, cancel := context.WithCancel(t.Context())
	var got []Event
	err := c.Events(ctx, func(ev Event) error {
		got = append(got, ev)
		cancel()
		return nil
	})
	if err != nil || len(got) != 1 || got[0].Type != EventMessage {
		t.Errorf("Events until cancel = %v with %q, want nil with one message", err, got)
	}

	// fn's error ends it.
	stop := errors.New("stop")
	if err := c.Events(t.Context(), func(Event) error { return stop }); err != stop {
		t.Errorf("Events with fn failing = %v, want stop", err)
	}
}

func TestClientEventsClosedByNode(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data: {\"type\":\"server\",\"data\":{\"server\":\"disconnected\"}}\n\n")
	})
	c := startFake(t, mux)
	n := 0
	err := c.Events(t.Context(), func(Event) error { n++; return nil })
	if !errors.Is(err, ErrStreamClosed) || n != 1 {
		t.Errorf("Events of a stream the node ends = %v after %d events, want ErrStreamClosed after 1", err, n)
	}
}
