package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// bcryptCost is the bcrypt work factor. bcrypt rather than argon2id: the
// server verifies a password at every MQTT CONNECT, and argon2id's memory
// cost (tens of MiB a check) multiplied by a burst of reconnecting devices
// would dominate the broker's memory; bcrypt needs 4 KiB.
const bcryptCost = 10

// HashPassword returns a bcrypt hash of password.
func HashPassword(password string) (string, error) {
	if len(password) > 72 {
		return "", errors.New("hash password: longer than 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// checkPassword verifies password against a bcrypt hash.
func checkPassword(hash, password string) (bool, error) {
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	}
	return false, fmt.Errorf("check password: %w", err)
}

// verifiedCache remembers, per account, a keyed digest of the password that
// last verified against the stored hash, so reconnects of many devices do not
// each pay for argon2. A changed hash invalidates the entry.
type verifiedCache struct {
	key  []byte
	mu   sync.Mutex
	m    map[string]verifiedEntry
	slow chan struct{} // bounds concurrent hash checks to the CPUs
}

type verifiedEntry struct {
	hash   string // the stored hash it verified against
	digest [32]byte
}

func newVerifiedCache() *verifiedCache {
	key := make([]byte, 32)
	rand.Read(key)
	return &verifiedCache{key: key, m: make(map[string]verifiedEntry), slow: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

func (c *verifiedCache) digest(account, password string) [32]byte {
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(account))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var d [32]byte
	copy(d[:], mac.Sum(nil))
	return d
}

func (c *verifiedCache) check(account, hash, password string) (bool, error) {
	d := c.digest(account, password)
	hit := func() bool {
		c.mu.Lock()
		e, ok := c.m[account]
		c.mu.Unlock()
		return ok && e.hash == hash && subtle.ConstantTimeCompare(e.digest[:], d[:]) == 1
	}
	if hit() {
		return true, nil
	}
	// A burst of devices of one account logging in at once pays for one
	// hash check; the others find it cached once they get a slot.
	c.slow <- struct{}{}
	defer func() { <-c.slow }()
	if hit() {
		return true, nil
	}
	good, err := checkPassword(hash, password)
	if err != nil || !good {
		return false, err
	}
	c.mu.Lock()
	c.m[account] = verifiedEntry{hash: hash, digest: d}
	c.mu.Unlock()
	return true, nil
}

// randomToken returns a random URL-safe token and its sha256 hex digest (what
// the store keeps).
func randomToken() (token, hash string) {
	b := make([]byte, 32)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, tokenHash(token)
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
