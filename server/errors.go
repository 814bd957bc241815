package server

import (
	"errors"
	"fmt"

	"github.com/mqtter/mqtter/server/store"
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

// errorText maps an error to the answer's Error string, and reports whether
// it is internal (to be logged, not shown).
func errorText(err error) (string, bool) {
	if errors.Is(err, store.ErrMsgIdReused) {
		return ErrConflict.Error() + ": " + err.Error(), false
	}
	for _, p := range public {
		if errors.Is(err, p) {
			return err.Error(), false
		}
	}
	return "internal error", true
}

// outcome names an error for metrics labels.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrConflict), errors.Is(err, store.ErrMsgIdReused):
		return "conflict"
	}
	if _, internal := errorText(err); internal {
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
