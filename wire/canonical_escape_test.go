package wire

import (
	"fmt"
	"strings"
	"testing"
)

// The escaping docs/protocol.md promises a third-party signer, code point by
// code point: U+0000–U+001F are the only characters escaped besides " and
// \, with the five short forms and otherwise \u00XX in lowercase hex;
// U+007F, U+0080–U+009F, "/", U+2028 and everything else stay literal
// UTF-8; an input escape in uppercase hex comes out lowercase.
func TestCanonicalEscaping(t *testing.T) {
	short := map[rune]string{'\b': `\b`, '\t': `\t`, '\n': `\n`, '\f': `\f`, '\r': `\r`, '"': `\"`, '\\': `\\`}
	for r := rune(0); r <= 0xFFFF; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue // surrogates are not characters
		}
		want, ok := short[r]
		switch {
		case ok:
		case r < 0x20:
			want = fmt.Sprintf(`\u%04x`, r)
		default:
			want = string(r)
		}
		in := fmt.Sprintf(`"\u%04X"`, r) // uppercase hex in, escaped in
		got, err := CanonicalJSON([]byte(in))
		if err != nil {
			t.Fatalf("CanonicalJSON(%s): %v", in, err)
		}
		if string(got) != `"`+want+`"` {
			t.Errorf("CanonicalJSON(%s) = %q, want %q", in, got, `"`+want+`"`)
		}
		if r >= 0x20 && r != '"' && r != '\\' {
			lit := `"` + string(r) + `"`
			if got, err := CanonicalJSON([]byte(lit)); err != nil || string(got) != lit {
				t.Errorf("CanonicalJSON(literal U+%04X) = %q, %v; want it unchanged", r, got, err)
			}
		}
	}
	if got, _ := CanonicalJSON([]byte(`"\/"`)); string(got) != `"/"` {
		t.Errorf(`CanonicalJSON("\/") = %s, want "/"`, got)
	}
	if got, _ := CanonicalJSON([]byte(`"\ud83d\ude00"`)); !strings.Contains(string(got), "😀") {
		t.Errorf("a surrogate pair escape = %s, want the literal character", got)
	}
}
