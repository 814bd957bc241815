package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenKey is a fixed Ed25519 device key, so the golden signature is stable.
func goldenKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	seed := []byte("mqtter-wire-golden-test-key-seed") // 32 bytes
	key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func signedMessage(t testing.TB, key crypto.PrivKey) Message {
	t.Helper()
	m := specMessage()
	if err := m.Sign(key); err != nil {
		t.Fatalf("Sign = %v", err)
	}
	return m
}

func TestSignVerify(t *testing.T) {
	key := newKey(t)
	m := signedMessage(t, key)
	id, _ := peer.IDFromPrivateKey(key)
	if m.Device != id.String() {
		t.Errorf("Sign set Device = %q, want the key's peer id %q", m.Device, id)
	}
	if !m.Signed() {
		t.Errorf("Signed() = false after Sign")
	}
	if err := m.Validate(); err != nil {
		t.Errorf("Validate() after Sign = %v", err)
	}
	if err := m.Verify(); err != nil {
		t.Fatalf("Verify() = %v, want nil", err)
	}

	// The message travels as JSON: marshal, unmarshal, verify.
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got Message
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Errorf("Verify() after a JSON round trip = %v, want nil", err)
	}
}

// TestVerifyAfterRewrite checks that what an intermediary may do to the
// payload's JSON without changing its meaning keeps the signature valid.
func TestVerifyAfterRewrite(t *testing.T) {
	key := newKey(t)
	m := specMessage()
	m.Payload = json.RawMessage(`{"text":"<b>hi</b> & \u2028 é","n":1.50,"list":[1,{"y":2,"x":1}],"url":"a\/b"}`)
	if err := m.Sign(key); err != nil {
		t.Fatal(err)
	}
	rewrites := map[string]string{
		"re-indented":    "{\n  \"text\": \"<b>hi</b> & \\u2028 é\",\n  \"n\": 1.50,\n  \"list\": [ 1, { \"y\": 2, \"x\": 1 } ],\n  \"url\": \"a\\/b\"\n}",
		"keys reordered": `{"url":"a/b","n":1.50,"list":[1,{"x":1,"y":2}],"text":"<b>hi</b> & ` + "\u2028" + ` é"}`,
		"html escaped":   `{"text":"\u003cb\u003ehi\u003c/b\u003e \u0026 \u2028 \u00e9","n":1.50,"list":[1,{"y":2,"x":1}],"url":"a/b"}`,
	}
	for name, payload := range rewrites {
		r := m
		r.Payload = json.RawMessage(payload)
		if err := r.Verify(); err != nil {
			t.Errorf("%s: Verify() = %v, want nil", name, err)
		}
	}

	// A whole-message trip through encoding/json with HTML escaping, and
	// through a generic map, as a relay written in another style would do.
	var generic map[string]any
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	b, _ = json.MarshalIndent(generic, "", "\t")
	var relayed Message
	if err := json.Unmarshal(b, &relayed); err != nil {
		t.Fatal(err)
	}
	// The float64 round trip keeps 1.50 only as 1.5, which is a change of
	// the bytes as written, so it must not verify.
	if err := relayed.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify() after numbers were rewritten = %v, want ErrBadSignature", err)
	}
}

func TestVerifyRejectsChanges(t *testing.T) {
	key := newKey(t)
	other := newKey(t)
	otherID, _ := peer.IDFromPrivateKey(other)
	m := signedMessage(t, key)

	randomSig := make([]byte, 64)
	rand.Read(randomSig)
	secpKey, _, _ := crypto.GenerateSecp256k1Key(rand.Reader)
	secpID, _ := peer.IDFromPrivateKey(secpKey)
	id, _ := peer.IDFromPrivateKey(key)

	tests := []struct {
		name   string
		change func(*Message)
	}{
		{"MsgId", func(m *Message) { m.MsgId += "x" }},
		{"Feeds", func(m *Message) { m.Feeds = "dm:alice:carol" }},
		{"MsgType", func(m *Message) { m.MsgType = "command" }},
		{"From", func(m *Message) { m.From = "bob" }},
		{"Payload", func(m *Message) { m.Payload = json.RawMessage(`{"text":"hi!"}`) }},
		{"Payload number", func(m *Message) { m.Payload = json.RawMessage(`{"text":"hi","n":1}`) }},
		{"TimeCreate", func(m *Message) { m.TimeCreate++ }},
		{"Device of another key", func(m *Message) { m.Device = otherID.String() }},
		{"Device garbage", func(m *Message) { m.Device = "not-a-peer-id" }},
		{"Device empty", func(m *Message) { m.Device = "" }},
		{"Device as CID", func(m *Message) { m.Device = peer.ToCid(id).String() }},
		{"Device secp256k1", func(m *Message) { m.Device = secpID.String() }},
		{"Sig missing", func(m *Message) { m.Sig = "" }},
		{"Sig garbage", func(m *Message) { m.Sig = "!!!" }},
		{"Sig random", func(m *Message) { m.Sig = base64.StdEncoding.EncodeToString(randomSig) }},
		{"Sig short", func(m *Message) { m.Sig = base64.StdEncoding.EncodeToString(randomSig[:63]) }},
		{"Sig url encoding", func(m *Message) { m.Sig = base64.URLEncoding.EncodeToString(mustDecodeSig(t, m.Sig)) + "x" }},
		{"Sig of another key", func(m *Message) {
			o := specMessage()
			o.Sign(other)
			m.Sig = o.Sig
		}},
		{"Payload undecodable", func(m *Message) { m.Payload = json.RawMessage(`{`) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := m
			tt.change(&c)
			if err := c.Verify(); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify() after changing %s = %v, want ErrBadSignature", tt.name, err)
			}
		})
	}
}

