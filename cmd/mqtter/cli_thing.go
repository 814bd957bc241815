package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/thing"
)

// thingModelVerbs are the thing verbs of the thing model, the person's
// side: commanding things and reading what they report.
var thingModelVerbs = map[string]func(*cli, []string) error{
	"do":       (*cli).thingDo,
	"state":    (*cli).thingState,
	"describe": (*cli).thingDescribe,
	"commands": (*cli).thingCommands,
	"rule":     (*cli).thingRule,
}

const (
	thingDoForm       = "thing do THING [ACTION [JSON-input]] [--set PROP=JSON]... [--timeout 10s] [--json]"
	thingRuleForm     = "thing rule add A B --when event:NAME|prop:NAME [--if 'PATH OP JSON']... --then ACTION [--input JSON | --input-from PATH] [--id ID] | rule list [THING] [--json] | rule remove ID"
	thingRuleAddForm  = "thing rule add A B --when event:NAME|prop:NAME [--if 'PATH OP JSON']... --then ACTION [--input JSON | --input-from PATH] [--id ID]"
	defaultDoTimeout  = 10 * time.Second
	defaultCommandsOf = 20
)

// errCommandFailed is the error of a command its thing did not carry out
// (failed, rejected, timed out): the CLI exits non-zero.
var errCommandFailed = errors.New("command not carried out")

func (c *cli) thingDo(args []string) error {
	fs := c.flags("thing do")
	var sets multiFlag
	fs.Var(&sets, "set", "write a property: PROP=JSON (repeatable)")
	timeout := fs.Duration("timeout", defaultDoTimeout, "how long the command may wait to run; the result is awaited that long plus a grace")
	asJSON := fs.Bool("json", false, "print the command as one JSON object")
	pos, err := c.parse(fs, args, 1, 3, thingDoForm)
	if err != nil {
		return err
	}
	req := node.DoRequest{Wait: true, TimeoutMS: timeout.Milliseconds()}
	if *timeout <= 0 || *timeout > thing.MaxExpiry {
		return fmt.Errorf("%w: --timeout %v: want more than 0, at most %v", errUsage, *timeout, thing.MaxExpiry)
	}
	if len(pos) > 1 {
		req.Action = pos[1]
	}
	if len(pos) > 2 {
		if !json.Valid([]byte(pos[2])) {
			return fmt.Errorf("%w: input %q is not JSON (a string is written '\"text\"')", errUsage, pos[2])
		}
		req.Input = json.RawMessage(pos[2])
	}
	for _, s := range sets {
		name, value, ok := strings.Cut(s, "=")
		if !ok || name == "" || !json.Valid([]byte(value)) {
			return fmt.Errorf("%w: --set %q: want PROP=JSON (a string is written '\"text\"')", errUsage, s)
		}
		if req.Write == nil {
			req.Write = map[string]json.RawMessage{}
		}
		req.Write[name] = json.RawMessage(value)
	}
	if req.Action == "" && len(req.Write) == 0 {
		return fmt.Errorf("%w: give an action or --set: %s", errUsage, thingDoForm)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	row, err := cl.Do(c.ctx, pos[0], req)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := c.printJSON(row); err != nil {
			return err
		}
	} else {
		printCommand(c.stdout, row, true)
	}
	switch row.State {
	case thing.ResultDone, thing.ResultPartial:
		return nil
	case thing.ResultFailed, thing.AckRejected, thing.ResultTimeout:
		why := row.Error
		if why == "" {
			why = "no reason given"
		}
		return fmt.Errorf("%w: %s %s: %s: %s", errCommandFailed, pos[0], describeCommand(row), row.State, why)
	}
	// Still open: the wait ended early (the node stopped).
	return fmt.Errorf("%w: %s %s is still %s", errCommandFailed, pos[0], describeCommand(row), row.State)
}

// describeCommand names what a command asked for.
func describeCommand(r node.CommandRow) string {
	what := r.Action
	if len(r.Write) > 0 {
		if what != "" {
			what += " "
		}
		what += "write " + compactJSON(r.Write)
	}
	if what == "" {
		what = "(command)"
	}
	return what
}

// printCommand prints a command's state, its output or error, and (long)
// its chain.
func printCommand(w io.Writer, r node.CommandRow, long bool) {
	fmt.Fprintf(w, "%s %-8s %s %s  %s\n", clock(r.Created), r.State, r.Thing, describeCommand(r), r.MsgId)
	if len(r.Output) > 0 {
		fmt.Fprintf(w, "  output: %s\n", compactJSON(r.Output))
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	if !long {
		return
	}
	for _, l := range r.Chain {
		line := fmt.Sprintf("  chain: %s %s", l.Thing, l.Kind)
		for _, s := range []string{l.Event, l.Status} {
			if s != "" {
				line += " " + s
			}
		}
		if len(l.Body) > 0 {
			line += " " + compactJSON(l.Body)
		}
		if l.Error != "" {
			line += ": " + l.Error
		}
		fmt.Fprintf(w, "%s (hop %d)\n", line, l.Hops)
	}
}

// compactJSON prints a JSON value on one line.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		return b.String()
	}
	return string(raw)
}

