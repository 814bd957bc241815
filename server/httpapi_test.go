package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// auth sets a request's credentials.
type auth func(*http.Request)

func basic(user, pass string) auth { return func(r *http.Request) { r.SetBasicAuth(user, pass) } }
func bearer(token string) auth {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}
func noAuth(*http.Request) {}

// call makes an HTTP request to the server and returns the status and the
// body.
func call(t *testing.T, method, u string, a auth, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	a(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp.StatusCode, b
}

// apiGet GETs an API path and decodes the answer.
func apiGet(t *testing.T, inst *servertest.Instance, path string, a auth) (int, wire.Answer) {
	t.Helper()
	status, b := call(t, http.MethodGet, inst.HTTP+path, a, nil)
	ans, err := wire.ParseAnswer(b)
	if err != nil {
		t.Fatalf("GET %s = %d %s: not an Answer: %v", path, status, b, err)
	}
	return status, ans
}

func TestHTTPAPI(t *testing.T) {
	t.Parallel()
	// Many refusals from one address: not what the guessing limits test.
	inst := servertest.Start(t, servertest.WithConfig(noLoginLimits))
	people(t, inst, "alice", "bob", "carol")
	c := []*servertest.Client{dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1"), dial(t, inst, "carol", "carol-1")}
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	var g wire.FeedsReq
	alice.OK("create_feeds", wire.CreateFeedsReq{Name: "walks", Members: []string{"bob"}}, &g)
	dm := wire.DM("alice", "bob")
	for i := range 3 {
		send(t, alice, text(dm, fmt.Sprint(i)))
	}
	send(t, bob, text(g.Feeds, "g"))
	var tok wire.Token
	bob.OK("token", wire.Empty{}, &tok)
	if tok.Token == "" || tok.Expires <= 0 {
		t.Fatalf("token = %+v, want a token and its expiry", tok)
	}
	var tok2 wire.Token
	bob.OK("token", wire.Empty{}, &tok2)
	if tok2.Token == tok.Token {
		t.Errorf("two token calls gave the same token %q", tok.Token)
	}
	histPath := "/v1/history?" + url.Values{"feeds": {dm}, "after_seq": {"1"}, "limit": {"1"}}.Encode()

	for _, a := range []struct {
		name string
		auth auth
	}{{"basic", basic("bob", password("bob"))}, {"bearer", bearer(tok.Token)}, {"second bearer", bearer(tok2.Token)}} {
		status, ans := apiGet(t, inst, histPath, a.auth)
		var h wire.HistoryResult
		if err := ans.Decode(&h); status != http.StatusOK || err != nil || !slices.Equal(seqIDs(h.Messages), []int64{2}) || h.LastSeqID != 3 {
			t.Errorf("GET %s (%s) = %d %+v (%v), want 200 with [2] last 3", histPath, a.name, status, h, err)
		}
		if ans.Trace == "" {
			t.Errorf("GET %s (%s): answer without Trace", histPath, a.name)
		}
		status, ans = apiGet(t, inst, "/v1/feeds", a.auth)
		var gs []wire.Group
		if err := ans.Decode(&gs); status != http.StatusOK || err != nil || len(gs) != 1 || gs[0].Feeds != g.Feeds || gs[0].Name != "walks" || gs[0].Owner != "alice" {
			t.Errorf("GET /v1/feeds (%s) = %d %+v (%v), want 200 with %s", a.name, status, gs, err, g.Feeds)
		}
		status, ans = apiGet(t, inst, "/v1/conversations", a.auth)
		var convs []wire.Conversation
		ans.Decode(&convs)
		slices.SortFunc(convs, func(a, b wire.Conversation) int { return strings.Compare(a.Feeds, b.Feeds) })
		want := []wire.Conversation{{Feeds: dm, LastSeqID: 3}, {Feeds: g.Feeds, LastSeqID: 1}}
		if status != http.StatusOK || !slices.Equal(convs, want) {
			t.Errorf("GET /v1/conversations (%s) = %d %+v, want 200 %+v", a.name, status, convs, want)
		}
	}
	// The same as over MQTT.
	status, ans := apiGet(t, inst, "/v1/history?feeds="+url.QueryEscape(dm), basic("alice", password("alice")))
	var viaHTTP wire.HistoryResult
	ans.Decode(&viaHTTP)
	viaMQTT := history(t, alice, dm, 0, 0)
	if status != http.StatusOK || !slices.EqualFunc(viaHTTP.Messages, viaMQTT.Messages, func(a, b wire.Message) bool {
		return a.MsgId == b.MsgId && a.SeqId == b.SeqId && a.From == b.From && string(a.Payload) == string(b.Payload)
	}) {
		t.Errorf("GET /v1/history = %d %+v, want the history answer %+v", status, viaHTTP, viaMQTT)
	}

	unauthorized := []struct {
		name string
		auth auth
	}{
		{"no credentials", noAuth},
		{"wrong password", basic("bob", "wrong")},
		{"unknown account", basic("mallory", "x")},
		{"empty basic", basic("", "")},
		{"bad token", bearer("not-a-token")},
		{"empty token", bearer("")},
		{"token as password", basic("bob", tok.Token)},
		{"password as token", bearer(password("bob"))},
	}
	for _, u := range unauthorized {
		for _, path := range []string{histPath, "/v1/feeds", "/v1/conversations"} {
			status, ans := apiGet(t, inst, path, u.auth)
			if status != http.StatusUnauthorized || ans.Error == "" {
				t.Errorf("GET %s (%s) = %d Error %q, want 401 with an Error", path, u.name, status, ans.Error)
			}
		}
	}

	refused := []struct {
		path   string
		user   string
		status int
	}{
		{"/v1/history?feeds=" + url.QueryEscape(dm), "carol", http.StatusForbidden},
		{"/v1/history?feeds=" + url.QueryEscape(g.Feeds), "carol", http.StatusForbidden},
		{"/v1/history", "bob", http.StatusBadRequest},
		{"/v1/history?feeds=nonsense", "bob", http.StatusBadRequest},
		{"/v1/history?feeds=" + url.QueryEscape(dm) + "&after_seq=x", "bob", http.StatusBadRequest},
		{"/v1/history?feeds=" + url.QueryEscape(dm) + "&limit=-1", "bob", http.StatusBadRequest},
	}
	for _, r := range refused {
		status, ans := apiGet(t, inst, r.path, basic(r.user, password(r.user)))
		if status != r.status || ans.Error == "" || string(ans.Result) != "null" {
			t.Errorf("GET %s as %s = %d Error %q, want %d with an Error", r.path, r.user, status, ans.Error, r.status)
		}
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	befriend(t, alice, bob)
	send(t, alice, text(wire.DM("alice", "bob"), "count me"))
	bob.News()
	alice.Fail("no_such", wire.Empty{})

	status, body := call(t, http.MethodGet, inst.HTTP+"/healthz", noAuth, nil)
	if status != http.StatusOK || len(body) == 0 {
		t.Errorf("GET /healthz = %d %q, want 200", status, body)
	}
	status, body = call(t, http.MethodGet, inst.HTTP+"/metrics", noAuth, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d", status)
	}
	for _, want := range []string{
		`mqtter_requests_total{method="send",outcome="ok"} 1`,
		`mqtter_requests_total{method="add_friend",outcome="ok"} 1`,
		`mqtter_requests_total{method="unknown",outcome="bad_request"} 1`,
		`mqtter_messages_stored_total 1`,
		`mqtter_connections 2`,
		`mqtter_pushes_total{kind="news"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^mqtter_pushes_total\{kind="news"\} [1-9]`).Match(body) {
		t.Errorf("GET /metrics: mqtter_pushes_total{kind=\"news\"} is not positive")
	}
}

func TestS2SPush(t *testing.T) {
	t.Parallel()
	const secret = "s2s-secret-token"
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.S2SToken = secret }))
	people(t, inst, "alice", "bob", "carol")
	alice, bob := dial(t, inst, "alice", "alice-1"), dial(t, inst, "bob", "bob-1")
	befriend(t, alice, bob)
	dm := wire.DM("alice", "bob")
	push := inst.HTTP + "/v1/s2s/push"

	// A backend's message: no MsgId (the server picks one), unsigned.
	m := wire.Message{Feeds: dm, MsgType: wire.MsgTypeText, From: "alice", Payload: mustJSON(map[string]string{"text": "from the backend"})}
	status, body := call(t, http.MethodPost, push, bearer(secret), mustJSON(m))
	ans, err := wire.ParseAnswer(body)
	var r wire.SendResult
	if err == nil {
		err = ans.Decode(&r)
	}
	if status != http.StatusOK || err != nil || r.SeqId != 1 || r.Feeds != dm || r.MsgId == "" {
		t.Fatalf("POST /v1/s2s/push = %d %s (%v), want 200 with SeqId 1 in %s", status, body, err, dm)
	}
	for _, cl := range []*servertest.Client{bob, alice} {
		n := cl.News()
		if n.Message.MsgId != r.MsgId || n.Message.From != "alice" || n.Message.SeqId != 1 || string(n.Message.Payload) != `{"text":"from the backend"}` {
			t.Errorf("%s news after s2s push = %+v, want %s from alice", cl.Device, n.Message, r.MsgId)
		}
	}
	// Idempotent by MsgId, like send.
	m.MsgId = wire.NewMsgID()
	for range 2 {
		status, body = call(t, http.MethodPost, push, bearer(secret), mustJSON(m))
		ans, _ = wire.ParseAnswer(body)
		ans.Decode(&r)
		if status != http.StatusOK || r.SeqId != 2 {
			t.Errorf("POST /v1/s2s/push with MsgId %s = %d %s, want SeqId 2 both times", m.MsgId, status, body)
		}
	}
	bob.News()
	bob.NoPush(wire.PushNews, quiet)

	var tok wire.Token
	alice.OK("token", wire.Empty{}, &tok)
	m.MsgId = ""
	for _, a := range []struct {
		name string
		auth auth
	}{
		{"no token", noAuth},
		{"wrong token", bearer("s2s-secret-tokeN")},
		{"token prefix", bearer(secret[:5])},
		{"a user's API token", bearer(tok.Token)},
		{"a user's password", basic("alice", password("alice"))},
	} {
		status, body := call(t, http.MethodPost, push, a.auth, mustJSON(m))
		if status != http.StatusUnauthorized {
			t.Errorf("POST /v1/s2s/push (%s) = %d %s, want 401", a.name, status, body)
		}
	}
	bad := []struct {
		name   string
		body   []byte
		status int
	}{
		{"not JSON", []byte("{"), http.StatusBadRequest},
		{"From a non-member", mustJSON(wire.Message{Feeds: dm, MsgType: "text", From: "carol", Payload: mustJSON("x")}), http.StatusForbidden},
		{"From no account", mustJSON(wire.Message{Feeds: dm, MsgType: "text", From: "nobody", Payload: mustJSON("x")}), http.StatusNotFound},
		{"no Payload", mustJSON(wire.Message{Feeds: dm, MsgType: "text", From: "alice"}), http.StatusBadRequest},
		{"too large", mustJSON(wire.Message{Feeds: dm, MsgType: "text", From: "alice", Payload: mustJSON(strings.Repeat("x", wire.DefaultMaxBody))}), http.StatusRequestEntityTooLarge},
	}
	for _, b := range bad {
		status, body := call(t, http.MethodPost, push, bearer(secret), b.body)
		if status != b.status {
			t.Errorf("POST /v1/s2s/push (%s) = %d %s, want %d", b.name, status, body, b.status)
		}
	}
	bob.NoPush(wire.PushNews, quiet)
	if h := history(t, bob, dm, 0, 0); h.LastSeqID != 2 {
		t.Errorf("history after refused s2s pushes: last %d, want 2", h.LastSeqID)
	}
}

