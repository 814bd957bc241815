package thing

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// commandTests are the cases of TestParseCommand, and the seeds of
// FuzzParseCommand.
var commandTests = []struct {
	name    string
	payload string
	ok      bool
}{
	{"action", `{"action":"toggle","expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, true},
	{"action with input", `{"action":"fade","input":{"to":50},"expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, true},
	{"write", `{"write":{"on":true,"brightness":40},"expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, true},
	{"unknown field", `{"action":"toggle","later":1,"expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, true},
	{"trailing space", "{\"action\":\"toggle\",\"expires\":1,\"trace\":{\"origin\":\"alice\",\"origin_msg\":\"m\",\"hops\":0}}\n\t ", true},
	{"hops at the limit", `{"action":"toggle","expires":1700000030000,"trace":{"origin":"door","origin_msg":"01HZX","rule":"r1","hops":4}}`, true},
	{"grant", `{"action":"on","expires":1700000030000,"trace":{"origin":"door","origin_msg":"01HZX","rule":"r1","hops":1},` +
		`"grant":{"id":"r1","a":"door","b":"lamp","when":{"event":"opened"},"then":{"action":"on"},"by":"alice","created":1700000000000,"device":"x"}}`, true},

	{"not JSON", `{"action":`, false},
	{"not an object", `["toggle"]`, false},
	{"null", `null`, false},
	{"empty", ``, false},
	{"trailing data", `{"action":"toggle","expires":1,"trace":{"origin":"alice","origin_msg":"m","hops":0}} {}`, false},
	{"trailing brace", `{"action":"toggle","expires":1,"trace":{"origin":"alice","origin_msg":"m","hops":0}}}`, false},
	{"no action nor write", `{"expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, false},
	{"empty write", `{"write":{},"expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, false},
	{"action not a name", `{"action":"to ggle","expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, false},
	{"property not a name", `{"write":{"":1},"expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, false},
	{"no expiry", `{"action":"toggle","trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, false},
	{"negative expiry", `{"action":"toggle","expires":-1,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, false},
	{"fractional expiry", `{"action":"toggle","expires":1.5,"trace":{"origin":"alice","origin_msg":"01HZX","hops":0}}`, false},
	{"no trace", `{"action":"toggle","expires":1700000030000}`, false},
	{"trace origin not an account", `{"action":"toggle","expires":1700000030000,"trace":{"origin":"Alice","origin_msg":"01HZX","hops":0}}`, false},
	{"trace without origin_msg", `{"action":"toggle","expires":1700000030000,"trace":{"origin":"alice","hops":0}}`, false},
	{"trace origin_msg too long", `{"action":"toggle","expires":1700000030000,"trace":{"origin":"alice","origin_msg":"` + strings.Repeat("m", 65) + `","hops":0}}`, false},
	{"trace rule too long", `{"action":"toggle","expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","rule":"` + strings.Repeat("r", 65) + `","hops":1}}`, false},
	{"hops over MaxHops", `{"action":"toggle","expires":1700000030000,"trace":{"origin":"door","origin_msg":"01HZX","rule":"r1","hops":5}}`, false},
	{"negative hops", `{"action":"toggle","expires":1700000030000,"trace":{"origin":"alice","origin_msg":"01HZX","hops":-1}}`, false},
	{"bad grant", `{"action":"on","expires":1700000030000,"trace":{"origin":"door","origin_msg":"01HZX","rule":"r1","hops":1},` +
		`"grant":{"id":"r1","a":"door","b":"door","when":{"event":"opened"},"then":{"action":"on"},"by":"alice","created":1700000000000,"device":"x"}}`, false},
	{"grant not a rule", `{"action":"on","expires":1700000030000,"trace":{"origin":"door","origin_msg":"01HZX","rule":"r1","hops":1},"grant":"r1"}`, false},
}

func TestParseCommand(t *testing.T) {
	for _, tt := range commandTests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCommand([]byte(tt.payload))
			if (err == nil) != tt.ok {
				t.Fatalf("ParseCommand(%s) = %+v, %v, want ok %v", tt.payload, c, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadCommand) {
				t.Errorf("ParseCommand(%s) = %v, want it to wrap ErrBadCommand", tt.payload, err)
			}
		})
	}
}

func TestExpired(t *testing.T) {
	c := Command{Expires: 1_700_000_030_000}
	at := time.UnixMilli(c.Expires)
	tests := []struct {
		now  time.Time
		want bool
	}{
		{at.Add(-DefaultExpiry), false},
		{at.Add(-time.Millisecond), false},
		{at.Add(-time.Microsecond), false}, // the millisecond before
		{at.Add(time.Microsecond), true},
		{at, true},
		{at.Add(time.Hour), true},
	}
	for _, tt := range tests {
		if got := c.Expired(tt.now); got != tt.want {
			t.Errorf("Expired(%v) = %v, want %v", tt.now.UnixMicro(), got, tt.want)
		}
	}
}

// feedbackTests are the cases of TestParseFeedback, and the seeds of
// FuzzParseFeedback.
var feedbackTests = []struct {
	name    string
	payload string
	ok      bool
}{
	{"ack accepted", `{"kind":"ack","cmd":"01HZX","status":"accepted"}`, true},
	{"ack rejected", `{"kind":"ack","cmd":"01HZX","status":"rejected","error":"forbidden"}`, true},
	{"ack queued", `{"kind":"ack","cmd":"01HZX","status":"queued"}`, true},
	{"ack without cmd", `{"kind":"ack","status":"accepted"}`, false},
	{"ack cmd too long", `{"kind":"ack","cmd":"` + strings.Repeat("m", 65) + `","status":"accepted"}`, false},
	{"ack without status", `{"kind":"ack","cmd":"01HZX"}`, false},
	{"ack with a result status", `{"kind":"ack","cmd":"01HZX","status":"done"}`, false},

	{"result done", `{"kind":"result","cmd":"01HZX","action":"fade","status":"done","output":{"at":50}}`, true},
	{"result failed", `{"kind":"result","cmd":"01HZX","status":"failed","error":"stuck"}`, true},
	{"result partial", `{"kind":"result","cmd":"01HZX","status":"partial"}`, true},
	{"result timeout", `{"kind":"result","cmd":"01HZX","status":"timeout"}`, true},
	{"result with trace", `{"kind":"result","cmd":"01HZX","status":"done","trace":{"origin":"door","origin_msg":"01HZW","rule":"r1","hops":1}}`, true},
	{"result without cmd", `{"kind":"result","status":"done"}`, false},
	{"result with an ack status", `{"kind":"result","cmd":"01HZX","status":"accepted"}`, false},
	{"result with a bad trace", `{"kind":"result","cmd":"01HZX","status":"done","trace":{"origin":"door","origin_msg":"01HZW","hops":9}}`, false},

	{"state", `{"kind":"state","props":{"on":true,"brightness":40},"rev":7,"cause":"01HZX"}`, true},
	{"state local", `{"kind":"state","props":{"power":4.5},"cause":"local"}`, true},
	{"state without props", `{"kind":"state","cause":"local"}`, false},
	{"state with empty props", `{"kind":"state","props":{},"cause":"local"}`, false},
	{"state with a bad name", `{"kind":"state","props":{"a b":1},"cause":"local"}`, false},
	{"state without cause", `{"kind":"state","props":{"on":true}}`, false},
	{"state cause too long", `{"kind":"state","props":{"on":true},"cause":"` + strings.Repeat("c", 65) + `"}`, false},

	{"event", `{"kind":"event","event":"overheat","data":81.5,"cause":"local"}`, true},
	{"event without data", `{"kind":"event","event":"opened","cause":"local"}`, true},
	{"event without event", `{"kind":"event","data":1,"cause":"local"}`, false},
	{"event with a bad name", `{"kind":"event","event":"over heat","cause":"local"}`, false},
	{"event without cause", `{"kind":"event","event":"opened"}`, false},

	{"description", `{"kind":"description","description":{"thing":"lamp","version":2,"actions":{"toggle":{}}}}`, true},
	{"description missing", `{"kind":"description"}`, false},
	{"description null", `{"kind":"description","description":null}`, false},
	{"description version 0", `{"kind":"description","description":{"thing":"lamp","version":0}}`, false},
	{"description with a bad schema", `{"kind":"description","description":{"thing":"lamp","version":1,"properties":{"on":{"type":"bool"}}}}`, false},

	{"no kind", `{"cmd":"01HZX","status":"done"}`, false},
	{"unknown kind", `{"kind":"log","cmd":"01HZX","status":"done"}`, false},
	{"not JSON", `{"kind":`, false},
	{"not an object", `"ack"`, false},
	{"trailing data", `{"kind":"ack","cmd":"01HZX","status":"accepted"}x`, false},
	{"trailing bracket", `{"kind":"ack","cmd":"01HZX","status":"accepted"}]`, false},
}

func TestParseFeedback(t *testing.T) {
	for _, tt := range feedbackTests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFeedback([]byte(tt.payload))
			if (err == nil) != tt.ok {
				t.Fatalf("ParseFeedback(%s) = %+v, %v, want ok %v", tt.payload, f, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadFeedback) {
				t.Errorf("ParseFeedback(%s) = %v, want it to wrap ErrBadFeedback", tt.payload, err)
			}
		})
	}
}
