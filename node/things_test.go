package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// eventually polls cond until it returns "" or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		last := cond()
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v until %s; last: %s", d, what, last)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// thingNode is a real node of a thing account whose test code plays the
// device program: it reads the commands its node stored and answers with
// feedback through the node's send API.
type thingNode struct {
	t    *testing.T
	name string
	cl   *node.Client
	home string
	stop func() error // stops its node; safe to call twice
}

// command waits until the thing holds the command msgID from person.
func (th *thingNode) command(person, msgID string) thing.Command {
	th.t.Helper()
	var c thing.Command
	eventually(th.t, 15*time.Second, th.name+" gets command "+msgID, func() string {
		h, err := th.cl.History(th.t.Context(), person, 0)
		if err != nil {
			return err.Error()
		}
		for _, m := range h.Messages {
			if m.MsgId == msgID && m.MsgType == wire.MsgTypeCommand {
				if c, err = thing.ParseCommand(m.Payload); err != nil {
					th.t.Fatalf("%s got a command it cannot parse: %v", th.name, err)
				}
				return ""
			}
		}
		return fmt.Sprintf("%d messages", len(h.Messages))
	})
	return c
}

// feedback sends f to person as a feedback message.
func (th *thingNode) feedback(person string, f thing.Feedback) {
	th.t.Helper()
	p, err := json.Marshal(f)
	if err != nil {
		th.t.Fatal(err)
	}
	if _, err := th.cl.Send(th.t.Context(), node.SendRequest{To: person, MsgType: wire.MsgTypeFeedback, Payload: p}); err != nil {
		th.t.Fatalf("%s sends %s feedback: %v", th.name, f.Kind, err)
	}
}

// bindThings starts a server, alice's node, and a node for each thing,
// bound to alice, and waits until each side knows a device of the other.
func bindThings(t *testing.T, things ...string) (*servertest.Instance, *node.Client, string, map[string]*thingNode) {
	t.Helper()
	srv := servertest.Start(t)
	srv.AddUser(t, "alice", "alice-pw", false)
	aliceHome := t.TempDir()
	alice, stop := runNode(t, srv, aliceHome, "alice")
	t.Cleanup(func() { stop() })
	out := map[string]*thingNode{}
	for _, name := range things {
		code := srv.AddUser(t, name, name+"-pw", true)
		home := t.TempDir()
		cl, stopNode := runNode(t, srv, home, name)
		stop := sync.OnceValue(stopNode)
		t.Cleanup(func() { stop() })
		if err := alice.Call(t.Context(), wire.MethodBindThing, wire.BindThingReq{Thing: name, Code: code}, nil); err != nil {
			t.Fatalf("bind %s: %v", name, err)
		}
		out[name] = &thingNode{t: t, name: name, cl: cl, home: home, stop: stop}
	}
	knows := func(cl *node.Client, other string) func() string {
		return func() string {
			peers, err := cl.Peers(t.Context())
			if err != nil {
				return err.Error()
			}
			for _, p := range peers {
				if p.User == other && len(p.Addrs) > 0 {
					return ""
				}
			}
			return fmt.Sprintf("peers %+v", peers)
		}
	}
	for name, th := range out {
		eventually(t, 15*time.Second, "alice knows "+name, knows(alice, name))
		eventually(t, 15*time.Second, name+" knows alice", knows(th.cl, "alice"))
	}
	return srv, alice, aliceHome, out
}

// commandIs waits until alice's row of command id satisfies ok.
func commandIs(t *testing.T, alice *node.Client, thingName, id, what string, ok func(node.CommandRow) bool) node.CommandRow {
	t.Helper()
	var got node.CommandRow
	eventually(t, 15*time.Second, "command "+id+" "+what, func() string {
		rows, err := alice.Commands(t.Context(), thingName, 0)
		if err != nil {
			return err.Error()
		}
		for _, r := range rows {
			if r.MsgId == id {
				got = r
				if ok(r) {
					return ""
				}
				return fmt.Sprintf("%+v", r)
			}
		}
		return fmt.Sprintf("not among %d commands", len(rows))
	})
	return got
}