func (c *cli) thingState(args []string) error {
	fs := c.flags("thing state")
	asJSON := fs.Bool("json", false, "print the state as one JSON object")
	pos, err := c.parse(fs, args, 1, 1, "thing state THING [--json]")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	st, err := cl.ThingState(c.ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(st)
	}
	if len(st.Props) == 0 {
		fmt.Fprintf(c.stdout, "(%s has reported no state to this device yet)\n", st.Thing)
	}
	for _, p := range st.Props {
		fmt.Fprintf(c.stdout, "%s = %s  (rev %d, %s)\n", p.Name, compactJSON(p.Value), p.Rev, ago(p.AgeMS))
	}
	if len(st.Events) > 0 {
		fmt.Fprintln(c.stdout, "recent events:")
		for _, ev := range st.Events {
			fmt.Fprintf(c.stdout, "  %s %s %s\n", clock(ev.At), ev.Event, compactJSON(ev.Data))
		}
	}
	return nil
}

// ago formats an age in milliseconds as "2s ago", "3m ago", "5h ago".
func ago(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func (c *cli) thingDescribe(args []string) error {
	fs := c.flags("thing describe")
	asJSON := fs.Bool("json", false, "print the answer as one JSON object")
	pos, err := c.parse(fs, args, 1, 1, "thing describe THING [--json]")
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	d, err := cl.Describe(c.ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(d)
	}
	printDescription(c.stdout, d)
	return nil
}

func printDescription(w io.Writer, res node.ThingDescription) {
	d := res.Description
	if d == nil {
		fmt.Fprintln(w, "(no description)")
		return
	}
	head := fmt.Sprintf("%s (version %d)", d.Thing, d.Version)
	if d.Title != "" {
		head += " " + d.Title
	}
	if res.Source == node.SourceCache {
		head += fmt.Sprintf("  [cached %s; server: %s]", clock(res.CachedAt), res.ServerError)
	}
	fmt.Fprintln(w, head)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(d.Properties) > 0 {
		fmt.Fprintln(tw, "properties:")
		for _, name := range slices.Sorted(maps.Keys(d.Properties)) {
			p := d.Properties[name]
			if p == nil {
				continue
			}
			access := "writable"
			if p.ReadOnly {
				access = "read-only"
			}
			obs := ""
			if p.Observable {
				obs = "observable"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", name, schemaText(&p.Schema), access, obs)
		}
	}
	if len(d.Actions) > 0 {
		fmt.Fprintln(tw, "actions:")
		for _, name := range slices.Sorted(maps.Keys(d.Actions)) {
			a := d.Actions[name]
			if a == nil {
				continue
			}
			var traits []string
			if a.Safe {
				traits = append(traits, "safe")
			}
			if a.Idempotent {
				traits = append(traits, "idempotent")
			}
			fmt.Fprintf(tw, "  %s\tinput: %s\toutput: %s\t%s\n", name, schemaText(a.Input), schemaText(a.Output), strings.Join(traits, ","))
		}
	}
	if len(d.Events) > 0 {
		fmt.Fprintln(tw, "events:")
		for _, name := range slices.Sorted(maps.Keys(d.Events)) {
			var data *thing.Schema
			if e := d.Events[name]; e != nil {
				data = e.Data
			}
			fmt.Fprintf(tw, "  %s\tdata: %s\t\t\n", name, schemaText(data))
		}
	}
	tw.Flush()
}

// schemaText is a schema in a few words: its type (or "any", "none" for
// no schema), its unit and range.
func schemaText(s *thing.Schema) string {
	if s == nil {
		return "none"
	}
	t := s.Type
	if t == "" {
		t = "any"
	}
	if s.Unit != "" {
		t += " (" + s.Unit + ")"
	}
	if s.Minimum != nil || s.Maximum != nil {
		lo, hi := "", ""
		if s.Minimum != nil {
			lo = fmt.Sprint(*s.Minimum)
		}
		if s.Maximum != nil {
			hi = fmt.Sprint(*s.Maximum)
		}
		t += " " + lo + ".." + hi
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, e := range s.Enum {
			vals = append(vals, string(e))
		}
		t += " one of " + strings.Join(vals, "|")
	}
	return t
}

func (c *cli) thingCommands(args []string) error {
	fs := c.flags("thing commands")
	asJSON := fs.Bool("json", false, "print the commands as a JSON array")
	limit := fs.Int("limit", defaultCommandsOf, "at most this many of the latest commands")
	pos, err := c.parse(fs, args, 1, 1, "thing commands THING [--json] [--limit N]")
	if err != nil {
		return err
	}
	if *limit < 1 {
		return fmt.Errorf("%w: --limit %d is not a count", errUsage, *limit)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	rows, err := cl.Commands(c.ctx, pos[0], *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		if rows == nil {
			rows = []node.CommandRow{}
		}
		return c.printJSON(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(c.stdout, "(no commands sent to %s from this account yet)\n", pos[0])
	}
	for _, r := range rows {
		printCommand(c.stdout, r, true)
	}
	return nil
}
