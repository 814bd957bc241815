package wire

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting CanonicalJSON follows, so a hostile payload
// cannot make it recurse without end.
const maxJSONDepth = 512

// Reasons CanonicalJSON refuses input that encoding/json would accept; they
// would let two different payloads share one signature, or one payload read
// differently by different parsers.
var (
	errDuplicateKey  = errors.New("duplicate object key")
	errInvalidUTF8   = errors.New("invalid UTF-8 in string")
	errLoneSurrogate = errors.New(`lone UTF-16 surrogate in \u escape`)
	errTooDeep       = errors.New("nesting too deep")
)

// CanonicalJSON returns the canonical encoding of the single JSON value in b,
// the form Message.SigningBytes covers:
//
//   - no whitespace outside strings;
//   - object members sorted by key, compared as UTF-8 bytes after unescaping
//     (unlike RFC 8785, which compares UTF-16 units; the two differ only
//     between U+E000–U+FFFF and supplementary characters);
//   - numbers byte for byte as written;
//   - strings with only the escapes JSON requires: \" \\ \b \f \n \r \t and
//     \u00XX for other control characters, everything else literal UTF-8
//     (no HTML escaping, no \u2028).
//
// It rejects what is not a valid JSON text and, stricter than encoding/json,
// duplicate keys, invalid UTF-8, lone surrogate escapes and nesting deeper
// than 512.
func CanonicalJSON(b []byte) ([]byte, error) {
	return AppendCanonicalJSON(make([]byte, 0, len(b)), b)
}

// AppendCanonicalJSON appends the canonical encoding of b to dst (see
// CanonicalJSON). On error it returns dst unchanged.
//
// It works in two linear passes, so that its cost does not grow with nesting:
// parse b into a flat list of tokens (checking the grammar), then emit them,
// sorting each object's members by key.
func AppendCanonicalJSON(dst, b []byte) ([]byte, error) {
	if len(b) > math.MaxInt32 {
		return dst, fmt.Errorf("canonical json: %d bytes is too long", len(b))
	}
	c := canonicalizer{in: b}
	c.skipSpace()
	err := c.value(0)
	if err == nil {
		c.skipSpace()
		if c.pos < len(c.in) {
			err = c.errorf("unexpected %q after the value", c.in[c.pos])
		}
	}
	if err != nil {
		return dst, err
	}
	out, _, err := c.emit(dst, 0)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// token is one JSON value, or an object key, in parse order. The tokens of
// a container's contents follow it, and next skips them.
type token struct {
	kind       byte  // '{', '[', '"' (a string value with escapes), 's' (one without), 'k' (an object key), 'r' (a number or literal)
	start, end int32 // the span in the input: the text of a raw value, or a string with its quotes
	next       int32 // index of the first token after this value and its contents
	key        int32 // for 'k': index into canonicalizer.keys
}

type canonicalizer struct {
	in      []byte
	pos     int
	tokens  []token
	keys    []string // decoded object keys
	scratch []byte   // decoded string values
}

func (c *canonicalizer) errorf(format string, args ...any) error {
	return fmt.Errorf("canonical json: offset %d: %s", c.pos, fmt.Sprintf(format, args...))
}

func (c *canonicalizer) fail(err error) error {
	return fmt.Errorf("canonical json: offset %d: %w", c.pos, err)
}

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// push appends a token for the value starting at c.pos and returns its index.
func (c *canonicalizer) push(kind byte) int {
	c.tokens = append(c.tokens, token{kind: kind, start: int32(c.pos)})
	return len(c.tokens) - 1
}

// done records where the value of token i ends.
func (c *canonicalizer) done(i int) {
	c.tokens[i].end = int32(c.pos)
	c.tokens[i].next = int32(len(c.tokens))
}

func (c *canonicalizer) value(depth int) error {
	if c.pos >= len(c.in) {
		return c.errorf("unexpected end of input")
	}
	switch ch := c.in[c.pos]; {
	case ch == '{':
		return c.object(depth + 1)
	case ch == '[':
		return c.array(depth + 1)
	case ch == '"':
		i := c.push('"')
		var err error
		if c.scratch, err = c.str(c.scratch[:0]); err != nil {
			return err
		}
		c.done(i)
		if int(c.tokens[i].end-c.tokens[i].start) == len(c.scratch)+2 {
			c.tokens[i].kind = 's' // no escapes: already canonical
		}
		return nil
	case ch == '-' || '0' <= ch && ch <= '9':
		i := c.push('r')
		if err := c.number(); err != nil {
			return err
		}
		c.done(i)
		return nil
	case ch == 't':
		return c.literal("true")
	case ch == 'f':
		return c.literal("false")
	case ch == 'n':
		return c.literal("null")
	default:
		return c.errorf("unexpected %q", ch)
	}
}

func (c *canonicalizer) literal(lit string) error {
	if string(c.in[c.pos:min(len(c.in), c.pos+len(lit))]) != lit {
		return c.errorf("bad literal, want %s", lit)
	}
	i := c.push('r')
	c.pos += len(lit)
	c.done(i)
	return nil
}

func (c *canonicalizer) object(depth int) error {
	if depth > maxJSONDepth {
		return c.fail(errTooDeep)
	}
	obj := c.push('{')
	c.pos++ // '{'
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.done(obj)
		return nil
	}
	for {
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return c.errorf("want an object key")
		}
		k := c.push('k')
		key, err := c.str(nil)
		if err != nil {
			return err
		}
		c.tokens[k].key = int32(len(c.keys))
		c.keys = append(c.keys, string(key))
		c.done(k)
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return c.errorf(`want ":" after an object key`)
		}
		c.pos++
		c.skipSpace()
		if err := c.value(depth); err != nil {
			return err
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return c.errorf("unexpected end of input in an object")
		}
		if c.in[c.pos] == '}' {
			c.pos++
			c.done(obj)
			return nil
		}
		if c.in[c.pos] != ',' {
			return c.errorf(`want "," or "}" in an object`)
		}
		c.pos++
		c.skipSpace()
	}
}

