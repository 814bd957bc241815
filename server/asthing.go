package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// asThing is feedback the server writes on a thing's behalf: an adopted
// device's answers and reports (adapter.go), the timeout of a command
// that expired undelivered (expired.go), the copy of an answer for a
// chain's origin (plainthings.go).
type asThing struct {
	Thing, Feeds string
	// Device is the message's Device: the adopted device's client id
	// ("" behind a bridge) when the server translates what the device
	// said, wire.ServerDevice when the server answers for the thing.
	Device   string
	Feedback thing.Feedback
	// MsgID is the message's MsgId, "" for a fresh one; a fixed one makes
	// the write idempotent (a second one is stored as a duplicate).
	MsgID string
	// At is the message's TimeCreate (unix ms), 0 for now.
	At int64
}

// writeAsThing writes w unsigned, From the thing, through the one accept
// path, so the write rule and the command rule apply as to the thing's
// own messages. stored, when not nil, is called with the message (its
// SeqId set) and the store's outcome; it runs on the store's writer and
// must not block. The error is the accept path's refusal, or w's
// feedback failing to encode; stored is not called then.
func (s *Server) writeAsThing(ctx context.Context, w asThing, stored func(wire.Message, store.Appended, error)) error {
	payload, err := json.Marshal(&w.Feedback)
	if err != nil {
		return fmt.Errorf("encode feedback of %s: %w", w.Thing, err)
	}
	m := wire.Message{MsgId: w.MsgID, Feeds: w.Feeds, MsgType: wire.MsgTypeFeedback, From: w.Thing, Device: w.Device,
		Payload: payload, TimeCreate: w.At}
	if m.MsgId == "" {
		m.MsgId = wire.NewMsgID()
	}
	if m.TimeCreate == 0 {
		m.TimeCreate = time.Now().UnixMilli()
	}
	return s.accept(ctx, nil, false, []wire.Message{m}, func(res []store.Appended, err error) {
		if stored == nil {
			return
		}
		var r store.Appended
		if err == nil {
			r = res[0]
			m.SeqId = r.SeqId
		}
		stored(m, r, err)
	})
}
