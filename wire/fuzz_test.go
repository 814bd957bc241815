package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func FuzzParseTopic(f *testing.F) {
	for _, tt := range goodTopics {
		f.Add(tt.in)
	}
	for _, tt := range badTopics {
		f.Add(tt.in)
	}
	f.Add(RequestTopic("modulus", "send", "a b&c=d/é"))
	f.Add(PushNews)
	// The subscription topics are no URIs: a PUBLISH on one is a bad topic.
	for _, tt := range goodFilters {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Any string is a msg_id RequestTopic can carry, over MQTT too.
		if rt := RequestTopic(RouteModulus, MethodSend, s); len(rt) <= MaxTopicLen {
			tp, err := ParseTopic(rt)
			if err != nil || tp.MsgID() != s || !MQTTSafe(rt) {
				t.Fatalf("RequestTopic(msg_id %q) = %q: ParseTopic = %+v, %v; MQTTSafe %v", s, rt, tp, err, MQTTSafe(rt))
			}
		}

		tp, err := ParseTopic(s)
		if err != nil {
			if !errors.Is(err, ErrBadTopic) {
				t.Fatalf("ParseTopic(%q) = %v, want an error wrapping ErrBadTopic", s, err)
			}
			return
		}
		if got := tp.String(); got != s {
			t.Fatalf("ParseTopic(%q).String() = %q, want the input", s, got)
		}
		again, err := ParseTopic(tp.String())
		if err != nil || again != tp {
			t.Fatalf("ParseTopic(%q) again = %+v, %v, want %+v", s, again, err, tp)
		}
		if tp.Host == "" || len(s) > MaxTopicLen {
			t.Fatalf("ParseTopic(%q) accepted an empty host or an over-long topic", s)
		}
		_ = tp.QueryValue("msg_id")
		_ = tp.Method()
		_ = tp.Reserved()
	})
}

func FuzzFrame(f *testing.F) {
	var stream []byte
	for _, tt := range frameCases[:6] {
		one := AppendFrame(nil, tt.topic, tt.body)
		f.Add(one, uint16(0))
		f.Add(one[:len(one)/2], uint16(0))
		stream = append(stream, one...)
	}
	f.Add(stream, uint16(10))
	f.Add(stream, uint16(0))
	f.Add([]byte{0x80, 0x00}, uint16(0))
	f.Add([]byte{0x01, 'x', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, limit uint16) {
		maxBody := int(limit)

		// Decode the frames from the slice, re-encoding each one.
		var decoded [][2]string
		var sliceErr error
		off := 0
		for {
			topic, body, n, err := DecodeFrame(b[off:], maxBody)
			if err != nil {
				sliceErr = err
				break
			}
			if n <= 0 || n > len(b)-off {
				t.Fatalf("DecodeFrame consumed %d of %d bytes", n, len(b)-off)
			}
			if re := AppendFrame(nil, topic, body); !bytes.Equal(re, b[off:off+n]) {
				t.Fatalf("AppendFrame(DecodeFrame(%x)) = %x, want the consumed bytes", b[off:off+n], re)
			}
			decoded = append(decoded, [2]string{topic, string(body)})
			off += n
		}

		// The stream reader must see the same frames and fail the same way.
		fr := NewFrameReader(bytes.NewReader(b), maxBody)
		for i := 0; ; i++ {
			topic, body, err := fr.Next()
			if err != nil {
				if i != len(decoded) || !sameFrameError(err, sliceErr) {
					t.Fatalf("FrameReader: %v after %d frames; DecodeFrame: %v after %d", err, i, sliceErr, len(decoded))
				}
				break
			}
			if i >= len(decoded) || decoded[i] != [2]string{topic, string(body)} {
				t.Fatalf("FrameReader frame %d = %q, %q, which DecodeFrame did not see", i, topic, body)
			}
		}
	})
}

// sameFrameError reports whether two decode errors are of the same kind.
func sameFrameError(a, b error) bool {
	for _, kind := range []error{io.EOF, io.ErrUnexpectedEOF, ErrFrameTooLarge, ErrBadFrame} {
		if errors.Is(a, kind) || errors.Is(b, kind) {
			return errors.Is(a, kind) && errors.Is(b, kind)
		}
	}
	return false
}