func mustDecodeSig(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyIgnoresSeqId(t *testing.T) {
	m := signedMessage(t, newKey(t))
	before, _ := m.SigningBytes()
	m.SeqId = 42
	after, _ := m.SigningBytes()
	if !bytes.Equal(before, after) {
		t.Errorf("SigningBytes changed with SeqId")
	}
	if err := m.Verify(); err != nil {
		t.Errorf("Verify() after setting SeqId = %v, want nil", err)
	}
}

func TestSignErrors(t *testing.T) {
	secpKey, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := specMessage()
	if err := m.Sign(secpKey); err == nil || m.Device != "" || m.Sig != "" {
		t.Errorf("Sign(secp256k1) = %v, Device %q, Sig %q, want an error and no change", err, m.Device, m.Sig)
	}
	if err := m.Sign(nil); err == nil {
		t.Errorf("Sign(nil) = nil, want an error")
	}
	m.Payload = json.RawMessage(`{"a":1,"a":2}`)
	if err := m.Sign(newKey(t)); !errors.Is(err, ErrBadMessage) || m.Device != "" || m.Sig != "" {
		t.Errorf("Sign(duplicate keys) = %v, Device %q, want ErrBadMessage and no change", err, m.Device)
	}
}

// TestSigningBytesFieldBoundaries checks that the length prefixes keep
// bytes from moving between fields unnoticed.
func TestSigningBytesFieldBoundaries(t *testing.T) {
	a, b := specMessage(), specMessage()
	a.From, a.Device = "ab", "c"
	b.From, b.Device = "a", "bc"
	ba, _ := a.SigningBytes()
	bb, _ := b.SigningBytes()
	if bytes.Equal(ba, bb) {
		t.Errorf("SigningBytes equal for From/Device %q/%q and %q/%q", a.From, a.Device, b.From, b.Device)
	}
}

// TestSigningBytesGolden pins the canonical encoding of the spec's example
// message and its signature by a fixed key. Run with -update after an
// intended change of the format (and bump the domain's version).
func TestSigningBytesGolden(t *testing.T) {
	m := specMessage()
	m.Payload = json.RawMessage("{ \"text\" : \"hi\" }")
	if err := m.Sign(goldenKey(t)); err != nil {
		t.Fatal(err)
	}
	sb, err := m.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	gotDump := hex.Dump(sb)
	gotJSON, _ := json.MarshalIndent(m, "", "  ")
	gotJSON = append(gotJSON, '\n')

	dumpPath := filepath.Join("testdata", "message_v1.signing.hexdump")
	jsonPath := filepath.Join("testdata", "message_v1.signed.json")
	if *update {
		os.WriteFile(dumpPath, []byte(gotDump), 0o644)
		os.WriteFile(jsonPath, gotJSON, 0o644)
	}
	wantDump, err := os.ReadFile(dumpPath)
	if err != nil {
		t.Fatal(err)
	}
	if gotDump != string(wantDump) {
		t.Errorf("SigningBytes of the spec message =\n%s\nwant\n%s", gotDump, wantDump)
	}
	wantJSON, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("signed spec message =\n%s\nwant\n%s", gotJSON, wantJSON)
	}

	// The fixture verifies on its own, as another implementation would read it.
	var fixture Message
	if err := json.Unmarshal(wantJSON, &fixture); err != nil {
		t.Fatal(err)
	}
	if err := fixture.Verify(); err != nil {
		t.Errorf("Verify(%s) = %v, want nil", jsonPath, err)
	}
	if !strings.HasPrefix(string(sb), signingDomain) {
		t.Errorf("SigningBytes does not start with the domain %q", signingDomain)
	}
}

func TestDevicePublicKey(t *testing.T) {
	key := goldenKey(t)
	id, _ := peer.IDFromPrivateKey(key)
	pub, err := DevicePublicKey(id.String())
	if err != nil || !pub.Equals(key.GetPublic()) {
		t.Errorf("DevicePublicKey(%s) = %v, %v, want the key's public key", id, pub, err)
	}
	for _, d := range []string{"", "x", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", strings.Repeat("1", 300)} {
		if _, err := DevicePublicKey(d); !errors.Is(err, ErrBadSignature) {
			t.Errorf("DevicePublicKey(%.40q) = %v, want ErrBadSignature", d, err)
		}
	}
}
