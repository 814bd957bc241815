package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/examples"
	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/thing"
)

// thingHome is alice with a lamp and a door sensor bound to her, each
// thing a node whose device program is the example sh script.
type thingHome struct {
	srv               *serverProc
	data              string
	alice, lamp, door *nodeProc
}

var pairingCode = regexp.MustCompile(`pairing code: (\d+)`)

func newThingHome(t *testing.T) *thingHome {
	t.Helper()
	h := &thingHome{data: newAccounts(t, "alice")}
	codes := make(map[string]string)
	for _, th := range []string{"lamp", "door"} {
		m := pairingCode.FindStringSubmatch(addUser(t, h.data, th, th+"-pw", "--thing"))
		if m == nil {
			t.Fatalf("user add %s --thing printed no pairing code", th)
		}
		codes[th] = m[1]
	}
	scripts := t.TempDir()
	for name, script := range map[string]string{"lamp.sh": examples.Lamp, "doorsensor.sh": examples.DoorSensor} {
		if err := os.WriteFile(filepath.Join(scripts, name), []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.srv = startServer(t, h.data)
	broker := "tcp://" + h.srv.mqtt
	h.alice = startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	h.lamp = launch(t, &nodeProc{t: t, user: "lamp", pass: "lamp-pw", home: t.TempDir(), server: broker,
		args: []string{"--thing-handler", "sh " + filepath.Join(scripts, "lamp.sh")}})
	h.door = launch(t, &nodeProc{t: t, user: "door", pass: "door-pw", home: t.TempDir(), server: broker,
		args: []string{"--thing-handler", "sh " + filepath.Join(scripts, "doorsensor.sh")}})
	for _, th := range []*nodeProc{h.lamp, h.door} {
		h.alice.must("thing", "bind", th.user, codes[th.user])
		th.eventually(20*time.Second, "it is bound and described, its program running", func() (bool, string) {
			st := th.status()
			return st.Thing != nil && st.Thing.Description >= 1 && st.Thing.Program == node.ProgramRunning, fmt.Sprintf("%+v", st.Thing)
		})
	}
	return h
}

// associate associates door and lamp and adds rules, then waits until
// the things' nodes run them and know each other.
func (h *thingHome) associate(t *testing.T, rules ...[]string) {
	t.Helper()
	h.alice.must("thing", "associate", "door", "lamp")
	active := map[string]int{}
	for _, r := range rules {
		h.alice.must(append([]string{"thing", "rule", "add"}, r...)...)
		active[r[0]]++
	}
	for _, th := range []*nodeProc{h.door, h.lamp} {
		other := map[string]string{"door": "lamp", "lamp": "door"}[th.user]
		th.eventually(20*time.Second, "it runs its rules and knows "+other, func() (bool, string) {
			st := th.status()
			peers := th.client()
			rows, err := peers.Peers(t.Context())
			known := err == nil && slices.ContainsFunc(rows, func(p node.PeerRow) bool { return p.User == other })
			return st.Thing != nil && st.Thing.Rules.Active == active[th.user] && known,
				fmt.Sprintf("rules %+v, %s known %v", st.Thing.Rules, other, known)
		})
	}
}

// lastCommand returns alice's latest command to th.
func (h *thingHome) lastCommand(t *testing.T, th string) localdb.Command {
	t.Helper()
	cmds, err := h.alice.client().Commands(t.Context(), th, 1)
	if err != nil || len(cmds) == 0 {
		t.Fatalf("alice's commands to %s: %v, %v", th, cmds, err)
	}
	return cmds[0]
}

// A command to a thing whose node is down waits and runs when the thing
// is back, if still valid; one that expires first is answered timeout by
// the person's node and, when the thing comes back, by the thing too,
// which never runs it.
func TestThingOffline(t *testing.T) {
	t.Parallel()
	h := newThingHome(t)
	// The lamp described itself to the server, which serves it to alice.
	var desc node.ThingDescription
	if err := json.Unmarshal([]byte(h.alice.must("thing", "describe", "lamp", "--json")), &desc); err != nil {
		t.Fatal(err)
	}
	if desc.Source != node.SourceServer || desc.Description == nil || desc.Description.Actions["toggle"] == nil {
		t.Errorf("thing describe lamp --json = %+v, want the lamp's description from the server", desc)
	}
	h.lamp.stop()

	done := make(chan cliResult, 1)
	go func() {
		done <- h.alice.runCLI("thing", "do", "lamp", "set", `{"on":true,"brightness":60}`, "--timeout", "30s")
	}()
	time.Sleep(time.Second)
	h.lamp.start()
	r := <-done
	if r.code != 0 || !strings.Contains(r.stdout, "done") {
		t.Fatalf("thing do while the lamp was down = exit %d\n%s%s, want done once it is back", r.code, r.stdout, r.stderr)
	}

	h.lamp.stop()
	r = h.alice.runCLI("thing", "do", "lamp", "toggle", "--timeout", "1s")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "timeout") {
		t.Fatalf("thing do of an expiring command to a stopped lamp = exit %d\n%s%s, want a timeout", r.code, r.stdout, r.stderr)
	}
	expired := h.lastCommand(t, "lamp")
	h.lamp.start()
	h.alice.waitFeedback("lamp", expired.MsgId, thing.KindResult, thing.ResultTimeout)
	time.Sleep(500 * time.Millisecond)
	// The lamp reports its state again when its program restarts (cause
	// local); nothing it reports may be caused by the expired command.
	for _, fb := range h.alice.feedback("lamp", expired.MsgId) {
		if fb.Kind == thing.KindState || fb.Kind == thing.KindResult && fb.Status != thing.ResultTimeout {
			t.Errorf("the lamp answered the expired command with %+v", fb)
		}
	}
}

// The chain of three, person → thing → thing → person: alice opens the
// door, the door's opened event toggles the lamp under alice's rule, and
// the lamp's result comes back to alice as part of her command; once
// with the server up, once with it stopped (the nodes talk directly).
func TestThingChain(t *testing.T) {
	t.Parallel()
	h := newThingHome(t)
	h.associate(t, []string{"door", "lamp", "--when", "event:opened", "--then", "toggle"})
	chain := func(when string) {
		t.Helper()
		h.alice.must("thing", "do", "door", "close")
		out := h.alice.must("thing", "do", "door", "open")
		id := regexp.MustCompile(`\b[0-9A-Z]{26}\b`).FindString(out)
		h.alice.eventually(20*time.Second, when+": the lamp's result reaches alice in her command's chain", func() (bool, string) {
			c := h.lastCommand(t, "door")
			return c.MsgId == id && slices.ContainsFunc(c.Chain, func(l localdb.ChainLink) bool {
				return l.Thing == "lamp" && l.Kind == thing.KindResult && l.Status == thing.ResultDone && l.Hops == 1
			}), fmt.Sprintf("%+v", c)
		})
	}
	chain("server up")
	if err := h.srv.stop(t); err != nil {
		t.Fatalf("server after SIGTERM: %v", err)
	}
	for _, n := range []*nodeProc{h.alice, h.door, h.lamp} {
		n.eventually(15*time.Second, "it sees the server gone", func() (bool, string) {
			st := n.status()
			return st.Server == node.ServerDisconnected, st.Server
		})
	}
	chain("server down")
}

// Two rules that feed each other (the door opening toggles the lamp, the
// lamp's on property opens the door) would run forever; the loop guards
// cut the chain, the lamp is switched a bounded number of times, and the
// dropped firing is visible in the things' status.
func TestThingLoopIsCut(t *testing.T) {
	t.Parallel()
	h := newThingHome(t)
	h.associate(t,
		[]string{"door", "lamp", "--when", "prop:open", "--then", "toggle"},
		[]string{"lamp", "door", "--when", "prop:on", "--then", "open"})
	h.alice.must("thing", "do", "lamp", "toggle")
	var dropped map[string]int64
	h.alice.eventually(20*time.Second, "a firing is dropped on one of the things", func() (bool, string) {
		dropped = map[string]int64{}
		for _, th := range []*nodeProc{h.door, h.lamp} {
			for why, n := range th.status().Thing.Rules.Dropped {
				dropped[why] += n
			}
		}
		return len(dropped) > 0, fmt.Sprint(dropped)
	})
	toggles := func() int {
		n := 0
		for _, l := range h.lastCommand(t, "lamp").Chain {
			if l.Thing == "lamp" && l.Kind == thing.KindResult {
				n++
			}
		}
		return n
	}
	first := toggles()
	time.Sleep(2 * time.Second)
	if got := toggles(); got != first || got > thing.MaxHops {
		t.Errorf("the lamp ran %d rule commands, then %d: want the loop cut at most %d hops deep", first, got, thing.MaxHops)
	}
	t.Logf("loop cut after %d rule toggles of the lamp; dropped firings %v", first, dropped)
}
