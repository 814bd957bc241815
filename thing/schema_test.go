package thing

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// schemaCheckTests are the cases of TestSchemaCheck, and the seeds of
// FuzzSchemaCheck.
var schemaCheckTests = []struct {
	name   string
	schema string
	value  string
	ok     bool
}{
	{"empty schema, number", `{}`, `1.5`, true},
	{"empty schema, object", `{}`, `{"a":[1,"x",null]}`, true},
	{"empty schema, absent", `{}`, ``, true},
	{"empty schema, blank", `{}`, " \n\t", true},
	{"empty schema, huge number", `{}`, `1e400`, true},
	{"not JSON", `{}`, `{"a":`, false},
	{"two values", `{}`, `1 2`, false},
	{"trailing bracket", `{}`, `1]`, false},
	{"trailing brace", `{}`, `{"a":1}}`, false},

	{"integer, integer", `{"type":"integer"}`, `3`, true},
	{"integer, negative", `{"type":"integer"}`, `-3`, true},
	{"integer, 1.0", `{"type":"integer"}`, `1.0`, true},
	{"integer, 1e2", `{"type":"integer"}`, `1e2`, true},
	{"integer, 1e19", `{"type":"integer"}`, `1e19`, true},
	{"integer, 1e300", `{"type":"integer"}`, `1e300`, true},
	{"integer, 10^19 written out", `{"type":"integer"}`, `10000000000000000000`, true},
	{"integer, 1.5", `{"type":"integer"}`, `1.5`, false},
	{"integer, 1e-2", `{"type":"integer"}`, `1e-2`, false},
	{"integer, string", `{"type":"integer"}`, `"3"`, false},
	{"integer, absent", `{"type":"integer"}`, ``, false},
	{"number, integer", `{"type":"number"}`, `3`, true},
	{"number, fraction", `{"type":"number"}`, `3.25`, true},
	{"number, bool", `{"type":"number"}`, `true`, false},
	{"boolean", `{"type":"boolean"}`, `false`, true},
	{"boolean, null", `{"type":"boolean"}`, `null`, false},
	{"string", `{"type":"string"}`, `"on"`, true},
	{"string, number", `{"type":"string"}`, `1`, false},
	{"null, null", `{"type":"null"}`, `null`, true},
	{"null, absent", `{"type":"null"}`, ``, true},
	{"null, 0", `{"type":"null"}`, `0`, false},
	{"object", `{"type":"object"}`, `{}`, true},
	{"object, array", `{"type":"object"}`, `[]`, false},
	{"array", `{"type":"array"}`, `[1]`, true},
	{"array, object", `{"type":"array"}`, `{}`, false},

	{"enum, in", `{"enum":["on","off"]}`, `"off"`, true},
	{"enum, out", `{"enum":["on","off"]}`, `"dim"`, false},
	{"enum, number written otherwise", `{"enum":[1,2]}`, `1.0`, true},
	{"enum, object in any order", `{"enum":[{"a":1,"b":2}]}`, `{"b":2,"a":1}`, true},
	{"enum, null", `{"enum":[null]}`, ``, true},
	{"enum and type", `{"type":"string","enum":["1"]}`, `1`, false},

	{"minimum, at", `{"type":"number","minimum":0}`, `0`, true},
	{"minimum, under", `{"type":"number","minimum":0}`, `-0.5`, false},
	{"maximum, at", `{"type":"integer","maximum":100}`, `100`, true},
	{"maximum, over", `{"type":"integer","maximum":100}`, `101`, false},
	{"range, in", `{"minimum":-10.5,"maximum":10.5}`, `10.5`, true},
	{"range, out of float64", `{"minimum":0}`, `1e400`, false},

	{"maxLength, at", `{"type":"string","maxLength":3}`, `"abc"`, true},
	{"maxLength, in runes", `{"type":"string","maxLength":3}`, `"äöü"`, true},
	{"maxLength, over", `{"type":"string","maxLength":3}`, `"abcd"`, false},
	{"maxLength, zero", `{"maxLength":0}`, `""`, true},

	{"required, there", `{"type":"object","required":["a"]}`, `{"a":null}`, true},
	{"required, missing", `{"type":"object","required":["a","b"]}`, `{"a":1}`, false},
	{"required, not an object", `{"required":["a"]}`, `1`, true},

	{"properties, fit", `{"properties":{"a":{"type":"integer"},"b":{"type":"string"}}}`, `{"a":1,"b":"x","c":true}`, true},
	{"properties, misfit", `{"properties":{"a":{"type":"integer"}}}`, `{"a":"1"}`, false},
	{"properties, absent member", `{"properties":{"a":{"type":"integer"}}}`, `{}`, true},
	{"properties, nested", `{"properties":{"a":{"properties":{"b":{"maximum":1}}}}}`, `{"a":{"b":2}}`, false},
	{"properties, nested fit", `{"properties":{"a":{"properties":{"b":{"maximum":1}}}}}`, `{"a":{"b":1}}`, true},
	{"properties, null schema", `{"properties":{"a":null}}`, `{"a":1}`, true},

	{"items, fit", `{"type":"array","items":{"type":"integer"}}`, `[1,2,3]`, true},
	{"items, misfit", `{"type":"array","items":{"type":"integer"}}`, `[1,2.5]`, false},
	{"items, empty", `{"items":{"type":"integer"}}`, `[]`, true},
	{"items, nested", `{"items":{"items":{"enum":[0]}}}`, `[[0],[0,1]]`, false},
	{"items, null schema", `{"items":null}`, `[1]`, true},

	{"depth, at the limit", nested(maxSchemaDepth), nestedValue(maxSchemaDepth), true},
	{"depth, over the limit", nested(maxSchemaDepth + 1), nestedValue(maxSchemaDepth + 1), false},
}

