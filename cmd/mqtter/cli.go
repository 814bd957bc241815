package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/wire"
)

// cliVerbs are the verbs that drive a running node through its local API
// ("mqtter --home DIR VERB ...").
var cliVerbs = map[string]func(*cli, []string) error{
	"status":  (*cli).status,
	"send":    (*cli).send,
	"history": (*cli).history,
	"friend":  (*cli).friend,
	"group":   (*cli).group,
	"thing":   (*cli).thing,
	"peers":   (*cli).peers,
	"sync":    (*cli).sync,
	"events":  (*cli).events,
	"backup":  (*cli).backup,
}

// isCLI reports whether a command line's first argument starts the client
// form: a --home flag or one of the verbs.
func isCLI(arg string) bool {
	if _, _, ok := homeFlag(arg); ok {
		return true
	}
	_, ok := cliVerbs[arg]
	return ok
}

// cli is one run of a client verb.
type cli struct {
	ctx    context.Context
	home   string
	stdout io.Writer
	stderr io.Writer
}

// runCLI runs "[--home DIR] VERB ARGS..." against the node of DIR; --home
// may come anywhere before a "--", and defaults to $MQTTER_HOME.
func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	home, rest, err := splitHome(args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return fmt.Errorf("%w: no command after --home", errUsage)
	}
	verb, ok := cliVerbs[rest[0]]
	if !ok {
		return fmt.Errorf("%w: unknown command %q", errUsage, rest[0])
	}
	if home == "" {
		home = os.Getenv("MQTTER_HOME")
	}
	if home == "" {
		return fmt.Errorf("%w: %s needs --home DIR (or $MQTTER_HOME)", errUsage, rest[0])
	}
	return verb(&cli{ctx: ctx, home: home, stdout: stdout, stderr: stderr}, rest[1:])
}

// splitHome takes the --home flag out of args, wherever it is before "--".
func splitHome(args []string) (home string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		v, hasValue, ok := homeFlag(a)
		switch {
		case !ok:
			rest = append(rest, a)
			continue
		case !hasValue:
			if i+1 >= len(args) {
				return "", nil, fmt.Errorf("%w: --home needs a directory", errUsage)
			}
			i++
			v = args[i]
		}
		if v == "" {
			return "", nil, fmt.Errorf("%w: --home needs a directory", errUsage)
		}
		home = v
	}
	return home, rest, nil
}

// homeFlag recognizes "--home", "-home", "--home=DIR" and "-home=DIR".
func homeFlag(arg string) (value string, hasValue, ok bool) {
	if !strings.HasPrefix(arg, "-") {
		return "", false, false
	}
	name, value, hasValue := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
	return value, hasValue, name == "home"
}

// client dials the node; it is called after the arguments are checked so
// that a usage error does not need a node.
func (c *cli) client() (*node.Client, error) { return node.Dial(c.home) }

// flags returns a flag set for a verb.
func (c *cli) flags(name string) *flag.FlagSet { return quietFlags(name) }

// parse parses a verb's flags and checks its count of positionals; a bad
// flag or count is a usage error that names the verb's form.
func (c *cli) parse(fs *flag.FlagSet, args []string, min, max int, form string) ([]string, error) {
	pos, err := parseFlags(fs, args, c.stderr)
	if err != nil {
		return nil, err
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, fmt.Errorf("%w: %s", errUsage, form)
	}
	return pos, nil
}

// quietFlags returns a flag set that prints nothing itself: parseFlags
// reports its errors.
func quietFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses a quietFlags set, flags anywhere among the
// positionals. A bad flag is a usage error (main prints it once, with the
// usage); "-h" prints the flags to help and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, help io.Writer) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(help, "flags of %s:\n", fs.Name())
		fs.SetOutput(help)
		fs.PrintDefaults()
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
	}
	return pos, nil
}

func (c *cli) printJSON(v any) error {
	return json.NewEncoder(c.stdout).Encode(v)
}

// printRaw prints a JSON value compacted onto one line.
func (c *cli) printRaw(raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return fmt.Errorf("bad JSON from the node: %w", err)
	}
	b.WriteByte('\n')
	_, err := c.stdout.Write(b.Bytes())
	return err
}

func (c *cli) status(args []string) error {
	fs := c.flags("status")
	asJSON := fs.Bool("json", false, "print the status as one JSON object")
	if _, err := c.parse(fs, args, 0, 0, "status [--json]"); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	st, err := cl.Status(c.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(st)
	}
	printStatus(c.stdout, st)
	return nil
}

