package node

import (
	"errors"
	"testing"

	"github.com/mqtter/mqtter/wire"
)

// The book's rights give wire.MayWrite this account's view: a dm is
// allowed with an active relation of this account only, a group message
// from a member of a group of this account only.
func TestBookRights(t *testing.T) {
	b := newBook("bob")
	b.setRelations([]wire.Relation{
		{User: "alice", Kind: wire.KindPerson, State: wire.StateFriend},
		{User: "lamp", Kind: wire.KindThing, State: wire.StateBound},
		{User: "carol", Kind: wire.KindPerson, State: wire.StatePendingIn},
	})
	b.setGroups([]wire.Group{{Feeds: "g:team", Owner: "alice", Members: []string{"alice", "bob", "mallory"}}})
	for _, tc := range []struct {
		feeds, author string
		want          error
	}{
		{wire.DM("alice", "bob"), "alice", nil},
		{wire.DM("alice", "bob"), "bob", nil},
		{wire.DM("bob", "lamp"), "lamp", nil},
		{wire.DM("bob", "carol"), "carol", wire.ErrNotRelated},     // only asked
		{wire.DM("bob", "mallory"), "mallory", wire.ErrNotRelated}, // a co-member, not a friend
		{wire.DM("alice", "mallory"), "alice", wire.ErrNotRelated}, // not a pair of this account
		{wire.DM("alice", "bob"), "mallory", wire.ErrNotMember},
		{"g:team", "mallory", nil},
		{"g:team", "carol", wire.ErrNotMember},
		{"g:other", "alice", wire.ErrNotMember},
	} {
		err := wire.MayWrite(bookRights{b}, tc.feeds, tc.author)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("MayWrite(%s, %s) = %v, want %v", tc.feeds, tc.author, err, tc.want)
		}
	}
}
