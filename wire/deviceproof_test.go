package wire_test

import (
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/wire"
)

// The bytes a register_device proof signs are those docs/protocol.md
// spells out, and ProveDevice fills the body a server checks.
func TestDeviceProof(t *testing.T) {
	got := string(wire.DeviceProofBytes("alice", "12D3KooWx", "c-1"))
	if want := "mqtter/register_device/v1\x00alice\x0012D3KooWx\x00c-1\x00"; got != want {
		t.Errorf("DeviceProofBytes = %q, want %q", got, want)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var r wire.RegisterDevice
	if err := wire.ProveDevice(&r, key, "alice", "c-1"); err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	if r.PeerID != id.String() || r.Challenge != "c-1" || !wire.IsPeerID(r.PeerID) {
		t.Errorf("ProveDevice = %+v, want peer id %s and challenge c-1", r, id)
	}
	raw, err := base64.StdEncoding.DecodeString(r.PubKey)
	if err != nil {
		t.Fatalf("pubkey is not standard base64: %v", err)
	}
	pub, err := crypto.UnmarshalPublicKey(raw)
	if err != nil || !id.MatchesPublicKey(pub) {
		t.Fatalf("pubkey = %v, %v; want the key of %s", pub, err, id)
	}
	sig, err := base64.StdEncoding.DecodeString(r.Sig)
	if err != nil {
		t.Fatalf("sig is not standard base64: %v", err)
	}
	if ok, err := pub.Verify(wire.DeviceProofBytes("alice", r.PeerID, "c-1"), sig); !ok || err != nil {
		t.Errorf("sig does not verify: %v, %v", ok, err)
	}
	if wire.IsPeerID("alice-1") {
		t.Error(`IsPeerID("alice-1") = true`)
	}
}
