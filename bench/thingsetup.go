package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// thingWorld is everything a thing benchmark talks to: a server; alice, a
// person with a node; carol, a person without one (a plain MQTT client in
// this process); lamp and door, things whose nodes run the example device
// programs. Alice and carol are bound to lamp, alice to door; door and lamp
// are associated, and alice's rule makes the lamp toggle when the door
// reports opened.
type thingWorld struct {
	server            *broker
	alice, lamp, door *nodeProc
	carol             *carolClient
	rule              string // the id of the door → lamp rule in force
	links             netLinks
}

func (w *thingWorld) nodes() []*nodeProc {
	var out []*nodeProc
	for _, n := range []*nodeProc{w.alice, w.lamp, w.door} {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Names in the thing world.
const (
	thingLamp      = "lamp"
	thingDoor      = "door"
	lampAction     = "toggle" // what the rule makes the lamp do
	doorEvent      = "opened" // what examples/doorsensor reports on open
	carolDevice    = "thb-carol"
	thingSetupWait = 30 * time.Second
)

// pairingLine is how `mqtter user add --thing` prints a thing's code.
var pairingLine = regexp.MustCompile(`pairing code: (\S+)`)

// startThingWorld builds the example device programs, starts the server
// and the nodes, binds, associates and adds the rule. On error it returns
// what it started so far, for the caller to close.
func startThingWorld(ctx context.Context, cfg ThingConfig, dir string, progress func(string, ...any)) (*thingWorld, error) {
	if _, err := os.Stat(cfg.MQTTer); err != nil {
		return nil, fmt.Errorf("mqtter binary: %w (build it: make build)", err)
	}
	progress("building examples/lamp and examples/doorsensor")
	lampBin, err := buildExample(ctx, dir, "lamp")
	if err != nil {
		return nil, err
	}
	doorBin, err := buildExample(ctx, dir, "doorsensor")
	if err != nil {
		return nil, err
	}

	progress("starting a server, alice's node and the lamp's and the door's nodes")
	dataDir := filepath.Join(dir, "server-data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	if err := addUsers(ctx, cfg.MQTTer, dataDir, []string{"alice", "carol"}); err != nil {
		return nil, err
	}
	codes := map[string]string{}
	for _, name := range []string{thingLamp, thingDoor} {
		out, err := runUserAdd(ctx, cfg.MQTTer, dataDir, name, "--thing")
		if err != nil {
			return nil, err
		}
		m := pairingLine.FindStringSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("mqtter user add %s --thing printed no pairing code: %q", name, out)
		}
		codes[name] = m[1]
	}
	w := &thingWorld{}
	if w.server, err = serveMQTTer(ctx, cfg.MQTTer, dir, "server", dataDir); err != nil {
		return nil, err
	}
	w.links.delay = cfg.LinkDelay
	url, err := w.links.server(w.server.url())
	if err != nil {
		return w, err
	}
	if w.alice, err = w.startNode(ctx, cfg, dir, "alice", url); err != nil {
		return w, err
	}
	if w.lamp, err = w.startNode(ctx, cfg, dir, thingLamp, url, "--thing-handler", lampBin); err != nil {
		return w, err
	}
	if w.door, err = w.startNode(ctx, cfg, dir, thingDoor, url, "--thing-handler", doorBin); err != nil {
		return w, err
	}
	for _, n := range w.nodes() {
		if err := n.waitReady(ctx); err != nil {
			return w, err
		}
	}

	progress("alice binds lamp and door, associates them and adds the rule door opened → lamp %s", lampAction)
	for _, th := range []*nodeProc{w.lamp, w.door} {
		if err := w.alice.api.Call(ctx, wire.MethodBindThing, wire.BindThingReq{Thing: th.user, Code: codes[th.user]}, nil); err != nil {
			return w, fmt.Errorf("alice bind_thing %s: %w", th.user, err)
		}
	}
	if err := w.alice.api.Call(ctx, wire.MethodAssociate, wire.AssociateReq{A: thingDoor, B: thingLamp}, nil); err != nil {
		return w, fmt.Errorf("alice associate door lamp: %w", err)
	}
	for _, pair := range [][2]*nodeProc{{w.alice, w.lamp}, {w.lamp, w.alice}, {w.alice, w.door}, {w.door, w.alice}, {w.door, w.lamp}, {w.lamp, w.door}} {
		who, whom := pair[0], pair[1]
		if err := waitFor(ctx, thingSetupWait, who.user+"'s node knows "+whom.user+"'s device", func(ctx context.Context) (bool, string) {
			return who.knows(ctx, whom.id.String())
		}); err != nil {
			return w, err
		}
	}
	for _, th := range []*nodeProc{w.lamp, w.door} {
		if err := waitThing(ctx, th, func(st *node.ThingStatus) bool {
			return st.Program == node.ProgramRunning && st.Description >= 1
		}, "its program runs and it has its description"); err != nil {
			return w, err
		}
	}
	if w.rule, err = w.addRule(ctx); err != nil {
		return w, err
	}
	if err := waitThing(ctx, w.door, func(st *node.ThingStatus) bool { return st.Rules.Active == 1 }, "it runs the rule"); err != nil {
		return w, err
	}
	w.carol, err = dialCarol(ctx, url)
	return w, err
}

// startNode starts a node of the world, behind a link of its own when
// the world has links.
func (w *thingWorld) startNode(ctx context.Context, cfg ThingConfig, dir, user, url string, extra ...string) (*nodeProc, error) {
	listen, announce, err := w.links.device()
	if err != nil {
		return nil, err
	}
	for _, a := range announce {
		extra = append(extra, "--p2p-announce", a)
	}
	return startNodeProcAt(ctx, cfg.MQTTer, dir, user, url, listen, extra...)
}

// bindCarol has carol bind the lamp with a second code, which the lamp's
// node asks the server for (its pairing_code method).
func (w *thingWorld) bindCarol(ctx context.Context) error {
	var code wire.PairingCode
	if err := w.lamp.api.Call(ctx, wire.MethodPairingCode, wire.Empty{}, &code); err != nil {
		return fmt.Errorf("lamp pairing_code: %w", err)
	}
	_, err := w.carol.request(ctx, wire.MethodBindThing, wire.BindThingReq{Thing: thingLamp, Code: code.Code})
	return err
}

// addRule has alice add the rule door opened → lamp toggles and returns
// its id.
func (w *thingWorld) addRule(ctx context.Context) (string, error) {
	r, err := w.alice.api.AddRule(ctx, node.RuleRequest{A: thingDoor, B: thingLamp,
		When: thing.When{Event: doorEvent}, Then: thing.Then{Action: lampAction}})
	if err != nil {
		return "", fmt.Errorf("alice adds the rule door %s → lamp %s: %w", doorEvent, lampAction, err)
	}
	return r.ID, nil
}

// renewRule replaces the rule in force by a new one of the same shape,
// and waits until the door's node runs the new one only: a rule fires at
// most ten times at once and ten times a minute (its loop guard), so a
// run of more samples takes a fresh rule every ten.
func (w *thingWorld) renewRule(ctx context.Context) error {
	id, err := w.addRule(ctx)
	if err != nil {
		return err
	}
	if err := waitThing(ctx, w.door, func(st *node.ThingStatus) bool { return st.Rules.Active == 2 }, "it has the new rule"); err != nil {
		return err
	}
	if err := w.alice.api.RemoveRule(ctx, w.rule); err != nil {
		return fmt.Errorf("alice removes rule %s: %w", w.rule, err)
	}
	w.rule = id
	return waitThing(ctx, w.door, func(st *node.ThingStatus) bool { return st.Rules.Active == 1 }, "the old rule is gone")
}

// waitThing waits until the thing's node reports a thing status that ok
// accepts.
func waitThing(ctx context.Context, th *nodeProc, ok func(*node.ThingStatus) bool, what string) error {
	return waitFor(ctx, thingSetupWait, th.user+"'s node: "+what, func(ctx context.Context) (bool, string) {
		st, err := th.api.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		if st.Thing == nil {
			return false, "no thing status"
		}
		return ok(st.Thing), fmt.Sprintf("%+v", *st.Thing)
	})
}

// buildExample builds examples/<name> into dir/bin (dir/<name> may be a
// node's home).
func buildExample(ctx context.Context, dir, name string) (string, error) {
	out := filepath.Join(dir, "bin", name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/mqtter/mqtter/examples/"+name)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build examples/%s: %w\n%s", name, err, msg)
	}
	return out, nil
}

