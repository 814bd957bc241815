package node

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mqtter/mqtter/thing"
)

// FuzzParseProgramLine feeds arbitrary bytes as a device program's
// output: the line reader never panics, hands over no line longer than
// its limit, and every line the parser takes is feedback of a kind a
// program may write that, once the node fills in the cause, validates
// and encodes.
func FuzzParseProgramLine(f *testing.F) {
	for _, s := range []string{
		`{"kind":"result","cmd":"01JD","status":"done","output":{"on":true}}`,
		`{"kind":"result","cmd":"01JD","status":"failed","error":"jammed"}`,
		`{"kind":"state","props":{"on":true,"brightness":40},"cause":"01JD"}`,
		`{"kind":"state","props":{"on":false}}`,
		`{"kind":"event","event":"opened","data":{"open":true}}`,
		`{"kind":"description","description":{"version":2,"actions":{"toggle":{}}}}`,
		`{"kind":"ack","cmd":"x","status":"accepted"}`,
		`{"kind":"state","props":{}}`,
		`{"kind":"result","cmd":"x","status":"done"} {"kind":"x"}`,
		"not json",
		"",
		"   \t",
		`{"kind":"state","props":{"on":true},"rev":-1}`,
		`{"kind":"event","event":"a b","trace":{"origin":"x","origin_msg":"y","hops":99}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 256
		var lines int
		readLines(bytes.NewReader(append(bytes.Repeat(b, 3), '\n')), limit, func(line []byte, tooLong bool) error {
			lines++
			if !tooLong && len(line) > limit {
				t.Fatalf("a line of %d bytes over the limit %d", len(line), limit)
			}
			return nil
		})
		fb, err := parseProgramLine(b)
		if err != nil {
			return
		}
		switch fb.Kind {
		case thing.KindResult, thing.KindState, thing.KindEvent, thing.KindDescription:
		default:
			t.Fatalf("took feedback of kind %q", fb.Kind)
		}
		if fb.Trace != nil {
			t.Fatal("kept the program's trace")
		}
		if fb.Cause == "" && (fb.Kind == thing.KindState || fb.Kind == thing.KindEvent) {
			fb.Cause = thing.CauseLocal
		}
		if fb.Kind == thing.KindDescription && fb.Description.Thing == "" {
			fb.Description.Thing = "lamp"
		}
		if err := fb.Validate(); err != nil {
			t.Fatalf("took %q, which does not validate: %v", b, err)
		}
		if _, err := json.Marshal(&fb); err != nil {
			t.Fatalf("took %q, which does not encode: %v", b, err)
		}
		if strings.TrimSpace(string(b)) == "" {
			t.Fatal("took a blank line")
		}
	})
}
