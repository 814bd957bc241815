package thing

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/mqtter/mqtter/wire"
)

// ErrBadDescription is wrapped by Description.Validate's errors.
var ErrBadDescription = errors.New("bad description")

// Limits on a description, so that one fits a message and a request.
const (
	MaxAffordances = 64 // properties, actions and events, each
	MaxNameLen     = 64
	MaxDescription = 64 << 10
	MaxTitleLength = 200
)

// Description is what a thing can do: its properties, actions and events,
// versioned. A thing publishes it (the describe method, and feedback of
// kind description); the server keeps the latest version and serves it to
// the persons bound to the thing and the things associated with it.
type Description struct {
	Thing      string               `json:"thing"`   // the thing's account
	Version    int64                `json:"version"` // higher replaces lower
	Title      string               `json:"title,omitempty"`
	Properties map[string]*Property `json:"properties,omitempty"`
	Actions    map[string]*Action   `json:"actions,omitempty"`
	Events     map[string]*Event    `json:"events,omitempty"`
}

// Property is a value the thing holds. ReadOnly ones cannot be written by a
// command; Observable ones are reported in state feedback when they change.
type Property struct {
	Schema
	ReadOnly   bool `json:"readOnly,omitempty"`
	Observable bool `json:"observable,omitempty"`
}

// Action is something the thing does on command. Safe actions change
// nothing; Idempotent ones may be run twice with the effect of once.
type Action struct {
	Title      string  `json:"title,omitempty"`
	Input      *Schema `json:"input,omitempty"`
	Output     *Schema `json:"output,omitempty"`
	Safe       bool    `json:"safe,omitempty"`
	Idempotent bool    `json:"idempotent,omitempty"`
}

// Event is something the thing reports by itself.
type Event struct {
	Title string  `json:"title,omitempty"`
	Data  *Schema `json:"data,omitempty"`
}

// Validate checks that the description is well formed: a thing account, a
// version of at least 1, names of 1 to MaxNameLen printable characters, at
// most MaxAffordances of each kind, and schemas that make sense.
func (d *Description) Validate() error {
	if !wire.ValidAccount(d.Thing) {
		return fmt.Errorf("%w: thing %.80q is not an account name", ErrBadDescription, d.Thing)
	}
	if d.Version < 1 {
		return fmt.Errorf("%w: version %d, want 1 or more", ErrBadDescription, d.Version)
	}
	if len(d.Title) > MaxTitleLength {
		return fmt.Errorf("%w: title over %d bytes", ErrBadDescription, MaxTitleLength)
	}
	check := func(kind string, n int, names []string, schemas func(string) []*Schema) error {
		if n > MaxAffordances {
			return fmt.Errorf("%w: %d %s, over the limit of %d", ErrBadDescription, n, kind, MaxAffordances)
		}
		for _, name := range names {
			if !validName(name) {
				return fmt.Errorf("%w: %s name %.80q: want 1 to %d printable characters", ErrBadDescription, kind, name, MaxNameLen)
			}
			for _, s := range schemas(name) {
				if err := s.validate(0); err != nil {
					return fmt.Errorf("%w: %s %q: %v", ErrBadDescription, kind, name, err)
				}
			}
		}
		return nil
	}
	if err := check("properties", len(d.Properties), slices.Collect(maps.Keys(d.Properties)), func(n string) []*Schema {
		if d.Properties[n] == nil {
			return nil
		}
		return []*Schema{&d.Properties[n].Schema}
	}); err != nil {
		return err
	}
	if err := check("actions", len(d.Actions), slices.Collect(maps.Keys(d.Actions)), func(n string) []*Schema {
		if a := d.Actions[n]; a != nil {
			return []*Schema{a.Input, a.Output}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := check("events", len(d.Events), slices.Collect(maps.Keys(d.Events)), func(n string) []*Schema {
		if e := d.Events[n]; e != nil {
			return []*Schema{e.Data}
		}
		return nil
	}); err != nil {
		return err
	}
	if b, err := json.Marshal(d); err != nil || len(b) > MaxDescription {
		return fmt.Errorf("%w: over %d bytes", ErrBadDescription, MaxDescription)
	}
	return nil
}

// validName reports whether name may name a property, action or event.
func validName(name string) bool {
	if name == "" || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// CheckCommand reports whether c fits the description: its action is one
// the thing has, with an input that fits the action's input schema, and
// every property it writes is one the thing has and is not read-only,
// with a value that fits. Errors wrap ErrInput or ErrUnknownAction.
func (d *Description) CheckCommand(c *Command) error {
	if c.Action != "" {
		a, ok := d.Actions[c.Action]
		if !ok || a == nil {
			return fmt.Errorf("%w: %.64q (%s has %v)", ErrUnknownAction, c.Action, d.Thing, slices.Sorted(maps.Keys(d.Actions)))
		}
		if a.Input == nil {
			if len(c.Input) > 0 && string(c.Input) != "null" {
				return fmt.Errorf("%w: action %s takes no input", ErrInput, c.Action)
			}
		} else if err := a.Input.Check(c.Input); err != nil {
			return fmt.Errorf("action %s: %w", c.Action, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Write)) {
		p, ok := d.Properties[name]
		if !ok || p == nil {
			return fmt.Errorf("%w: no property %.64q", ErrUnknownAction, name)
		}
		if p.ReadOnly {
			return fmt.Errorf("%w: property %s is read-only", ErrInput, name)
		}
		if err := p.Schema.Check(c.Write[name]); err != nil {
			return fmt.Errorf("property %s: %w", name, err)
		}
	}
	return nil
}
