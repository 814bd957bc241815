package wire

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Topic schemes with a meaning in the protocol (PROTOCOL.md §1).
const (
	SchemeIM     = "im"     // a request to a service
	SchemePush   = "impush" // a push, server → client or node → node
	SchemeHTTP   = "http"   // HTTP proxy through the server
	SchemeHTTPS  = "https"  // HTTPS proxy through the server
	SchemeLocal  = "local"  // reserved
	SchemeSystem = "system" // reserved
)

// Push topics the server and nodes publish.
const (
	PushNews      = "impush://modulus/news"      // a new message: body News
	PushRelations = "impush://modulus/relations" // the relation snapshot: body []Relation
	PushRelation  = "impush://modulus/relation"  // one relation change: body RelationEvent
	PushPresence  = "impush://modulus/presence"  // a related device's presence: body Presence
)

// Routing rules that may stand in the host of an im topic besides a node id.
const (
	RouteModulus = "modulus" // hash of the account onto the service nodes
	RouteRandom  = "random"  // any service node
	RouteCache   = "cache"   // the node that served this client last
)

// MaxTopicLen is the longest topic, in bytes, that ParseTopic accepts and a
// frame may carry.
const MaxTopicLen = 4096

// ErrBadTopic is wrapped by every error ParseTopic returns.
var ErrBadTopic = errors.New("bad topic")

// Topic is a parsed URI topic. The Has fields tell an empty part that was
// written ("a:@h" has an empty password) from one that was left out, so that
// String reproduces the parsed text exactly. A part that is non-empty counts
// as present whatever its Has field says, so hand-built topics need not set them.
type Topic struct {
	Scheme      string // [a-z][a-z0-9+.-]*
	User        string
	Password    string
	HasUser     bool
	HasPassword bool
	Host        string // a routing rule, a peer id, a host name, or "[IPv6]" with brackets
	Port        string // digits only, "" if none
	Path        string // without the leading "/"; may hold further "/" segments; may be ""
	Params      string
	HasParams   bool
	Query       string // raw, undecoded
	HasQuery    bool
	Fragment    string
	HasFragment bool
}

// ParseTopic parses s as a topic URI (see the package doc for the grammar).
// Every error wraps ErrBadTopic and says which part is wrong.
func ParseTopic(s string) (Topic, error) {
	t, err := parseTopic(s)
	if err != nil {
		return Topic{}, err
	}
	return t, nil
}

func parseTopic(s string) (Topic, error) {
	var t Topic
	if s == "" {
		return t, topicError(s, "empty")
	}
	if len(s) > MaxTopicLen {
		return t, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrBadTopic, len(s), MaxTopicLen)
	}
	if err := checkTopicRunes(s); err != nil {
		return t, err
	}

	i := strings.Index(s, "://")
	if i < 0 {
		return t, topicError(s, `missing "://"`)
	}
	t.Scheme = s[:i]
	if !validScheme(t.Scheme) {
		return t, topicError(s, "bad scheme")
	}
	rest := s[i+3:]

	end := strings.IndexAny(rest, "/?#")
	if end < 0 || rest[end] != '/' {
		return t, topicError(s, `missing "/" after the host`)
	}
	if err := t.parseAuthority(s, rest[:end]); err != nil {
		return t, err
	}
	rest = rest[end+1:]

	if i := strings.IndexByte(rest, '#'); i >= 0 {
		t.Fragment, t.HasFragment = rest[i+1:], true
		rest = rest[:i]
		if !validPart(t.Fragment, "/?") {
			return t, topicError(s, "bad fragment")
		}
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		t.Query, t.HasQuery = rest[i+1:], true
		rest = rest[:i]
		if !validPart(t.Query, "/?;") {
			return t, topicError(s, "bad query")
		}
	}
	if i := strings.IndexByte(rest, ';'); i >= 0 {
		t.Params, t.HasParams = rest[i+1:], true
		rest = rest[:i]
		if !validPart(t.Params, "/;") {
			return t, topicError(s, "bad params")
		}
	}
	t.Path = rest
	if !validPart(t.Path, "/") {
		return t, topicError(s, "bad path")
	}
	return t, nil
}

// parseAuthority fills user, password, host and port from
// [<user>[:<password>]@]<host>[:<port>].
func (t *Topic) parseAuthority(s, auth string) error {
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		userinfo := auth[:at]
		auth = auth[at+1:]
		t.HasUser = true
		t.User = userinfo
		if c := strings.IndexByte(userinfo, ':'); c >= 0 {
			t.User, t.Password, t.HasPassword = userinfo[:c], userinfo[c+1:], true
		}
		if !validPart(t.User, "") {
			return topicError(s, "bad user")
		}
		if !validPart(t.Password, ":") {
			return topicError(s, "bad password")
		}
	}

	hostport := auth
	if strings.HasPrefix(hostport, "[") {
		c := strings.IndexByte(hostport, ']')
		if c < 0 {
			return topicError(s, `IPv6 host without "]"`)
		}
		t.Host, hostport = hostport[:c+1], hostport[c+1:]
		if !validIPv6Literal(t.Host[1:c]) {
			return topicError(s, "bad IPv6 host")
		}
		if hostport != "" && hostport[0] != ':' {
			return topicError(s, `bad text after the IPv6 host`)
		}
	} else {
		c := strings.IndexByte(hostport, ':')
		if c < 0 {
			c = len(hostport)
		}
		t.Host, hostport = hostport[:c], hostport[c:]
		if t.Host == "" {
			return topicError(s, "empty host")
		}
		if !validPart(t.Host, "") {
			return topicError(s, "bad host")
		}
	}

	if hostport != "" { // ":" port
		t.Port = hostport[1:]
		if !validPort(t.Port) {
			return topicError(s, "bad port")
		}
	}
	return nil
}

