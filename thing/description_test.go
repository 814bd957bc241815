package thing

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// lampDescription is a small, valid description the tests change.
func lampDescription() *Description {
	return &Description{
		Thing:   "lamp",
		Version: 1,
		Title:   "Desk lamp",
		Properties: map[string]*Property{
			"on":         {Schema: Schema{Type: "boolean"}, Observable: true},
			"brightness": {Schema: Schema{Type: "integer", Minimum: ptr(0.0), Maximum: ptr(100.0)}, Observable: true},
			"power":      {Schema: Schema{Type: "number", Unit: "W"}, ReadOnly: true},
		},
		Actions: map[string]*Action{
			"toggle": {Title: "Toggle"},
			"fade": {Input: &Schema{
				Type:       "object",
				Required:   []string{"to"},
				Properties: map[string]*Schema{"to": {Type: "integer", Minimum: ptr(0.0), Maximum: ptr(100.0)}, "ms": {Type: "integer"}},
			}},
		},
		Events: map[string]*Event{
			"overheat": {Data: &Schema{Type: "number"}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func TestDescriptionValidate(t *testing.T) {
	many := func(n int) map[string]*Action {
		m := make(map[string]*Action, n)
		for i := range n {
			m[fmt.Sprintf("a%d", i)] = &Action{}
		}
		return m
	}
	tests := []struct {
		name   string
		change func(d *Description)
		ok     bool
	}{
		{"valid", func(d *Description) {}, true},
		{"nil affordances", func(d *Description) {
			d.Properties["x"], d.Actions["y"], d.Events["z"] = nil, nil, nil
		}, true},
		{"bare", func(d *Description) { d.Properties, d.Actions, d.Events = nil, nil, nil }, true},
		{"no thing", func(d *Description) { d.Thing = "" }, false},
		{"thing not an account", func(d *Description) { d.Thing = "Lamp" }, false},
		{"version 0", func(d *Description) { d.Version = 0 }, false},
		{"version negative", func(d *Description) { d.Version = -1 }, false},
		{"title too long", func(d *Description) { d.Title = strings.Repeat("x", MaxTitleLength+1) }, false},
		{"empty property name", func(d *Description) { d.Properties[""] = &Property{} }, false},
		{"property name with a space", func(d *Description) { d.Properties["a b"] = &Property{} }, false},
		{"property name with a control", func(d *Description) { d.Properties["a\x00"] = &Property{} }, false},
		{"property name not ASCII", func(d *Description) { d.Properties["héat"] = &Property{} }, false},
		{"action name too long", func(d *Description) { d.Actions[strings.Repeat("a", MaxNameLen+1)] = &Action{} }, false},
		{"action name at the limit", func(d *Description) { d.Actions[strings.Repeat("a", MaxNameLen)] = &Action{} }, true},
		{"event name with DEL", func(d *Description) { d.Events["x\x7f"] = &Event{} }, false},
		{"actions at the limit", func(d *Description) { d.Actions = many(MaxAffordances) }, true},
		{"too many actions", func(d *Description) { d.Actions = many(MaxAffordances + 1) }, false},
		{"too many properties", func(d *Description) {
			for i := range MaxAffordances {
				d.Properties[fmt.Sprintf("p%d", i)] = &Property{}
			}
		}, false},
		{"too many events", func(d *Description) {
			for i := range MaxAffordances {
				d.Events[fmt.Sprintf("e%d", i)] = &Event{}
			}
		}, false},
		{"property schema of unknown type", func(d *Description) { d.Properties["on"].Type = "bool" }, false},
		{"action input with minimum over maximum", func(d *Description) {
			d.Actions["fade"].Input.Properties["to"].Minimum = ptr(200.0)
		}, false},
		{"action output of unknown type", func(d *Description) { d.Actions["toggle"].Output = &Schema{Type: "int"} }, false},
		{"event data too deep", func(d *Description) { d.Events["overheat"].Data = mustSchema(t, nested(maxSchemaDepth+1)) }, false},
		{"too large", func(d *Description) {
			for i := range MaxAffordances {
				d.Actions[fmt.Sprintf("a%d", i)] = &Action{Title: strings.Repeat("x", MaxTitleLength*6)}
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := lampDescription()
			tt.change(d)
			err := d.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadDescription) {
				t.Errorf("Validate() = %v, want it to wrap ErrBadDescription", err)
			}
		})
	}
}

func TestDescriptionCheckCommand(t *testing.T) {
	tests := []struct {
		name    string
		command Command
		want    error // nil, ErrInput or ErrUnknownAction
	}{
		{"action without input", Command{Action: "toggle"}, nil},
		{"action without input, input null", Command{Action: "toggle", Input: json.RawMessage(`null`)}, nil},
		{"action without input given input", Command{Action: "toggle", Input: json.RawMessage(`{}`)}, ErrInput},
		{"action with input", Command{Action: "fade", Input: json.RawMessage(`{"to":50,"ms":200}`)}, nil},
		{"action, input missing", Command{Action: "fade"}, ErrInput},
		{"action, input lacks a member", Command{Action: "fade", Input: json.RawMessage(`{"ms":200}`)}, ErrInput},
		{"action, input over the maximum", Command{Action: "fade", Input: json.RawMessage(`{"to":101}`)}, ErrInput},
		{"action, input of the wrong type", Command{Action: "fade", Input: json.RawMessage(`[50]`)}, ErrInput},
		{"unknown action", Command{Action: "explode"}, ErrUnknownAction},
		{"nil action", Command{Action: "nothing"}, ErrUnknownAction},
		{"write", Command{Write: map[string]json.RawMessage{"on": json.RawMessage(`true`), "brightness": json.RawMessage(`40`)}}, nil},
		{"write out of range", Command{Write: map[string]json.RawMessage{"brightness": json.RawMessage(`-1`)}}, ErrInput},
		{"write of the wrong type", Command{Write: map[string]json.RawMessage{"on": json.RawMessage(`"yes"`)}}, ErrInput},
		{"write to a read-only property", Command{Write: map[string]json.RawMessage{"power": json.RawMessage(`5`)}}, ErrInput},
		{"write to an unknown property", Command{Write: map[string]json.RawMessage{"colour": json.RawMessage(`"red"`)}}, ErrUnknownAction},
		{"write to a nil property", Command{Write: map[string]json.RawMessage{"nothing": json.RawMessage(`1`)}}, ErrUnknownAction},
		{"action and write", Command{Action: "toggle", Write: map[string]json.RawMessage{"brightness": json.RawMessage(`1`)}}, nil},
		{"good action, bad write", Command{Action: "toggle", Write: map[string]json.RawMessage{"power": json.RawMessage(`1`)}}, ErrInput},
	}
	d := lampDescription()
	d.Actions["nothing"] = nil
	d.Properties["nothing"] = nil
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.CheckCommand(&tt.command)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("CheckCommand(%+v) = %v, want %v", tt.command, err, tt.want)
			}
		})
	}
}
