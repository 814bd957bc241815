package thing

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// The payloads these parse come from the network: whatever the bytes, they
// must not panic, must refuse with their package error, and what they
// accept must survive a round trip through JSON unchanged.

func FuzzParseCommand(f *testing.F) {
	for _, tt := range commandTests {
		f.Add([]byte(tt.payload))
	}
	f.Add(mustMarshal(f, grantedCommand(f)))
	b, _ := newHome(f)
	d := lampDescription()
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseCommand(payload)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("ParseCommand(%q) = %v, want it to wrap ErrBadCommand", payload, err)
			}
			return
		}
		c.Expired(time.Now())
		_ = d.CheckCommand(&c)
		for _, who := range []string{"alice", "door", "carol"} {
			_ = MayCommand(b, who, "lamp", &c)
		}
		enc := mustMarshal(t, &c)
		back, err := ParseCommand(enc)
		if err != nil {
			t.Fatalf("ParseCommand(%q) accepted %+v, whose encoding %s it refuses: %v", payload, c, enc, err)
		}
		if again := mustMarshal(t, &back); !bytes.Equal(enc, again) {
			t.Fatalf("ParseCommand round trip of %q:\n got %s\nwant %s", payload, again, enc)
		}
	})
}

func FuzzParseFeedback(f *testing.F) {
	for _, tt := range feedbackTests {
		f.Add([]byte(tt.payload))
	}
	rules := []*Rule{doorRule(), {ID: "p", A: "door", B: "lamp", When: When{Property: "lux", If: []Cond{{Path: "a", Op: "ge", Value: json.RawMessage(`1`)}}}, Then: Then{Action: "on", InputFrom: "a.b"}}}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fb, err := ParseFeedback(payload)
		if err != nil {
			if !errors.Is(err, ErrBadFeedback) {
				t.Fatalf("ParseFeedback(%q) = %v, want it to wrap ErrBadFeedback", payload, err)
			}
			return
		}
		for _, r := range rules {
			r.Fires(&fb)
		}
		enc := mustMarshal(t, &fb)
		back, err := ParseFeedback(enc)
		if err != nil {
			t.Fatalf("ParseFeedback(%q) accepted it, and refuses its encoding %s: %v", payload, enc, err)
		}
		if again := mustMarshal(t, &back); !bytes.Equal(enc, again) {
			t.Fatalf("ParseFeedback round trip of %q:\n got %s\nwant %s", payload, again, enc)
		}
	})
}

func FuzzSchemaCheck(f *testing.F) {
	for _, tt := range schemaCheckTests {
		f.Add([]byte(tt.schema), []byte(tt.value))
	}
	f.Fuzz(func(t *testing.T, schema, value []byte) {
		var s Schema
		if json.Unmarshal(schema, &s) != nil {
			return
		}
		_ = s.validate(0)
		if err := s.Check(value); err != nil && !errors.Is(err, ErrInput) {
			t.Fatalf("Schema(%s).Check(%q) = %v, want it to wrap ErrInput", schema, value, err)
		}
	})
}

func FuzzRuleVerify(f *testing.F) {
	key := testKey(f, 1)
	device := deviceOf(f, key)
	// Whatever verifies under key's device must be one of the rules signed
	// with it: anything else would be a second rule under one signature.
	signedBytes := map[string]bool{}
	seed := func(r *Rule) {
		if r.Device == device && r.Verify() == nil {
			b, _ := r.SigningBytes()
			signedBytes[string(b)] = true
		}
		f.Add(mustMarshal(f, r))
	}
	seed(signed(f, doorRule(), key))
	seed(grantedCommand(f).Grant)
	seed(doorRule())
	g := goldenRule(f)
	seed(&g)
	events := []*Feedback{
		{Kind: KindEvent, Event: "opened", Data: json.RawMessage(`{"lux":10,"want":{"to":5},"by":{"kind":"dog"}}`), Cause: CauseLocal},
		{Kind: KindState, Props: map[string]json.RawMessage{"lux": json.RawMessage(`3`)}, Cause: CauseLocal},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Rule
		if json.Unmarshal(data, &r) != nil {
			return
		}
		for _, e := range events {
			r.Fires(e)
		}
		err := r.Verify()
		if err != nil {
			if !errors.Is(err, ErrBadRule) {
				t.Fatalf("Verify(%s) = %v, want it to wrap ErrBadRule", data, err)
			}
			return
		}
		b, err := r.SigningBytes()
		if err != nil {
			t.Fatalf("SigningBytes of a verified rule: %v", err)
		}
		if r.Device == device && !signedBytes[string(b)] {
			t.Fatalf("Verify(%s) = nil, for signing bytes %q never signed", data, b)
		}
		var back Rule
		if err := json.Unmarshal(mustMarshal(t, &r), &back); err != nil {
			t.Fatal(err)
		}
		if err := back.Verify(); err != nil {
			t.Fatalf("Verify(%s) = nil, and of its encoding %v", data, err)
		}
	})
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
