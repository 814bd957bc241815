package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/mqttlink"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// stateEvents is how many recent events GET …/state shows.
const stateEvents = 10

// thingRoutes adds the thing model's endpoints (api_things_types.go).
func (a *apiServer) thingRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/things/{thing}/do", a.thingDo)
	mux.HandleFunc("GET /v1/things/{thing}/state", a.thingState)
	mux.HandleFunc("GET /v1/things/{thing}/description", a.thingDescription)
	mux.HandleFunc("GET /v1/things/{thing}/commands", a.thingCommands)
	mux.HandleFunc("POST /v1/things/rules", a.addRule)
	mux.HandleFunc("GET /v1/things/rules", a.listRules)
	mux.HandleFunc("DELETE /v1/things/rules/{id}", a.removeRule)
}

// pathThing returns the {thing} of the path, or writes a refusal.
func pathThing(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("thing")
	if !wire.ValidAccount(name) {
		writeErr(w, badRequest("%q is not a thing's name", name))
		return "", false
	}
	return name, true
}

func (a *apiServer) thingDo(w http.ResponseWriter, r *http.Request) {
	name, ok := pathThing(w, r)
	if !ok {
		return
	}
	var req DoRequest
	if err := readBody(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	c, err := a.n.doCommand(r.Context(), name, req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (a *apiServer) thingState(w http.ResponseWriter, r *http.Request) {
	name, ok := pathThing(w, r)
	if !ok {
		return
	}
	props, err := a.n.db.ThingProps(r.Context(), name)
	if err != nil {
		writeErr(w, err)
		return
	}
	st := ThingState{Thing: name, Props: make([]PropState, len(props))}
	for i, p := range props {
		st.Props[i] = PropState{ThingProp: p, AgeMS: ageMS(p.At)}
	}
	if st.Events, err = a.n.db.ThingEvents(r.Context(), name, stateEvents); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *apiServer) thingDescription(w http.ResponseWriter, r *http.Request) {
	name, ok := pathThing(w, r)
	if !ok {
		return
	}
	d, err := a.n.describe(r.Context(), name)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (a *apiServer) thingCommands(w http.ResponseWriter, r *http.Request) {
	name, ok := pathThing(w, r)
	if !ok {
		return
	}
	limit := 20
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeErr(w, badRequest("limit %q is not a count", s))
			return
		}
		limit = min(n, localdb.MaxCommandsPerThing)
	}
	rows, err := a.n.db.Commands(r.Context(), name, limit)
	if err != nil {
		writeErr(w, err)
		return
	}
	if rows == nil {
		rows = []localdb.Command{}
	}
	writeJSON(w, http.StatusOK, rows)
}

// describe asks the server for a thing's description, caching what it
// gives; when the server is unreachable, does not know the method or has
// none, the cached one answers.
func (n *Node) describe(ctx context.Context, name string) (ThingDescription, error) {
	var d *thing.Description
	err := n.link.Call(ctx, wire.MethodDescription, thing.ThingReq{Thing: name}, &d)
	if err == nil && d != nil {
		if d.Thing != name {
			err = errors.New("the server answered with the description of " + d.Thing)
		} else if _, cerr := n.cacheDescription(ctx, d); cerr != nil {
			err = cerr
		} else {
			return ThingDescription{Description: d, Source: SourceServer}, nil
		}
	}
	var ae *wire.AnswerError
	if errors.As(err, &ae) && strings.HasPrefix(ae.Msg, errForbidden) {
		return ThingDescription{}, err // not ours to see, cached or not
	}
	why := "the server has none"
	if err != nil {
		why = err.Error()
	}
	raw, at, cerr := n.db.Description(ctx, name)
	if errors.Is(cerr, localdb.ErrNotFound) {
		return ThingDescription{}, &userError{http.StatusNotFound,
			"no description of " + name + ": " + why + ", and none is cached here"}
	}
	if cerr != nil {
		return ThingDescription{}, cerr
	}
	var cached thing.Description
	if err := json.Unmarshal(raw, &cached); err != nil {
		return ThingDescription{}, err
	}
	if err != nil && !errors.Is(err, mqttlink.ErrNotConnected) {
		n.log.Info("description from the cache", "thing", name, "server", why)
	}
	return ThingDescription{Description: &cached, Source: SourceCache, CachedAt: at, ServerError: why}, nil
}

// buildRule completes a rule request into a rule made by author, signed
// with key at now.
func buildRule(req RuleRequest, author string, key crypto.PrivKey, now time.Time) (thing.Rule, error) {
	r := thing.Rule{ID: req.ID, A: req.A, B: req.B, When: req.When, Then: req.Then,
		By: author, Created: now.UnixMilli()}
	if r.ID == "" {
		r.ID = wire.NewMsgID()
	}
	if err := r.Validate(); err != nil {
		return thing.Rule{}, badRequest("%v", err)
	}
	if err := r.Sign(key); err != nil {
		return thing.Rule{}, err
	}
	return r, nil
}

func (a *apiServer) addRule(w http.ResponseWriter, r *http.Request) {
	var req RuleRequest
	if err := readBody(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	rule, err := buildRule(req, a.n.cfg.User, a.n.key, time.Now())
	if err != nil {
		writeErr(w, err)
		return
	}
	var res thing.RuleID
	if err := a.n.link.Call(r.Context(), wire.MethodAddRule, rule, &res); err != nil {
		writeErr(w, err)
		return
	}
	if res.ID == "" {
		res.ID = rule.ID
	}
	writeJSON(w, http.StatusOK, AddRuleResult{ID: res.ID, Rule: rule})
}

func (a *apiServer) listRules(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("thing")
	if name != "" && !wire.ValidAccount(name) {
		writeErr(w, badRequest("%q is not a thing's name", name))
		return
	}
	var rules []thing.Rule
	if err := a.n.link.Call(r.Context(), wire.MethodListRules, thing.ThingReq{Thing: name}, &rules); err != nil {
		writeErr(w, err)
		return
	}
	if rules == nil {
		rules = []thing.Rule{}
	}
	writeJSON(w, http.StatusOK, rules)
}

func (a *apiServer) removeRule(w http.ResponseWriter, r *http.Request) {
	id := thing.RuleID{ID: r.PathValue("id")}
	if id.ID == "" || len(id.ID) > thing.MaxNameLen {
		writeErr(w, badRequest("%q is not a rule id", id.ID))
		return
	}
	if err := a.n.link.Call(r.Context(), wire.MethodRemoveRule, id, nil); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, id)
}
