package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Error texts the protocol fixes (PROTOCOL.md §1); other Error texts are free.
const (
	AnswerUnsupportedScheme = "unsupported scheme"
	AnswerNoSuchNode        = "no such node"
)

// ErrBadAnswer is wrapped by ParseAnswer's errors: the bytes are not an answer.
var ErrBadAnswer = errors.New("bad answer")

// Answer is the body of every answer, published on the request's own topic:
// {"Trace":"…","Error":"","Result":…}. Error is "" on success; otherwise
// Result is null.
type Answer struct {
	Trace  string          `json:"Trace"`
	Error  string          `json:"Error"`
	Result json.RawMessage `json:"Result"`
}

// null is the JSON a failed answer carries as its Result.
var null = json.RawMessage("null")

// OK marshals a successful answer carrying result (any value encoding/json
// can marshal; a json.RawMessage is embedded as it is, after validation).
func OK(trace string, result any) ([]byte, error) {
	raw, err := json.Marshal(result)
	if err != nil {
		return nil, fmt.Errorf("answer: marshal result: %w", err)
	}
	b, err := json.Marshal(Answer{Trace: trace, Result: raw})
	if err != nil {
		return nil, fmt.Errorf("answer: %w", err)
	}
	return b, nil
}

// Fail marshals a failed answer with Error msg and Result null. It cannot fail.
func Fail(trace string, msg string) []byte {
	if msg == "" {
		msg = "unknown error" // an empty Error would read as success
	}
	b, err := json.Marshal(Answer{Trace: trace, Error: msg, Result: null})
	if err != nil {
		// Unreachable: strings always marshal (invalid UTF-8 is replaced).
		return []byte(`{"Trace":"","Error":"internal error","Result":null}`)
	}
	return b
}

// ParseAnswer decodes an answer body. A missing Result reads as null.
func ParseAnswer(b []byte) (Answer, error) {
	var a Answer
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return a, fmt.Errorf("%w: not a JSON object", ErrBadAnswer)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return Answer{}, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	if len(a.Result) == 0 {
		a.Result = null
	}
	return a, nil
}

// DecodeAnswer parses an answer and decodes a successful one's Result into
// out in the same pass, which for a large Result (a history page) halves
// the work of ParseAnswer then Decode. A failed answer is returned as an
// *AnswerError with out left alone, as Decode does; a nil out skips the
// Result.
func DecodeAnswer(b []byte, out any) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrBadAnswer)
	}
	if out == nil {
		a, err := ParseAnswer(b)
		if err != nil {
			return err
		}
		return a.Err()
	}
	var a struct {
		Trace  string `json:"Trace"`
		Error  string `json:"Error"`
		Result any    `json:"Result"`
	}
	a.Result = out // decoded into what out points at
	if err := json.Unmarshal(b, &a); err != nil {
		// Not an answer, or a Result that does not fit out: say which.
		pa, perr := ParseAnswer(b)
		if perr != nil {
			return perr
		}
		return pa.Decode(out)
	}
	if a.Error != "" {
		return &AnswerError{Trace: a.Trace, Msg: a.Error}
	}
	return nil
}

// Err returns nil for a successful answer and an *AnswerError otherwise.
func (a Answer) Err() error {
	if a.Error == "" {
		return nil
	}
	return &AnswerError{Trace: a.Trace, Msg: a.Error}
}

// Decode unmarshals Result into v; for a failed answer it returns a.Err()
// and leaves v alone.
func (a Answer) Decode(v any) error {
	if err := a.Err(); err != nil {
		return err
	}
	if err := json.Unmarshal(a.Result, v); err != nil {
		return fmt.Errorf("answer %s: decode result: %w", a.Trace, err)
	}
	return nil
}

// AnswerError is a failed answer seen as a Go error, so callers can tell the
// remote side's refusal from a transport failure with errors.As.
type AnswerError struct {
	Trace string // the remote request's trace id, for its log
	Msg   string // the answer's Error text
}

// Error returns the remote message and its trace.
func (e *AnswerError) Error() string {
	if e.Trace == "" {
		return e.Msg
	}
	return e.Msg + " (trace " + e.Trace + ")"
}
