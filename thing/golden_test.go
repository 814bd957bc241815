package thing

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden examples in testdata from the tests' values")

// The golden examples are one story that the docs cite: alice fades her lamp
// (command), the lamp acknowledges it (ack), does it (result) and reports
// its new state (state); the door reports it opened (event), which fires
// alice's rule (rule) that fades the lamp to the level the event asks for.
// The lamp says what it can do with description and, as feedback,
// feedback_description.

func goldenCommand() *Command {
	return &Command{
		Action:  "fade",
		Input:   json.RawMessage(`{"to":60,"ms":500}`),
		Expires: 1_700_000_030_000,
		Trace:   Trace{Origin: "alice", OriginMsg: "01HF7YAT00RGB4AXTHPC4TVSXW", Hops: 0},
	}
}

func goldenFeedback() map[string]*Feedback {
	cmd := "01HF7YAT00RGB4AXTHPC4TVSXW"
	trace := &Trace{Origin: "alice", OriginMsg: cmd}
	return map[string]*Feedback{
		KindAck:    {Kind: KindAck, Cmd: cmd, Action: "fade", Status: AckAccepted, Trace: trace},
		KindResult: {Kind: KindResult, Cmd: cmd, Action: "fade", Status: ResultDone, Output: json.RawMessage(`{"brightness":60}`), Trace: trace},
		KindState: {Kind: KindState, Props: map[string]json.RawMessage{
			"on": json.RawMessage(`true`), "brightness": json.RawMessage(`60`),
		}, Rev: 42, Cause: cmd, Trace: trace},
		KindEvent:       {Kind: KindEvent, Event: "opened", Data: json.RawMessage(`{"lux":12,"want":{"to":60}}`), Cause: CauseLocal},
		KindDescription: {Kind: KindDescription, Description: lampDescription()},
	}
}

func goldenRuleValue(t testing.TB) *Rule {
	r := doorRule()
	r.When.If = r.When.If[:1]
	return signed(t, r, testKey(t, 1))
}

// goldenRule reads the golden rule.
func goldenRule(t testing.TB) Rule {
	t.Helper()
	var r Rule
	if err := json.Unmarshal(readGolden(t, "rule.json"), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%v (go test -run TestGolden -update writes it)", err)
	}
	return b
}

func indent(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestGolden(t *testing.T) {
	type golden struct {
		file  string
		value any
		parse func([]byte) (any, error)
	}
	goldens := []golden{
		{"description.json", lampDescription(), func(b []byte) (any, error) {
			var d Description
			if err := strictDecode(b, &d); err != nil {
				return nil, err
			}
			return &d, d.Validate()
		}},
		{"command.json", goldenCommand(), func(b []byte) (any, error) {
			c, err := ParseCommand(b)
			return &c, err
		}},
		{"rule.json", goldenRuleValue(t), func(b []byte) (any, error) {
			var r Rule
			if err := strictDecode(b, &r); err != nil {
				return nil, err
			}
			return &r, r.Verify()
		}},
	}
	for kind, fb := range goldenFeedback() {
		goldens = append(goldens, golden{"feedback_" + kind + ".json", fb, func(b []byte) (any, error) {
			f, err := ParseFeedback(b)
			return &f, err
		}})
	}
	for _, g := range goldens {
		t.Run(g.file, func(t *testing.T) {
			want := indent(t, g.value)
			if *update {
				if err := os.WriteFile(filepath.Join("testdata", g.file), want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b := readGolden(t, g.file)
			v, err := g.parse(b)
			if err != nil {
				t.Fatalf("parse %s: %v", g.file, err)
			}
			if got := indent(t, v); !bytes.Equal(got, b) {
				t.Errorf("round trip of %s:\n got %s\nwant %s", g.file, got, b)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("%s is not the tests' value (go test -run TestGolden -update):\n got %s\nwant %s", g.file, b, want)
			}
		})
	}
}

// TestGoldenStory checks the examples against each other: the lamp's
// description takes the command, and the door's event fires the rule with
// an input the lamp takes.
func TestGoldenStory(t *testing.T) {
	var d Description
	if err := json.Unmarshal(readGolden(t, "description.json"), &d); err != nil {
		t.Fatal(err)
	}
	c, err := ParseCommand(readGolden(t, "command.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CheckCommand(&c); err != nil {
		t.Errorf("CheckCommand(golden command) = %v, want nil", err)
	}
	ev, err := ParseFeedback(readGolden(t, "feedback_event.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := goldenRule(t)
	fires, input := r.Fires(&ev)
	if !fires {
		t.Fatalf("golden rule Fires(golden event) = false, want true")
	}
	fired := Command{Action: r.Then.Action, Input: input, Expires: 1,
		Trace: Trace{Origin: r.A, OriginMsg: "m", Rule: r.ID, Hops: 1}, Grant: &r}
	if err := d.CheckCommand(&fired); err != nil {
		t.Errorf("CheckCommand(the rule's command, input %s) = %v, want nil", input, err)
	}
	if r.Device != deviceOf(t, testKey(t, 1)) {
		t.Errorf("golden rule Device = %s, want the device of the test key 1", r.Device)
	}
	b, _ := newHome(t)
	if err := MayCommand(b, r.A, r.B, &fired); err != nil {
		t.Errorf("MayCommand(the rule's command) = %v, want nil", err)
	}
}
