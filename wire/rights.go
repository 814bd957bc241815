package wire

import (
	"errors"
	"fmt"
)

// The write rule's refusals. Callers branch on them with errors.Is; both are
// forbidden actions on the wire.
var (
	// ErrNotMember: the author is not in the conversation (not one of a
	// dm's two accounts, or not a current member of the group).
	ErrNotMember = errors.New("not a member")
	// ErrNotRelated: a dm between two accounts with no active relation
	// (friends, a person and its bound thing, or two associated things).
	ErrNotRelated = errors.New("not related")
)

// Rights is what the write rule needs to know about accounts, from whoever
// holds the relation book: the server's store, or a node's cached copy.
type Rights interface {
	// Related reports whether a and b have an active relation: friends,
	// bound (person and thing) or associated (two things).
	Related(a, b string) (bool, error)
	// Member reports whether account is a current member of the group
	// feeds, or, for a thing's feed, one of its readers now: the thing,
	// a person bound to it or a thing associated with it.
	Member(feeds, account string) (bool, error)
}

// MayWrite is the one rule for who may write a message into a conversation,
// whichever path the message takes (a send, a history push, a server-to-
// server push, a direct stream): the author of a dm must be one of its two
// accounts and related to the other; the author of a group message must be
// a current member; only the thing itself writes its feed ("t:<thing>";
// what it may put there is the thing model's rule). It returns nil, an error wrapping ErrNotMember or
// ErrNotRelated, or the error Rights returned.
func MayWrite(r Rights, feeds, author string) error {
	f, err := ParseFeeds(feeds)
	if err != nil {
		return err
	}
	if f.Kind == FeedsDM {
		if !f.Has(author) {
			return fmt.Errorf("%w: %s is not one of %s", ErrNotMember, author, feeds)
		}
		ok, err := r.Related(f.A, f.B)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %s and %s are neither friends, bound nor associated", ErrNotRelated, f.A, f.B)
		}
		return nil
	}
	if f.Kind == FeedsThing {
		if author != f.Thing {
			return fmt.Errorf("%w: only %s writes %s", ErrNotMember, f.Thing, feeds)
		}
		return nil
	}
	ok, err := r.Member(feeds, author)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s is not a member of %s", ErrNotMember, author, feeds)
	}
	return nil
}
