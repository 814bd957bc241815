package wire

import (
	"encoding/json"
	"errors"
	"regexp"
	"testing"
)

func TestOK(t *testing.T) {
	tests := []struct {
		result any
		want   string
	}{
		{SendResult{MsgId: "m1", Feeds: "dm:alice:bob", SeqId: 42}, `{"Trace":"t1","Error":"","Result":{"MsgId":"m1","Feeds":"dm:alice:bob","SeqId":42}}`},
		{nil, `{"Trace":"t1","Error":"","Result":null}`},
		{[]Conversation{}, `{"Trace":"t1","Error":"","Result":[]}`},
		{json.RawMessage(` { "a" : 1 } `), `{"Trace":"t1","Error":"","Result":{"a":1}}`},
	}
	for _, tt := range tests {
		got, err := OK("t1", tt.result)
		if err != nil || string(got) != tt.want {
			t.Errorf("OK(%#v) = %s, %v, want %s", tt.result, got, err, tt.want)
		}
	}
	if got, err := OK("t1", make(chan int)); err == nil {
		t.Errorf("OK(chan) = %s, nil, want an error", got)
	}
	if got, err := OK("t1", json.RawMessage(`{`)); err == nil {
		t.Errorf("OK(bad raw) = %s, nil, want an error", got)
	}
}

func TestFail(t *testing.T) {
	tests := []struct{ msg, want string }{
		{"no such node", `{"Trace":"t1","Error":"no such node","Result":null}`},
		{"", `{"Trace":"t1","Error":"unknown error","Result":null}`},
		{"bad \xff", `{"Trace":"t1","Error":"bad \ufffd","Result":null}`},
	}
	for _, tt := range tests {
		if got := Fail("t1", tt.msg); string(got) != tt.want {
			t.Errorf("Fail(%q) = %s, want %s", tt.msg, got, tt.want)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		in   string
		want Answer
	}{
		{`{"Trace":"94218104768aa033","Error":"","Result":{"x":1}}`, Answer{Trace: "94218104768aa033", Result: json.RawMessage(`{"x":1}`)}},
		{`{"Trace":"t","Error":"nope","Result":null}`, Answer{Trace: "t", Error: "nope", Result: json.RawMessage(`null`)}},
		{` {"Error":"nope"}`, Answer{Error: "nope", Result: json.RawMessage(`null`)}},
		{`{}`, Answer{Result: json.RawMessage(`null`)}},
	}
	for _, tt := range tests {
		got, err := ParseAnswer([]byte(tt.in))
		if err != nil || got.Trace != tt.want.Trace || got.Error != tt.want.Error || string(got.Result) != string(tt.want.Result) {
			t.Errorf("ParseAnswer(%s) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{``, `null`, `[]`, `"x"`, `{`, `{"Trace":1}`, `{"Result":}`} {
		if got, err := ParseAnswer([]byte(in)); !errors.Is(err, ErrBadAnswer) {
			t.Errorf("ParseAnswer(%q) = %+v, %v, want an error wrapping ErrBadAnswer", in, got, err)
		}
	}
}

func TestAnswerRoundTrip(t *testing.T) {
	b, err := OK("t1", HistoryResult{Messages: []Message{}, LastSeqID: 3})
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAnswer(b)
	if err != nil {
		t.Fatal(err)
	}
	var h HistoryResult
	if err := a.Decode(&h); err != nil || h.LastSeqID != 3 {
		t.Errorf("Decode = %+v, %v, want LastSeqID 3", h, err)
	}

	a, err = ParseAnswer(Fail("t2", AnswerNoSuchNode))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Decode(&h)
	var ae *AnswerError
	if !errors.As(err, &ae) || ae.Msg != AnswerNoSuchNode || ae.Trace != "t2" {
		t.Fatalf("Decode of a failed answer = %v, want an *AnswerError", err)
	}
	if got, want := err.Error(), "no such node (trace t2)"; got != want {
		t.Errorf("AnswerError.Error() = %q, want %q", got, want)
	}
	if err := (Answer{Result: json.RawMessage(`"x"`)}).Decode(&h); err == nil {
		t.Errorf("Decode(string into struct) = nil, want an error")
	}
}

func TestNewTrace(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 1000 {
		tr := NewTrace()
		if !re.MatchString(tr) {
			t.Fatalf("NewTrace() = %q, want 16 lowercase hex characters", tr)
		}
		if seen[tr] {
			t.Fatalf("NewTrace() repeated %q", tr)
		}
		seen[tr] = true
	}
}

func TestDecodeAnswer(t *testing.T) {
	var got []SeqResult
	if err := DecodeAnswer([]byte(`{"Trace":"t","Error":"","Result":[{"MsgId":"a","SeqId":3}]}`), &got); err != nil || len(got) != 1 || got[0].SeqId != 3 {
		t.Errorf("DecodeAnswer(ok) = %+v, %v", got, err)
	}
	kept := []SeqResult{{MsgId: "kept"}}
	err := DecodeAnswer([]byte(`{"Trace":"t2","Error":"forbidden: no","Result":null}`), &kept)
	var ae *AnswerError
	if !errors.As(err, &ae) || ae.Msg != "forbidden: no" || ae.Trace != "t2" || kept[0].MsgId != "kept" {
		t.Errorf("DecodeAnswer(failed) = %v, out %+v; want the AnswerError and out untouched", err, kept)
	}
	if err := DecodeAnswer([]byte(`{"Trace":"t3","Error":"busy","Result":{"x":1}}`), &got); !errors.As(err, &ae) || ae.Msg != "busy" {
		t.Errorf("DecodeAnswer(failed, odd Result) = %v, want the AnswerError", err)
	}
	if err := DecodeAnswer([]byte(`{"Trace":"t4","Error":"","Result":"not a list"}`), &got); err == nil || errors.As(err, &ae) {
		t.Errorf("DecodeAnswer(a Result that does not fit) = %v, want a decode error", err)
	}
	for _, bad := range []string{``, `[]`, `nope`, `{"Trace":`} {
		if err := DecodeAnswer([]byte(bad), &got); !errors.Is(err, ErrBadAnswer) {
			t.Errorf("DecodeAnswer(%q) = %v, want ErrBadAnswer", bad, err)
		}
	}
	if err := DecodeAnswer([]byte(`{"Trace":"t5","Error":"no"}`), nil); !errors.As(err, &ae) {
		t.Errorf("DecodeAnswer(failed, nil out) = %v, want the AnswerError", err)
	}
	if err := DecodeAnswer([]byte(`{"Trace":"t6","Error":"","Result":5}`), nil); err != nil {
		t.Errorf("DecodeAnswer(ok, nil out) = %v", err)
	}
}
