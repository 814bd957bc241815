package wire

import (
	"errors"
	"strings"
	"testing"
)

// goodTopics are accepted topics with what they parse to; they also seed
// FuzzParseTopic.
var goodTopics = []struct {
	in   string
	want Topic
}{
	{"im://modulus/send?msg_id=7", Topic{Scheme: "im", Host: "modulus", Path: "send", Query: "msg_id=7", HasQuery: true}},
	{"im://modulus/", Topic{Scheme: "im", Host: "modulus"}},
	{"im://random/peers?msg_id=01JD8RSH00B9D5MPJTB9D5MPJT", Topic{Scheme: "im", Host: "random", Path: "peers", Query: "msg_id=01JD8RSH00B9D5MPJTB9D5MPJT", HasQuery: true}},
	{"im://cache/history", Topic{Scheme: "im", Host: "cache", Path: "history"}},
	{"im://12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm/send?msg_id=7", Topic{Scheme: "im", Host: "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm", Path: "send", Query: "msg_id=7", HasQuery: true}},
	{"impush://modulus/news", Topic{Scheme: "impush", Host: "modulus", Path: "news"}},
	{"impush://modulus/relations", Topic{Scheme: "impush", Host: "modulus", Path: "relations"}},
	{"http://example.com:8080/a/b?x=1#f", Topic{Scheme: "http", Host: "example.com", Port: "8080", Path: "a/b", Query: "x=1", HasQuery: true, Fragment: "f", HasFragment: true}},
	{"https://api.example.org/v1/items/42", Topic{Scheme: "https", Host: "api.example.org", Path: "v1/items/42"}},
	{"local://x/y", Topic{Scheme: "local", Host: "x", Path: "y"}},
	{"system://node/stop", Topic{Scheme: "system", Host: "node", Path: "stop"}},
	{"svn+ssh.v2-x://h/p", Topic{Scheme: "svn+ssh.v2-x", Host: "h", Path: "p"}},
	{"im://alice@modulus/send", Topic{Scheme: "im", User: "alice", HasUser: true, Host: "modulus", Path: "send"}},
	{"im://alice:s3cr%40t@modulus/send", Topic{Scheme: "im", User: "alice", Password: "s3cr%40t", HasUser: true, HasPassword: true, Host: "modulus", Path: "send"}},
	{"im://alice:@modulus/send", Topic{Scheme: "im", User: "alice", HasUser: true, HasPassword: true, Host: "modulus", Path: "send"}},
	{"im://@modulus/send", Topic{Scheme: "im", HasUser: true, Host: "modulus", Path: "send"}},
	{"im://:pw@modulus/send", Topic{Scheme: "im", Password: "pw", HasUser: true, HasPassword: true, Host: "modulus", Path: "send"}},
	{"im://u:p:q@h/", Topic{Scheme: "im", User: "u", Password: "p:q", HasUser: true, HasPassword: true, Host: "h"}},
	{"http://[::1]:8080/x", Topic{Scheme: "http", Host: "[::1]", Port: "8080", Path: "x"}},
	{"http://[2001:db8::7]/", Topic{Scheme: "http", Host: "[2001:db8::7]"}},
	{"http://[fe80::1%25eth0]/", Topic{Scheme: "http", Host: "[fe80::1%25eth0]"}},
	{"http://[::ffff:192.0.2.1]:1/", Topic{Scheme: "http", Host: "[::ffff:192.0.2.1]", Port: "1"}},
	{"http://192.0.2.1:65535/", Topic{Scheme: "http", Host: "192.0.2.1", Port: "65535"}},
	{"http://h:0/", Topic{Scheme: "http", Host: "h", Port: "0"}},
	{"http://h:080/", Topic{Scheme: "http", Host: "h", Port: "080"}},
	{"im://modulus/a/b/c/", Topic{Scheme: "im", Host: "modulus", Path: "a/b/c/"}},
	{"im://modulus//", Topic{Scheme: "im", Host: "modulus", Path: "/"}},
	{"im://modulus/send;v=1;x", Topic{Scheme: "im", Host: "modulus", Path: "send", Params: "v=1;x", HasParams: true}},
	{"im://modulus/send;", Topic{Scheme: "im", Host: "modulus", Path: "send", HasParams: true}},
	{"im://modulus/send?", Topic{Scheme: "im", Host: "modulus", Path: "send", HasQuery: true}},
	{"im://modulus/send#", Topic{Scheme: "im", Host: "modulus", Path: "send", HasFragment: true}},
	{"im://modulus/;?#", Topic{Scheme: "im", Host: "modulus", HasParams: true, HasQuery: true, HasFragment: true}},
	{"im://modulus/send;p/q?msg_id=a%2Fb%20c&x=1&x=2&y=%E4%BD%A0+z#frag/x?y", Topic{Scheme: "im", Host: "modulus", Path: "send", Params: "p/q", HasParams: true, Query: "msg_id=a%2Fb%20c&x=1&x=2&y=%E4%BD%A0+z", HasQuery: true, Fragment: "frag/x?y", HasFragment: true}},
	{"im://modulus/send?a=1;b=2?c", Topic{Scheme: "im", Host: "modulus", Path: "send", Query: "a=1;b=2?c", HasQuery: true}},
	{"im://modulus/a:b@c!$&'()*+,=-._~", Topic{Scheme: "im", Host: "modulus", Path: "a:b@c!$&'()*+,=-._~"}},
	{"im://modulus/群组/发送?名=值", Topic{Scheme: "im", Host: "modulus", Path: "群组/发送", Query: "名=值", HasQuery: true}},
	{"im://Mod%41ulus/x", Topic{Scheme: "im", Host: "Mod%41ulus", Path: "x"}},
}

