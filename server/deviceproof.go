package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// challengeTTL is how long a device_challenge may be signed into a
// register_device proof.
const challengeTTL = 5 * time.Minute

// challengeMACSize is the length of the truncated HMAC in a challenge.
const challengeMACSize = 16

// errBadChallenge is what checkChallenge refuses with.
var errBadChallenge = errors.New("not a challenge of this server for this device")

// proofKey makes and checks device challenges without keeping state: a
// challenge is its expiry and an HMAC of account, client id and expiry under
// a key drawn at start, so one made for another account, another client id
// or before a restart does not verify.
type proofKey []byte

func newProofKey() proofKey {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func (k proofKey) mac(account, device string, expires uint64) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte("device_challenge\x00"))
	m.Write([]byte(account))
	m.Write([]byte{0})
	m.Write([]byte(device))
	m.Write([]byte{0})
	m.Write(binary.BigEndian.AppendUint64(nil, expires))
	return m.Sum(nil)[:challengeMACSize]
}

// challenge returns a challenge for account's device, valid until expires.
func (k proofKey) challenge(account, device string, expires time.Time) string {
	ms := uint64(expires.UnixMilli())
	b := binary.BigEndian.AppendUint64(nil, ms)
	b = append(b, k.mac(account, device, ms)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// check verifies that c is a challenge k made for account's device and not
// expired at now.
func (k proofKey) check(account, device, c string, now time.Time) error {
	if len(c) > wire.MaxChallenge {
		return errBadChallenge
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	// The decoder skips newlines: only the one spelling challenge made is
	// taken.
	if err != nil || len(b) != 8+challengeMACSize || base64.RawURLEncoding.EncodeToString(b) != c {
		return errBadChallenge
	}
	ms := binary.BigEndian.Uint64(b[:8])
	if !hmac.Equal(b[8:], k.mac(account, device, ms)) {
		return errBadChallenge
	}
	if ms > uint64(now.Add(challengeTTL).UnixMilli()) || uint64(now.UnixMilli()) > ms {
		return errors.New("challenge expired")
	}
	return nil
}

func (s *Server) deviceChallenge(ctx context.Context, c *call) (any, error) {
	expires := time.Now().Add(challengeTTL)
	return wire.DeviceChallenge{
		Challenge: s.proofKey.challenge(c.sess.account, c.sess.device, expires),
		Expires:   expires.UnixMilli(),
	}, nil
}

// deviceBound reports whether sess's client id is bound to sess's account:
// a peer-id device that has not proven its key is not, and nobody hears of
// its presence.
func (s *Server) deviceBound(ctx context.Context, sess *session) bool {
	owner, err := s.db.DeviceAccount(ctx, sess.device)
	return err == nil && owner == sess.account
}