// close stops everything and returns what went wrong with the processes.
func (w *thingWorld) close() []string {
	if w.carol != nil {
		w.carol.Disconnect(50)
	}
	var problems []string
	procs := []*process{}
	for _, n := range w.nodes() {
		procs = append(procs, n.process)
	}
	if w.server != nil {
		procs = append(procs, w.server.process)
	}
	for _, p := range procs {
		if msg := p.shutdown(); msg != "" {
			problems = append(problems, msg)
		}
	}
	return append(problems, w.links.close()...)
}

// carolClient is carol's plain MQTT device: it sends unsigned commands
// with im://modulus/send (the server attests them as carol's) and hears
// the lamp's feedback in news pushes.
type carolClient struct {
	*imClient

	results *firstSeen // by command MsgId: when its result arrived
}

func dialCarol(ctx context.Context, url string) (*carolClient, error) {
	c := &carolClient{results: newFirstSeen()}
	ic, err := dialIMRaw(ctx, url, "carol", carolDevice, c.onNews)
	if err != nil {
		return nil, err
	}
	c.imClient = ic
	return c, nil
}

// onNews notes the results the lamp sends about carol's commands.
func (c *carolClient) onNews(body []byte, at time.Time) {
	var n struct {
		Message wire.Message `json:"message"`
	}
	if json.Unmarshal(body, &n) != nil || n.Message.MsgType != wire.MsgTypeFeedback || n.Message.From != thingLamp {
		return
	}
	fb, err := thing.ParseFeedback(n.Message.Payload)
	if err != nil || fb.Kind != thing.KindResult {
		return
	}
	c.results.note(fb.Cmd, at)
}

