package wire

import (
	"errors"
	"testing"
)

type rightsTable struct {
	related map[[2]string]bool
	members map[string][]string
	err     error
}

func (r rightsTable) Related(a, b string) (bool, error) { return r.related[[2]string{a, b}], r.err }

func (r rightsTable) Member(feeds, account string) (bool, error) {
	for _, m := range r.members[feeds] {
		if m == account {
			return true, r.err
		}
	}
	return false, r.err
}

func TestMayWrite(t *testing.T) {
	book := rightsTable{
		related: map[[2]string]bool{{"alice", "bob"}: true},
		members: map[string][]string{"g:1": {"alice", "carol"}, "t:lamp": {"lamp", "alice", "door"}},
	}
	boom := errors.New("boom")
	tests := []struct {
		name   string
		r      Rights
		feeds  string
		author string
		want   error
	}{
		{"friends", book, "dm:alice:bob", "alice", nil},
		{"friends other side", book, "dm:alice:bob", "bob", nil},
		{"stranger dm", book, "dm:alice:carol", "carol", ErrNotRelated},
		{"outsider of a dm", book, "dm:alice:bob", "carol", ErrNotMember},
		{"member", book, "g:1", "carol", nil},
		{"not a member", book, "g:1", "bob", ErrNotMember},
		{"unknown group", book, "g:2", "alice", ErrNotMember},
		{"thing writes its feed", book, "t:lamp", "lamp", nil},
		{"bound person writes a thing's feed", book, "t:lamp", "alice", ErrNotMember},
		{"associated thing writes a thing's feed", book, "t:lamp", "door", ErrNotMember},
		{"stranger writes a thing's feed", book, "t:lamp", "mallory", ErrNotMember},
		{"bad thing feed", book, "t:Lamp", "lamp", ErrBadFeeds},
		{"bad feeds", book, "dm:bob:alice", "bob", ErrBadFeeds},
		{"book fails", rightsTable{err: boom}, "dm:alice:bob", "alice", boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := MayWrite(tt.r, tt.feeds, tt.author)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("MayWrite(%s, %s) = %v, want %v", tt.feeds, tt.author, err, tt.want)
			}
		})
	}
}