// A command goes pending → accepted → done with its output; state keeps
// the highest rev; a late ack leaves the result alone; what the chain
// caused at another thing is recorded under the command; and the event
// stream tells of each change.
func TestThingCommandLifecycle(t *testing.T) {
	_, alice, _, things := bindThings(t, "lamp", "fan")
	lamp, fan := things["lamp"], things["fan"]
	ctx := t.Context()

	var mu sync.Mutex
	var seen []string
	evCtx, stopEvents := context.WithCancel(ctx)
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		alice.Events(evCtx, func(ev node.Event) error {
			var r node.CommandRow
			if ev.Type == node.EventCommand && json.Unmarshal(ev.Data, &r) == nil {
				mu.Lock()
				seen = append(seen, r.State)
				mu.Unlock()
			}
			if ev.Type == node.EventThingState {
				mu.Lock()
				seen = append(seen, "thing_state")
				mu.Unlock()
			}
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond) // the stream is up

	before := time.Now()
	row, err := alice.Do(ctx, "lamp", node.DoRequest{Action: "toggle", Input: json.RawMessage(`{"on":true}`), TimeoutMS: 20000})
	if err != nil {
		t.Fatalf("do: %v", err)
	}
	if row.State != localdb.CommandPending || row.Thing != "lamp" || row.Action != "toggle" || row.MsgId == "" {
		t.Fatalf("do = %+v, want a pending toggle of lamp", row)
	}
	cmd := lamp.command("alice", row.MsgId)
	if cmd.Trace != (thing.Trace{Origin: "alice", OriginMsg: row.MsgId}) || string(cmd.Input) != `{"on":true}` {
		t.Errorf("lamp got %+v, want the trace to start at alice's command %s", cmd, row.MsgId)
	}
	if exp := time.UnixMilli(cmd.Expires); exp.Before(before.Add(19*time.Second)) || exp.After(time.Now().Add(21*time.Second)) {
		t.Errorf("command expires %v, want about 20s after it was made", exp)
	}

	lamp.feedback("alice", thing.Feedback{Kind: thing.KindAck, Cmd: row.MsgId, Status: thing.AckAccepted, Trace: &cmd.Trace})
	commandIs(t, alice, "lamp", row.MsgId, "is accepted", func(r node.CommandRow) bool { return r.State == thing.AckAccepted })

	lamp.feedback("alice", thing.Feedback{Kind: thing.KindState, Props: map[string]json.RawMessage{"on": json.RawMessage(`true`)},
		Rev: 3, Cause: row.MsgId, Trace: &cmd.Trace})
	// A report of a lower rev, sent later, leaves "on" alone but adds
	// "level", which no higher report holds.
	lamp.feedback("alice", thing.Feedback{Kind: thing.KindState, Props: map[string]json.RawMessage{
		"on": json.RawMessage(`false`), "level": json.RawMessage(`40`)}, Rev: 2, Cause: thing.CauseLocal})
	eventually(t, 15*time.Second, "both state reports are in", func() string {
		st, err := alice.ThingState(ctx, "lamp")
		if err != nil {
			return err.Error()
		}
		if len(st.Props) != 2 {
			return fmt.Sprintf("%+v", st.Props)
		}
		return ""
	})
	st, _ := alice.ThingState(ctx, "lamp")
	want := map[string]string{"level": "40 rev 2", "on": "true rev 3"}
	for _, p := range st.Props {
		if got := fmt.Sprintf("%s rev %d", p.Value, p.Rev); got != want[p.Name] {
			t.Errorf("state %s = %s, want %s", p.Name, got, want[p.Name])
		}
		if p.AgeMS < 0 || p.AgeMS > 60_000 || p.At == 0 {
			t.Errorf("state %s at %d, age %dms: want a recent report", p.Name, p.At, p.AgeMS)
		}
	}

	// Downstream: the fan, commanded under a rule by some thing, reports
	// its result with a trace that names alice's command.
	down := thing.Trace{Origin: "alice", OriginMsg: row.MsgId, Rule: "r1", Hops: 1}
	fan.feedback("alice", thing.Feedback{Kind: thing.KindResult, Cmd: "a-command-of-the-lamp", Status: thing.ResultDone,
		Output: json.RawMessage(`{"speed":2}`), Trace: &down})

	lamp.feedback("alice", thing.Feedback{Kind: thing.KindResult, Cmd: row.MsgId, Status: thing.ResultDone,
		Output: json.RawMessage(`{"on":true}`), Trace: &cmd.Trace})
	done := commandIs(t, alice, "lamp", row.MsgId, "is done with the fan in its chain", func(r node.CommandRow) bool {
		return r.State == thing.ResultDone && len(r.Chain) >= 2
	})
	if string(done.Output) != `{"on":true}` || done.FinalBy != localdb.FinalThing {
		t.Errorf("done = %+v, want the output, closed by the thing", done)
	}
	var fanLink *localdb.ChainLink
	for i, l := range done.Chain {
		if l.Thing == "fan" {
			fanLink = &done.Chain[i]
		}
	}
	if fanLink == nil || fanLink.Status != thing.ResultDone || string(fanLink.Body) != `{"speed":2}` || fanLink.Hops != 1 {
		t.Errorf("chain = %+v, want the fan's result at hop 1", done.Chain)
	}

	// A late ack, then a marker the test waits for: the result stays.
	lamp.feedback("alice", thing.Feedback{Kind: thing.KindAck, Cmd: row.MsgId, Status: thing.AckAccepted, Trace: &cmd.Trace})
	lamp.feedback("alice", thing.Feedback{Kind: thing.KindState, Props: map[string]json.RawMessage{"marker": json.RawMessage(`1`)},
		Rev: 9, Cause: thing.CauseLocal})
	eventually(t, 15*time.Second, "the marker is in", func() string {
		st, _ := alice.ThingState(ctx, "lamp")
		if len(st.Props) == 3 {
			return ""
		}
		return fmt.Sprintf("%+v", st.Props)
	})
	if r := commandIs(t, alice, "lamp", row.MsgId, "exists", func(node.CommandRow) bool { return true }); r.State != thing.ResultDone {
		t.Errorf("after a late ack the command is %s, want done", r.State)
	}

	stopEvents()
	<-evDone
	mu.Lock()
	got := strings.Join(seen, ",")
	mu.Unlock()
	for _, w := range []string{"pending", "accepted", "done", "thing_state"} {
		if !strings.Contains(got, w) {
			t.Errorf("events %s: want %s among them", got, w)
		}
	}
}

// With wait, do returns the result, or a local timeout when the thing
// never answers; a command to a thing that is not bound is refused at once.
func TestThingCommandWaitTimeoutRefused(t *testing.T) {
	srv, alice, aliceHome, things := bindThings(t, "lamp")
	lamp := things["lamp"]
	ctx := t.Context()
	srv.AddUser(t, "kettle", "kettle-pw", true)

	type answer struct {
		row node.CommandRow
		err error
	}
	got := make(chan answer, 1)
	go func() {
		r, err := alice.Do(ctx, "lamp", node.DoRequest{Action: "brew", TimeoutMS: 20000, Wait: true})
		got <- answer{r, err}
	}()
	var id string
	eventually(t, 15*time.Second, "the command is tracked", func() string {
		rows, err := alice.Commands(ctx, "lamp", 1)
		if err != nil || len(rows) == 0 {
			return fmt.Sprint(rows, err)
		}
		id = rows[0].MsgId
		return ""
	})
	cmd := lamp.command("alice", id)
	lamp.feedback("alice", thing.Feedback{Kind: thing.KindResult, Cmd: id, Status: thing.ResultFailed, Error: "jammed", Trace: &cmd.Trace})
	select {
	case a := <-got:
		if a.err != nil || a.row.State != thing.ResultFailed || a.row.Error != "jammed" {
			t.Errorf("do with wait = %+v, %v; want failed: jammed", a.row, a.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("do with wait did not return on the result")
	}

	// With the lamp's node gone nobody answers (a running thing node
	// answers timeout itself at expiry): alice's node decides, after the
	// grace.
	if err := lamp.stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := alice.Do(ctx, "lamp", node.DoRequest{Action: "brew", TimeoutMS: 300, Wait: true})
	took := time.Since(start)
	if err != nil || r.State != thing.ResultTimeout || r.FinalBy != localdb.FinalLocal || r.Error == "" {
		t.Errorf("do with no answer = %+v, %v; want a local timeout", r, err)
	}
	if took < 300*time.Millisecond+node.CommandGrace-time.Second || took > 300*time.Millisecond+node.CommandGrace+5*time.Second {
		t.Errorf("the timeout came after %v, want about %v", took, 300*time.Millisecond+node.CommandGrace)
	}

	for _, to := range []string{"kettle", "nobody"} {
		_, err = alice.Do(ctx, to, node.DoRequest{Action: "brew", Wait: true})
		var ce *node.CallError
		if !errors.As(err, &ce) || ce.Status != http.StatusForbidden {
			t.Errorf("do to %s = %v, want 403 forbidden", to, err)
		}
	}
	_, err = alice.Do(ctx, "lamp", node.DoRequest{})
	if ce := (*node.CallError)(nil); !errors.As(err, &ce) || ce.Status != http.StatusBadRequest {
		t.Errorf("do with neither action nor write = %v, want 400", err)
	}

	_, err = alice.Do(ctx, "lamp", node.DoRequest{Action: "brew", TimeoutMS: 1 << 62})
	if ce := (*node.CallError)(nil); !errors.As(err, &ce) || ce.Status != http.StatusBadRequest {
		t.Errorf("do with a timeout of centuries = %v, want 400", err)
	}

	// A command sent as a plain message is tracked as well.
	p, _ := json.Marshal(thing.Command{Action: "descale", Expires: time.Now().Add(time.Minute).UnixMilli(),
		Trace: thing.Trace{Origin: "alice", OriginMsg: "any"}})
	sent, err := alice.Send(ctx, node.SendRequest{To: "lamp", MsgType: wire.MsgTypeCommand, Payload: p})
	if err != nil {
		t.Fatalf("send a command: %v", err)
	}
	commandIs(t, alice, "lamp", sent.MsgId, "is tracked, pending", func(r node.CommandRow) bool {
		return r.State == localdb.CommandPending && r.Action == "descale"
	})

	// The local API wants its token for these too.
	addr, _ := os.ReadFile(filepath.Join(aliceHome, node.APIAddrFile))
	for _, path := range []string{"/v1/things/lamp/state", "/v1/things/lamp/commands", "/v1/things/rules"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+strings.TrimSpace(string(addr))+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token = %d, want 401", path, resp.StatusCode)
		}
	}
}

// describe answers from the server, or else from the cache of the
// descriptions the thing sent (the highest version); rules are signed by
// alice's device.
func TestThingDescribeAndRules(t *testing.T) {
	_, alice, _, things := bindThings(t, "lamp", "button")
	lamp := things["lamp"]
	ctx := t.Context()

	_, err := alice.Describe(ctx, "lamp")
	if ce := (*node.CallError)(nil); !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
		t.Errorf("describe with nothing anywhere = %v, want 404", err)
	}
	desc := func(v int64, title string) *thing.Description {
		return &thing.Description{Thing: "lamp", Version: v, Title: title,
			Properties: map[string]*thing.Property{"on": {Schema: thing.Schema{Type: "boolean"}, Observable: true}},
			Actions:    map[string]*thing.Action{"toggle": {Idempotent: false}}}
	}
	lamp.feedback("alice", thing.Feedback{Kind: thing.KindDescription, Description: desc(2, "v2")})
	lamp.feedback("alice", thing.Feedback{Kind: thing.KindDescription, Description: desc(1, "v1")})
	var d node.ThingDescription
	eventually(t, 15*time.Second, "the description is cached", func() string {
		if d, err = alice.Describe(ctx, "lamp"); err != nil {
			return err.Error()
		}
		return ""
	})
	if d.Source == node.SourceCache && (d.Description.Version != 2 || d.ServerError == "") {
		t.Errorf("describe = %+v, want version 2 from the cache, saying why not the server's", d)
	}
	if d.Source == node.SourceServer && d.Description.Thing != "lamp" {
		t.Errorf("describe = %+v from the server, want lamp's", d)
	}

	res, err := alice.AddRule(ctx, node.RuleRequest{A: "lamp", B: "lamp",
		When: thing.When{Event: "pressed"}, Then: thing.Then{Action: "toggle"}})
	if ce := (*node.CallError)(nil); !errors.As(err, &ce) || ce.Status != http.StatusBadRequest {
		t.Errorf("a rule from a thing to itself = %+v, %v; want 400", res, err)
	}
	st, err := alice.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A rule for a thing alice is not bound to is the server's to refuse.
	_, err = alice.AddRule(ctx, node.RuleRequest{A: "kettle", B: "lamp",
		When: thing.When{Event: "pressed"}, Then: thing.Then{Action: "toggle"}})
	if ce := (*node.CallError)(nil); !errors.As(err, &ce) || ce.Status != http.StatusForbidden && ce.Status != http.StatusNotFound {
		t.Errorf("a rule for a thing not bound = %v, want refused", err)
	}
	if err := alice.Call(ctx, wire.MethodAssociate, wire.AssociateReq{A: "button", B: "lamp"}, nil); err != nil {
		t.Fatalf("associate: %v", err)
	}
	res, err = alice.AddRule(ctx, node.RuleRequest{ID: "r1", A: "button", B: "lamp",
		When: thing.When{Event: "pressed"}, Then: thing.Then{Action: "toggle"}})
	if err != nil {
		t.Fatalf("add rule: %v", err)
	}
	if err := res.Rule.Verify(); err != nil || res.Rule.Device != st.Device || res.Rule.By != "alice" {
		t.Errorf("added rule %+v: verify %v; want it signed by alice's device %s", res.Rule, err, st.Device)
	}
	rules, err := alice.Rules(ctx, "lamp")
	if err != nil || len(rules) != 1 || rules[0].ID != "r1" || rules[0].Sig != res.Rule.Sig {
		t.Errorf("rules of lamp = %+v, %v; want r1 as added", rules, err)
	}
	if err := alice.RemoveRule(ctx, "r1"); err != nil {
		t.Fatalf("remove rule: %v", err)
	}
	if rules, err := alice.Rules(ctx, "lamp"); err != nil || len(rules) != 0 {
		t.Errorf("rules of lamp after remove = %+v, %v; want none", rules, err)
	}
}