func (c *canonicalizer) array(depth int) error {
	if depth > maxJSONDepth {
		return c.fail(errTooDeep)
	}
	arr := c.push('[')
	c.pos++ // '['
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.done(arr)
		return nil
	}
	for {
		if err := c.value(depth); err != nil {
			return err
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return c.errorf("unexpected end of input in an array")
		}
		if c.in[c.pos] == ']' {
			c.pos++
			c.done(arr)
			return nil
		}
		if c.in[c.pos] != ',' {
			return c.errorf(`want "," or "]" in an array`)
		}
		c.pos++
		c.skipSpace()
	}
}

// emit appends the canonical encoding of token i and its contents, and
// returns the index of the token after them.
func (c *canonicalizer) emit(dst []byte, i int) ([]byte, int, error) {
	t := c.tokens[i]
	switch t.kind {
	case 'r', 's':
		return append(dst, c.in[t.start:t.end]...), i + 1, nil
	case '"':
		// Decoding succeeded when parsing, so it succeeds again.
		sub := canonicalizer{in: c.in[:t.end], pos: int(t.start)}
		c.scratch, _ = sub.str(c.scratch[:0])
		return appendCanonicalString(dst, c.scratch), i + 1, nil
	case '[':
		dst = append(dst, '[')
		for j := i + 1; j < int(t.next); {
			if j > i+1 {
				dst = append(dst, ',')
			}
			var err error
			if dst, j, err = c.emit(dst, j); err != nil {
				return dst, 0, err
			}
		}
		return append(dst, ']'), int(t.next), nil
	}

	// An object: its keys, each followed by its value.
	var members []int32
	for j := i + 1; j < int(t.next); j = int(c.tokens[j+1].next) {
		members = append(members, int32(j))
	}
	slices.SortFunc(members, func(a, b int32) int {
		return strings.Compare(c.keys[c.tokens[a].key], c.keys[c.tokens[b].key])
	})
	dst = append(dst, '{')
	for n, k := range members {
		key := c.keys[c.tokens[k].key]
		if n > 0 {
			if key == c.keys[c.tokens[members[n-1]].key] {
				c.pos = int(c.tokens[k].start)
				return dst, 0, c.fail(fmt.Errorf("%w %q", errDuplicateKey, key))
			}
			dst = append(dst, ',')
		}
		dst = appendCanonicalString(dst, []byte(key))
		dst = append(dst, ':')
		var err error
		if dst, _, err = c.emit(dst, int(k)+1); err != nil {
			return dst, 0, err
		}
	}
	return append(dst, '}'), int(t.next), nil
}

