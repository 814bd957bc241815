package thing

import "encoding/json"

// Invocation is what a thing's node hands its device program (one JSON
// line on the program's stdin, or an event on the local API's stream) for
// each command it accepted: run it, then answer with a Feedback of kind
// result whose Cmd is this Cmd.
type Invocation struct {
	Kind    string                     `json:"kind"` // "command"
	Cmd     string                     `json:"cmd"`  // the command's MsgId
	From    string                     `json:"from"`
	Action  string                     `json:"action,omitempty"`
	Input   json.RawMessage            `json:"input,omitempty"`
	Write   map[string]json.RawMessage `json:"write,omitempty"`
	Expires int64                      `json:"expires"`
	Trace   Trace                      `json:"trace"`
}

// InvocationKind is Invocation.Kind.
const InvocationKind = "command"

// NewInvocation makes the invocation of command c, the message msgID from
// from.
func NewInvocation(msgID, from string, c *Command) Invocation {
	return Invocation{Kind: InvocationKind, Cmd: msgID, From: from, Action: c.Action,
		Input: c.Input, Write: c.Write, Expires: c.Expires, Trace: c.Trace}
}

// A device program answers with Feedback lines on its stdout (or POSTs
// them to the local API): kind result (cmd, status, output or error),
// state (props; rev and cause are filled in when missing), event (event,
// data) and description (description). Its node fills in the trace, sends
// each to whoever must hear of it, and runs the rules.

// ThingReq is the body of the description method: {"thing"}; and of
// list_rules, where an empty Thing lists every rule the caller may see.
type ThingReq struct {
	Thing string `json:"thing"`
}

// RuleID is the body of remove_rule and the result of add_rule.
type RuleID struct {
	ID string `json:"id"`
}