func TestS2SPushDisabledWithoutToken(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob")
	befriend(t, c[0], c[1])
	m := text(wire.DM("alice", "bob"), "x")
	m.From = "alice"
	for _, a := range []auth{noAuth, bearer(""), bearer("anything")} {
		if status, body := call(t, http.MethodPost, inst.HTTP+"/v1/s2s/push", a, mustJSON(m)); status != http.StatusUnauthorized {
			t.Errorf("POST /v1/s2s/push on a server without a token = %d %s, want 401", status, body)
		}
	}
	c[1].NoPush(wire.PushNews, quiet)
}

func TestTokenExpires(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.TokenTTL = ttl }))
	people(t, inst, "alice")
	alice := dial(t, inst, "alice", "alice-1")
	before := time.Now()
	var tok wire.Token
	alice.OK("token", wire.Empty{}, &tok)
	if max := time.Now().Add(ttl).UnixMilli(); tok.Expires < before.Add(ttl).UnixMilli() || tok.Expires > max {
		t.Errorf("token with a %v lifetime: expires = %d, want about %d", ttl, tok.Expires, max)
	}
	if status, _ := apiGet(t, inst, "/v1/feeds", bearer(tok.Token)); status != http.StatusOK {
		t.Errorf("GET /v1/feeds with a fresh token = %d, want 200", status)
	}
	time.Sleep(ttl + 200*time.Millisecond)
	if status, _ := apiGet(t, inst, "/v1/feeds", bearer(tok.Token)); status != http.StatusUnauthorized {
		t.Errorf("GET /v1/feeds with an expired token = %d, want 401", status)
	}
}
