package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// s2sSecret is the server token of the homes' servers.
const s2sSecret = "s2s-things-token"

// home is a server with a household: alice owns the lamp and the switch,
// which are associated; bob and carol are strangers to them; dave is
// alice's friend. alice, the lamp and the switch are signed devices (with
// keys, as nodes), the others plain MQTT clients.
type home struct {
	inst             *servertest.Instance
	alice, lamp, sw  *servertest.Client
	aliceKey, swKey  crypto.PrivKey
	bob, carol, dave *servertest.Client
	kettle           *servertest.Client // bound to nobody
}

func newHome(t *testing.T) *home {
	t.Helper()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.S2SToken = s2sSecret }))
	people(t, inst, "alice", "bob", "carol", "dave")
	h := &home{inst: inst}
	lampCode := inst.AddUser(t, "lamp", password("lamp"), true)
	swCode := inst.AddUser(t, "switch", password("switch"), true)
	inst.AddUser(t, "kettle", password("kettle"), true)
	h.alice, h.aliceKey = signedUser(t, inst, "alice")
	h.lamp, _ = signedUser(t, inst, "lamp")
	h.sw, h.swKey = signedUser(t, inst, "switch")
	h.kettle = dial(t, inst, "kettle", "kettle-1")
	h.bob, h.carol, h.dave = dial(t, inst, "bob", "bob-1"), dial(t, inst, "carol", "carol-1"), dial(t, inst, "dave", "dave-1")
	h.alice.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: lampCode}, nil)
	h.alice.OK("bind_thing", wire.BindThingReq{Thing: "switch", Code: swCode}, nil)
	h.alice.OK("associate", wire.AssociateReq{A: "lamp", B: "switch"}, nil)
	befriend(t, h.alice, h.dave)
	for _, cl := range []*servertest.Client{h.alice, h.lamp, h.sw, h.bob, h.carol, h.dave, h.kettle} {
		cl.Drain(50 * time.Millisecond)
	}
	return h
}

// bindAgain binds thing (whose client is thingCl) to person with a fresh
// pairing code.
func bindAgain(t *testing.T, person, thingCl *servertest.Client) {
	t.Helper()
	var code wire.PairingCode
	thingCl.OK("pairing_code", wire.Empty{}, &code)
	person.OK("bind_thing", wire.BindThingReq{Thing: thingCl.User, Code: code.Code}, nil)
}

// commandMsg is an unsigned message of type command from from to to.
func commandMsg(from, to string, c thing.Command) wire.Message {
	return wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.DM(from, to), MsgType: wire.MsgTypeCommand,
		Payload: mustJSON(c), TimeCreate: time.Now().UnixMilli()}
}

// feedbackMsg is an unsigned message of type feedback from from to to.
func feedbackMsg(from, to string, f thing.Feedback) wire.Message {
	return wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.DM(from, to), MsgType: wire.MsgTypeFeedback,
		Payload: mustJSON(f), TimeCreate: time.Now().UnixMilli()}
}

// personCommand is a person's command to run action.
func personCommand(from, action string) thing.Command {
	return thing.Command{Action: action, Expires: time.Now().Add(time.Minute).UnixMilli(),
		Trace: thing.Trace{Origin: from, OriginMsg: wire.NewMsgID()}}
}

// ruleCommand is the command r's A sends its B when r fires.
func ruleCommand(r *thing.Rule) thing.Command {
	return thing.Command{Action: r.Then.Action, Expires: time.Now().Add(time.Minute).UnixMilli(),
		Trace: thing.Trace{Origin: r.A, OriginMsg: wire.NewMsgID(), Rule: r.ID, Hops: 1}, Grant: r}
}

// newRule makes rule id, "when a's button is pressed, b runs action",
// made by by and signed with key.
func newRule(t *testing.T, key crypto.PrivKey, id, a, b, by, action string) thing.Rule {
	t.Helper()
	r := thing.Rule{ID: id, A: a, B: b, When: thing.When{Event: "pressed"}, Then: thing.Then{Action: action},
		By: by, Created: time.Now().UnixMilli()}
	if err := r.Sign(key); err != nil {
		t.Fatalf("sign rule: %v", err)
	}
	return r
}

// signMsg signs m as from with key.
func signMsg(t *testing.T, key crypto.PrivKey, from string, m wire.Message) wire.Message {
	t.Helper()
	m.From = from
	if err := m.Sign(key); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return m
}

// lampDescription is version v of the lamp's description.
func lampDescription(v int64, title string) thing.Description {
	return thing.Description{Thing: "lamp", Version: v, Title: title,
		Properties: map[string]*thing.Property{"on": {Schema: thing.Schema{Type: "boolean"}, Observable: true}},
		Actions:    map[string]*thing.Action{"toggle": {}, "dim": {Input: &thing.Schema{Type: "integer"}}}}
}

// listRules returns the ids of cl's list_rules answer for thing ("" for
// all it may see).
func listRules(t *testing.T, cl *servertest.Client, name string) []string {
	t.Helper()
	var rules []thing.Rule
	cl.OK(wire.MethodListRules, thing.ThingReq{Thing: name}, &rules)
	ids := []string{}
	for _, r := range rules {
		ids = append(ids, r.ID)
	}
	return ids
}

// thingEvent waits for the next relation push with event about user.
func thingEvent(t *testing.T, cl *servertest.Client, event, user string) {
	t.Helper()
	deadline := time.Now().Add(servertest.Timeout)
	for time.Now().Before(deadline) {
		if ev := relationEvent(t, cl, event); ev.User == user {
			return
		}
	}
	t.Fatalf("%s: no %s event about %s", cl.Device, event, user)
}

// noThingEvent fails if a relation push with event comes within quiet.
func noThingEvent(t *testing.T, cl *servertest.Client, event string) {
	t.Helper()
	for _, p := range cl.Drain(quiet) {
		var ev wire.RelationEvent
		if p.Topic == wire.PushRelation && json.Unmarshal(p.Body, &ev) == nil && ev.Event == event {
			t.Errorf("%s: unexpected %s event: %s", cl.Device, event, p.Body)
		}
	}
}
