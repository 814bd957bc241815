package node

import (
	"encoding/json"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/thing"
)

// The local API of the thing model, the person's side: commanding a thing
// and following what it reports.
//
//	POST   /v1/things/{thing}/do         DoRequest → CommandRow (with wait: once it has a result, or timed out)
//	GET    /v1/things/{thing}/state      → ThingState
//	GET    /v1/things/{thing}/description → ThingDescription (the server's, else the cached one)
//	GET    /v1/things/{thing}/commands?limit=N → []CommandRow, newest first
//	POST   /v1/things/rules              RuleRequest → AddRuleResult (signed by this device, then add_rule)
//	GET    /v1/things/rules?thing=X      → []thing.Rule (list_rules)
//	DELETE /v1/things/rules/{id}         → thing.RuleID (remove_rule)

// Event types of the thing model on GET /v1/events.
const (
	EventCommand    = "command"     // Data: CommandRow, a command of this account that changed
	EventThingState = "thing_state" // Data: ThingState with only the properties that changed
	EventThingEvent = "thing_event" // Data: localdb.ThingEvent
)

// CommandGrace is how long past its expiry a command waits for its result
// before it is marked timed out here.
const CommandGrace = commandGrace

// DoRequest is the body of POST /v1/things/{thing}/do: run Action with
// Input, and/or write the properties in Write. The command expires after
// TimeoutMS (default thing.DefaultExpiry, at most thing.MaxExpiry). With
// Wait the call returns once the command has a result, was rejected, or
// timed out (its expiry plus CommandGrace); without, at once, pending.
type DoRequest struct {
	Action    string                     `json:"action,omitempty"`
	Input     json.RawMessage            `json:"input,omitempty"`
	Write     map[string]json.RawMessage `json:"write,omitempty"`
	TimeoutMS int64                      `json:"timeout_ms,omitempty"`
	Wait      bool                       `json:"wait,omitempty"`
}

// CommandRow is a command this account sent and how it went: State is
// "pending" (nothing heard yet), an ack's status (queued, accepted,
// rejected) or a result's (done, failed, partial, timeout); FinalBy says
// who closed it ("thing", or "local" for a timeout decided here), empty
// while open. Chain holds what the command caused at other things.
type CommandRow = localdb.Command

// ThingState is the answer of GET /v1/things/{thing}/state: the last value
// the thing reported for each property (only what it reported), and its
// recent events, newest first.
type ThingState struct {
	Thing  string               `json:"thing"`
	Props  []PropState          `json:"props"`
	Events []localdb.ThingEvent `json:"events,omitempty"`
}

// PropState is one property's last reported value, with the rev of its
// report, when the thing reported it (unix ms, its clock) and how long ago
// that was by this device's clock (never below 0).
type PropState struct {
	localdb.ThingProp
	AgeMS int64 `json:"age_ms"`
}

// Sources of a ThingDescription.
const (
	SourceServer = "server"
	SourceCache  = "cache"
)

// ThingDescription is the answer of GET /v1/things/{thing}/description.
// Source says where it came from; ServerError why the server's was not
// used, when it was not.
type ThingDescription struct {
	Description *thing.Description `json:"description"`
	Source      string             `json:"source"`
	CachedAt    int64              `json:"cached_at,omitempty"` // unix ms
	ServerError string             `json:"server_error,omitempty"`
}

// RuleRequest is the body of POST /v1/things/rules: a rule to make, which
// this node completes (By, Created, an ID when none is given), signs with
// this device's key and hands to the server (add_rule).
type RuleRequest struct {
	ID   string     `json:"id,omitempty"`
	A    string     `json:"a"`
	B    string     `json:"b"`
	When thing.When `json:"when"`
	Then thing.Then `json:"then"`
}

// AddRuleResult is the answer of POST /v1/things/rules: the rule as
// signed and added.
type AddRuleResult struct {
	ID   string     `json:"id"`
	Rule thing.Rule `json:"rule"`
}
