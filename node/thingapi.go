package node

import (
	"io"
	"net/http"

	"github.com/mqtter/mqtter/thing"
)

// The thing side of the local API, for a device program that is not the
// node's child (a service, a script in another language):
//
//	GET  /v1/thing/invocations   Server-Sent Events "event: invocation", data = thing.Invocation, for each command accepted
//	POST /v1/thing/feedback      a thing.Feedback (result, state, event, description) → 204

// Program states in ThingStatus.Program.
const (
	ProgramNone    = "none"    // no --thing-handler
	ProgramRunning = "running" // the handler runs
	ProgramDown    = "down"    // the handler exited and waits for its restart
)

// ThingStatus is Status.Thing: what the node does as a thing.
type ThingStatus struct {
	Program   string `json:"program"`
	Listeners int    `json:"listeners"` // on GET /v1/thing/invocations
	Running   int    `json:"running"`   // commands handed over, not answered yet
	Queued    int    `json:"queued"`    // commands waiting for the program or a listener
	// BadLines counts lines of the program that were not feedback.
	BadLines int64 `json:"bad_lines"`
	// Description is the version of the kept description (0: none).
	Description int64       `json:"description"`
	Rules       RulesStatus `json:"rules"`
}

// RulesStatus is what the rules this thing runs did.
type RulesStatus struct {
	Active  int              `json:"active"` // rules of this thing (as A) kept
	Fired   int64            `json:"fired"`
	Dropped map[string]int64 `json:"dropped"` // by reason: hops, self, duplicate, rate, unbound, send
	// RecentDrops are the latest dropped firings, oldest first.
	RecentDrops []DroppedFiring `json:"recent_drops,omitempty"`
}

// DroppedFiring is one firing a loop guard stopped.
type DroppedFiring struct {
	Time      int64  `json:"time"` // unix ms
	Rule      string `json:"rule"`
	OriginMsg string `json:"origin_msg"`
	Reason    string `json:"reason"`
}

// EventInvocation is the event type of GET /v1/thing/invocations.
const EventInvocation = "invocation"

// status reports the runtime, or nil for a node that is no thing (no
// handler, no binding or association).
func (rt *thingRuntime) status() *ThingStatus {
	if rt.program == nil && !rt.isThing() {
		return nil
	}
	st := &ThingStatus{Program: ProgramNone, Running: int(rt.nRunning.Load()), Queued: int(rt.nQueued.Load()),
		BadLines: rt.programDefect.Load(), Rules: rt.rules.status()}
	if rt.program != nil {
		st.Program = ProgramDown
		if rt.programIsUp.Load() {
			st.Program = ProgramRunning
		}
	}
	st.Listeners = rt.listeners.count()
	rt.mu.Lock()
	if rt.desc != nil {
		st.Description = rt.desc.Version
	}
	rt.mu.Unlock()
	return st
}

// listen adds a listener of invocations; the queued commands run now.
func (rt *thingRuntime) listen() (<-chan thing.Invocation, func()) {
	ch, cancel := rt.listeners.subscribe()
	rt.post(rt.dispatchQueued)
	return ch, cancel
}

// thingInvocations serves GET /v1/thing/invocations.
func (a *apiServer) thingInvocations(w http.ResponseWriter, r *http.Request) {
	ch, cancel := a.n.thing.listen()
	defer cancel()
	serveSSE(w, r, "mqtter thing invocations", ch, func(thing.Invocation) string { return EventInvocation })
}

// thingFeedback serves POST /v1/thing/feedback.
func (a *apiServer) thingFeedback(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxProgramLine+1))
	if err != nil {
		writeErr(w, badRequest("read body: %v", err))
		return
	}
	if len(b) > maxProgramLine {
		writeErr(w, badRequest("feedback over %d bytes", maxProgramLine))
		return
	}
	if err := a.n.thing.feedback(r.Context(), b); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
