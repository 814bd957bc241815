package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/examples"
	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// plainDevice is a thing's plain MQTT client (paho, as an MQTT library on
// a microcontroller) that does what docs/protocol.md tells such a device.
type plainDevice struct {
	t    *testing.T
	name string
	cl   *servertest.Client
}

func dialPlain(t *testing.T, broker, name, clientID string) *plainDevice {
	t.Helper()
	cl, err := servertest.TryDial(t, broker, name, name+"-pw", clientID)
	if err != nil {
		t.Fatalf("%s's MQTT client: %v", name, err)
	}
	return &plainDevice{t: t, name: name, cl: cl}
}

// describe publishes the thing's description.
func (d *plainDevice) describe(actions []string, events ...string) {
	d.t.Helper()
	desc := thing.Description{Thing: d.name, Version: 1, Actions: map[string]*thing.Action{}, Events: map[string]*thing.Event{}}
	for _, a := range actions {
		desc.Actions[a] = &thing.Action{}
	}
	for _, e := range events {
		desc.Events[e] = &thing.Event{}
	}
	d.cl.OK(wire.MethodDescribe, desc, nil)
}

// command waits for the next command to this thing (not one of its own
// rule's, which its devices see too) and checks its expiry.
func (d *plainDevice) command() (wire.News, thing.Command) {
	d.t.Helper()
	for {
		n := d.cl.News()
		if n.Message.MsgType != wire.MsgTypeCommand || n.Message.From == d.name {
			continue
		}
		c, err := thing.ParseCommand(n.Message.Payload)
		if err != nil || c.Expired(time.Now()) {
			d.t.Fatalf("%s got %s (%v), want an unexpired command", d.name, n.Message.Payload, err)
		}
		return n, c
	}
}

// send writes fb unsigned in feeds.
func (d *plainDevice) send(feeds string, fb thing.Feedback) {
	d.t.Helper()
	p, err := json.Marshal(fb)
	if err != nil {
		d.t.Fatal(err)
	}
	d.cl.OK(wire.MethodSend, wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds, MsgType: wire.MsgTypeFeedback,
		Payload: p, TimeCreate: time.Now().UnixMilli()}, nil)
}

// answer acks and answers the command of n done.
func (d *plainDevice) answer(n wire.News, c thing.Command) {
	d.t.Helper()
	d.send(n.Feeds, thing.Feedback{Kind: thing.KindAck, Cmd: n.Message.MsgId, Status: thing.AckAccepted, Trace: &c.Trace})
	d.send(n.Feeds, thing.Feedback{Kind: thing.KindResult, Cmd: n.Message.MsgId, Action: c.Action, Status: thing.ResultDone, Trace: &c.Trace})
}

// plainChainHome is alice's node with a door that is a plain MQTT device,
// bound to her, and a lamp, a plain device too or (lampScript) a node
// with the example lamp script as its program; door and lamp are
// associated.
type plainChainHome struct {
	srv        *serverProc
	alice      *nodeProc
	door       *plainDevice
	lamp       *plainDevice // nil when the lamp is a node
	lampNode   *nodeProc
	broker     string
	lampDevice string
}

func newPlainChainHome(t *testing.T, lampNode bool) *plainChainHome {
	t.Helper()
	data := newAccounts(t, "alice")
	codes := map[string]string{}
	for _, th := range []string{"door", "lamp"} {
		m := pairingCode.FindStringSubmatch(addUser(t, data, th, th+"-pw", "--thing"))
		if m == nil {
			t.Fatalf("user add %s --thing printed no pairing code", th)
		}
		codes[th] = m[1]
	}
	h := &plainChainHome{srv: startServer(t, data), lampDevice: "lamp-esp32"}
	h.broker = "tcp://" + h.srv.mqtt
	h.alice = startNode(t, h.broker, t.TempDir(), "alice", "alice-pw")
	h.door = dialPlain(t, h.broker, "door", "door-esp32")
	h.door.describe([]string{"open", "close"}, "opened")
	h.alice.must("thing", "bind", "door", codes["door"])
	if lampNode {
		script := filepath.Join(t.TempDir(), "lamp.sh")
		if err := os.WriteFile(script, []byte(examples.Lamp), 0o600); err != nil {
			t.Fatal(err)
		}
		h.lampNode = launch(t, &nodeProc{t: t, user: "lamp", pass: "lamp-pw", home: t.TempDir(), server: h.broker,
			args: []string{"--thing-handler", "sh " + script}})
	} else {
		h.lamp = dialPlain(t, h.broker, "lamp", h.lampDevice)
		h.lamp.describe([]string{"toggle"})
	}
	h.alice.must("thing", "bind", "lamp", codes["lamp"])
	if lampNode {
		h.lampNode.eventually(20*time.Second, "it is bound and described, its program running", func() (bool, string) {
			st := h.lampNode.status()
			return st.Thing != nil && st.Thing.Description >= 1 && st.Thing.Program == node.ProgramRunning, fmt.Sprintf("%+v", st.Thing)
		})
	}
	h.alice.must("thing", "associate", "door", "lamp")
	return h
}

