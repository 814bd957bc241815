package localdb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// ThingFeedback is what a person's device records of one message of an
// ingest batch: one of Record, Update, State, Event or Description, or
// Link alone, or a State or an Event that is also a Link of one of our
// chains.
type ThingFeedback struct {
	// Record is a command of this account that another of its devices
	// sent (RecordCommand).
	Record *Command
	// Update is a thing's ack or result (UpdateCommand).
	Update *CommandFeedback
	// State is a thing's state report (SetThingProps).
	State *StateReport
	// Event is a thing's event (AddThingEvent).
	Event *ThingEvent
	// Link is feedback that one of our chains caused (AddChainLink).
	Link *ChainFeedback
	// Description is a thing's description, JSON (SetDescription).
	Description *DescriptionReport
}

// CommandFeedback is a thing's ack or result for command MsgId.
type CommandFeedback struct {
	MsgId, Thing string
	CommandUpdate
}

// StateReport is a thing's state report.
type StateReport struct {
	Thing   string
	Props   map[string]json.RawMessage
	Rev, At int64
	Cause   string
}

// ChainFeedback is a link of the chain of command Origin.
type ChainFeedback struct {
	Origin string
	ChainLink
}

// DescriptionReport is a thing's description as JSON.
type DescriptionReport struct {
	Thing   string
	Version int64
	Body    []byte
}

// FeedbackOutcome is what one ThingFeedback changed.
type FeedbackOutcome struct {
	// Err is why the message was not recorded; the others were.
	Err error
	// Command is the command as the message left it, when it changed one
	// (Record, Update, Link).
	Command *Command
	// Props are the properties a State changed, by name.
	Props []string
	// Kept reports an Event stored or a Description kept.
	Kept bool
}

// RecordFeedback records what the messages of an ingest batch say, in one
// transaction and in their order, each as its own operation would
// (RecordCommand, UpdateCommand, SetThingProps, AddThingEvent,
// AddChainLink, SetDescription) and each message in a savepoint, so that
// one that fails leaves no trace and the others stand. The error is the
// transaction's own; one commit instead of one or two per message is what
// lets a command's waiter wake sooner when its ack, state and result
// arrive together.
func (db *DB) RecordFeedback(ctx context.Context, steps []ThingFeedback) ([]FeedbackOutcome, error) {
	out := make([]FeedbackOutcome, len(steps))
	err := db.inTx(ctx, "record feedback", func(tx wtx) error {
		now := time.Now().UnixMilli()
		for i := range steps {
			o, err := recordInSavepoint(ctx, tx, &steps[i], now)
			if err != nil {
				return err
			}
			out[i] = o
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// recordInSavepoint applies one message's feedback inside tx, in a
// savepoint: a step that fails leaves no trace and its outcome says why.
// The error is the transaction's own.
func recordInSavepoint(ctx context.Context, tx wtx, s *ThingFeedback, now int64) (FeedbackOutcome, error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT feedback`); err != nil {
		return FeedbackOutcome{}, err
	}
	o, err := recordStep(ctx, tx, s, now)
	if err != nil {
		o = FeedbackOutcome{Err: err}
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO feedback`); err != nil {
			return o, err
		}
	}
	if _, err := tx.ExecContext(ctx, `RELEASE feedback`); err != nil {
		return o, err
	}
	return o, nil
}

// recordStep applies one message's feedback inside tx.
func recordStep(ctx context.Context, tx wtx, s *ThingFeedback, now int64) (FeedbackOutcome, error) {
	var o FeedbackOutcome
	var err error
	cmd := "" // the command changed, to read back
	switch {
	case s.Record != nil:
		err = recordCommand(ctx, tx, *s.Record, now)
		cmd = s.Record.MsgId
	case s.Update != nil:
		var changed bool
		if changed, err = updateCommand(ctx, tx, s.Update.MsgId, s.Update.Thing, s.Update.CommandUpdate, now); changed {
			cmd = s.Update.MsgId
		}
	case s.State != nil:
		o.Props, err = setThingProps(ctx, tx, s.State.Thing, s.State.Props, s.State.Rev, s.State.At, s.State.Cause)
	case s.Event != nil:
		err = addThingEvent(ctx, tx, *s.Event)
		o.Kept = err == nil
	case s.Description != nil:
		d := s.Description
		o.Kept, err = setDescription(ctx, tx, d.Thing, d.Version, d.Body, now)
	case s.Link == nil:
		return o, fmt.Errorf("no feedback")
	}
	if err != nil {
		return FeedbackOutcome{}, err
	}
	if s.Link != nil {
		added, err := addChainLink(ctx, tx, s.Link.Origin, s.Link.ChainLink)
		if err != nil {
			return FeedbackOutcome{}, err
		}
		if added {
			cmd = s.Link.Origin
		}
	}
	if cmd == "" {
		return o, nil
	}
	c, err := command(ctx, tx, cmd)
	if err != nil {
		return FeedbackOutcome{}, err
	}
	o.Command = &c
	return o, nil
}