func printStatus(w io.Writer, st node.Status) {
	fmt.Fprintf(w, "user:     %s\n", st.User)
	fmt.Fprintf(w, "device:   %s\n", st.Device)
	server := st.Server + " " + st.ServerURL
	if st.ServerError != "" {
		server += ": " + st.ServerError
	}
	fmt.Fprintf(w, "server:   %s\n", server)
	printList(w, "addrs:", st.Addrs)
	printList(w, "direct:", st.Peers)
	fmt.Fprintf(w, "reach:    %s\n", st.Reachability)
	if r := st.Relay; r != nil {
		switch {
		case len(r.Addrs) > 0:
			fmt.Fprintf(w, "relay:    slot until %s\n", clock(r.Expires))
			printList(w, "relayed:", r.Addrs)
		case r.Error != "":
			fmt.Fprintf(w, "relay:    no slot: %s\n", r.Error)
		default:
			fmt.Fprintln(w, "relay:    no slot yet")
		}
	}
	if g := st.Gossip; g != nil && len(g.Meshes) > 0 {
		fmt.Fprintf(w, "gossip:   %d published, %d delivered, %d rejected\n", g.Published, g.Delivered, g.Rejected)
		for _, feeds := range slices.Sorted(maps.Keys(g.Meshes)) {
			fmt.Fprintf(w, "  %s: %d mesh peers\n", feeds, len(g.Meshes[feeds]))
		}
	}
	fmt.Fprintf(w, "outbox:   %d undelivered\n", st.Outbox)
	fmt.Fprintf(w, "unsynced: %d without a SeqId\n", st.Unsynced)
	if len(st.Refused) > 0 {
		fmt.Fprintln(w, "refused messages (not shown in history):")
		for _, r := range st.Refused {
			fmt.Fprintf(w, "  %s %s #%d %s: %s\n", clock(r.At), r.Feeds, r.SeqId, r.MsgId, r.Reason)
		}
	}
	if len(st.Conflicted) > 0 {
		fmt.Fprintln(w, "conflicted messages (the server holds another message under the MsgId; kept here, not sent again):")
		for _, c := range st.Conflicted {
			fmt.Fprintf(w, "  %s %s %s from %s: %s\n", clock(c.At), c.Feeds, c.MsgId, c.From, c.Reason)
		}
	}
	if len(st.Failures) == 0 {
		return
	}
	fmt.Fprintln(w, "recent failures:")
	for _, f := range st.Failures {
		fmt.Fprintf(w, "  %s %-6s", clock(f.Time), f.Path)
		if f.Peer != "" {
			fmt.Fprintf(w, " peer %s", f.Peer)
		}
		if f.MsgId != "" {
			fmt.Fprintf(w, " msg %s", f.MsgId)
		}
		fmt.Fprintf(w, ": %s\n", f.Error)
	}
}

// printList prints a label and one item a line, "(none)" for no items.
func printList(w io.Writer, label string, items []string) {
	if len(items) == 0 {
		fmt.Fprintf(w, "%-9s (none)\n", label)
		return
	}
	for i, it := range items {
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(w, "%-9s %s\n", label, it)
	}
}

// clock formats unix milliseconds as a local time of day.
func clock(ms int64) string { return time.UnixMilli(ms).Format("15:04:05") }

func (c *cli) send(args []string) error {
	for i, a := range args { // "--" lets a text start with "-"
		if a == "--" {
			args = append(args[:i:i], args[i+1:]...)
			break
		}
	}
	if len(args) < 2 {
		return fmt.Errorf("%w: send <user|feeds> <text...>", errUsage)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	res, err := cl.Send(c.ctx, node.SendRequest{To: args[0], Text: strings.Join(args[1:], " ")})
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, res.MsgId)
	return nil
}

