package server

import (
	"errors"
	"fmt"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
)

// Errors a request can fail with. Their text (with the detail wrapped around
// them) is what the client reads in the answer's Error; anything else is an
// internal error, logged with the trace and answered as "internal error".
var (
	ErrBadRequest  = errors.New("bad request")
	ErrForbidden   = errors.New("forbidden")
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrUnsupported = errors.New("unsupported scheme")
	ErrNoSuchNode  = errors.New("no such node")
	ErrUnknown     = errors.New("unknown method")
	ErrTooLarge    = errors.New("body too large")
)

var public = []error{ErrBadRequest, ErrForbidden, ErrNotFound, ErrConflict, ErrUnsupported, ErrNoSuchNode, ErrUnknown, ErrTooLarge, ErrTooMany}

// kinds maps the errors other packages define onto the kinds above, for
// errors that reach an answer without being wrapped in one of them.
var kinds = []struct{ from, kind error }{
	{store.ErrMsgIdReused, ErrConflict},
	{store.ErrExists, ErrConflict},
	{store.ErrStale, ErrConflict},
	{store.ErrRuleLimit, ErrConflict},
	{store.ErrRuleUnrelated, ErrForbidden},
	{thing.ErrNotAllowed, ErrForbidden},
	{thing.ErrBadCommand, ErrBadRequest},
	{thing.ErrBadFeedback, ErrBadRequest},
	{thing.ErrBadDescription, ErrBadRequest},
	{thing.ErrBadRule, ErrBadRequest},
}

// errorText maps an error to the answer's Error string, and reports whether
// it is internal (to be logged, not shown).
func errorText(err error) (string, bool) {
	k := kindOf(err)
	switch {
	case k == nil:
		return "internal error", true
	case errors.Is(err, k):
		return err.Error(), false
	}
	return k.Error() + ": " + err.Error(), false
}

// kindOf returns the public kind of err, nil for an internal error.
func kindOf(err error) error {
	for _, p := range public {
		if errors.Is(err, p) {
			return p
		}
	}
	for _, k := range kinds {
		if errors.Is(err, k.from) {
			return k.kind
		}
	}
	return nil
}

// outcome names an error for metrics labels.
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	switch kindOf(err) {
	case ErrForbidden:
		return "forbidden"
	case ErrNotFound:
		return "not_found"
	case ErrConflict:
		return "conflict"
	case nil:
		return "internal"
	}
	return "bad_request"
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrForbidden, fmt.Sprintf(format, args...))
}
