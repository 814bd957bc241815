package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/thing"
)

// condOps are the comparisons a rule's condition may make.
var condOps = []string{"eq", "ne", "gt", "ge", "lt", "le"}

func (c *cli) thingRule(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, thingRuleForm)
	}
	switch sub, args := args[0], args[1:]; sub {
	case "add":
		return c.ruleAdd(args)
	case "list":
		return c.ruleList(args)
	case "remove":
		pos, err := c.parse(c.flags("thing rule remove"), args, 1, 1, "thing rule remove ID")
		if err != nil {
			return err
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		if err := cl.RemoveRule(c.ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "removed rule %s\n", pos[0])
		return nil
	}
	return fmt.Errorf("%w: %s", errUsage, thingRuleForm)
}

func (c *cli) ruleAdd(args []string) error {
	fs := c.flags("thing rule add")
	when := fs.String("when", "", "the trigger: event:NAME (an event of A) or prop:NAME (a change of A's property)")
	var conds multiFlag
	fs.Var(&conds, "if", "a condition on the trigger's data: 'PATH OP JSON' or 'OP JSON' for the whole value; OP is eq, ne, gt, ge, lt or le (repeatable)")
	then := fs.String("then", "", "the action B runs")
	input := fs.String("input", "", "the action's input (JSON)")
	inputFrom := fs.String("input-from", "", "take the action's input from this path of the trigger's data")
	id := fs.String("id", "", "the rule's id (default: a fresh one)")
	pos, err := c.parse(fs, args, 2, 2, thingRuleAddForm)
	if err != nil {
		return err
	}
	req := node.RuleRequest{ID: *id, A: pos[0], B: pos[1], Then: thing.Then{Action: *then, InputFrom: *inputFrom}}
	kind, name, ok := strings.Cut(*when, ":")
	switch {
	case ok && kind == "event" && name != "":
		req.When.Event = name
	case ok && kind == "prop" && name != "":
		req.When.Property = name
	default:
		return fmt.Errorf("%w: --when %q: want event:NAME or prop:NAME", errUsage, *when)
	}
	if *then == "" {
		return fmt.Errorf("%w: --then ACTION is required: %s", errUsage, thingRuleAddForm)
	}
	if *input != "" && *inputFrom != "" {
		return fmt.Errorf("%w: --input and --input-from exclude each other", errUsage)
	}
	if *input != "" {
		if !json.Valid([]byte(*input)) {
			return fmt.Errorf("%w: --input %q is not JSON", errUsage, *input)
		}
		req.Then.Input = json.RawMessage(*input)
	}
	for _, s := range conds {
		cond, err := parseCond(s)
		if err != nil {
			return err
		}
		req.When.If = append(req.When.If, cond)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	res, err := cl.AddRule(c.ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, res.ID)
	return nil
}

// parseCond parses "PATH OP JSON" or "OP JSON" (the whole value).
func parseCond(s string) (thing.Cond, error) {
	bad := fmt.Errorf("%w: --if %q: want 'PATH OP JSON' or 'OP JSON', OP one of %v", errUsage, s, condOps)
	first, rest, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return thing.Cond{}, bad
	}
	var cond thing.Cond
	if slices.Contains(condOps, first) {
		cond.Op = first
	} else {
		cond.Path = first
		op, value, ok := strings.Cut(strings.TrimSpace(rest), " ")
		if !ok || !slices.Contains(condOps, op) {
			return thing.Cond{}, bad
		}
		cond.Op, rest = op, value
	}
	rest = strings.TrimSpace(rest)
	if !json.Valid([]byte(rest)) {
		return thing.Cond{}, fmt.Errorf("%w: --if %q: %q is not JSON", errUsage, s, rest)
	}
	cond.Value = json.RawMessage(rest)
	return cond, nil
}

func (c *cli) ruleList(args []string) error {
	fs := c.flags("thing rule list")
	asJSON := fs.Bool("json", false, "print the rules as a JSON array")
	pos, err := c.parse(fs, args, 0, 1, "thing rule list [THING] [--json]")
	if err != nil {
		return err
	}
	of := ""
	if len(pos) == 1 {
		of = pos[0]
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	rules, err := cl.Rules(c.ctx, of)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(rules)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWHEN\tTHEN\tBY")
	for _, r := range rules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, ruleWhen(r), ruleThen(r), r.By)
	}
	return tw.Flush()
}

func ruleWhen(r thing.Rule) string {
	s := r.A + " event:" + r.When.Event
	if r.When.Property != "" {
		s = r.A + " prop:" + r.When.Property
	}
	for _, c := range r.When.If {
		path := c.Path
		if path == "" {
			path = "."
		}
		s += fmt.Sprintf(" if %s %s %s", path, c.Op, compactJSON(c.Value))
	}
	return s
}

func ruleThen(r thing.Rule) string {
	s := r.B + " " + r.Then.Action
	switch {
	case r.Then.InputFrom != "":
		s += " input from " + r.Then.InputFrom
	case len(r.Then.Input) > 0:
		s += " " + compactJSON(r.Then.Input)
	}
	return s
}