func topicError(s, what string) error {
	return fmt.Errorf("%w %s: %s", ErrBadTopic, quoteClipped(s, 200), what)
}

// quoteClipped quotes at most n bytes of s for an error message, so that a
// hostile input cannot make the error (and the log line) huge.
func quoteClipped(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]) + "…"
}

// checkTopicRunes rejects invalid UTF-8, control characters and spaces
// anywhere in s.
func checkTopicRunes(s string) error {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return fmt.Errorf("%w: control character or space at byte %d", ErrBadTopic, i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrBadTopic, i)
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%w: control character or space at byte %d", ErrBadTopic, i)
		}
		i += size
	}
	return nil
}

func validScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validPart reports whether s holds only unreserved characters, sub-delims
// other than ";", well-formed percent escapes, non-ASCII runes (already
// checked by checkTopicRunes) and the bytes in extra.
func validPart(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			// Part of a multi-byte rune checked by checkTopicRunes.
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,=", c) >= 0:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		case strings.IndexByte(extra, c) >= 0:
		case c == ':' || c == '@':
			// pchar: allowed in path, params, query and fragment, which all
			// pass "/" in extra; never in user, password or host.
			if strings.IndexByte(extra, '/') < 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validIPv6Literal checks the text between the brackets: an IPv6 address,
// optionally followed by a zone written "%25zone" (RFC 6874).
func validIPv6Literal(s string) bool {
	addr := s
	if i := strings.IndexByte(s, '%'); i >= 0 {
		zone := s[i:]
		if !strings.HasPrefix(zone, "%25") || len(zone) == 3 || !validPart(zone[3:], "") {
			return false
		}
		addr = s[:i]
	}
	ip, err := netip.ParseAddr(addr)
	return err == nil && ip.Is6() && ip.Zone() == ""
}

func validPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= 65535
}

// String formats t; for a topic returned by ParseTopic it returns exactly the
// parsed text.
func (t Topic) String() string {
	n := len(t.Scheme) + 3 + len(t.User) + 1 + len(t.Password) + 1 + len(t.Host) + 1 +
		len(t.Port) + 1 + len(t.Path) + 1 + len(t.Params) + 1 + len(t.Query) + 1 + len(t.Fragment)
	return string(t.AppendTo(make([]byte, 0, n)))
}

// AppendTo appends the formatted topic to dst and returns the extended slice.
func (t Topic) AppendTo(dst []byte) []byte {
	dst = append(dst, t.Scheme...)
	dst = append(dst, "://"...)
	hasPassword := t.HasPassword || t.Password != ""
	if t.HasUser || t.User != "" || hasPassword {
		dst = append(dst, t.User...)
		if hasPassword {
			dst = append(dst, ':')
			dst = append(dst, t.Password...)
		}
		dst = append(dst, '@')
	}
	dst = append(dst, t.Host...)
	if t.Port != "" {
		dst = append(dst, ':')
		dst = append(dst, t.Port...)
	}
	dst = append(dst, '/')
	dst = append(dst, t.Path...)
	if t.HasParams || t.Params != "" {
		dst = append(dst, ';')
		dst = append(dst, t.Params...)
	}
	if t.HasQuery || t.Query != "" {
		dst = append(dst, '?')
		dst = append(dst, t.Query...)
	}
	if t.HasFragment || t.Fragment != "" {
		dst = append(dst, '#')
		dst = append(dst, t.Fragment...)
	}
	return dst
}

// Method returns the service method an im topic asks for (its Path), or the
// push name of an impush topic; it returns "" for every other scheme.
func (t Topic) Method() string {
	if t.Scheme == SchemeIM || t.Scheme == SchemePush {
		return t.Path
	}
	return ""
}

// QueryValue returns the first value of key in the query, percent-decoded
// with url.ParseQuery's rules ("+" is a space). Pairs that do not decode are
// skipped rather than failing the lookup; a missing key gives "".
func (t Topic) QueryValue(key string) string {
	q := t.Query
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue // url.ParseQuery rejects ";" separators
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k)
		if err != nil || k != key {
			continue
		}
		if v, err = url.QueryUnescape(v); err != nil {
			continue
		}
		return v
	}
	return ""
}

// MsgID returns the client's request id, the msg_id query value of an im topic.
func (t Topic) MsgID() string { return t.QueryValue("msg_id") }

// Reserved reports whether the scheme is one the protocol reserves (local,
// system); the server answers those with "unsupported scheme".
func (t Topic) Reserved() bool {
	return t.Scheme == SchemeLocal || t.Scheme == SchemeSystem
}

// RequestTopic builds the topic of a request: im://<route>/<method>?msg_id=<id>,
// the id escaped by url.QueryEscape except that a space becomes "%20" rather
// than "+", because MQTT forbids "+" in a PUBLISH topic (see MQTTSafe).
// QueryValue decodes both the same. It does not validate route or method;
// ParseTopic the result if they come from outside.
func RequestTopic(route, method, msgID string) string {
	return "im://" + route + "/" + method + "?msg_id=" + strings.ReplaceAll(url.QueryEscape(msgID), "+", "%20")
}

// MQTTSafe reports whether topic may be the topic name of an MQTT PUBLISH:
// not empty, and without the wildcards "+" and "#" (MQTT-3.3.2-2), which a
// broker treats as a protocol violation. A topic with a fragment, or a "+"
// written literally, parses but can only travel on a direct stream.
func MQTTSafe(topic string) bool {
	return topic != "" && !strings.ContainsAny(topic, "+#\x00")
}