// command sends an unsigned command to the lamp and returns its MsgId
// once the server answered the send.
func (c *carolClient) command(ctx context.Context, action string) (string, error) {
	id := wire.NewMsgID()
	payload, err := json.Marshal(thing.Command{Action: action, Expires: time.Now().Add(thing.DefaultExpiry).UnixMilli(),
		Trace: thing.Trace{Origin: "carol", OriginMsg: id}})
	if err != nil {
		return "", err
	}
	msg := wire.Message{MsgId: id, Feeds: dmFeeds("carol", thingLamp), MsgType: wire.MsgTypeCommand, From: "carol",
		Payload: payload, TimeCreate: time.Now().UnixMilli(), Device: carolDevice}
	body, err := json.Marshal(msg)
	if err != nil {
		return "", err
	}
	answers := make(chan imAnswer, 1)
	if err := wait(ctx, c.call("im://modulus/send?msg_id="+id, body, func(a imAnswer, _ time.Time) { answers <- a })); err != nil {
		return "", fmt.Errorf("carol's send: %w", err)
	}
	select {
	case a := <-answers:
		if a.Error != "" {
			return "", fmt.Errorf("carol's send: %w", errors.New(a.Error))
		}
		return id, nil
	case <-ctx.Done():
		return "", fmt.Errorf("carol's send: no answer: %w", ctx.Err())
	}
}

// waitResult waits until the result of command id has arrived, and
// returns when it did.
func (c *carolClient) waitResult(ctx context.Context, id string, timeout time.Duration) (time.Time, error) {
	at, err := c.results.wait(ctx, id, timeout)
	if errors.Is(err, errNotSeen) {
		return at, fmt.Errorf("command %s: no result pushed to carol within %v", id, timeout)
	}
	return at, err
}

