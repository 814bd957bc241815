package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// requestTimeout bounds the work of one request.
const requestTimeout = 30 * time.Second

// call is one request being handled.
type call struct {
	srv    *Server
	sess   *session
	topic  string
	method string
	body   []byte
	trace  string
	start  time.Time
}

// methodFunc handles a request and returns its Result. A method that answers
// later (after the store commits) returns errDeferred and calls c.answer
// itself.
type methodFunc func(s *Server, ctx context.Context, c *call) (any, error)

// handlerFunc is a method bound to its server.
type handlerFunc func(ctx context.Context, c *call) (any, error)

var errDeferred = errors.New("answered later")

// methods maps an im:// path to its handler; filled in init to break the
// initialisation cycle through the handlers that list methods.
var methods map[string]methodFunc

func init() {
	methods = map[string]methodFunc{
		"register_device":     (*Server).registerDevice,
		"peers":               (*Server).peers,
		"presence":            (*Server).presence,
		"add_friend":          (*Server).addFriend,
		"accept_friend":       (*Server).acceptFriend,
		"reject_friend":       (*Server).rejectFriend,
		"remove_friend":       (*Server).removeFriend,
		"restore_friend":      (*Server).restoreFriend,
		"list_relations":      (*Server).listRelations,
		"create_feeds":        (*Server).createFeeds,
		"apply_join_feeds":    (*Server).applyJoinFeeds,
		"agree_join_feeds":    (*Server).agreeJoinFeeds,
		"remove_feeds_member": (*Server).removeFeedsMember,
		"dissolve_feeds":      (*Server).dissolveFeeds,
		"list_feeds":          (*Server).listFeeds,
		"pairing_code":        (*Server).pairingCode,
		"bind_thing":          (*Server).bindThing,
		"unbind_thing":        (*Server).unbindThing,
		"associate":           (*Server).associate,
		"dissociate":          (*Server).dissociate,
		"send":                (*Server).send,
		"history_push":        (*Server).historyPush,
		"history":             (*Server).history,
		"conversations":       (*Server).conversations,
		"ack":                 (*Server).ack,
		"token":               (*Server).token,
		"device_challenge":    (*Server).deviceChallenge,

		// The thing model (extension).
		wire.MethodDescribe:    (*Server).describe,
		wire.MethodDescription: (*Server).description,
		wire.MethodAddRule:     (*Server).addRule,
		wire.MethodRemoveRule:  (*Server).removeRule,
		wire.MethodListRules:   (*Server).listRules,

		wire.MethodListThingFeeds: (*Server).listThingFeeds,
	}
}

// changesRelations are the methods after which the caller's account's
// other devices get its relation snapshot: they learn of a friend, a thing
// or a group that one device of theirs added, as the other side does from
// its relation event.
var changesRelations = map[string]bool{
	"add_friend": true, "accept_friend": true, "reject_friend": true, "remove_friend": true,
	"restore_friend": true, "create_feeds": true, "apply_join_feeds": true, "agree_join_feeds": true,
	"remove_feeds_member": true, "dissolve_feeds": true, "bind_thing": true, "unbind_thing": true,
	"associate": true, "dissociate": true,
}

// pipelined methods may start before the client's earlier sends are
// answered: they only queue work to the store, which keeps the order.
var pipelined = map[string]bool{"send": true, "history_push": true}

// handle runs one request of sess and answers it on its own topic.
func (s *Server) handle(sess *session, r request) {
	c := &call{srv: s, sess: sess, topic: r.topic, body: r.body, trace: wire.NewTrace(), start: r.received}
	if c.start.IsZero() {
		c.start = time.Now()
	}
	fn, err := s.route(c)
	if err != nil {
		c.answer(nil, err)
		return
	}
	if !pipelined[c.method] {
		sess.pending.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	result, err := fn(ctx, c)
	if errors.Is(err, errDeferred) {
		return
	}
	c.answer(result, err)
	if err == nil && changesRelations[c.method] {
		s.pushRelationsToOthers(ctx, sess)
	}
}

// pushRelationsToOthers pushes the relation snapshot of sess's account to
// the account's other sessions.
func (s *Server) pushRelationsToOthers(ctx context.Context, sess *session) {
	others := s.sessions.sessions(sess.account)
	if len(others) < 2 {
		return
	}
	rels, err := s.relationsOf(ctx, sess.account)
	if err != nil {
		s.log.Warn("relation snapshot for the other devices", "account", sess.account, "err", err)
		return
	}
	body, err := json.Marshal(rels)
	if err != nil {
		return
	}
	n := 0
	for _, o := range others {
		if o != sess {
			o.send(wire.PushRelations, body)
			n++
		}
	}
	s.metrics.pushes.WithLabelValues(pushKind(wire.PushRelations)).Add(float64(n))
}

// route checks the topic, the route and the body, and finds the method.
func (s *Server) route(c *call) (handlerFunc, error) {
	t, err := wire.ParseTopic(c.topic)
	if err != nil {
		c.method = "-"
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if len(c.body) > s.cfg.MaxBody {
		c.method = "-"
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(c.body), s.cfg.MaxBody)
	}
	// Methods that decode their body check it then; the others must not
	// take a body that is not JSON either.
	if b := bytes.TrimSpace(c.body); len(b) > 0 && !pipelined[t.Method()] && !json.Valid(b) {
		c.method = "-"
		return nil, badRequest("bad json: the body is not valid JSON")
	}
	switch t.Scheme {
	case wire.SchemeIM:
	case wire.SchemeHTTP, wire.SchemeHTTPS:
		c.method = "proxy"
		return func(ctx context.Context, c *call) (any, error) { return s.proxyRequest(ctx, c, t) }, nil
	default:
		c.method = "-"
		return nil, fmt.Errorf("%w: %q", ErrUnsupported, t.Scheme)
	}
	switch t.Host {
	case "modulus", "random", "cache", s.cfg.NodeID:
	default:
		c.method = "-"
		return nil, fmt.Errorf("%w: %q", ErrNoSuchNode, t.Host)
	}
	fn, ok := methods[t.Method()]
	if !ok {
		c.method = "unknown"
		return nil, fmt.Errorf("%w: %q", ErrUnknown, t.Method())
	}
	c.method = t.Method()
	return func(ctx context.Context, c *call) (any, error) { return fn(s, ctx, c) }, nil
}

// answer writes the answer to the requesting client, on the request's topic.
func (c *call) answer(result any, err error) {
	s := c.srv
	var body []byte
	if err == nil {
		body, err = wire.OK(c.trace, result)
	}
	if err != nil {
		text, internal := errorText(err)
		if internal {
			s.log.Error("request failed", "trace", c.trace, "method", c.method, "account", c.sess.account, "device", c.sess.device, "err", err)
		} else {
			s.log.Debug("request refused", "trace", c.trace, "method", c.method, "account", c.sess.account, "err", err)
		}
		body = wire.Fail(c.trace, text)
	} else if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("request", "trace", c.trace, "method", c.method, "account", c.sess.account, "device", c.sess.device, "took", time.Since(c.start))
	}
	s.metrics.request(c.method, err, time.Since(c.start))
	c.sess.send(c.topic, body)
}

// decode reads a JSON body into v. An empty body reads as {}.
func decode(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("bad json: %v", err)
	}
	return nil
}

// need reports a missing required field.
func need(field, value string) error {
	if value == "" {
		return badRequest("missing field %q", field)
	}
	return nil
}