func (c *cli) history(args []string) error {
	fs := c.flags("history")
	asJSON := fs.Bool("json", false, "print one message a line as JSON")
	limit := fs.Int("limit", 0, "at most this many of the latest messages (0: the node's default)")
	pos, err := c.parse(fs, args, 1, 1, "history <user|feeds> [--json] [--limit N]")
	if err != nil {
		return err
	}
	if *limit < 0 {
		return fmt.Errorf("%w: --limit %d is not a count", errUsage, *limit)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	res, err := cl.History(c.ctx, pos[0], *limit)
	if err != nil {
		return err
	}
	for _, m := range res.Messages {
		if *asJSON {
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s\n", b)
			continue
		}
		fmt.Fprintln(c.stdout, historyLine(m))
	}
	if !res.Complete && !*asJSON { // JSON readers have GET /v1/history's coverage
		fmt.Fprintln(c.stderr, coverageNote(res.Coverage))
	}
	return nil
}

// coverageNote says what part of a conversation the device lacks.
func coverageNote(cv localdb.Coverage) string {
	var parts []string
	if cv.HeldThrough < cv.LastSeq {
		parts = append(parts, fmt.Sprintf("holds #1..#%d of %d without gaps", cv.HeldThrough, cv.LastSeq))
	}
	if cv.Refused > 0 {
		parts = append(parts, fmt.Sprintf("%d refused (see mqtter status)", cv.Refused))
	}
	return "note: incomplete: this device " + strings.Join(parts, ", ") + "; mqtter sync pulls the rest"
}

// historyLine formats a message as "#SEQ FROM HH:MM:SS [VIA] TEXT", SEQ
// "-" while unsequenced and TEXT the payload's text or else the payload.
func historyLine(m node.HistoryEntry) string {
	seq := "-"
	if m.SeqId > 0 {
		seq = fmt.Sprint(m.SeqId)
	}
	return fmt.Sprintf("#%s %s %s [%s] %s", seq, m.From, clock(m.TimeCreate), m.Via, payloadText(m.Payload))
}

func payloadText(p json.RawMessage) string {
	var t struct {
		Text *string `json:"text"`
	}
	if json.Unmarshal(p, &t) == nil && t.Text != nil {
		return *t.Text
	}
	var b bytes.Buffer
	if json.Compact(&b, p) == nil {
		return b.String()
	}
	return string(p)
}

func (c *cli) peers(args []string) error {
	fs := c.flags("peers")
	asJSON := fs.Bool("json", false, "print the peers as a JSON array")
	if _, err := c.parse(fs, args, 0, 0, "peers [--json]"); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	rows, err := cl.Peers(c.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if rows == nil {
			rows = []node.PeerRow{}
		}
		return c.printJSON(rows)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tDEVICE\tSTATUS\tDIRECT\tADDRS")
	for _, r := range rows {
		direct := "no"
		if r.Connected {
			direct = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.User, r.Device, r.Status, direct, strings.Join(r.Addrs, " "))
	}
	return tw.Flush()
}

func (c *cli) sync(args []string) error {
	if _, err := c.parse(c.flags("sync"), args, 0, 0, "sync"); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	res, err := cl.Sync(c.ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "pushed %d, pulled %d\n", res.Pushed, res.Pulled)
	return nil
}

func (c *cli) events(args []string) error {
	fs := c.flags("events")
	asJSON := fs.Bool("json", false, "print each event as one JSON object")
	if _, err := c.parse(fs, args, 0, 0, "events [--json]"); err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	return cl.Events(c.ctx, func(ev node.Event) error {
		if *asJSON {
			return c.printJSON(ev)
		}
		if ev.Type == node.EventMessage {
			var m node.HistoryEntry
			if json.Unmarshal(ev.Data, &m) == nil {
				_, err := fmt.Fprintf(c.stdout, "message %s %s\n", m.Feeds, historyLine(m))
				return err
			}
		}
		_, err := fmt.Fprintf(c.stdout, "%s %s\n", ev.Type, payloadText(ev.Data))
		return err
	})
}

// call calls a server method through the node and decodes its result
// into out (nil: none wanted).
func (c *cli) call(method string, body, out any) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	return cl.Call(c.ctx, method, body, out)
}

// confirm calls a server method whose result the command does not show
// and prints done.
func (c *cli) confirm(method string, body any, done string) error {
	if err := c.call(method, body, nil); err != nil {
		return err
	}
	_, err := fmt.Fprintln(c.stdout, done)
	return err
}

const friendForm = "friend add|accept|reject|remove|restore USER, or friend list [--json]"

func (c *cli) friend(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, friendForm)
	}
	sub, args := args[0], args[1:]
	if sub == "list" {
		return c.friendList(args)
	}
	methods := map[string]struct{ method, done string }{
		"add":     {wire.MethodAddFriend, "friend request sent to %s"},
		"accept":  {wire.MethodAcceptFriend, "%s is now a friend"},
		"reject":  {wire.MethodRejectFriend, "rejected the friend request of %s"},
		"remove":  {wire.MethodRemoveFriend, "removed friend %s (friend restore brings them back)"},
		"restore": {wire.MethodRestoreFriend, "restored friend %s"},
	}
	m, ok := methods[sub]
	if !ok {
		return fmt.Errorf("%w: %s", errUsage, friendForm)
	}
	pos, err := c.parse(c.flags("friend "+sub), args, 1, 1, "friend "+sub+" USER")
	if err != nil {
		return err
	}
	return c.confirm(m.method, wire.UserReq{User: pos[0]}, fmt.Sprintf(m.done, pos[0]))
}