func FuzzMessageJSON(f *testing.F) {
	m := specMessage()
	b, _ := json.Marshal(m)
	f.Add(b)
	if golden, err := os.ReadFile(filepath.Join("testdata", "message_v1.signed.json")); err == nil {
		f.Add(golden)
	}
	for _, fd := range goodFeeds {
		m := specMessage()
		m.Feeds = fd.in
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	for _, c := range canonicalCases {
		f.Add([]byte(`{"MsgId":"1","Feeds":"g:x","MsgType":"text","From":"a","Payload":` + c.in + `,"TimeCreate":1}`))
	}
	f.Add([]byte(`{"MsgId":"1","Feeds":"dm:a:b","MsgType":"text","From":"a","Payload":{},"Device":"12D3KooWKrUzZL53uDKiJZ9wpPCjCyKzkaoX6okhTJvBVcEFGDms","Sig":"q7dTpPpfKdQobTm6HwEp23U7jfo5JUe1Bk43JYZRuzLAh4Hz3L0b21CgX6FwlN2O3hZU5Ftu5HnuqIuxS4/DAg=="}`))
	key := goldenKey(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if json.Unmarshal(b, &m) != nil {
			return
		}
		verr := m.Validate()
		sb, serr := m.SigningBytes()
		_ = m.Verify()
		if verr != nil {
			if !errors.Is(verr, ErrBadMessage) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrBadMessage", verr)
			}
			return
		}
		if serr != nil {
			t.Fatalf("SigningBytes() = %v for a message Validate accepts", serr)
		}
		// A valid message's signing bytes survive a trip through encoding/json.
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal(valid message) = %v", err)
		}
		var m2 Message
		if err := json.Unmarshal(again, &m2); err != nil {
			t.Fatal(err)
		}
		if err := m2.Validate(); err != nil {
			t.Fatalf("Validate() after a JSON round trip = %v", err)
		}
		if sb2, _ := m2.SigningBytes(); !bytes.Equal(sb, sb2) {
			t.Fatalf("SigningBytes changed over a JSON round trip:\n%q\n%q", sb, sb2)
		}
		if err := m2.Sign(key); err != nil {
			t.Fatalf("Sign(valid message) = %v", err)
		}
		if err := m2.Verify(); err != nil {
			t.Fatalf("Verify() after Sign = %v", err)
		}
	})
}

func FuzzCanonicalPayload(f *testing.F) {
	for _, c := range canonicalCases {
		f.Add([]byte(c.in))
	}
	for _, s := range []string{`{"a":1,"a":2}`, "\"\xff\"", `"\ud800"`, `[[[[]]]]`, `{"a":[1,2,{"b":null}]}`, `1e400`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := CanonicalJSON(b)
		if err != nil {
			if json.Valid(b) && !errors.Is(err, errDuplicateKey) && !errors.Is(err, errInvalidUTF8) &&
				!errors.Is(err, errLoneSurrogate) && !errors.Is(err, errTooDeep) {
				t.Fatalf("CanonicalJSON(%q) = %v for valid JSON", b, err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("CanonicalJSON(%q) accepted invalid JSON", b)
		}
		if !json.Valid(c) {
			t.Fatalf("CanonicalJSON(%q) = %q, not valid JSON", b, c)
		}
		again, err := CanonicalJSON(c)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("CanonicalJSON(%q) = %q, %v, want it unchanged", c, again, err)
		}
		if v1, v2 := decodeNumbers(t, b), decodeNumbers(t, c); !reflect.DeepEqual(v1, v2) {
			t.Fatalf("CanonicalJSON(%q) = %q, which means %#v, not %#v", b, c, v2, v1)
		}
	})
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// FuzzDecodeAnswer checks the one-pass answer decoder against ParseAnswer
// then Decode: the same verdict on every input, and no panic.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add([]byte(`{"Trace":"t","Error":"","Result":[{"MsgId":"a","SeqId":3}]}`))
	f.Add([]byte(`{"Trace":"t","Error":"forbidden","Result":null}`))
	f.Add([]byte(`{"Result":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var one, two []SeqResult
		err1 := DecodeAnswer(b, &one)
		a, err2 := ParseAnswer(b)
		if err2 == nil {
			err2 = a.Decode(&two)
		}
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("DecodeAnswer = %v, ParseAnswer+Decode = %v", err1, err2)
		}
		if err1 == nil && len(one) != len(two) {
			t.Fatalf("decoded %d results in one pass, %d in two", len(one), len(two))
		}
	})
}
