package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/mqtter/mqtter/adapter/devicesim"
	"github.com/mqtter/mqtter/examples"
	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// pairingLine is how `mqtter user add --thing` prints a thing's code.
var pairingLine = regexp.MustCompile(`pairing code: (\d+)`)

// things is the demo's scene of people and things: alice binds a lamp and
// a door sensor (each a node whose device program is a small sh script),
// commands the lamp and sees its real feedback, then makes a rule that
// the door's "opened" event toggles the lamp, opens the door, and sees
// the lamp's result come back to her through the chain.
func (d *demo) things(ctx context.Context, srv *proc, alice *nodeProc) error {
	d.step(9, "Two things, a lamp and a door sensor: a node each, with a small sh script as its device program")
	for name, script := range map[string]string{"lamp.sh": examples.Lamp, "doorsensor.sh": examples.DoorSensor} {
		if err := os.WriteFile(filepath.Join(d.root, name), []byte(script), 0o600); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	d.say("  (lamp.sh and doorsensor.sh are examples/*.sh: commands in as JSON lines, feedback out)")
	codes := make(map[string]string)
	for _, t := range []string{"lamp", "door"} {
		out, err := d.must(ctx, "MQTTER_PASSWORD="+t+"-pw", []*proc{srv}, "user", "add", t, "--data", "server", "--thing")
		if err != nil {
			return err
		}
		m := pairingLine.FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("demo: no pairing code in %q", out)
		}
		codes[t] = m[1]
	}
	lamp, err := d.node(ctx, "lamp", "lamp", nil, "--thing-handler", "sh lamp.sh")
	if err != nil {
		return err
	}
	door, err := d.node(ctx, "door", "door", nil, "--thing-handler", "sh doorsensor.sh")
	if err != nil {
		return err
	}
	all := []*proc{srv, alice.proc, lamp.proc, door.proc}

	d.step(10, "alice binds both with their pairing codes and commands the lamp: it answers with what it did")
	for _, t := range []string{"lamp", "door"} {
		if _, err := d.cli(ctx, alice, "thing", "bind", t, codes[t]); err != nil {
			return err
		}
	}
	err = d.waitFor(ctx, "alice's node knows the lamp's description", all, func(ctx context.Context) (bool, string) {
		desc, err := alice.api.Describe(ctx, "lamp")
		if err != nil {
			return false, err.Error()
		}
		return desc.Description.Actions["toggle"] != nil, fmt.Sprintf("%+v", desc)
	})
	if err != nil {
		return err
	}
	if _, err := d.cli(ctx, alice, "thing", "describe", "lamp"); err != nil {
		return err
	}
	if _, err := d.cli(ctx, alice, "thing", "do", "lamp", "set", `{"on":true,"brightness":40}`); err != nil {
		return err
	}
	if _, err := d.cli(ctx, alice, "thing", "state", "lamp"); err != nil {
		return err
	}

	d.step(11, "alice associates the door with the lamp and adds a rule; opening the door switches the lamp")
	if _, err := d.cli(ctx, alice, "thing", "associate", "door", "lamp"); err != nil {
		return err
	}
	if _, err := d.cli(ctx, alice, "thing", "rule", "add", "door", "lamp", "--when", "event:opened", "--then", "toggle"); err != nil {
		return err
	}
	err = d.waitFor(ctx, "the door's node runs the rule and knows the lamp", all, func(ctx context.Context) (bool, string) {
		st, err := door.api.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		peers, err := door.api.Peers(ctx)
		if err != nil {
			return false, err.Error()
		}
		lampKnown := slices.ContainsFunc(peers, func(p node.PeerRow) bool { return p.User == "lamp" })
		return st.Thing != nil && st.Thing.Rules.Active == 1 && lampKnown, fmt.Sprintf("thing %+v, lamp known %v", st.Thing, lampKnown)
	})
	if err != nil {
		return err
	}
	if _, err := d.cli(ctx, alice, "thing", "do", "door", "open"); err != nil {
		return err
	}
	err = d.waitFor(ctx, "the lamp's result reaches alice through the chain", all, func(ctx context.Context) (bool, string) {
		cmds, err := alice.api.Commands(ctx, "door", 1)
		if err != nil || len(cmds) == 0 {
			return false, fmt.Sprint(cmds, err)
		}
		return slices.ContainsFunc(cmds[0].Chain, func(l localdb.ChainLink) bool {
			return l.Thing == "lamp" && l.Kind == thing.KindResult && l.Status == thing.ResultDone
		}), fmt.Sprintf("%+v", cmds[0])
	})
	if err != nil {
		return err
	}
	if _, err := d.cli(ctx, alice, "thing", "commands", "door", "--limit", "1"); err != nil {
		return err
	}
	if _, err = d.cli(ctx, alice, "thing", "state", "lamp"); err != nil {
		return err
	}
	return d.tasmota(ctx, srv, alice)
}

