package wire

import (
	"errors"
	"strings"
	"testing"
)

var goodFilters = []struct {
	in   string
	want Filter
}{
	{"feeds/dm/bob", Filter{Kind: FilterDM, Name: "bob"}},
	{"feeds/g/01JD7Q", Filter{Kind: FilterGroup, Name: "g:01JD7Q"}},
	{"presence/lamp-1", Filter{Kind: FilterPresence, Name: "lamp-1"}},
	{"feeds/t/lamp-1", Filter{Kind: FilterThing, Name: "t:lamp-1"}},
	{"feeds/t/+", Filter{Kind: FilterWildcard}},
	{"feeds/#", Filter{Kind: FilterWildcard}},
	{"feeds/dm/+", Filter{Kind: FilterWildcard}},
	{"feeds/+/+", Filter{Kind: FilterWildcard}},
	{"presence/+", Filter{Kind: FilterWildcard}},
	{"im://modulus/list_relations?msg_id=1", Filter{Kind: FilterScheme}},
	{"im://#", Filter{Kind: FilterScheme}},
	{"impush://modulus/news", Filter{Kind: FilterScheme}},
	{"https://+/#", Filter{Kind: FilterScheme}},
}

var badFilters = []string{
	"", "#", "+", "+/#", "+/dm/bob", "$SYS/#", "$share/g/feeds/dm/bob", "$mqtter/request",
	"chat/room", "bob/#", "feeds", "presence", "feeds/dm", "feeds/dm/", "feeds/dm/Bob",
	"feeds/dm/bob/x", "feeds/g/", "feeds/g/a:b", "feeds/x/y", "presence/", "presence/bob/x",
	"feeds/dm/bo#", "feeds/#/x", "feeds/dm+", "im://a/b#c", "feeds/dm/\x00",
	"feeds/t/", "feeds/t/Lamp", "feeds/t/lamp/x", "feeds/t/a:b",
}

func TestParseFilter(t *testing.T) {
	for _, tt := range goodFilters {
		got, err := ParseFilter(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseFilter(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range badFilters {
		if got, err := ParseFilter(in); !errors.Is(err, ErrBadFilter) {
			t.Errorf("ParseFilter(%q) = %+v, %v, want an error wrapping ErrBadFilter", in, got, err)
		}
	}
}

func TestFeedsTopic(t *testing.T) {
	tests := []struct{ account, feeds, want string }{
		{"alice", "dm:alice:bob", "feeds/dm/bob"},
		{"bob", "dm:alice:bob", "feeds/dm/alice"},
		{"carol", "dm:alice:bob", ""},
		{"alice", "g:01JD", "feeds/g/01JD"},
		{"alice", "t:lamp", "feeds/t/lamp"},
		{"lamp", "t:lamp", "feeds/t/lamp"},
		{"alice", "x", ""},
	}
	for _, tt := range tests {
		if got := FeedsTopic(tt.account, tt.feeds); got != tt.want {
			t.Errorf("FeedsTopic(%q, %q) = %q, want %q", tt.account, tt.feeds, got, tt.want)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"feeds/dm/bob", "feeds/dm/bob", true},
		{"feeds/dm/bob", "feeds/dm/bo", false},
		{"feeds/dm/+", "feeds/dm/bob", true},
		{"feeds/dm/+", "feeds/g/x", false},
		{"feeds/#", "feeds/g/x", true},
		{"feeds/#", "feeds", true},
		{"feeds/+", "feeds/dm/bob", false},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"im://#", "im://modulus/send?msg_id=1", true},
		{"im://modulus/+", "im://modulus/send?msg_id=1", true},
		{"impush://modulus/news", "impush://modulus/news", true},
		{"impush://modulus/news", "impush://modulus/presence", false},
		{"a/b", "a/b/c", false},
		{"a/+/c", "a//c", true},
	}
	for _, tt := range tests {
		if got := MatchFilter(tt.filter, tt.topic); got != tt.want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, tt := range goodFilters {
		f.Add(tt.in, "feeds/dm/bob")
	}
	for _, in := range badFilters {
		f.Add(in, "presence/x")
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		got, err := ParseFilter(filter)
		if err != nil {
			if !errors.Is(err, ErrBadFilter) {
				t.Fatalf("ParseFilter(%q) = %v, want an error wrapping ErrBadFilter", filter, err)
			}
		} else if got.Kind != FilterScheme && !strings.HasPrefix(filter, "feeds/") && !strings.HasPrefix(filter, "presence/") {
			t.Fatalf("ParseFilter(%q) = %+v: accepted outside the subscriber's own roots", filter, got)
		}
		if err == nil && (got.Kind == FilterDM || got.Kind == FilterGroup || got.Kind == FilterPresence) {
			// An exact filter is a topic name, and matches itself only.
			if !MatchFilter(filter, filter) || strings.ContainsAny(filter, "+#") {
				t.Fatalf("exact filter %q does not match itself", filter)
			}
		}
		// Matching never panics, and a filter without wildcards matches
		// exactly its own name.
		m := MatchFilter(filter, topic)
		if !strings.ContainsAny(filter, "+#") && m != (filter == topic) {
			t.Fatalf("MatchFilter(%q, %q) = %v without wildcards", filter, topic, m)
		}
	})
}
