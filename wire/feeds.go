package wire

import (
	"errors"
	"fmt"
	"strings"
)

// MaxAccountLen is the longest account name.
const MaxAccountLen = 63

// ValidAccount reports whether name is a well-formed account name:
// [a-z0-9][a-z0-9._-]{0,62}.
func ValidAccount(name string) bool {
	if name == "" || len(name) > MaxAccountLen || !isLowerAlnum(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// Feeds prefixes.
const (
	dmPrefix    = "dm:"
	groupPrefix = "g:"
	thingPrefix = "t:"
)

// MaxGroupIDLen is the longest group id (the part after "g:").
const MaxGroupIDLen = 64

// ErrBadFeeds is wrapped by ParseFeeds's errors.
var ErrBadFeeds = errors.New("bad feeds")

// FeedsKind tells a one-to-one conversation from a group.
type FeedsKind int

// The kinds of conversation.
const (
	FeedsDM    FeedsKind = iota + 1 // "dm:<a>:<b>"
	FeedsGroup                      // "g:<id>"
	// FeedsThing is a thing's feed of state and events, "t:<thing>": only
	// the thing writes it; the persons bound to it and the things
	// associated with it read it (an extension of the contract).
	FeedsThing
)

// String returns "dm", "group", "thing" or "FeedsKind(n)".
func (k FeedsKind) String() string {
	switch k {
	case FeedsDM:
		return "dm"
	case FeedsGroup:
		return "group"
	case FeedsThing:
		return "thing"
	}
	return fmt.Sprintf("FeedsKind(%d)", int(k))
}

// Feeds is a parsed conversation id: "dm:<a>:<b>" with a < b, "g:<id>",
// or "t:<thing>".
type Feeds struct {
	Kind  FeedsKind
	A, B  string // the two accounts of a dm, A < B
	Group string // the id of a group, without "g:"
	Thing string // the account whose feed a "t:" is
}

// ParseFeeds parses a conversation id. Both accounts of a dm must be valid
// and in order (a < b, so each pair has exactly one id); a group id is
// [A-Za-z0-9._-]{1,64}; a thing's feed names a valid account. Errors wrap
// ErrBadFeeds.
func ParseFeeds(s string) (Feeds, error) {
	f, why := parseFeeds(s)
	if why != "" {
		return Feeds{}, fmt.Errorf("%w %s: %s", ErrBadFeeds, quoteClipped(s, 80), why)
	}
	return f, nil
}

// parseFeeds returns the parsed feeds, or why s is not one.
func parseFeeds(s string) (Feeds, string) {
	switch {
	case strings.HasPrefix(s, dmPrefix):
		a, b, ok := strings.Cut(s[len(dmPrefix):], ":")
		switch {
		case !ok:
			return Feeds{}, "want dm:<a>:<b>"
		case !ValidAccount(a) || !ValidAccount(b):
			return Feeds{}, "bad account name"
		case a >= b:
			return Feeds{}, "accounts not in order (want a < b)"
		}
		return Feeds{Kind: FeedsDM, A: a, B: b}, ""
	case strings.HasPrefix(s, groupPrefix):
		id := s[len(groupPrefix):]
		if !validGroupID(id) {
			return Feeds{}, "bad group id"
		}
		return Feeds{Kind: FeedsGroup, Group: id}, ""
	case strings.HasPrefix(s, thingPrefix):
		name := s[len(thingPrefix):]
		if !ValidAccount(name) {
			return Feeds{}, "bad account name"
		}
		return Feeds{Kind: FeedsThing, Thing: name}, ""
	}
	return Feeds{}, "want dm:<a>:<b>, g:<id> or t:<thing>"
}

// ValidGroupID reports whether id can follow "g:": [A-Za-z0-9._-]{1,64}.
func ValidGroupID(id string) bool { return validGroupID(id) }

func validGroupID(id string) bool {
	if id == "" || len(id) > MaxGroupIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isLowerAlnum(c) && !('A' <= c && c <= 'Z') && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// DM returns the conversation id of the one-to-one conversation between a
// and b, whichever order they come in. It does not validate the names, and
// DM(a, a) does not parse.
func DM(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return dmPrefix + a + ":" + b
}

// GroupFeeds returns the conversation id of the group with the given id.
func GroupFeeds(id string) string { return groupPrefix + id }

// ThingFeeds returns the conversation id of thing's feed of state and
// events. It does not validate the name.
func ThingFeeds(thing string) string { return thingPrefix + thing }

// String formats f back to its conversation id; the zero Feeds gives "".
func (f Feeds) String() string {
	switch f.Kind {
	case FeedsDM:
		return DM(f.A, f.B)
	case FeedsGroup:
		return GroupFeeds(f.Group)
	case FeedsThing:
		return ThingFeeds(f.Thing)
	}
	return ""
}

// Has reports whether account is one of the two sides of a dm. It is always
// false for groups and things' feeds, whose readers only the relation book
// knows.
func (f Feeds) Has(account string) bool {
	return f.Kind == FeedsDM && account != "" && (account == f.A || account == f.B)
}

// Peer returns the other side of a dm for account, or "" if account is not
// in it or f is a group.
func (f Feeds) Peer(account string) string {
	switch {
	case !f.Has(account):
		return ""
	case account == f.A:
		return f.B
	default:
		return f.A
	}
}
