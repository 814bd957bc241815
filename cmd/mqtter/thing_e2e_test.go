package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// buildExample builds one of the example device programs.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	b, err := exec.Command(gobin, "build", "-o", out, "github.com/mqtter/mqtter/examples/"+name).CombinedOutput()
	if err != nil {
		t.Fatalf("build examples/%s: %v\n%s", name, err, b)
	}
	return out
}

// client dials the node's local API.
func (n *nodeProc) client() *node.Client {
	n.t.Helper()
	cl, err := node.Dial(n.home)
	if err != nil {
		n.t.Fatalf("%s: dial: %v", n.user, err)
	}
	return cl
}

// feedback returns the feedback about cmd that n holds from th: in their
// dm (acks, results) and in the thing's feed (state, events), each read
// with the history command.
func (n *nodeProc) feedback(th, cmd string) []thing.Feedback {
	var out []thing.Feedback
	for _, m := range append(n.history(th), n.history(wire.ThingFeeds(th))...) {
		if m.MsgType != wire.MsgTypeFeedback {
			continue
		}
		if fb, err := thing.ParseFeedback(m.Payload); err == nil && (fb.Cmd == cmd || fb.Cause == cmd) {
			out = append(out, fb)
		}
	}
	return out
}

// waitFeedback waits until n holds feedback of kind and status about cmd.
func (n *nodeProc) waitFeedback(th, cmd, kind, status string) thing.Feedback {
	n.t.Helper()
	var got thing.Feedback
	n.eventually(20*time.Second, fmt.Sprintf("%s %s of %s", kind, status, cmd), func() (bool, string) {
		fbs := n.feedback(th, cmd)
		for _, f := range fbs {
			if f.Kind == kind && (status == "" || f.Status == status) {
				got = f
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", fbs)
	})
	return got
}

// The built binary with the example lamp as its --thing-handler: a bound
// person's command runs on the lamp and comes back as ack, state and
// result. Then the lamp's node is killed (SIGKILL) while its program
// holds a command; started again, it answers that command failed and its
// new program never gets it.
func TestThingNodeWithTheExampleLamp(t *testing.T) {
	lampBin := buildExample(t, "lamp")
	data := newAccounts(t, "alice")
	addUser(t, data, "lamp", "lamp-pw", "--thing")
	srv := startServer(t, data)
	broker := "tcp://" + srv.mqtt
	alice := startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	lampHome := t.TempDir()
	lamp := launch(t, &nodeProc{t: t, user: "lamp", pass: "lamp-pw", home: lampHome, server: broker,
		args: []string{"--thing-handler", lampBin}})
	ctx := t.Context()
	var code wire.PairingCode
	if err := lamp.client().Call(ctx, wire.MethodPairingCode, wire.Empty{}, &code); err != nil {
		t.Fatal(err)
	}
	if err := alice.client().Call(ctx, wire.MethodBindThing, wire.BindThingReq{Thing: "lamp", Code: code.Code}, nil); err != nil {
		t.Fatal(err)
	}
	lamp.eventually(20*time.Second, "it knows it is bound, and has its description", func() (bool, string) {
		st := lamp.status()
		return st.Thing != nil && st.Thing.Description >= 1 && st.Thing.Program == node.ProgramRunning, fmt.Sprintf("%+v", st.Thing)
	})
	command := func(action, input string) string {
		c := thing.Command{Action: action, Expires: time.Now().Add(time.Minute).UnixMilli(),
			Trace: thing.Trace{Origin: "alice", OriginMsg: wire.NewMsgID()}}
		if input != "" {
			c.Input = json.RawMessage(input)
		}
		p, _ := json.Marshal(&c)
		var res node.SendResult
		alice.eventually(20*time.Second, "the command goes", func() (bool, string) {
			var err error
			res, err = alice.client().Send(ctx, node.SendRequest{To: "lamp", MsgType: wire.MsgTypeCommand, Payload: p})
			return err == nil, fmt.Sprint(err)
		})
		return res.MsgId
	}

	set := command("set", `{"on":true,"brightness":30}`)
	alice.waitFeedback("lamp", set, thing.KindAck, thing.AckAccepted)
	state := alice.waitFeedback("lamp", set, thing.KindState, "")
	if string(state.Props["brightness"]) != "30" || string(state.Props["on"]) != "true" {
		t.Errorf("state after set = %s, want on and 30", mustJSON(t, state.Props))
	}
	result := alice.waitFeedback("lamp", set, thing.KindResult, thing.ResultDone)
	if !strings.Contains(string(result.Output), `"brightness":30`) {
		t.Errorf("result output = %s", result.Output)
	}

	// A program that takes commands and never answers; the node dies
	// while it holds one.
	held := filepath.Join(t.TempDir(), "held")
	lamp.stop()
	lamp.args = []string{"--thing-handler", "exec cat >> " + held}
	lamp.start()
	toggle := command("toggle", "")
	alice.waitFeedback("lamp", toggle, thing.KindAck, thing.AckAccepted)
	lamp.eventually(20*time.Second, "the program holds the command", func() (bool, string) {
		b, _ := os.ReadFile(held)
		return strings.Contains(string(b), toggle), string(b)
	})
	lamp.kill()

	lamp.args = []string{"--thing-handler", lampBin}
	lamp.start()
	failed := alice.waitFeedback("lamp", toggle, thing.KindResult, thing.ResultFailed)
	if !strings.Contains(failed.Error, "interrupted") {
		t.Errorf("result after the crash = %+v, want failed: interrupted", failed)
	}
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(lamp.out.String(), "lamp: toggle") {
		t.Error("the new program ran the interrupted toggle")
	}
	if b, _ := os.ReadFile(held); strings.Count(string(b), toggle) != 1 {
		t.Errorf("the held program got %q, want the toggle once", b)
	}
}