// number checks the grammar of the number at c.pos and moves past it:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *canonicalizer) number() error {
	in := c.in
	p := c.pos
	digits := func() int {
		n := 0
		for p < len(in) && '0' <= in[p] && in[p] <= '9' {
			p++
			n++
		}
		return n
	}
	if p < len(in) && in[p] == '-' {
		p++
	}
	switch {
	case p < len(in) && in[p] == '0':
		p++
	case digits() == 0:
		c.pos = p
		return c.errorf("bad number")
	}
	if p < len(in) && in[p] == '.' {
		p++
		if digits() == 0 {
			c.pos = p
			return c.errorf("bad number: no digits after the point")
		}
	}
	if p < len(in) && (in[p] == 'e' || in[p] == 'E') {
		p++
		if p < len(in) && (in[p] == '+' || in[p] == '-') {
			p++
		}
		if digits() == 0 {
			c.pos = p
			return c.errorf("bad number: no digits in the exponent")
		}
	}
	c.pos = p
	return nil
}

// str reads the JSON string at c.pos (at its opening quote) and appends its
// unescaped value to buf.
func (c *canonicalizer) str(buf []byte) ([]byte, error) {
	c.pos++ // opening quote
	start := c.pos
	for {
		for c.pos < len(c.in) { // fast path: plain ASCII
			if ch := c.in[c.pos]; ch < 0x20 || ch == '"' || ch == '\\' || ch >= utf8.RuneSelf {
				break
			}
			c.pos++
		}
		if c.pos >= len(c.in) {
			return buf, c.errorf("unexpected end of input in a string")
		}
		ch := c.in[c.pos]
		switch {
		case ch == '"':
			buf = append(buf, c.in[start:c.pos]...)
			c.pos++
			return buf, nil
		case ch < 0x20:
			return buf, c.errorf("control character in a string")
		case ch == '\\':
			buf = append(buf, c.in[start:c.pos]...)
			var err error
			if buf, err = c.escape(buf); err != nil {
				return buf, err
			}
			start = c.pos
		case ch < utf8.RuneSelf:
			c.pos++
		default:
			r, size := utf8.DecodeRune(c.in[c.pos:])
			if r == utf8.RuneError && size == 1 {
				return buf, c.fail(errInvalidUTF8)
			}
			c.pos += size
		}
	}
}

// escape decodes the escape sequence at c.pos (at the backslash) onto sb.
func (c *canonicalizer) escape(sb []byte) ([]byte, error) {
	if c.pos+1 >= len(c.in) {
		return sb, c.errorf("unexpected end of input in an escape")
	}
	ch := c.in[c.pos+1]
	c.pos += 2
	switch ch {
	case '"', '\\', '/':
		return append(sb, ch), nil
	case 'b':
		return append(sb, '\b'), nil
	case 'f':
		return append(sb, '\f'), nil
	case 'n':
		return append(sb, '\n'), nil
	case 'r':
		return append(sb, '\r'), nil
	case 't':
		return append(sb, '\t'), nil
	case 'u':
		r, ok := c.hex4()
		if !ok {
			return sb, c.errorf(`bad \u escape`)
		}
		if utf16.IsSurrogate(r) {
			if r >= 0xdc00 || c.pos+1 >= len(c.in) || c.in[c.pos] != '\\' || c.in[c.pos+1] != 'u' {
				return sb, c.fail(errLoneSurrogate)
			}
			c.pos += 2
			r2, ok := c.hex4()
			if !ok {
				return sb, c.errorf(`bad \u escape`)
			}
			if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
				return sb, c.fail(errLoneSurrogate)
			}
		}
		return utf8.AppendRune(sb, r), nil
	}
	return sb, c.errorf("bad escape \\%c", ch)
}

func (c *canonicalizer) hex4() (rune, bool) {
	if c.pos+4 > len(c.in) {
		return 0, false
	}
	var r rune
	for _, h := range c.in[c.pos : c.pos+4] {
		switch {
		case '0' <= h && h <= '9':
			r = r<<4 | rune(h-'0')
		case 'a' <= h && h <= 'f':
			r = r<<4 | rune(h-'a'+10)
		case 'A' <= h && h <= 'F':
			r = r<<4 | rune(h-'A'+10)
		default:
			return 0, false
		}
	}
	c.pos += 4
	return r, true
}

// appendCanonicalString quotes s (valid UTF-8) with the fewest escapes.
func appendCanonicalString(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x20 && ch != '"' && ch != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch ch {
		case '"', '\\':
			dst = append(dst, '\\', ch)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[ch>>4], hexDigits[ch&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
