package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqtter/mqtter/mqttlink"
	"github.com/mqtter/mqtter/wire"
)

// callMethods are the server methods the local API passes through as
// they are (POST /v1/call/{method}); the node's own operations (send,
// history, sync) have their own endpoints.
var callMethods = map[string]bool{
	wire.MethodAddFriend: true, wire.MethodAcceptFriend: true, wire.MethodRejectFriend: true,
	wire.MethodRemoveFriend: true, wire.MethodRestoreFriend: true, wire.MethodListRelations: true,
	wire.MethodCreateFeeds: true, wire.MethodApplyJoinFeeds: true, wire.MethodAgreeJoinFeeds: true,
	wire.MethodRemoveFeedsMember: true, wire.MethodDissolveFeeds: true, wire.MethodListFeeds: true,
	wire.MethodPairingCode: true, wire.MethodBindThing: true, wire.MethodUnbindThing: true,
	wire.MethodAssociate: true, wire.MethodDissociate: true, wire.MethodPresence: true,
	wire.MethodConversations: true, wire.MethodToken: true, wire.MethodListThingFeeds: true,
}

// apiServer is the running local API.
type apiServer struct {
	n     *Node
	addr  string
	token string
	srv   *http.Server
	done  chan struct{}
}

// serveAPI listens on the API address (loopback only), starts serving, and
// writes api.token and api.addr, in that order, so that a client that
// finds api.addr finds the token too.
func (n *Node) serveAPI() (*apiServer, error) {
	host, _, err := net.SplitHostPort(n.cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("node: api address %q: %w", n.cfg.APIAddr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("node: api address %q: the local API listens on loopback only", n.cfg.APIAddr)
	}
	ln, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("node: api: %w", err)
	}
	var tok [32]byte
	rand.Read(tok[:])
	a := &apiServer{n: n, addr: ln.Addr().String(), token: hex.EncodeToString(tok[:]), done: make(chan struct{})}
	a.srv = &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return n.ctx },
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("local api", "err", err)
		}
	}()
	if err := writeFileAtomic(filepath.Join(n.cfg.Home, APITokenFile), []byte(a.token+"\n"), 0o600); err != nil {
		a.close()
		return nil, fmt.Errorf("node: api token: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(n.cfg.Home, APIAddrFile), []byte(a.addr+"\n"), 0o600); err != nil {
		a.close()
		return nil, fmt.Errorf("node: api addr: %w", err)
	}
	return a, nil
}

// close removes the api files, then stops the server.
func (a *apiServer) close() {
	os.Remove(filepath.Join(a.n.cfg.Home, APIAddrFile))
	os.Remove(filepath.Join(a.n.cfg.Home, APITokenFile))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.n.events.closeAll()          // lets event streams end so Shutdown need not wait
	a.n.thing.listeners.closeAll() // and the invocation streams
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
	<-a.done
}

func (a *apiServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", a.status)
	mux.HandleFunc("POST /v1/send", a.send)
	mux.HandleFunc("GET /v1/history", a.history)
	mux.HandleFunc("GET /v1/peers", a.peers)
	mux.HandleFunc("POST /v1/sync", a.sync)
	mux.HandleFunc("POST /v1/call/{method}", a.call)
	mux.HandleFunc("GET /v1/events", a.eventStream)
	mux.HandleFunc("GET /v1/backup", a.exportBackup)
	mux.HandleFunc("POST /v1/backup", a.importBackup)
	a.thingRoutes(mux)
	mux.HandleFunc("GET /v1/thing/invocations", a.thingInvocations)
	mux.HandleFunc("POST /v1/thing/feedback", a.thingFeedback)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.n.counts.registry(), promhttp.HandlerOpts{}))
	return a.auth(mux)
}

