package wire

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func BenchmarkParseTopic(b *testing.B) {
	const s = "im://12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm/send?msg_id=01JD8RSH00B9D5MPJTB9D5MPJT"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTopic(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	tt := frameCases[0]
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(FrameLen(tt.topic, tt.body)))
	for b.Loop() {
		buf = AppendFrame(buf[:0], tt.topic, tt.body)
	}
}

func BenchmarkFrameReader(b *testing.B) {
	tt := frameCases[0]
	const perStream = 1000
	var stream []byte
	for range perStream {
		stream = AppendFrame(stream, tt.topic, tt.body)
	}
	r := bytes.NewReader(stream)
	fr := NewFrameReader(r, 0)
	b.ReportAllocs()
	b.SetBytes(int64(FrameLen(tt.topic, tt.body)))
	for b.Loop() {
		if _, _, err := fr.Next(); err == io.EOF {
			r.Reset(stream)
			fr = NewFrameReader(r, 0)
		} else if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	key := goldenKey(b)
	m := specMessage()
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Sign(key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	m := signedMessage(b, goldenKey(b))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Verify(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalJSON(b *testing.B) {
	payload := []byte(`{"text":"hello <world>","meta":{"z":1,"a":[1,2,3],"url":"https:\/\/example.com"},"n":1.50}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := CanonicalJSON(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCanonicalJSONDeep is the costliest payload a message may carry:
// maximal size and nesting, every object's keys out of order. Its cost per
// byte should stay close to BenchmarkCanonicalJSON's.
func BenchmarkCanonicalJSONDeep(b *testing.B) {
	depth := maxJSONDepth - 1
	big := strings.Repeat("x", MaxPayloadLen-depth*12)
	payload := []byte(strings.Repeat(`{"b":1,"a":`, depth) + `"` + big + `"` + strings.Repeat("}", depth))
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := CanonicalJSON(payload); err != nil {
			b.Fatal(err)
		}
	}
}
