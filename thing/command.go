package thing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// Errors callers branch on with errors.Is.
var (
	// ErrBadCommand: a command payload is malformed.
	ErrBadCommand = errors.New("bad command")
	// ErrBadFeedback: a feedback payload is malformed.
	ErrBadFeedback = errors.New("bad feedback")
	// ErrUnknownAction: the thing has no such action or property.
	ErrUnknownAction = errors.New("unknown action")
	// ErrExpired: the command's expiry has passed; it must never run.
	ErrExpired = errors.New("expired")
)

// Chain limits.
const (
	// MaxHops is how many rule firings a chain may take: a command whose
	// trace has more hops is refused, and a rule does not fire past it.
	MaxHops = 4
	// DefaultExpiry is how long a command stays valid when its sender
	// gives no expiry.
	DefaultExpiry = 30 * time.Second
	// MaxExpiry is the longest a command may wait to run.
	MaxExpiry = 24 * time.Hour
)

// Trace ties a command, and the feedback it causes, to the chain it is part
// of: who started the chain (Origin, and OriginMsg, the MsgId of the first
// command, or of the event that started it), the rule that made this
// command (none for a person's command), and how many rule firings led to
// it (0 for a person's command).
type Trace struct {
	Origin    string `json:"origin"`
	OriginMsg string `json:"origin_msg"`
	Rule      string `json:"rule,omitempty"`
	Hops      int    `json:"hops"`
}

func (t *Trace) validate() error {
	if !wire.ValidAccount(t.Origin) {
		return fmt.Errorf("trace origin %.80q is not an account", t.Origin)
	}
	if t.OriginMsg == "" || len(t.OriginMsg) > wire.MaxMsgIDLen {
		return errors.New("trace origin_msg: want a MsgId")
	}
	if len(t.Rule) > MaxNameLen {
		return errors.New("trace rule: too long")
	}
	if t.Hops < 0 || t.Hops > MaxHops {
		return fmt.Errorf("trace hops %d: want 0 to %d", t.Hops, MaxHops)
	}
	return nil
}

// Command is the payload of a message of MsgType command: run Action with
// Input, and/or write the properties in Write, before Expires (unix ms, the
// sender's clock); never after. Grant is set on a command one thing sends
// another under a rule: the rule, signed by the person who made it.
type Command struct {
	Action  string                     `json:"action,omitempty"`
	Input   json.RawMessage            `json:"input,omitempty"`
	Write   map[string]json.RawMessage `json:"write,omitempty"`
	Expires int64                      `json:"expires"`
	Trace   Trace                      `json:"trace"`
	Grant   *Rule                      `json:"grant,omitempty"`
}

// ParseCommand decodes and checks a command payload. It does not check the
// expiry (Expired does) nor the command against the thing's description.
func ParseCommand(payload []byte) (Command, error) {
	var c Command
	if err := strictDecode(payload, &c); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	if c.Action == "" && len(c.Write) == 0 {
		return Command{}, fmt.Errorf("%w: neither an action nor properties to write", ErrBadCommand)
	}
	if c.Action != "" && !validName(c.Action) {
		return Command{}, fmt.Errorf("%w: action %.80q is not a name", ErrBadCommand, c.Action)
	}
	for name := range c.Write {
		if !validName(name) {
			return Command{}, fmt.Errorf("%w: property %.80q is not a name", ErrBadCommand, name)
		}
	}
	if c.Expires <= 0 {
		return Command{}, fmt.Errorf("%w: no expiry", ErrBadCommand)
	}
	if err := c.Trace.validate(); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	if c.Grant != nil {
		if err := c.Grant.Validate(); err != nil {
			return Command{}, fmt.Errorf("%w: grant: %v", ErrBadCommand, err)
		}
	}
	return c, nil
}

// Expired reports whether the command may no longer run at now.
func (c *Command) Expired(now time.Time) bool { return now.UnixMilli() >= c.Expires }

// Feedback kinds.
const (
	KindAck         = "ack"         // received and authorized, or not
	KindResult      = "result"      // the outcome of a command
	KindState       = "state"       // property values
	KindEvent       = "event"       // something the thing reports by itself
	KindDescription = "description" // what the thing can do
)

