package wire

import (
	"crypto/rand"
	"crypto/sha512"
	"errors"

	"filippo.io/edwards25519"
)

// minBatch is the fewest signatures VerifyBatch checks together; below it
// one by one is as fast.
const minBatch = 4

// VerifyBatch returns, for each message, what Verify would: nil when its
// signature verifies. It checks the signatures together, in one
// multiscalar multiplication over random 128-bit weights (the cofactored
// batch equation), which is several times cheaper a signature than one
// Verify each; if the batch does not hold, it verifies one by one to find
// the culprits. A batch holds exactly when every signature is valid, except
// with probability 2^-128, and except that the cofactored equation accepts
// signatures whose R or A carry a small-order component, which only the
// key's owner can make and Verify refuses (ZIP 215 describes the
// difference). Messages that cannot join the batch (unsigned, a malformed
// Sig or Device) get Verify's own error.
func VerifyBatch(msgs []*Message) []error {
	errs := make([]error, len(msgs))
	type entry struct {
		i    int
		r    *edwards25519.Point
		s, k *edwards25519.Scalar
		a    *edwards25519.Point
	}
	type key struct {
		a   *edwards25519.Point
		raw []byte // as Verify hashes it
	}
	batch := make([]entry, 0, len(msgs))
	keys := make(map[string]key)
	for i, m := range msgs {
		e, err := func() (entry, error) {
			if m.Sig == "" {
				return entry{}, errors.New("unsigned")
			}
			sig, err := decodeSig(m.Sig)
			if err != nil {
				return entry{}, err
			}
			kk, ok := keys[m.Device]
			if !ok {
				pub, err := devicePublicKey(m.Device)
				if err != nil {
					return entry{}, err
				}
				if kk.raw, err = pub.Raw(); err != nil {
					return entry{}, err
				}
				if kk.a, err = new(edwards25519.Point).SetBytes(kk.raw); err != nil {
					return entry{}, err
				}
				keys[m.Device] = kk
			}
			r, err := new(edwards25519.Point).SetBytes(sig[:32])
			if err != nil {
				return entry{}, err
			}
			s, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
			if err != nil {
				return entry{}, err
			}
			b, err := m.SigningBytes()
			if err != nil {
				return entry{}, err
			}
			h := sha512.New()
			h.Write(sig[:32])
			h.Write(kk.raw)
			h.Write(b)
			k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
			if err != nil {
				return entry{}, err
			}
			return entry{i: i, r: r, s: s, k: k, a: kk.a}, nil
		}()
		if err != nil {
			errs[i] = msgs[i].Verify() // its own words for what is wrong
			if errs[i] == nil {
				errs[i] = ErrBadSignature
			}
			continue
		}
		batch = append(batch, e)
	}
	one := func() {
		for _, e := range batch {
			errs[e.i] = msgs[e.i].Verify()
		}
	}
	if len(batch) < minBatch {
		one()
		return errs
	}
	// Σ z·R + Σ (z·k)·A − (Σ z·s)·B must be the identity, times the
	// cofactor; the weights of one device's A add up into one term.
	scalars := make([]*edwards25519.Scalar, 0, len(batch)+len(keys)+1)
	points := make([]*edwards25519.Point, 0, len(batch)+len(keys)+1)
	sumS := edwards25519.NewScalar()
	byKey := make(map[*edwards25519.Point]*edwards25519.Scalar, len(keys))
	var zb [32]byte
	for _, e := range batch {
		if _, err := rand.Read(zb[:16]); err != nil {
			one()
			return errs
		}
		z, err := edwards25519.NewScalar().SetCanonicalBytes(zb[:])
		if err != nil {
			one()
			return errs
		}
		scalars = append(scalars, z)
		points = append(points, e.r)
		sumS.MultiplyAdd(z, e.s, sumS)
		w := byKey[e.a]
		if w == nil {
			w = edwards25519.NewScalar()
			byKey[e.a] = w
		}
		w.MultiplyAdd(z, e.k, w)
	}
	for a, w := range byKey {
		scalars = append(scalars, w)
		points = append(points, a)
	}
	scalars = append(scalars, sumS.Negate(sumS))
	points = append(points, edwards25519.NewGeneratorPoint())
	sum := new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
	if sum.MultByCofactor(sum).Equal(edwards25519.NewIdentityPoint()) != 1 {
		one()
	}
	return errs
}
