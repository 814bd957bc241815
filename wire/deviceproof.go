package wire

import (
	"encoding/base64"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// deviceProofDomain starts the bytes a register_device proof signs, so the
// signature can never be taken for a message signature (those start with
// signingDomain) or anything else the device key signs.
const deviceProofDomain = "mqtter/register_device/v1\x00"

// MaxChallenge is the longest challenge a register_device may carry.
const MaxChallenge = 256

// DeviceProofBytes returns what a device signs to prove it holds the key of
// peerID: the domain "mqtter/register_device/v1" and a NUL byte, then
// account, peerID and challenge, each followed by a NUL byte. None of the
// three may contain NUL (account names and peer ids cannot; a challenge
// the server made does not).
func DeviceProofBytes(account, peerID, challenge string) []byte {
	b := make([]byte, 0, len(deviceProofDomain)+len(account)+len(peerID)+len(challenge)+3)
	b = append(b, deviceProofDomain...)
	for _, s := range []string{account, peerID, challenge} {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

// ProveDevice fills r's PeerID, PubKey and Sig for the device key key, as
// account, over challenge (the result of device_challenge).
func ProveDevice(r *RegisterDevice, key crypto.PrivKey, account, challenge string) error {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("prove device: %w", err)
	}
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return fmt.Errorf("prove device: %w", err)
	}
	r.PeerID = id.String()
	r.PubKey = base64.StdEncoding.EncodeToString(pub)
	r.Challenge = challenge
	sig, err := key.Sign(DeviceProofBytes(account, r.PeerID, challenge))
	if err != nil {
		return fmt.Errorf("prove device: %w", err)
	}
	r.Sig = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// IsPeerID reports whether a client id parses as a libp2p peer id: such an
// id is bound to an account only once a register_device proved its key.
func IsPeerID(clientID string) bool {
	_, err := peer.Decode(clientID)
	return err == nil
}
