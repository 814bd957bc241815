package examples

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/mqtter/mqtter/thing"
)

// runScript feeds the invocations to a script under sh and returns the
// feedback lines it wrote, each parsed and checked as a node would.
func runScript(t *testing.T, script string, invs ...thing.Invocation) []thing.Feedback {
	t.Helper()
	var in strings.Builder
	for _, inv := range invs {
		b, err := json.Marshal(inv)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(append(b, '\n'))
	}
	in.WriteString("not json\n") // a bad line is skipped, not fatal
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	var fbs []thing.Feedback
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var fb thing.Feedback
		err := json.Unmarshal(sc.Bytes(), &fb)
		if err == nil && fb.Description != nil && fb.Description.Thing == "" {
			fb.Description.Thing = "x" // the node fills in the thing's account
		}
		if err == nil {
			err = fb.Validate()
		}
		if err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		fbs = append(fbs, fb)
	}
	return fbs
}

func invoke(cmd, action string, input string, write map[string]json.RawMessage) thing.Invocation {
	c := thing.Command{Action: action, Write: write, Expires: 1, Trace: thing.Trace{Origin: "alice", OriginMsg: cmd}}
	if input != "" {
		c.Input = json.RawMessage(input)
	}
	return thing.NewInvocation(cmd, "alice", &c)
}

func TestLamp(t *testing.T) {
	fbs := runScript(t, Lamp,
		invoke("c1", "set", `{"on":true,"brightness":40}`, nil),
		invoke("c2", "toggle", "", nil),
		invoke("c3", "", "", map[string]json.RawMessage{"brightness": json.RawMessage("7")}),
		invoke("c4", "dance", "", nil))
	var got []string
	for _, fb := range fbs {
		switch fb.Kind {
		case thing.KindDescription:
			for _, a := range []string{"toggle", "set"} {
				if fb.Description.Actions[a] == nil {
					t.Errorf("the lamp's description has no action %s", a)
				}
			}
			continue
		case thing.KindState:
			got = append(got, "state "+fb.Cause+" on="+string(fb.Props["on"])+" brightness="+string(fb.Props["brightness"]))
		case thing.KindResult:
			got = append(got, "result "+fb.Cmd+" "+fb.Status)
		}
	}
	want := []string{
		"state local on=false brightness=100",
		"state c1 on=true brightness=40", "result c1 done",
		"state c2 on=false brightness=40", "result c2 done",
		"state c3 on=false brightness=7", "result c3 done",
		"result c4 failed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lamp.sh wrote\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDoorSensor(t *testing.T) {
	fbs := runScript(t, DoorSensor,
		invoke("c1", "open", "", nil), invoke("c2", "open", "", nil),
		invoke("c3", "close", "", nil), invoke("c4", "fly", "", nil))
	var got []string
	for _, fb := range fbs {
		switch fb.Kind {
		case thing.KindState:
			got = append(got, "state "+fb.Cause+" open="+string(fb.Props["open"]))
		case thing.KindEvent:
			got = append(got, "event "+fb.Cause+" "+fb.Event)
		case thing.KindResult:
			got = append(got, "result "+fb.Cmd+" "+fb.Status)
		}
	}
	want := []string{
		"state c1 open=true", "event c1 opened", "result c1 done",
		"state c2 open=true", "result c2 done", // already open: no event
		"state c3 open=false", "result c3 done",
		"result c4 failed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("doorsensor.sh wrote\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
