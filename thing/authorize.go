package thing

import (
	"errors"
	"fmt"

	"github.com/mqtter/mqtter/wire"
)

// ErrNotAllowed is wrapped by MayWrite's refusals: the author may not send
// this command or feedback. On the wire it is a forbidden action.
var ErrNotAllowed = errors.New("not allowed")

// Relations is what the command rule needs from whoever holds the relation
// book: the server's store, or a node's cached copy (which knows only the
// pairs that include its own account, and answers "" for the others).
type Relations interface {
	// Tie returns the state of the active relation between a and b
	// (wire.StateFriend, wire.StateBound, wire.StateAssociated, or ""
	// when there is none or it is not known) and the kind of account b
	// (wire.KindPerson, wire.KindThing, or "" when not known). Tie(b, b)
	// asks for the kind of b alone.
	Tie(a, b string) (state, kindB string, err error)
	// DeviceOwner returns the account a device id belongs to.
	DeviceOwner(device string) (account string, ok bool, err error)
}

// MayWrite is the rule for the thing model's messages, on top of
// wire.MayWrite, wherever a message enters (the server's accept path, a
// node's direct receive, a node's own send):
//
//   - a command goes in a dm, to a thing; its author is a person bound to
//     the thing, or a thing associated with it that carries a Grant: a rule
//     of A = the author and B = the thing, whose action is the command's,
//     named by the command's trace, signed by a device of a person bound to
//     the thing;
//   - feedback goes in a dm and its author is a thing, and a description
//     it carries is its own;
//   - both payloads parse (ParseCommand, ParseFeedback).
//
// A thing's feed ("t:<thing>") holds only the thing's own feedback of
// kind state or event (MayWriteFeed). Other message types pass elsewhere.
// Errors wrap ErrNotAllowed, ErrBadCommand or ErrBadFeedback, or are the
// Relations' own.
func MayWrite(r Relations, m *wire.Message) error {
	f, err := wire.ParseFeeds(m.Feeds)
	if err != nil {
		return err
	}
	if f.Kind == wire.FeedsThing {
		return MayWriteFeed(r, f, m)
	}
	if m.MsgType != wire.MsgTypeCommand && m.MsgType != wire.MsgTypeFeedback {
		return nil
	}
	if f.Kind != wire.FeedsDM || !f.Has(m.From) {
		return fmt.Errorf("%w: a %s goes in a dm of its author", ErrNotAllowed, m.MsgType)
	}
	other := f.Peer(m.From)
	if m.MsgType == wire.MsgTypeFeedback {
		fb, err := ParseFeedback(m.Payload)
		if err != nil {
			return err
		}
		if fb.Description != nil && fb.Description.Thing != m.From {
			return fmt.Errorf("%w: %s sends the description of %s", ErrNotAllowed, m.From, fb.Description.Thing)
		}
		_, kind, err := r.Tie(other, m.From)
		if err != nil {
			return err
		}
		if kind != wire.KindThing {
			return fmt.Errorf("%w: only a thing sends feedback, and %s is not one", ErrNotAllowed, m.From)
		}
		return nil
	}
	c, err := ParseCommand(m.Payload)
	if err != nil {
		return err
	}
	return MayCommand(r, m.From, other, &c)
}

// MayWriteFeed is the rule of a thing's feed f (f.Kind wire.FeedsThing),
// whoever relays the message: its author is the thing itself, which is an
// account of kind thing, and it is feedback of kind state or event. Acks
// and results stay in the dms of the command's sender and origin, and a
// description in the dms of the bound persons: those are for them alone.
func MayWriteFeed(r Relations, f wire.Feeds, m *wire.Message) error {
	if m.From != f.Thing {
		return fmt.Errorf("%w: only %s writes %s, not %s", ErrNotAllowed, f.Thing, m.Feeds, m.From)
	}
	if m.MsgType != wire.MsgTypeFeedback {
		return fmt.Errorf("%w: a thing's feed holds feedback only, not %.20q", ErrNotAllowed, m.MsgType)
	}
	fb, err := ParseFeedback(m.Payload)
	if err != nil {
		return err
	}
	if fb.Kind != KindState && fb.Kind != KindEvent {
		return fmt.Errorf("%w: a thing's feed holds state and events, not %s", ErrNotAllowed, fb.Kind)
	}
	_, kind, err := r.Tie(m.From, m.From)
	if err != nil {
		return err
	}
	if kind != wire.KindThing {
		return fmt.Errorf("%w: %s has a feed only if it is a thing", ErrNotAllowed, m.From)
	}
	return nil
}

// MayCommand reports whether author may send c to thing: see MayWrite.
func MayCommand(r Relations, author, thing string, c *Command) error {
	state, kind, err := r.Tie(author, thing)
	if err != nil {
		return err
	}
	if kind != wire.KindThing {
		return fmt.Errorf("%w: %s is not a thing (or not related to %s)", ErrNotAllowed, thing, author)
	}
	switch state {
	case wire.StateBound:
		if c.Grant != nil {
			return fmt.Errorf("%w: a person's command carries no grant", ErrNotAllowed)
		}
		return nil
	case wire.StateAssociated:
	default:
		return fmt.Errorf("%w: %s is not bound to %s", ErrNotAllowed, author, thing)
	}
	g := c.Grant
	if g == nil {
		return fmt.Errorf("%w: %s may command %s only under a rule, and the command carries none", ErrNotAllowed, author, thing)
	}
	if err := g.Verify(); err != nil {
		return fmt.Errorf("%w: grant: %w", ErrNotAllowed, err)
	}
	switch {
	case g.A != author || g.B != thing:
		return fmt.Errorf("%w: grant %s is a rule from %s to %s", ErrNotAllowed, g.ID, g.A, g.B)
	case g.Then.Action != c.Action || len(c.Write) > 0:
		return fmt.Errorf("%w: grant %s allows the action %s only", ErrNotAllowed, g.ID, g.Then.Action)
	case c.Trace.Rule != g.ID:
		return fmt.Errorf("%w: the trace names rule %q, the grant is %s", ErrNotAllowed, c.Trace.Rule, g.ID)
	case c.Trace.Hops < 1:
		return fmt.Errorf("%w: a command under a rule has at least one hop", ErrNotAllowed)
	}
	owner, ok, err := r.DeviceOwner(g.Device)
	if err != nil {
		return err
	}
	if !ok || owner != g.By {
		return fmt.Errorf("%w: grant %s: device %s is not one of %s's", ErrNotAllowed, g.ID, g.Device, g.By)
	}
	byState, byKind, err := r.Tie(thing, g.By)
	if err != nil {
		return err
	}
	if byState != wire.StateBound || byKind != wire.KindPerson {
		return fmt.Errorf("%w: grant %s was made by %s, who is not bound to %s", ErrNotAllowed, g.ID, g.By, thing)
	}
	return nil
}