// tasmota is the demo's plug on stock firmware: the server adopts it as a
// thing through its Tasmota profile, and alice commands it like any other
// thing. The plug is a simulation (adapter/devicesim) that speaks MQTT as
// Tasmota's documentation describes.
func (d *demo) tasmota(ctx context.Context, srv *proc, alice *nodeProc) error {
	d.step(12, "A plug on stock Tasmota firmware: the server adopts it as a thing, alice commands it like the lamp")
	out, err := d.must(ctx, "MQTTER_PASSWORD=plug-pw", []*proc{srv}, "thing", "adopt", "plug", "--data", "server", "--profile", "tasmota", "--topic", "plug")
	if err != nil {
		return err
	}
	m := pairingLine.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("demo: no pairing code in %q", out)
	}
	plug, err := devicesim.StartPlug(devicesim.PlugConfig{Broker: "tcp://" + d.mqtt, User: "plug", Password: "plug-pw",
		ClientID: "DVES_DEMO01", Topic: "plug", QoS: 1})
	if err != nil {
		return fmt.Errorf("demo: the simulated plug: %w", err)
	}
	defer plug.Close()
	d.say("  (the plug logs in as the thing account plug and speaks Tasmota: cmnd/plug/POWER, stat/plug/RESULT, tele/plug/STATE)")
	if _, err := d.cli(ctx, alice, "thing", "bind", "plug", m[1]); err != nil {
		return err
	}
	all := []*proc{srv, alice.proc}
	err = d.waitFor(ctx, "alice's node knows the plug's description", all, func(ctx context.Context) (bool, string) {
		desc, err := alice.api.Describe(ctx, "plug")
		if err != nil {
			return false, err.Error()
		}
		return desc.Description.Properties["power"] != nil, fmt.Sprintf("%+v", desc)
	})
	if err != nil {
		return err
	}
	if _, err := d.cli(ctx, alice, "thing", "do", "plug", "--set", "power=true"); err != nil {
		return err
	}
	if !plug.Power() {
		return errors.New("demo: the plug answered done but is off")
	}
	if _, err = d.cli(ctx, alice, "thing", "state", "plug"); err != nil {
		return err
	}
	return d.relayed(ctx, srv, alice)
}

// relayed shows a node that nobody can dial (it listens nowhere, as one
// behind a NAT often cannot be reached) holding a slot on the server's
// libp2p relay: alice's message still goes to it directly, through the
// relay, not through the server.
func (d *demo) relayed(ctx context.Context, srv *proc, alice *nodeProc) error {
	d.step(13, "carol's node listens nowhere (think: behind a NAT); alice reaches it through the server's libp2p relay")
	if _, err := d.must(ctx, "MQTTER_PASSWORD=carol-pw", []*proc{srv}, "user", "add", "carol", "--data", "server"); err != nil {
		return err
	}
	carol, err := d.node(ctx, "carol", "carol", nil, "--p2p", "none")
	if err != nil {
		return err
	}
	all := []*proc{srv, alice.proc, carol.proc}
	err = d.waitFor(ctx, "carol's node holds a slot on the relay", all, func(ctx context.Context) (bool, string) {
		st, err := carol.api.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.Relay != nil && len(st.Relay.Addrs) > 0, fmt.Sprintf("%+v", st.Relay)
	})
	if err != nil {
		return err
	}
	out, err := d.run1(ctx, "", all, "--home", "carol", "status")
	if err != nil {
		return err
	}
	d.show(out, "addrs:", "relay:", "relayed:", "  /")
	if _, err := d.cli(ctx, alice, "friend", "add", "carol"); err != nil {
		return err
	}
	err = d.waitFor(ctx, "carol sees alice's request", all, func(ctx context.Context) (bool, string) {
		var rels []wire.Relation
		if err := carol.api.Call(ctx, wire.MethodListRelations, wire.Empty{}, &rels); err != nil {
			return false, err.Error()
		}
		return slices.ContainsFunc(rels, func(r wire.Relation) bool { return r.User == "alice" }), fmt.Sprintf("%+v", rels)
	})
	if err != nil {
		return err
	}
	if _, err := d.cli(ctx, carol, "friend", "accept", "alice"); err != nil {
		return err
	}
	if err := d.knows(ctx, alice, "carol"); err != nil {
		return err
	}
	hi, err := d.send(ctx, alice, "carol", "hi carol, through the relay")
	if err != nil {
		return err
	}
	// alice's sync may push it to the server a moment before the relayed
	// frame lands, and the server's push then reaches carol first; the
	// relayed delivery happens all the same, and alice's node counts it.
	if err := d.received(ctx, carol, "alice", hi, "relayed|server", all...); err != nil {
		return err
	}
	if err := d.counted(ctx, alice, "sent_relayed", all...); err != nil {
		return err
	}
	d.say("  (alice's node: sent_relayed = 1, carol's node stored it through the relay)")
	_, err = d.cli(ctx, carol, "history", "alice")
	return err
}