// lastCommand returns alice's latest command to th.
func (h *plainChainHome) lastCommand(t *testing.T, th string) localdb.Command {
	t.Helper()
	cmds, err := h.alice.client().Commands(t.Context(), th, 1)
	if err != nil || len(cmds) == 0 {
		t.Fatalf("alice's commands to %s: %v, %v", th, cmds, err)
	}
	return cmds[0]
}

// openDoor has alice open the door; the door answers, reporting its
// opened event caused by her command to her, which fires her rule on the
// server. It returns her command's MsgId.
func (h *plainChainHome) openDoor(t *testing.T) string {
	t.Helper()
	done := make(chan cliResult, 1)
	go func() { done <- h.alice.runCLI("thing", "do", "door", "open", "--timeout", "20s") }()
	n, c := h.door.command()
	h.door.send(n.Feeds, thing.Feedback{Kind: thing.KindEvent, Event: "opened", Cause: n.Message.MsgId, Trace: &c.Trace})
	h.door.answer(n, c)
	if r := <-done; r.code != 0 || !strings.Contains(r.stdout, "done") {
		t.Fatalf("thing do door open = exit %d\n%s%s, want done", r.code, r.stdout, r.stderr)
	}
	if c.Trace.Origin != "alice" {
		t.Fatalf("alice's command's trace %+v", c.Trace)
	}
	return n.Message.MsgId
}

// waitChain waits until alice's command id holds the lamp's result, one
// hop down her chain.
func (h *plainChainHome) waitChain(t *testing.T, id string) {
	t.Helper()
	h.alice.eventually(20*time.Second, "the lamp's result reaches alice in her command's chain", func() (bool, string) {
		c := h.lastCommand(t, "door")
		return c.MsgId == id && slices.ContainsFunc(c.Chain, func(l localdb.ChainLink) bool {
			return l.Thing == "lamp" && l.Kind == thing.KindResult && l.Status == thing.ResultDone && l.Hops == 1
		}), fmt.Sprintf("%+v", c)
	})
}

// Two things without a node take part in alice's rule, which the server
// runs: alice (her node, the built binary) adds "door opened → lamp
// toggle" with `thing rule add`, opens the door; the door's event fires
// the rule on the server; the lamp's MQTT client gets the command from
// the door with the rule as grant and alice's chain as trace, and answers
// in its dm with the door; alice sees the result in her command's chain.
func TestPlainThingsChain(t *testing.T) {
	t.Parallel()
	h := newPlainChainHome(t, false)
	h.alice.must("thing", "rule", "add", "door", "lamp", "--when", "event:opened", "--then", "toggle")
	id := h.openDoor(t)
	n, c := h.lamp.command()
	if n.Message.From != "door" || n.Message.Device != wire.ServerDevice || c.Grant == nil || c.Grant.A != "door" ||
		c.Trace.Origin != "alice" || c.Trace.Hops != 1 || c.Trace.Rule != c.Grant.ID {
		t.Fatalf("the lamp got %+v from %s (Device %q), want the door's toggle under alice's rule, one hop down her chain",
			c, n.Message.From, n.Message.Device)
	}
	h.lamp.answer(n, c)
	h.waitChain(t, id)
	out := h.alice.must("thing", "commands", "door")
	if !strings.Contains(out, "lamp") {
		t.Errorf("thing commands door = %q, want the lamp's result in the chain", out)
	}
}

// The same chain with the lamp a node (the example lamp script): its node
// takes the command the server wrote for the door (unsigned, pushed),
// checks the grant against its book, runs it, and sends the result to
// the door and to alice, the chain's origin.
func TestPlainThingCommandsANode(t *testing.T) {
	t.Parallel()
	h := newPlainChainHome(t, true)
	h.alice.must("thing", "rule", "add", "door", "lamp", "--when", "event:opened", "--then", "toggle")
	id := h.openDoor(t)
	h.waitChain(t, id)
	if st := h.lampNode.status(); st.Counters["refused"] != 0 {
		t.Errorf("the lamp's node refused %d messages", st.Counters["refused"])
	}
}

// A command that expires while its plain thing is offline is never
// delivered to it when it comes back; alice sees the result timeout the
// server records on the lamp's behalf.
func TestPlainThingExpiredCommand(t *testing.T) {
	t.Parallel()
	h := newPlainChainHome(t, false)
	h.lamp.cl.Close()
	r := h.alice.runCLI("thing", "do", "lamp", "toggle", "--timeout", "1s")
	if r.code == 0 {
		t.Fatalf("thing do to an offline lamp = exit 0\n%s", r.stdout)
	}
	id := h.lastCommand(t, "lamp").MsgId
	lamp := dialPlain(t, h.broker, "lamp", h.lampDevice)
	fb := h.alice.waitFeedback("lamp", id, thing.KindResult, thing.ResultTimeout)
	if fb.Error != "expired before delivery" {
		t.Errorf("alice's timeout says %q, want expired before delivery", fb.Error)
	}
	for _, p := range lamp.cl.Drain(time.Second) {
		if strings.Contains(string(p.Body), id) && strings.Contains(string(p.Body), `"MsgType":"command"`) {
			t.Errorf("the expired command came to the lamp on %s", p.Topic)
		}
	}
	if out := h.alice.must("thing", "commands", "lamp"); !strings.Contains(out, "timeout") {
		t.Errorf("thing commands lamp = %q, want timeout", out)
	}
}
