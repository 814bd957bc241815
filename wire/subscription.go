package wire

import (
	"errors"
	"fmt"
	"strings"
)

// Topics a plain MQTT client subscribes to (docs/protocol.md,
// "Subscriptions"). They are named from the subscriber's side, so that a
// wildcard can only ever reach the subscriber's own conversations and
// contacts:
//
//	feeds/dm/<user>    the dm with <user>: its messages, the message JSON as the payload
//	feeds/g/<id>       the group g:<id>: its messages
//	feeds/t/<thing>    the feed t:<thing> of a thing one reads: its state and events
//	presence/<user>    the presence of <user>'s devices (the body of a PushPresence)
//
// A filter under these roots may hold MQTT wildcards below the root
// ("feeds/#", "feeds/dm/+", "presence/+"); a filter whose root is a
// wildcard, or any other plain topic, names nothing of the subscriber's.
const (
	TopicFeedsDM    = "feeds/dm/"
	TopicFeedsGroup = "feeds/g/"
	TopicFeedsThing = "feeds/t/"
	TopicPresence   = "presence/"
)

// ErrBadFilter is wrapped by ParseFilter's errors.
var ErrBadFilter = errors.New("bad subscription filter")

// FilterKind is what a subscription filter names.
type FilterKind int

// The kinds of filter ParseFilter accepts.
const (
	FilterScheme   FilterKind = iota + 1 // under im://, impush://, http://, https://: answers and pushes by their own topics
	FilterWildcard                       // under feeds/ or presence/ with a wildcard: a subscription only
	FilterDM                             // feeds/dm/<user>
	FilterGroup                          // feeds/g/<id>
	FilterPresence                       // presence/<user>
	FilterThing                          // feeds/t/<thing>
)

// Filter is a parsed subscription filter.
type Filter struct {
	Kind FilterKind
	// Name is the account of FilterDM and FilterPresence, and the feeds
	// ("g:<id>", "t:<thing>") of FilterGroup and FilterThing.
	Name string
}

// schemeRoots are the protocol's own topic prefixes a client may subscribe
// under: only its own answers and pushes ever arrive there.
var schemeRoots = []string{"im://", "impush://", "http://", "https://"}

// ParseFilter checks an MQTT subscription filter and says what it names.
// Errors wrap ErrBadFilter.
func ParseFilter(filter string) (Filter, error) {
	bad := func(why string) (Filter, error) {
		return Filter{}, fmt.Errorf("%w %s: %s", ErrBadFilter, quoteClipped(filter, 80), why)
	}
	if filter == "" || len(filter) > MaxTopicLen {
		return bad("empty or too long")
	}
	if !validFilter(filter) {
		return bad("not an MQTT topic filter")
	}
	for _, root := range schemeRoots {
		if strings.HasPrefix(filter, root) {
			return Filter{Kind: FilterScheme}, nil
		}
	}
	root, rest, _ := strings.Cut(filter, "/")
	if root != "feeds" && root != "presence" {
		return bad("not under feeds/, presence/ or the protocol's schemes")
	}
	if strings.ContainsAny(rest, "+#") {
		return Filter{Kind: FilterWildcard}, nil
	}
	switch {
	case strings.HasPrefix(filter, TopicFeedsDM):
		if name := filter[len(TopicFeedsDM):]; ValidAccount(name) {
			return Filter{Kind: FilterDM, Name: name}, nil
		}
		return bad("want feeds/dm/<user>")
	case strings.HasPrefix(filter, TopicFeedsGroup):
		if f, err := ParseFeeds(groupPrefix + filter[len(TopicFeedsGroup):]); err == nil && f.Kind == FeedsGroup {
			return Filter{Kind: FilterGroup, Name: groupPrefix + f.Group}, nil
		}
		return bad("want feeds/g/<id>")
	case strings.HasPrefix(filter, TopicFeedsThing):
		if name := filter[len(TopicFeedsThing):]; ValidAccount(name) {
			return Filter{Kind: FilterThing, Name: ThingFeeds(name)}, nil
		}
		return bad("want feeds/t/<thing>")
	case strings.HasPrefix(filter, TopicPresence):
		if name := filter[len(TopicPresence):]; ValidAccount(name) {
			return Filter{Kind: FilterPresence, Name: name}, nil
		}
		return bad("want presence/<user>")
	}
	return bad("want feeds/dm/<user>, feeds/g/<id>, feeds/t/<thing> or presence/<user>")
}

// FeedsTopic is the topic on which account receives the messages of feeds
// when it subscribed: feeds/dm/<the other>, feeds/g/<id> or
// feeds/t/<thing>. It is "" for
// a feeds that does not parse or a dm account is not one of.
func FeedsTopic(account, feeds string) string {
	f, err := ParseFeeds(feeds)
	switch {
	case err != nil:
		return ""
	case f.Kind == FeedsGroup:
		return TopicFeedsGroup + f.Group
	case f.Kind == FeedsThing:
		return TopicFeedsThing + f.Thing
	case f.A == account:
		return TopicFeedsDM + f.B
	case f.B == account:
		return TopicFeedsDM + f.A
	}
	return ""
}

// PresenceTopic is the topic on which a subscriber receives the presence
// of user's devices.
func PresenceTopic(user string) string { return TopicPresence + user }

// validFilter reports whether filter is a valid MQTT topic filter: '#'
// only as the last level, '+' only as a whole level, no NUL.
func validFilter(filter string) bool {
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case strings.ContainsRune(l, 0):
			return false
		case l == "#":
			if i != len(levels)-1 {
				return false
			}
		case l == "+":
		case strings.ContainsAny(l, "+#"):
			return false
		}
	}
	return true
}

// MatchFilter reports whether the topic name topic matches the MQTT
// filter filter ('+' one level, '#' any number of levels, the level above
// included). A topic name starting with '$' matches no filter that starts
// with a wildcard.
func MatchFilter(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			return frest == "#" // "a/#" matches "a"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