func (c *cli) friendList(args []string) error {
	fs := c.flags("friend list")
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	if _, err := c.parse(fs, args, 0, 0, "friend list [--json]"); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.call(wire.MethodListRelations, wire.Empty{}, &raw); err != nil {
		return err
	}
	if *asJSON {
		return c.printRaw(raw)
	}
	var rels []wire.Relation
	if err := json.Unmarshal(raw, &rels); err != nil {
		return fmt.Errorf("list_relations: %w", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tKIND\tSTATE")
	for _, r := range rels {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.User, r.Kind, r.State)
	}
	return tw.Flush()
}

const groupForm = "group create NAME [MEMBER...] | apply FEEDS | agree FEEDS APPLICANT | remove FEEDS MEMBER | dissolve FEEDS | list [--json]"

func (c *cli) group(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, groupForm)
	}
	sub, args := args[0], args[1:]
	forms := map[string]struct {
		min, max int
		form     string
	}{
		"create":   {1, -1, "group create NAME [MEMBER...]"},
		"apply":    {1, 1, "group apply FEEDS"},
		"agree":    {2, 2, "group agree FEEDS APPLICANT"},
		"remove":   {2, 2, "group remove FEEDS MEMBER"},
		"dissolve": {1, 1, "group dissolve FEEDS"},
	}
	if sub == "list" {
		return c.groupList(args)
	}
	f, ok := forms[sub]
	if !ok {
		return fmt.Errorf("%w: %s", errUsage, groupForm)
	}
	pos, err := c.parse(c.flags("group "+sub), args, f.min, f.max, f.form)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		members := pos[1:]
		if members == nil {
			members = []string{}
		}
		var res wire.FeedsReq
		if err := c.call(wire.MethodCreateFeeds, wire.CreateFeedsReq{Name: pos[0], Members: members}, &res); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, res.Feeds)
		return nil
	case "apply":
		return c.confirm(wire.MethodApplyJoinFeeds, wire.FeedsReq{Feeds: pos[0]}, "asked to join "+pos[0])
	case "agree":
		return c.confirm(wire.MethodAgreeJoinFeeds, wire.AgreeJoinReq{Applicant: pos[1], Feeds: pos[0]},
			fmt.Sprintf("%s joined %s", pos[1], pos[0]))
	case "remove":
		return c.confirm(wire.MethodRemoveFeedsMember, wire.RemoveMemberReq{Member: pos[1], Feeds: pos[0]},
			fmt.Sprintf("removed %s from %s", pos[1], pos[0]))
	default: // dissolve
		return c.confirm(wire.MethodDissolveFeeds, wire.FeedsReq{Feeds: pos[0]}, "dissolved "+pos[0])
	}
}

func (c *cli) groupList(args []string) error {
	fs := c.flags("group list")
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	if _, err := c.parse(fs, args, 0, 0, "group list [--json]"); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.call(wire.MethodListFeeds, wire.Empty{}, &raw); err != nil {
		return err
	}
	if *asJSON {
		return c.printRaw(raw)
	}
	var groups []wire.Group
	if err := json.Unmarshal(raw, &groups); err != nil {
		return fmt.Errorf("list_feeds: %w", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEEDS\tNAME\tOWNER\tMEMBERS")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Feeds, g.Name, g.Owner, strings.Join(g.Members, ","))
	}
	return tw.Flush()
}

const thingForm = "thing code | bind THING CODE | unbind THING | associate A B | dissociate A B | do | state | describe | commands | rule"

func (c *cli) thing(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, thingForm)
	}
	sub, args := args[0], args[1:]
	if verb, ok := thingModelVerbs[sub]; ok { // cli_thing.go
		return verb(c, args)
	}
	forms := map[string]struct {
		n    int
		form string
	}{
		"code":       {0, "thing code"},
		"bind":       {2, "thing bind THING CODE"},
		"unbind":     {1, "thing unbind THING"},
		"associate":  {2, "thing associate A B"},
		"dissociate": {2, "thing dissociate A B"},
	}
	f, ok := forms[sub]
	if !ok {
		return fmt.Errorf("%w: %s", errUsage, thingForm)
	}
	pos, err := c.parse(c.flags("thing "+sub), args, f.n, f.n, f.form)
	if err != nil {
		return err
	}
	switch sub {
	case "code":
		var res wire.PairingCode
		if err := c.call(wire.MethodPairingCode, wire.Empty{}, &res); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, res.Code)
		return nil
	case "bind":
		return c.confirm(wire.MethodBindThing, wire.BindThingReq{Thing: pos[0], Code: pos[1]}, "bound "+pos[0])
	case "unbind":
		return c.confirm(wire.MethodUnbindThing, wire.BindThingReq{Thing: pos[0]}, "unbound "+pos[0])
	case "associate":
		return c.confirm(wire.MethodAssociate, wire.AssociateReq{A: pos[0], B: pos[1]},
			fmt.Sprintf("associated %s and %s", pos[0], pos[1]))
	default: // dissociate
		return c.confirm(wire.MethodDissociate, wire.AssociateReq{A: pos[0], B: pos[1]},
			fmt.Sprintf("dissociated %s and %s", pos[0], pos[1]))
	}
}