func TestParseTopic(t *testing.T) {
	for _, tt := range goodTopics {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTopic(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseTopic(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("ParseTopic(%q).String() = %q, want the input", tt.in, s)
			}
			if b := got.AppendTo([]byte("x")); string(b) != "x"+tt.in {
				t.Errorf("AppendTo = %q, want %q", b, "x"+tt.in)
			}
		})
	}
}

// badTopics are rejected topics; they also seed FuzzParseTopic.
var badTopics = []struct {
	in, why string
}{
	{"", "empty"},
	{"modulus/send", `missing "://"`},
	{"im:/modulus/send", `missing "://"`},
	{"im:modulus/send", `missing "://"`},
	{"://x/y", "bad scheme"},
	{"IM://modulus/send", "bad scheme"},
	{"1m://modulus/send", "bad scheme"},
	{"i_m://modulus/send", "bad scheme"},
	{"im://modulus", `missing "/" after the host`},
	{"im://modulus?msg_id=1", `missing "/" after the host`},
	{"im://modulus#f", `missing "/" after the host`},
	{"im:///send", "empty host"},
	{"im://alice@/send", "empty host"},
	{"im://:80/send", "empty host"},
	{"im://modulus:/send", "bad port"},
	{"im://modulus:http/send", "bad port"},
	{"im://modulus:65536/send", "bad port"},
	{"im://modulus:123456/send", "bad port"},
	{"im://modulus:-1/send", "bad port"},
	{"im://h:1:2/send", "bad port"},
	{"im://modulus /send", "control character or space"},
	{"im://modulus/se nd", "control character or space"},
	{" im://modulus/send", "control character or space"},
	{"im://modulus/send\n", "control character or space"},
	{"im://modulus/send\x00", "control character or space"},
	{"im://modulus/send\x7f", "control character or space"},
	{"im://modulus/send\u0085", "control character or space"},
	{"im://modulus/send\u00a0", "control character or space"},
	{"im://modulus/send\u3000", "control character or space"},
	{"im://modulus/send\xff", "invalid UTF-8"},
	{"im://modulus/" + strings.Repeat("a", MaxTopicLen), "over the limit"},
	{"im://a@b@modulus/send", "bad user"},
	{"im://a%zz@modulus/send", "bad user"},
	{"im://a:b@c@modulus/send", "bad password"},
	{"im://mod[ulus/send", "bad host"},
	{"im://mod%4/send", "bad host"},
	{"im://mod;x/send", "bad host"},
	{"im://mod<x>/send", "bad host"},
	{"http://[::1/x", `without "]"`},
	{"http://[::1]x/", "bad text after the IPv6 host"},
	{"http://[192.0.2.1]/", "bad IPv6 host"},
	{"http://[]/", "bad IPv6 host"},
	{"http://[zz::1]/", "bad IPv6 host"},
	{"http://[fe80::1%eth0]/", "bad IPv6 host"},
	{"http://[fe80::1%25]/", "bad IPv6 host"},
	{"http://[::1]:99999/", "bad port"},
	{"im://modulus/a%2", "bad path"},
	{"im://modulus/a%g0", "bad path"},
	{"im://modulus/a[0]", "bad path"},
	{"im://modulus/a\"b", "bad path"},
	{"im://modulus/a\\b", "bad path"},
	{"im://modulus/a{b}", "bad path"},
	{"im://modulus/a|b", "bad path"},
	{"im://modulus/a^b", "bad path"},
	{"im://modulus/a`b", "bad path"},
	{"im://modulus/a;b%", "bad params"},
	{"im://modulus/a?b=%", "bad query"},
	{"im://modulus/a?b=<", "bad query"},
	{"im://modulus/a#b#c", "bad fragment"},
	{"im://modulus/a#%x", "bad fragment"},
}

func TestParseTopicBad(t *testing.T) {
	for _, tt := range badTopics {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTopic(tt.in)
			if !errors.Is(err, ErrBadTopic) {
				t.Fatalf("ParseTopic(%q) = %+v, %v, want an error wrapping ErrBadTopic", tt.in, got, err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("ParseTopic(%q) = %v, want it to say %q", tt.in, err, tt.why)
			}
		})
	}
}

func TestParseTopicMaxLen(t *testing.T) {
	prefix := "im://modulus/"
	s := prefix + strings.Repeat("a", MaxTopicLen-len(prefix))
	if _, err := ParseTopic(s); err != nil {
		t.Errorf("ParseTopic(%d bytes) = %v, want nil", len(s), err)
	}
	if _, err := ParseTopic(s + "a"); !errors.Is(err, ErrBadTopic) {
		t.Errorf("ParseTopic(%d bytes) = %v, want ErrBadTopic", len(s)+1, err)
	}
}