// Ack statuses.
const (
	AckAccepted = "accepted"
	AckRejected = "rejected"
	AckQueued   = "queued"
)

// Result statuses.
const (
	ResultDone    = "done"
	ResultFailed  = "failed"
	ResultPartial = "partial"
	ResultTimeout = "timeout"
)

// CauseLocal is the Cause of state or an event that no command caused.
const CauseLocal = "local"

// Feedback is the payload of a message of MsgType feedback. Which fields
// are set depends on Kind:
//
//	ack          Cmd, Status (accepted, rejected, queued), Error when rejected
//	result       Cmd, Status (done, failed, partial, timeout), Output or Error
//	state        Props, Rev, Cause (a command's MsgId, or "local")
//	event        Event, Data, Cause
//	description  Description
//
// Trace is the trace of the command answered or that caused the state or
// event, so that a chain's outcome finds its origin.
type Feedback struct {
	Kind        string                     `json:"kind"`
	Cmd         string                     `json:"cmd,omitempty"`
	Action      string                     `json:"action,omitempty"`
	Status      string                     `json:"status,omitempty"`
	Output      json.RawMessage            `json:"output,omitempty"`
	Error       string                     `json:"error,omitempty"`
	Props       map[string]json.RawMessage `json:"props,omitempty"`
	Rev         int64                      `json:"rev,omitempty"`
	Cause       string                     `json:"cause,omitempty"`
	Event       string                     `json:"event,omitempty"`
	Data        json.RawMessage            `json:"data,omitempty"`
	Description *Description               `json:"description,omitempty"`
	Trace       *Trace                     `json:"trace,omitempty"`
}

// ParseFeedback decodes and checks a feedback payload.
func ParseFeedback(payload []byte) (Feedback, error) {
	var f Feedback
	if err := strictDecode(payload, &f); err != nil {
		return Feedback{}, fmt.Errorf("%w: %v", ErrBadFeedback, err)
	}
	if err := f.Validate(); err != nil {
		return Feedback{}, err
	}
	return f, nil
}

// Validate checks that the fields Kind needs are there and well formed.
func (f *Feedback) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrBadFeedback, f.Kind, fmt.Sprintf(format, args...))
	}
	switch f.Kind {
	case KindAck, KindResult:
		if f.Cmd == "" || len(f.Cmd) > wire.MaxMsgIDLen {
			return bad("cmd: want the command's MsgId")
		}
		ok := map[string][]string{
			KindAck:    {AckAccepted, AckRejected, AckQueued},
			KindResult: {ResultDone, ResultFailed, ResultPartial, ResultTimeout},
		}[f.Kind]
		if !slices.Contains(ok, f.Status) {
			return bad("status %.40q: want one of %v", f.Status, ok)
		}
	case KindState:
		if len(f.Props) == 0 {
			return bad("no props")
		}
		for name := range f.Props {
			if !validName(name) {
				return bad("property %.80q is not a name", name)
			}
		}
		if f.Cause == "" {
			return bad("no cause")
		}
	case KindEvent:
		if !validName(f.Event) {
			return bad("event %.80q is not a name", f.Event)
		}
		if f.Cause == "" {
			return bad("no cause")
		}
	case KindDescription:
		if f.Description == nil {
			return bad("no description")
		}
		if err := f.Description.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadFeedback, err)
		}
	default:
		return fmt.Errorf("%w: kind %.40q: want ack, result, state, event or description", ErrBadFeedback, f.Kind)
	}
	if len(f.Cause) > wire.MaxMsgIDLen {
		return bad("cause too long")
	}
	if f.Trace != nil {
		if err := f.Trace.validate(); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// strictDecode decodes one JSON value into v, refusing trailing data.
// Unknown fields are ignored: a later version may add some.
func strictDecode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	// Not d.More, which takes a stray ']' or '}' for the end of the input.
	if !onlyJSONSpace(b[d.InputOffset():]) {
		return errors.New("trailing data")
	}
	return nil
}

// onlyJSONSpace reports whether b is nothing but JSON whitespace.
func onlyJSONSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}
