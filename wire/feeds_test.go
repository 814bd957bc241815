package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestValidAccount(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"alice", true},
		{"a", true},
		{"0", true},
		{"bob.smith_2-x", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Alice", false},
		{".alice", false},
		{"_alice", false},
		{"-alice", false},
		{"al ice", false},
		{"al:ice", false},
		{"al@ice", false},
		{"álice", false},
		{"alice\n", false},
	}
	for _, tt := range tests {
		if got := ValidAccount(tt.in); got != tt.want {
			t.Errorf("ValidAccount(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// goodFeeds also seed FuzzMessageJSON.
var goodFeeds = []struct {
	in   string
	want Feeds
}{
	{"dm:alice:bob", Feeds{Kind: FeedsDM, A: "alice", B: "bob"}},
	{"dm:a:b", Feeds{Kind: FeedsDM, A: "a", B: "b"}},
	{"dm:0:a.b-c_d", Feeds{Kind: FeedsDM, A: "0", B: "a.b-c_d"}},
	{"g:01JD8RSH00B9D5MPJTB9D5MPJT", Feeds{Kind: FeedsGroup, Group: "01JD8RSH00B9D5MPJTB9D5MPJT"}},
	{"g:Team.A_b-1", Feeds{Kind: FeedsGroup, Group: "Team.A_b-1"}},
	{"g:" + strings.Repeat("x", 64), Feeds{Kind: FeedsGroup, Group: strings.Repeat("x", 64)}},
	{"t:lamp", Feeds{Kind: FeedsThing, Thing: "lamp"}},
	{"t:door.sensor_2-x", Feeds{Kind: FeedsThing, Thing: "door.sensor_2-x"}},
	{"t:" + strings.Repeat("a", 63), Feeds{Kind: FeedsThing, Thing: strings.Repeat("a", 63)}},
}

func TestParseFeeds(t *testing.T) {
	for _, tt := range goodFeeds {
		got, err := ParseFeeds(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseFeeds(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.in {
			t.Errorf("ParseFeeds(%q).String() = %q, want the input", tt.in, s)
		}
	}
}

func TestParseFeedsBad(t *testing.T) {
	for _, in := range []string{
		"", "dm:", "dm:alice", "dm:alice:", "dm::bob", "dm:bob:alice", "dm:alice:alice",
		"dm:alice:bob:carol", "dm:Alice:bob", "dm:alice:b b", "DM:alice:bob", "dm alice bob",
		"g:", "g:a b", "g:a:b", "g:a/b", "g:" + strings.Repeat("x", 65), "group:x", "x", "alice",
		"t:", "t:Lamp", "t:lamp:x", "t:.lamp", "t:la mp", "t:" + strings.Repeat("a", 64), "T:lamp", "thing:lamp",
	} {
		if got, err := ParseFeeds(in); !errors.Is(err, ErrBadFeeds) {
			t.Errorf("ParseFeeds(%q) = %+v, %v, want an error wrapping ErrBadFeeds", in, got, err)
		}
	}
}

func TestDM(t *testing.T) {
	if got := DM("bob", "alice"); got != "dm:alice:bob" {
		t.Errorf(`DM("bob", "alice") = %q, want "dm:alice:bob"`, got)
	}
	if got := DM("alice", "bob"); got != "dm:alice:bob" {
		t.Errorf(`DM("alice", "bob") = %q, want "dm:alice:bob"`, got)
	}
	if got := GroupFeeds("x1"); got != "g:x1" {
		t.Errorf(`GroupFeeds("x1") = %q, want "g:x1"`, got)
	}
	if got := ThingFeeds("lamp"); got != "t:lamp" {
		t.Errorf(`ThingFeeds("lamp") = %q, want "t:lamp"`, got)
	}
	if got := (Feeds{}).String(); got != "" {
		t.Errorf(`Feeds{}.String() = %q, want ""`, got)
	}
}

func TestFeedsHasPeer(t *testing.T) {
	dm := Feeds{Kind: FeedsDM, A: "alice", B: "bob"}
	group := Feeds{Kind: FeedsGroup, Group: "alice"}
	feed := Feeds{Kind: FeedsThing, Thing: "alice"}
	tests := []struct {
		f        Feeds
		account  string
		has      bool
		peerWant string
	}{
		{dm, "alice", true, "bob"},
		{dm, "bob", true, "alice"},
		{dm, "carol", false, ""},
		{dm, "", false, ""},
		{group, "alice", false, ""},
		{feed, "alice", false, ""},
		{Feeds{}, "", false, ""},
	}
	for _, tt := range tests {
		if got := tt.f.Has(tt.account); got != tt.has {
			t.Errorf("%v.Has(%q) = %v, want %v", tt.f, tt.account, got, tt.has)
		}
		if got := tt.f.Peer(tt.account); got != tt.peerWant {
			t.Errorf("%v.Peer(%q) = %q, want %q", tt.f, tt.account, got, tt.peerWant)
		}
	}
}

func TestFeedsKindString(t *testing.T) {
	for k, want := range map[FeedsKind]string{FeedsDM: "dm", FeedsGroup: "group", FeedsThing: "thing", 0: "FeedsKind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("FeedsKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// FuzzParseFeeds: ParseFeeds never panics, refuses with ErrBadFeeds, and
// what it accepts formats back to its input and parses to the same Feeds.
func FuzzParseFeeds(f *testing.F) {
	for _, tt := range goodFeeds {
		f.Add(tt.in)
	}
	for _, s := range []string{"", "t:", "t:Lamp", "t:lamp:x", "dm:b:a", "g:a b", "t:\x00", "t:" + strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFeeds(s)
		if err != nil {
			if !errors.Is(err, ErrBadFeeds) {
				t.Fatalf("ParseFeeds(%q) = %v, want an error wrapping ErrBadFeeds", s, err)
			}
			return
		}
		if got.String() != s {
			t.Fatalf("ParseFeeds(%q).String() = %q, want the input", s, got.String())
		}
		again, err := ParseFeeds(got.String())
		if err != nil || again != got {
			t.Fatalf("ParseFeeds(%q) again = %+v, %v, want %+v", s, again, err, got)
		}
		if got.Kind == FeedsThing && !ValidAccount(got.Thing) {
			t.Fatalf("ParseFeeds(%q) names thing %q, not an account", s, got.Thing)
		}
	})
}
