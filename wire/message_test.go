package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// specMessage is the example of PROTOCOL.md §4, with a real MsgId and without
// Device and Sig.
func specMessage() Message {
	return Message{
		MsgId:      "01JD8RSH00B9D5MPJTB9D5MPJT",
		Feeds:      "dm:alice:bob",
		MsgType:    "text",
		From:       "alice",
		Payload:    json.RawMessage(`{"text":"hi"}`),
		TimeCreate: 1732240000000,
	}
}

func TestMessageValidate(t *testing.T) {
	sig := strings.Repeat("A", 86) + "=="
	tests := []struct {
		name   string
		change func(*Message)
		field  string // "" when valid
	}{
		{"spec example", func(*Message) {}, ""},
		{"group", func(m *Message) { m.Feeds = "g:team1" }, ""},
		{"sequenced", func(m *Message) { m.SeqId = 42 }, ""},
		{"every type", func(m *Message) { m.MsgType = "feedback" }, ""},
		{"payload string", func(m *Message) { m.Payload = json.RawMessage(`"hi"`) }, ""},
		{"payload number", func(m *Message) { m.Payload = json.RawMessage(`1.50`) }, ""},
		{"payload indented", func(m *Message) { m.Payload = json.RawMessage("{\n \"text\": \"hi\"\n}") }, ""},
		{"device and sig", func(m *Message) { m.Device = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm"; m.Sig = sig }, ""},
		{"plain mqtt device", func(m *Message) { m.Device = "sensor-42 #1" }, ""},
		{"msgid 64", func(m *Message) { m.MsgId = strings.Repeat("x", 64) }, ""},
		{"time zero", func(m *Message) { m.TimeCreate = 0 }, ""},

		{"no msgid", func(m *Message) { m.MsgId = "" }, "MsgId"},
		{"msgid 65", func(m *Message) { m.MsgId = strings.Repeat("x", 65) }, "MsgId"},
		{"msgid space", func(m *Message) { m.MsgId = "a b" }, "MsgId"},
		{"msgid non-ascii", func(m *Message) { m.MsgId = "é" }, "MsgId"},
		{"msgid control", func(m *Message) { m.MsgId = "a\x7f" }, "MsgId"},
		{"no feeds", func(m *Message) { m.Feeds = "" }, "Feeds"},
		{"feeds unordered", func(m *Message) { m.Feeds = "dm:bob:alice" }, "Feeds"},
		{"negative seq", func(m *Message) { m.SeqId = -1 }, "SeqId"},
		{"no type", func(m *Message) { m.MsgType = "" }, "MsgType"},
		{"unknown type", func(m *Message) { m.MsgType = "Text" }, "MsgType"},
		{"no from", func(m *Message) { m.From = "" }, "From"},
		{"bad from", func(m *Message) { m.From = "Alice" }, "From"},
		{"no payload", func(m *Message) { m.Payload = nil }, "Payload"},
		{"null payload", func(m *Message) { m.Payload = json.RawMessage(` null `) }, "Payload"},
		{"bad payload", func(m *Message) { m.Payload = json.RawMessage(`{"text":`) }, "Payload"},
		{"two payloads", func(m *Message) { m.Payload = json.RawMessage(`{} {}`) }, "Payload"},
		{"duplicate key", func(m *Message) { m.Payload = json.RawMessage(`{"text":"a","text":"b"}`) }, "Payload"},
		{"huge payload", func(m *Message) {
			m.Payload = json.RawMessage(`"` + strings.Repeat("x", MaxPayloadLen) + `"`)
		}, "Payload"},
		{"negative time", func(m *Message) { m.TimeCreate = -1 }, "TimeCreate"},
		{"long device", func(m *Message) { m.Device = strings.Repeat("d", MaxDeviceLen+1) }, "Device"},
		{"device control", func(m *Message) { m.Device = "d\n" }, "Device"},
		{"device bad utf8", func(m *Message) { m.Device = "d\xff" }, "Device"},
		{"sig without device", func(m *Message) { m.Sig = sig }, "Sig"},
		{"short sig", func(m *Message) { m.Device = "d"; m.Sig = "AAAA" }, "Sig"},
		{"sig not base64", func(m *Message) { m.Device = "d"; m.Sig = strings.Repeat("!", 88) }, "Sig"},
		{"sig bad padding bits", func(m *Message) { m.Device = "d"; m.Sig = strings.Repeat("A", 85) + "B==" }, "Sig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := specMessage()
			tt.change(&m)
			err := m.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", m, err)
				}
				return
			}
			if !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), ": "+tt.field+":") {
				t.Fatalf("Validate() = %v, want an error wrapping ErrBadMessage about %s", err, tt.field)
			}
		})
	}
}

func TestMsgTypes(t *testing.T) {
	for _, typ := range MsgTypes {
		if !ValidMsgType(typ) {
			t.Errorf("ValidMsgType(%q) = false, want true", typ)
		}
	}
	if len(MsgTypes) != 9 {
		t.Errorf("len(MsgTypes) = %d, want the 9 of PROTOCOL.md §4", len(MsgTypes))
	}
}

func TestMessageJSONNames(t *testing.T) {
	m := specMessage()
	m.SeqId = 7
	m.Device = "12D3KooW"
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"MsgId":"01JD8RSH00B9D5MPJTB9D5MPJT","Feeds":"dm:alice:bob","SeqId":7,"MsgType":"text","From":"alice","Payload":{"text":"hi"},"TimeCreate":1732240000000,"Device":"12D3KooW"}`
	if string(b) != want {
		t.Errorf("json.Marshal(message) = %s, want %s", b, want)
	}
	m.Sig = "c2ln"
	b, _ = json.Marshal(m)
	if !strings.HasSuffix(string(b), `,"Sig":"c2ln"}`) {
		t.Errorf("json.Marshal(signed message) = %s, want a Sig field", b)
	}
}
