package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Message types (PROTOCOL.md §4).
const (
	MsgTypeText       = "text"
	MsgTypeImage      = "image"
	MsgTypeVoice      = "voice"
	MsgTypeVideo      = "video"
	MsgTypeShortVideo = "shortvideo"
	MsgTypeLocation   = "location"
	MsgTypeLink       = "link"
	MsgTypeCommand    = "command"
	MsgTypeFeedback   = "feedback"
)

// MsgTypes lists every message type, for help texts and tests. Validate does
// not read it, so changing it changes nothing.
var MsgTypes = []string{
	MsgTypeText, MsgTypeImage, MsgTypeVoice, MsgTypeVideo, MsgTypeShortVideo,
	MsgTypeLocation, MsgTypeLink, MsgTypeCommand, MsgTypeFeedback,
}

// ValidMsgType reports whether t is one of the protocol's message types.
func ValidMsgType(t string) bool {
	switch t {
	case MsgTypeText, MsgTypeImage, MsgTypeVoice, MsgTypeVideo, MsgTypeShortVideo,
		MsgTypeLocation, MsgTypeLink, MsgTypeCommand, MsgTypeFeedback:
		return true
	}
	return false
}

// Size limits Validate enforces.
const (
	MaxMsgIDLen = 64
	// MaxPayloadLen leaves room in a DefaultMaxBody request for the other
	// fields, so a valid message always fits in a send.
	MaxPayloadLen = DefaultMaxBody - 16<<10
	MaxDeviceLen  = 256
)

// ServerDevice is the Device of an unsigned message the server wrote on an
// account's behalf (a command a rule run on the server made, a result it
// recorded for a thing): no client may connect with it as its client id.
const ServerDevice = "mqtter:server"

// ErrBadMessage is wrapped by Validate's errors and by SigningBytes when the
// payload cannot be canonicalized.
var ErrBadMessage = errors.New("bad message")

// Message is one chat message (PROTOCOL.md §4). SeqId is 0 until the server
// sequences it; Device and Sig are set by Sign, or by the server for a plain
// MQTT device's unsigned message.
type Message struct {
	MsgId      string          `json:"MsgId"`
	Feeds      string          `json:"Feeds"`
	SeqId      int64           `json:"SeqId"`
	MsgType    string          `json:"MsgType"`
	From       string          `json:"From"`
	Payload    json.RawMessage `json:"Payload"`
	TimeCreate int64           `json:"TimeCreate"` // unix milliseconds, sender's clock
	Device     string          `json:"Device"`
	Sig        string          `json:"Sig,omitempty"` // standard base64 of the Ed25519 signature
}

// Validate checks that every field is well formed: MsgId is 1 to 64
// printable ASCII characters, Feeds parses, SeqId and TimeCreate are not
// negative, MsgType is known, From is a valid account, Payload is one JSON
// value (not null) that CanonicalJSON accepts and at most MaxPayloadLen bytes,
// Device has no control characters, and Sig, if set, has the shape of a
// signature and comes with a Device. It does not check the signature (see
// Verify) nor who may write to the conversation.
// Errors wrap ErrBadMessage and name the field.
func (m *Message) Validate() error {
	if m.MsgId == "" || len(m.MsgId) > MaxMsgIDLen {
		return badField("MsgId", "want 1 to %d characters, have %d", MaxMsgIDLen, len(m.MsgId))
	}
	for i := 0; i < len(m.MsgId); i++ {
		if c := m.MsgId[i]; c <= ' ' || c >= 0x7f {
			return badField("MsgId", "byte %d is not printable ASCII", i)
		}
	}
	if _, err := ParseFeeds(m.Feeds); err != nil {
		return fmt.Errorf("%w: Feeds: %w", ErrBadMessage, err)
	}
	if m.SeqId < 0 {
		return badField("SeqId", "negative (%d)", m.SeqId)
	}
	if !ValidMsgType(m.MsgType) {
		return badField("MsgType", "unknown type %.40q", m.MsgType)
	}
	if !ValidAccount(m.From) {
		return badField("From", "%.80q is not an account name", m.From)
	}
	if err := validatePayload(m.Payload); err != nil {
		return err
	}
	if m.TimeCreate < 0 {
		return badField("TimeCreate", "negative (%d)", m.TimeCreate)
	}
	if len(m.Device) > MaxDeviceLen {
		return badField("Device", "%d bytes, over the limit of %d", len(m.Device), MaxDeviceLen)
	}
	if !utf8.ValidString(m.Device) {
		return badField("Device", "invalid UTF-8")
	}
	for _, r := range m.Device {
		if unicode.IsControl(r) {
			return badField("Device", "control character")
		}
	}
	if m.Sig != "" {
		if m.Device == "" {
			return badField("Sig", "set without a Device")
		}
		if _, err := decodeSig(m.Sig); err != nil {
			return badField("Sig", "%v", err)
		}
	}
	return nil
}

func validatePayload(p json.RawMessage) error {
	if len(p) == 0 {
		return badField("Payload", "missing")
	}
	if len(p) > MaxPayloadLen {
		return badField("Payload", "%d bytes, over the limit of %d", len(p), MaxPayloadLen)
	}
	c, err := CanonicalJSON(p)
	if err != nil {
		return fmt.Errorf("%w: Payload: %w", ErrBadMessage, err)
	}
	if string(c) == "null" {
		return badField("Payload", "null")
	}
	return nil
}

func badField(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrBadMessage, field, fmt.Sprintf(format, args...))
}

// Signed reports whether the message carries a signature (valid or not).
func (m *Message) Signed() bool { return m.Sig != "" }
