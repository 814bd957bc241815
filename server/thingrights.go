package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

var _ thing.Relations = rights{}

// Tie returns the state of the active relation between a and b, as
// list_relations names it, and the kind of account b: the command rule's
// view of the server's directory.
func (r rights) Tie(a, b string) (state, kindB string, err error) {
	kindB, err = r.s.accountKind(r.ctx, b)
	if err != nil {
		return "", "", err
	}
	rel, found, err := r.s.dir.relation(r.ctx, a, b)
	if err != nil || !found || rel.State != store.StateActive {
		return "", kindB, err
	}
	switch rel.Kind {
	case store.KindFriend:
		return wire.StateFriend, kindB, nil
	case store.KindBound:
		return wire.StateBound, kindB, nil
	case store.KindAssociated:
		return wire.StateAssociated, kindB, nil
	}
	return "", kindB, nil
}

// DeviceOwner returns the account a device is bound to.
func (r rights) DeviceOwner(device string) (string, bool, error) {
	a, err := r.s.lookupDeviceOwner(r.ctx, device)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	return a, err == nil, err
}

// mayWriteThing applies the command rule (thing.MayWrite) to a message of
// the caller's own that passed the write rule, and for a command one thing
// sends another under a grant, checks that the grant is a rule the server
// holds: added by add_rule and neither removed nor dropped since.
func (r rights) mayWriteThing(m *wire.Message) error {
	if err := thing.MayWrite(r, m); err != nil {
		return fmt.Errorf("message %s: %w", m.MsgId, err)
	}
	if m.MsgType != wire.MsgTypeCommand {
		return nil
	}
	c, err := thing.ParseCommand(m.Payload)
	if err != nil || c.Grant == nil {
		return err
	}
	held, err := r.s.db.Rule(r.ctx, c.Grant.ID)
	if errors.Is(err, store.ErrNotFound) {
		return forbidden("message %s: grant %s is no rule of the server's (never added, or removed)", m.MsgId, c.Grant.ID)
	}
	if err != nil {
		return err
	}
	if held.A != c.Grant.A || held.B != c.Grant.B || held.Sig != c.Grant.Sig {
		return forbidden("message %s: grant %s is not the rule the server holds under that id", m.MsgId, c.Grant.ID)
	}
	return nil
}

// mayRelayThing checks a command or feedback another account signed and
// the caller relays: its payload parses, and the parts of the command rule
// that never change hold (it is in a dm; a command goes to a thing;
// feedback comes from a thing), or, in a thing's feed, the feed's rule. Who may command whom is the author's right
// when it wrote, which the recipient's node checked then; like any relayed
// message, a relation or rule ended since does not strand it.
func (r rights) mayRelayThing(m *wire.Message) error {
	var err error
	if f, ferr := wire.ParseFeeds(m.Feeds); ferr == nil && f.Kind == wire.FeedsThing {
		// A thing's feed holds its own state and events only, whatever
		// the message's type.
		if err := thing.MayWriteFeed(r, f, m); err != nil {
			return fmt.Errorf("message %s: %w", m.MsgId, err)
		}
		return nil
	}
	switch m.MsgType {
	case wire.MsgTypeCommand:
		_, err = thing.ParseCommand(m.Payload)
	case wire.MsgTypeFeedback:
		_, err = thing.ParseFeedback(m.Payload)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("message %s: %w", m.MsgId, err)
	}
	f, err := wire.ParseFeeds(m.Feeds)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if f.Kind == wire.FeedsThing {
		if err := thing.MayWriteFeed(r, f, m); err != nil {
			return fmt.Errorf("message %s: %w", m.MsgId, err)
		}
		return nil
	}
	if f.Kind != wire.FeedsDM || !f.Has(m.From) {
		return forbidden("message %s: a %s goes in a dm of its author", m.MsgId, m.MsgType)
	}
	who := f.Peer(m.From) // the command's thing
	if m.MsgType == wire.MsgTypeFeedback {
		who = m.From
	}
	kind, err := r.s.accountKind(r.ctx, who)
	if err != nil {
		return err
	}
	if kind != wire.KindThing {
		return forbidden("message %s: %s is not a thing", m.MsgId, who)
	}
	return nil
}

// accountKind returns the kind of account name, "" when there is none
// (not cached: the account may be added later).
func (s *Server) accountKind(ctx context.Context, name string) (string, error) {
	kind, err := s.kinds.get(name, func() (string, error) {
		a, err := s.db.Account(ctx, name)
		return a.Kind, err
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return kind, err
}