func TestParseTopicLongErrorIsShort(t *testing.T) {
	s := "im://modulus/" + strings.Repeat("a", 3000) + "%"
	_, err := ParseTopic(s)
	if err == nil || len(err.Error()) > 300 {
		t.Errorf("ParseTopic(3000 bytes) error = %d bytes, want a short error", len(err.Error()))
	}
}

func TestTopicStringHandBuilt(t *testing.T) {
	tests := []struct {
		in   Topic
		want string
	}{
		{Topic{Scheme: "im", Host: "modulus", Path: "send", Query: "msg_id=1"}, "im://modulus/send?msg_id=1"},
		{Topic{Scheme: "im", Host: "h", User: "u", Password: "p"}, "im://u:p@h/"},
		{Topic{Scheme: "im", Host: "h", Password: "p"}, "im://:p@h/"},
		{Topic{Scheme: "http", Host: "[::1]", Port: "80", Params: "a", Fragment: "f"}, "http://[::1]:80/;a#f"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestQueryValue(t *testing.T) {
	// ParseTopic refuses "%zz", so the bad pair comes in by hand.
	tp := Topic{Scheme: "im", Host: "modulus", Path: "send",
		Query: "msg_id=a%2Fb%20c&x=1&x=2&y=%E4%BD%A0+z&bad=%zz&bad=ok&%zz=1&semi=1;semi=2&=empty&k%3Dq=v=w&flag"}
	tests := []struct{ key, want string }{
		{"msg_id", "a/b c"},
		{"x", "1"},
		{"y", "你 z"},
		{"bad", "ok"},
		{"semi", ""},
		{"", "empty"},
		{"k=q", "v=w"},
		{"flag", ""},
		{"missing", ""},
	}
	for _, tt := range tests {
		if got := tp.QueryValue(tt.key); got != tt.want {
			t.Errorf("QueryValue(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if got := tp.MsgID(); got != "a/b c" {
		t.Errorf("MsgID() = %q, want %q", got, "a/b c")
	}
}

func TestRequestTopic(t *testing.T) {
	tests := []struct {
		route, method, msgID, want string
	}{
		{"modulus", "send", "7", "im://modulus/send?msg_id=7"},
		{"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm", "send", "01JD8RSH00B9D5MPJTB9D5MPJT", "im://12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm/send?msg_id=01JD8RSH00B9D5MPJTB9D5MPJT"},
		{"random", "history", "a b/c&d=e#f", "im://random/history?msg_id=a%20b%2Fc%26d%3De%23f"},
		{"modulus", "send", "1+1", "im://modulus/send?msg_id=1%2B1"},
	}
	for _, tt := range tests {
		got := RequestTopic(tt.route, tt.method, tt.msgID)
		if got != tt.want {
			t.Errorf("RequestTopic(%q, %q, %q) = %q, want %q", tt.route, tt.method, tt.msgID, got, tt.want)
		}
		tp, err := ParseTopic(got)
		if err != nil {
			t.Fatalf("ParseTopic(%q) = %v, want nil", got, err)
		}
		if tp.Host != tt.route || tp.Method() != tt.method || tp.MsgID() != tt.msgID {
			t.Errorf("ParseTopic(%q) = host %q method %q msg_id %q, want %q %q %q",
				got, tp.Host, tp.Method(), tp.MsgID(), tt.route, tt.method, tt.msgID)
		}
	}
}

func TestTopicMethodAndReserved(t *testing.T) {
	tests := []struct {
		in       string
		method   string
		reserved bool
	}{
		{"im://modulus/send", "send", false},
		{"impush://modulus/news", "news", false},
		{"http://example.com/a/b", "", false},
		{"local://x/y", "", true},
		{"system://x/y", "", true},
	}
	for _, tt := range tests {
		tp, err := ParseTopic(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := tp.Method(); got != tt.method {
			t.Errorf("ParseTopic(%q).Method() = %q, want %q", tt.in, got, tt.method)
		}
		if got := tp.Reserved(); got != tt.reserved {
			t.Errorf("ParseTopic(%q).Reserved() = %v, want %v", tt.in, got, tt.reserved)
		}
	}
}

func TestPushTopicsParse(t *testing.T) {
	for _, s := range []string{PushNews, PushRelations, PushRelation, PushPresence} {
		tp, err := ParseTopic(s)
		if err != nil || tp.Scheme != SchemePush || tp.Host != RouteModulus {
			t.Errorf("ParseTopic(%q) = %+v, %v, want an impush://modulus topic", s, tp, err)
		}
	}
}

func TestMQTTSafe(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"im://modulus/send?msg_id=7", true},
		{RequestTopic("modulus", "send", "a b+c#d"), true},
		{PushNews, true},
		{"http://example.com:8080/a/b?x=1#f", false},
		{"im://modulus/send?q=a+b", false},
		{"im://modulus/send\x00", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := MQTTSafe(tt.in); got != tt.want {
			t.Errorf("MQTTSafe(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
