package wire

import (
	"errors"
	"strings"
	"testing"
)

// canonicalCases also seed FuzzCanonicalPayload.
var canonicalCases = []struct{ in, want string }{
	{`{"text":"hi"}`, `{"text":"hi"}`},
	{" {\n  \"text\" : \"hi\"\n}\n", `{"text":"hi"}`},
	{`{"b":1,"a":2,"c":{"z":[3,2,1],"y":null}}`, `{"a":2,"b":1,"c":{"y":null,"z":[3,2,1]}}`},
	{`{"n":1.0,"m":1e3,"k":-0,"j":1E+2,"i":0.5e-10}`, `{"i":0.5e-10,"j":1E+2,"k":-0,"m":1e3,"n":1.0}`},
	{`{"big":123456789012345678901234567890}`, `{"big":123456789012345678901234567890}`},
	{`"\u003ca\u003e \u0026 <a> &"`, `"<a> & <a> &"`},
	{`"\/\"\\\b\f\n\r\t\u0001\u001f\u007f"`, "\"/\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\""},
	{`"\u00e9\u4f60\ud83d\ude00\u2028"`, "\"é你😀\u2028\""},
	{`"é你😀"`, `"é你😀"`},
	{`{"\u0061":1,"b":2}`, `{"a":1,"b":2}`},
	{`{"é":1,"z":2,"Z":3,"":4}`, `{"":4,"Z":3,"z":2,"é":1}`},
	{`[]`, `[]`},
	{`{}`, `{}`},
	{`[ ]`, `[]`},
	{`{ }`, `{}`},
	{`[1, "a" ,true,false ,null, [ {} ] ]`, `[1,"a",true,false,null,[{}]]`},
	{`true`, `true`},
	{`null`, `null`},
	{`-12.5`, `-12.5`},
	{`"\u0000"`, `"\u0000"`},
}

func TestCanonicalJSON(t *testing.T) {
	for _, tt := range canonicalCases {
		got, err := CanonicalJSON([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("CanonicalJSON(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
			continue
		}
		again, err := CanonicalJSON(got)
		if err != nil || string(again) != string(got) {
			t.Errorf("CanonicalJSON(%q) = %q, %v, want it unchanged", got, again, err)
		}
	}
}

func TestCanonicalJSONBad(t *testing.T) {
	tests := []struct {
		in   string
		want error // nil: any error
	}{
		{``, nil},
		{` `, nil},
		{`{`, nil},
		{`{"a"}`, nil},
		{`{"a":}`, nil},
		{`{"a":1,}`, nil},
		{`{a:1}`, nil},
		{`[1,]`, nil},
		{`[1 2]`, nil},
		{`{"a":1}{}`, nil},
		{`{"a":1} x`, nil},
		{`01`, nil},
		{`-`, nil},
		{`1.`, nil},
		{`.5`, nil},
		{`1e`, nil},
		{`1e+`, nil},
		{`+1`, nil},
		{`NaN`, nil},
		{`tru`, nil},
		{`nul`, nil},
		{`"abc`, nil},
		{`"a\x"`, nil},
		{`"\u12"`, nil},
		{`"\u12g4"`, nil},
		{"\"a\tb\"", nil},
		{"\"a\nb\"", nil},
		{`'a'`, nil},
		{`{"a":1,"a":2}`, errDuplicateKey},
		{`{"a":1,"\u0061":2}`, errDuplicateKey},
		{`{"x":{"a":1,"b":2,"a":3}}`, errDuplicateKey},
		{"\"\xff\"", errInvalidUTF8},
		{"\"\xed\xa0\x80\"", errInvalidUTF8},
		{`"\ud800"`, errLoneSurrogate},
		{`"\udc00"`, errLoneSurrogate},
		{`"\ud800\u0041"`, errLoneSurrogate},
		{`"\ud800x"`, errLoneSurrogate},
		{strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), errTooDeep},
		{strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1), errTooDeep},
	}
	for _, tt := range tests {
		got, err := CanonicalJSON([]byte(tt.in))
		if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("CanonicalJSON(%.60q) = %q, %v, want error %v", tt.in, got, err, tt.want)
		}
	}
	deep := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	if _, err := CanonicalJSON([]byte(deep)); err != nil {
		t.Errorf("CanonicalJSON(%d nested arrays) = %v, want nil", maxJSONDepth, err)
	}
}

func TestAppendCanonicalJSONKeepsDst(t *testing.T) {
	dst := []byte("prefix")
	got, err := AppendCanonicalJSON(dst, []byte(`{"b":1,"a":[1,{"d":2,"c":1}]}`))
	if err != nil || string(got) != `prefix{"a":[1,{"c":1,"d":2}],"b":1}` {
		t.Errorf("AppendCanonicalJSON = %q, %v", got, err)
	}
	got, err = AppendCanonicalJSON(dst, []byte(`{"b":1,"a":[1,{"d":2,"c":1,"c":3}]}`))
	if err == nil || string(got) != "prefix" {
		t.Errorf("AppendCanonicalJSON(bad) = %q, %v, want dst unchanged and an error", got, err)
	}
}