// auth lets through only requests with the bearer token.
func (a *apiServer) auth(next http.Handler) http.Handler {
	want := []byte("Bearer " + a.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			writeError(w, http.StatusUnauthorized, "missing or wrong token (see api.token in the node's home)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, APIError{Error: msg})
}

// writeErr maps an operation's error onto a status and its text.
func writeErr(w http.ResponseWriter, err error) {
	var ue *userError
	var ae *wire.AnswerError
	switch {
	case errors.As(err, &ue):
		writeError(w, ue.status, ue.msg)
	case errors.As(err, &ae):
		status := http.StatusBadGateway
		for prefix, s := range map[string]int{
			"bad request": http.StatusBadRequest, "forbidden": http.StatusForbidden,
			"not found": http.StatusNotFound, "conflict": http.StatusConflict,
		} {
			if strings.HasPrefix(ae.Msg, prefix) {
				status = s
			}
		}
		writeError(w, status, "server: "+ae.Msg)
	case errors.Is(err, mqttlink.ErrNotConnected):
		writeError(w, http.StatusServiceUnavailable, "the server is unreachable now; try again when status says connected")
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// userError is a refusal of a local API request, with its status.
type userError struct {
	status int
	msg    string
}

func (e *userError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &userError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &userError{http.StatusForbidden, fmt.Sprintf(format, args...)}
}

// readBody reads a JSON request body of at most the protocol's limit.
func readBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, wire.DefaultMaxBody+1))
	if err != nil {
		return badRequest("read body: %v", err)
	}
	if len(b) > wire.DefaultMaxBody {
		return badRequest("body over %d bytes", wire.DefaultMaxBody)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("bad JSON: %v", err)
	}
	return nil
}

func (a *apiServer) status(w http.ResponseWriter, r *http.Request) {
	st, err := a.n.status(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *apiServer) send(w http.ResponseWriter, r *http.Request) {
	var req SendRequest
	if err := readBody(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	res, err := a.n.send(r.Context(), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *apiServer) history(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeErr(w, badRequest("limit %q is not a count", s))
			return
		}
		limit = n
	}
	res, err := a.n.history(r.Context(), r.URL.Query().Get("with"), limit)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *apiServer) peers(w http.ResponseWriter, r *http.Request) {
	var rows []PeerRow
	for _, p := range a.n.book.peers() {
		row := PeerRow{User: p.User, Device: p.Device, Status: p.Status, Addrs: p.Addrs}
		if row.Addrs == nil {
			row.Addrs = []string{}
		}
		if id, err := peer.Decode(p.Device); err == nil {
			row.Connected = a.n.host.IsConnected(id)
			row.Conns = a.n.host.ConnAddrs(id)
		}
		if row.Conns == nil {
			row.Conns = []string{}
		}
		rows = append(rows, row)
	}
	if rows == nil {
		rows = []PeerRow{}
	}
	writeJSON(w, http.StatusOK, rows)
}

func (a *apiServer) sync(w http.ResponseWriter, r *http.Request) {
	if !a.n.link.Connected() {
		writeErr(w, mqttlink.ErrNotConnected)
		return
	}
	res, err := a.n.syncer.Run(r.Context(), true)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *apiServer) call(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	if !callMethods[method] {
		writeErr(w, &userError{http.StatusNotFound, fmt.Sprintf("unknown method %q", method)})
		return
	}
	var body json.RawMessage
	if err := readBody(r, &body); err != nil {
		writeErr(w, err)
		return
	}
	if len(body) == 0 {
		body = json.RawMessage("{}")
	}
	var result json.RawMessage
	if err := a.n.link.Call(r.Context(), method, body, &result); err != nil {
		writeErr(w, err)
		return
	}
	switch method {
	case wire.MethodListRelations, wire.MethodListFeeds, wire.MethodConversations,
		wire.MethodPairingCode, wire.MethodToken, wire.MethodPresence, wire.MethodListThingFeeds:
	default:
		// A relation or a group changed: know it before answering, so
		// the next command (a send to the new group, say) finds it.
		if err := a.n.refresh(r.Context()); err != nil {
			a.n.log.Info("refresh after "+method, "err", err)
			a.n.kickRefresh()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(result)
}

// eventStream serves GET /v1/events as Server-Sent Events.
func (a *apiServer) eventStream(w http.ResponseWriter, r *http.Request) {
	ch, cancel := a.n.events.subscribe()
	defer cancel()
	serveSSE(w, r, "mqtter events", ch, func(ev Event) string { return ev.Type })
}

// serveSSE writes what comes on ch as Server-Sent Events, each of the type
// typeOf gives with the JSON of it as data, with a keep-alive comment
// every 15 s, until the client goes or ch is closed.
func serveSSE[T any](w http.ResponseWriter, r *http.Request, hello string, ch <-chan T, typeOf func(T) string) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": %s\n\n", hello)
	fl.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case v, ok := <-ch:
			if !ok {
				return
			}
			b, err := json.Marshal(v)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typeOf(v), b)
		}
		fl.Flush()
	}
}
