package thing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// ErrInput is wrapped by Schema.Check's errors: a value does not fit the
// schema.
var ErrInput = errors.New("invalid input")

// Schema is the JSON-schema-like description of a value: its type and the
// few constraints a device needs (range, choices, length, object members,
// array items). An empty Schema accepts any value.
type Schema struct {
	// Type is one of boolean, integer, number, string, object, array,
	// null; "" accepts any type.
	Type       string             `json:"type,omitempty"`
	Title      string             `json:"title,omitempty"`
	Unit       string             `json:"unit,omitempty"`
	Enum       []json.RawMessage  `json:"enum,omitempty"`
	Minimum    *float64           `json:"minimum,omitempty"`
	Maximum    *float64           `json:"maximum,omitempty"`
	MaxLength  *int               `json:"maxLength,omitempty"`
	Properties map[string]*Schema `json:"properties,omitempty"`
	Required   []string           `json:"required,omitempty"`
	Items      *Schema            `json:"items,omitempty"`
}

// schemaTypes are the types a Schema may name.
var schemaTypes = []string{"", "boolean", "integer", "number", "string", "object", "array", "null"}

// maxSchemaDepth bounds the nesting of a schema, and of a value Check walks.
const maxSchemaDepth = 16

// validate checks the schema itself.
func (s *Schema) validate(depth int) error {
	if s == nil {
		return nil
	}
	if depth > maxSchemaDepth {
		return errors.New("schema nested too deep")
	}
	if !slices.Contains(schemaTypes, s.Type) {
		return fmt.Errorf("unknown type %.40q", s.Type)
	}
	if s.Minimum != nil && s.Maximum != nil && *s.Minimum > *s.Maximum {
		return errors.New("minimum over maximum")
	}
	for _, e := range s.Enum {
		if !json.Valid(e) {
			return errors.New("enum holds a value that is not JSON")
		}
	}
	for name, p := range s.Properties {
		if err := p.validate(depth + 1); err != nil {
			return fmt.Errorf("property %.40q: %w", name, err)
		}
	}
	return s.Items.validate(depth + 1)
}

// Check reports whether v (one JSON value; empty means absent, which only
// an empty schema or a null type accepts) fits the schema. Errors wrap
// ErrInput and say where the value is wrong.
func (s *Schema) Check(v json.RawMessage) error {
	if s == nil {
		return nil
	}
	if onlyJSONSpace(v) {
		v = json.RawMessage("null")
	}
	var x any
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	if err := d.Decode(&x); err != nil {
		return fmt.Errorf("%w: not JSON: %v", ErrInput, err)
	}
	if !onlyJSONSpace(v[d.InputOffset():]) {
		return fmt.Errorf("%w: more than one JSON value", ErrInput)
	}
	return s.check(x, "", 0)
}

func (s *Schema) check(x any, at string, depth int) error {
	if s == nil {
		return nil // "properties": {"a": null} constrains nothing, as validate reads it
	}
	if depth > maxSchemaDepth {
		return fmt.Errorf("%w: %s nested too deep", ErrInput, where(at))
	}
	if s.Type != "" && typeOf(x) != s.Type && !(s.Type == "number" && typeOf(x) == "integer") {
		return fmt.Errorf("%w: %s is %s, want %s", ErrInput, where(at), typeOf(x), s.Type)
	}
	if len(s.Enum) > 0 {
		got, _ := json.Marshal(x)
		ok := false
		for _, e := range s.Enum {
			ok = ok || sameJSON(e, got)
		}
		if !ok {
			return fmt.Errorf("%w: %s is not one of the allowed values", ErrInput, where(at))
		}
	}
	switch v := x.(type) {
	case json.Number:
		if s.Minimum == nil && s.Maximum == nil {
			break // a number past float64's range is JSON still, and no bound to compare
		}
		f, err := v.Float64()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInput, where(at), err)
		}
		if s.Minimum != nil && f < *s.Minimum {
			return fmt.Errorf("%w: %s is %v, under the minimum %v", ErrInput, where(at), f, *s.Minimum)
		}
		if s.Maximum != nil && f > *s.Maximum {
			return fmt.Errorf("%w: %s is %v, over the maximum %v", ErrInput, where(at), f, *s.Maximum)
		}
	case string:
		if s.MaxLength != nil && len([]rune(v)) > *s.MaxLength {
			return fmt.Errorf("%w: %s is longer than %d", ErrInput, where(at), *s.MaxLength)
		}
	case map[string]any:
		for _, r := range s.Required {
			if _, ok := v[r]; !ok {
				return fmt.Errorf("%w: %s lacks %q", ErrInput, where(at), r)
			}
		}
		for name, sub := range s.Properties {
			if mv, ok := v[name]; ok {
				if err := sub.check(mv, at+"."+name, depth+1); err != nil {
					return err
				}
			}
		}
	case []any:
		if s.Items != nil {
			for i, item := range v {
				if err := s.Items.check(item, fmt.Sprintf("%s[%d]", at, i), depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func where(at string) string {
	if at == "" {
		return "the value"
	}
	return strings.TrimPrefix(at, ".")
}

func typeOf(x any) string {
	switch v := x.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		if !strings.ContainsAny(v.String(), ".eE") {
			return "integer"
		}
		// Not int64(f), whose value past ±2^63 is up to the platform.
		if f, err := v.Float64(); err == nil && f == math.Trunc(f) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "unknown"
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