// chainWatch follows alice's event stream: the receipts of her messages
// (by which path each went), and the command rows whose chain has the
// lamp's result.
type chainWatch struct {
	mu       sync.Mutex
	receipts map[string]string // MsgId → path
	lampDone *firstSeen        // door command MsgId → when the lamp's result showed in its chain
}

func newChainWatch() *chainWatch {
	return &chainWatch{receipts: map[string]string{}, lampDone: newFirstSeen()}
}

// follow reads alice's events until ctx ends; the returned function waits
// for the reader.
func (cw *chainWatch) follow(ctx context.Context, api *node.Client) func() error {
	done := make(chan error, 1)
	go func() {
		done <- api.Events(ctx, func(ev node.Event) error {
			now := time.Now()
			switch ev.Type {
			case node.EventReceipt:
				var r node.Receipt
				if err := json.Unmarshal(ev.Data, &r); err != nil {
					return err
				}
				cw.mu.Lock()
				cw.receipts[r.MsgId] = r.Path
				cw.mu.Unlock()
			case node.EventCommand:
				var row node.CommandRow
				if err := json.Unmarshal(ev.Data, &row); err != nil {
					return err
				}
				if row.Thing != thingDoor {
					return nil
				}
				for _, l := range row.Chain {
					if l.Thing == thingLamp && l.Kind == thing.KindResult {
						cw.lampDone.note(row.MsgId, now)
						break
					}
				}
			}
			return nil
		})
	}()
	return func() error {
		err := <-done
		if errors.Is(err, node.ErrStreamClosed) || ctx.Err() != nil {
			return nil
		}
		return err
	}
}

// waitLamp waits until the chain of door command id shows the lamp's
// result, and returns when it did.
func (cw *chainWatch) waitLamp(ctx context.Context, id string, timeout time.Duration) (time.Time, error) {
	at, err := cw.lampDone.wait(ctx, id, timeout)
	if errors.Is(err, errNotSeen) {
		return at, fmt.Errorf("door command %s: the lamp's result did not show in its chain within %v", id, timeout)
	}
	return at, err
}

// firstSeen keeps when each id was first seen, for one waiter to take.
type firstSeen struct {
	mu     sync.Mutex
	at     map[string]time.Time
	notify chan struct{} // a token after every change
}

// errNotSeen is firstSeen.wait's timeout.
var errNotSeen = errors.New("not seen in time")

func newFirstSeen() *firstSeen {
	return &firstSeen{at: make(map[string]time.Time), notify: make(chan struct{}, 1)}
}

// note records at for id unless id was seen already.
func (f *firstSeen) note(id string, at time.Time) {
	f.mu.Lock()
	if _, seen := f.at[id]; !seen {
		f.at[id] = at
	}
	f.mu.Unlock()
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// wait waits until id has been seen, returns when, and forgets it.
func (f *firstSeen) wait(ctx context.Context, id string, timeout time.Duration) (time.Time, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		f.mu.Lock()
		at, ok := f.at[id]
		delete(f.at, id)
		f.mu.Unlock()
		if ok {
			return at, nil
		}
		select {
		case <-f.notify:
		case <-timer.C:
			return time.Time{}, errNotSeen
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// paths returns and forgets the paths of the receipts of ids.
func (cw *chainWatch) paths(ids []string) map[string]int {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	out := map[string]int{}
	for _, id := range ids {
		p, ok := cw.receipts[id]
		if !ok {
			p = "no receipt seen"
		}
		out[p]++
	}
	clear(cw.receipts)
	return out
}

// describeVia formats a count of paths as "p2p 100, server 2".
func describeVia(via map[string]int) string {
	var parts []string
	for p, n := range via {
		parts = append(parts, fmt.Sprintf("%s %d", p, n))
	}
	return strings.Join(parts, ", ")
}
