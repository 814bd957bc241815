package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// httpHandler serves the HTTP API of PROTOCOL.md §6. Answers use the same
// {"Trace","Error","Result"} body as MQTT answers.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/history", s.authed(func(ctx context.Context, account string, r *http.Request) (any, error) {
		q := r.URL.Query()
		req := wire.HistoryReq{Feeds: q.Get("feeds")}
		if err := need("feeds", req.Feeds); err != nil {
			return nil, err
		}
		var err error
		if req.AfterSeq, err = intParam(q.Get("after_seq")); err != nil {
			return nil, badRequest("after_seq: %v", err)
		}
		limit, err := intParam(q.Get("limit"))
		if err != nil {
			return nil, badRequest("limit: %v", err)
		}
		req.Limit = int(limit)
		return s.History(ctx, account, req)
	}))
	mux.HandleFunc("GET /v1/feeds", s.authed(func(ctx context.Context, account string, r *http.Request) (any, error) {
		return s.groupsOf(ctx, account)
	}))
	mux.HandleFunc("GET /v1/conversations", s.authed(func(ctx context.Context, account string, r *http.Request) (any, error) {
		return s.Conversations(ctx, account)
	}))
	mux.HandleFunc("POST /v1/s2s/push", s.s2sPush)
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func intParam(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	return strconv.ParseInt(v, 10, 64)
}

type apiFunc func(ctx context.Context, account string, r *http.Request) (any, error)

// authed resolves the caller's account from HTTP Basic credentials or a
// bearer token from the token method.
func (s *Server) authed(fn apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		trace := wire.NewTrace()
		account, err := s.httpAccount(r)
		if errors.Is(err, errThrottled) {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
			writeAnswer(w, http.StatusTooManyRequests, wire.Fail(trace, err.Error()))
			return
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="mqtter"`)
			writeAnswer(w, http.StatusUnauthorized, wire.Fail(trace, err.Error()))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		result, err := fn(ctx, account, r)
		s.writeResult(w, trace, "http "+r.URL.Path, result, err)
	}
}

var errUnauthorized = errors.New("unauthorized")

// retryAfterSeconds is the Retry-After of a throttled HTTP login: a hint,
// not the back-off left (which would tell a guesser exactly when to come
// back).
const retryAfterSeconds = 5

func (s *Server) httpAccount(r *http.Request) (string, error) {
	ctx := r.Context()
	if user, pass, ok := r.BasicAuth(); ok {
		// Basic has no device: a backed-off account is refused here even
		// for its owner, who can use a bearer token from the token method.
		if !wire.ValidAccount(user) {
			return "", errUnauthorized
		}
		_, err := s.login(ctx, user, pass, r.RemoteAddr, nil)
		switch {
		case errors.Is(err, errThrottled):
			return "", err
		case errors.Is(err, errLoginRefused):
			return "", errUnauthorized
		case err != nil:
			s.log.Warn("http login", "account", user, "err", err)
			return "", errUnauthorized
		}
		return user, nil
	}
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		account, err := s.db.TokenAccount(ctx, tokenHash(strings.TrimSpace(token)), time.Now())
		if err != nil {
			return "", errUnauthorized
		}
		return account, nil
	}
	return "", errUnauthorized
}

func (s *Server) writeResult(w http.ResponseWriter, trace, what string, result any, err error) {
	if err == nil {
		body, merr := wire.OK(trace, result)
		if merr == nil {
			writeAnswer(w, http.StatusOK, body)
			return
		}
		err = merr
	}
	text, internal := errorText(err)
	if internal {
		s.log.Error("http request failed", "trace", trace, "what", what, "err", err)
	}
	writeAnswer(w, httpStatus(err), wire.Fail(trace, text))
}

func httpStatus(err error) int {
	switch kindOf(err) {
	case ErrForbidden:
		return http.StatusForbidden
	case ErrNotFound:
		return http.StatusNotFound
	case ErrConflict:
		return http.StatusConflict
	case ErrTooLarge:
		return http.StatusRequestEntityTooLarge
	case nil:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func writeAnswer(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// s2sPush lets a trusted backend holding the server token deliver a message
// (a wire.Message body) as one of the accounts.
func (s *Server) s2sPush(w http.ResponseWriter, r *http.Request) {
	trace := wire.NewTrace()
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.cfg.S2SToken == "" || !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.cfg.S2SToken)) != 1 {
		writeAnswer(w, http.StatusUnauthorized, wire.Fail(trace, errUnauthorized.Error()))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBody))
	var m wire.Message
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.writeResult(w, trace, "s2s push", nil, ErrTooLarge)
			return
		}
		s.writeResult(w, trace, "s2s push", nil, badRequest("bad json: %v", err))
		return
	}
	if m.MsgId == "" {
		m.MsgId = wire.NewMsgID()
	}
	if m.TimeCreate == 0 {
		// A retry must be the same message, TimeCreate included: a ULID
		// MsgId gives the same time every time it is posted.
		m.TimeCreate = time.Now().UnixMilli()
		if id, err := ulid.ParseStrict(m.MsgId); err == nil {
			m.TimeCreate = int64(id.Time())
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	res, err := s.Deliver(ctx, m)
	if errors.Is(err, store.ErrClosed) {
		err = errors.New("server stopping")
	}
	s.writeResult(w, trace, "s2s push", res, err)
}