// nested returns a schema of n nested objects under the member "a".
func nested(n int) string {
	return strings.Repeat(`{"properties":{"a":`, n) + `{}` + strings.Repeat(`}}`, n)
}

// nestedValue returns a value that nested(n) walks to the bottom.
func nestedValue(n int) string {
	return strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n)
}

func mustSchema(t testing.TB, s string) *Schema {
	t.Helper()
	var sc Schema
	if err := json.Unmarshal([]byte(s), &sc); err != nil {
		t.Fatalf("schema %s: %v", s, err)
	}
	return &sc
}

func TestSchemaCheck(t *testing.T) {
	for _, tt := range schemaCheckTests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSchema(t, tt.schema)
			err := s.Check(json.RawMessage(tt.value))
			if (err == nil) != tt.ok {
				t.Fatalf("Schema(%s).Check(%s) = %v, want ok %v", tt.schema, tt.value, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInput) {
				t.Errorf("Schema(%s).Check(%s) = %v, want it to wrap ErrInput", tt.schema, tt.value, err)
			}
		})
	}
}

func TestSchemaCheckNil(t *testing.T) {
	var s *Schema
	if err := s.Check(json.RawMessage(`{"any":"thing"}`)); err != nil {
		t.Errorf("nil Schema.Check = %v, want nil", err)
	}
}

func TestSchemaValidate(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		ok     bool
	}{
		{"empty", `{}`, true},
		{"every type", `{"type":"object","properties":{"a":{"type":"boolean"},"b":{"type":"integer"},"c":{"type":"number"},"d":{"type":"string"},"e":{"type":"array","items":{"type":"null"}}}}`, true},
		{"unknown type", `{"type":"float"}`, false},
		{"nested unknown type", `{"properties":{"a":{"items":{"type":"int"}}}}`, false},
		{"minimum over maximum", `{"minimum":2,"maximum":1}`, false},
		{"minimum at maximum", `{"minimum":1,"maximum":1}`, true},
		{"depth at the limit", nested(maxSchemaDepth), true},
		{"depth over the limit", nested(maxSchemaDepth + 1), false},
		{"items depth over the limit", strings.Repeat(`{"items":`, maxSchemaDepth+1) + `{}` + strings.Repeat(`}`, maxSchemaDepth+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mustSchema(t, tt.schema).validate(0)
			if (err == nil) != tt.ok {
				t.Errorf("Schema(%s).validate = %v, want ok %v", tt.schema, err, tt.ok)
			}
		})
	}
}
