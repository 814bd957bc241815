package server

import (
	"context"
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
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mqtter/mqtter/server/store"
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
// each pay for bcrypt. A changed hash invalidates the entry.
type verifiedCache struct {
	key []byte
	mu  sync.Mutex
	m   map[string]verifiedEntry
}

type verifiedEntry struct {
	hash   string // the stored hash it verified against
	digest [32]byte
}

func newVerifiedCache() *verifiedCache {
	key := make([]byte, 32)
	rand.Read(key)
	return &verifiedCache{key: key, m: make(map[string]verifiedEntry)}
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

// hit reports whether password is the one that last verified against hash.
func (c *verifiedCache) hit(account, hash, password string) bool {
	d := c.digest(account, password)
	c.mu.Lock()
	e, ok := c.m[account]
	c.mu.Unlock()
	return ok && e.hash == hash && subtle.ConstantTimeCompare(e.digest[:], d[:]) == 1
}

// remember records that password verified against hash.
func (c *verifiedCache) remember(account, hash, password string) {
	d := c.digest(account, password)
	c.mu.Lock()
	c.m[account] = verifiedEntry{hash: hash, digest: d}
	c.mu.Unlock()
}

// dummyHash is what a password for an account that does not exist is
// checked against: a bcrypt hash of the same cost as the accounts', so that
// an unknown account costs the same time and work as a wrong password and
// the answer's timing does not tell which names exist.
const dummyHash = "$2a$10$YL439HfRhPB5Wxb0eR7QiOJUnrH6FJkD2o5.1BzNYrcFatF2h61Ne"

// Why a login is refused, as the reason label of
// mqtter_logins_refused_total.
const (
	reasonBadPassword    = "bad_password"
	reasonUnknownAccount = "unknown_account"
	reasonThrottled      = "throttled"
)

// errLoginRefused is a wrong password or an unknown account: the caller
// answers both alike. errThrottled is a login refused unchecked because its
// source address or its account is backed off.
var (
	errLoginRefused = errors.New("bad account or password")
	errThrottled    = errors.New("too many failed logins, try again later")
)

// authGuard throttles guessing. Wrong passwords back off their source
// address and their account, and the hash checks run through a gate no one
// address or account can fill; wrong pairing codes back off the guessing
// person and the thing guessed at.
type authGuard struct {
	addrs    *throttle // login failures by source address
	accounts *throttle // login failures by account name, existing or not
	gate     *hashGate
	guessers *throttle // wrong pairing codes by guessing person
	things   *throttle // wrong pairing codes by thing
}

func newAuthGuard(cfg Config) *authGuard {
	return &authGuard{
		addrs:    newThrottle(cfg.LoginFailures, cfg.LoginBackoff, cfg.LoginBackoffMax, cfg.ThrottleEntries),
		accounts: newThrottle(cfg.LoginFailures, cfg.LoginBackoff, cfg.LoginBackoffMax, cfg.ThrottleEntries),
		gate:     newHashGate(runtime.GOMAXPROCS(0)),
		guessers: newThrottle(cfg.PairingGuesses, cfg.LoginBackoff, cfg.LoginBackoffMax, cfg.ThrottleEntries),
		// A thing's code is invalidated after PairingGuesses wrong ones;
		// this bounds the guesses at the fresh codes it is then given.
		things: newThrottle(pairingCodesPerBackoff*cfg.PairingGuesses, cfg.LoginBackoff, cfg.LoginBackoffMax, cfg.ThrottleEntries),
	}
}

// pairingCodesPerBackoff is how many codes' worth of wrong guesses a thing
// takes before guesses at it are backed off.
const pairingCodesPerBackoff = 4

// login checks account's password for a client at remote (host:port) and
// returns the account. knownDevice, when not nil, reports whether the
// client's device is already bound to account: such a device still gets its
// password checked while the account is backed off, so that guessing an
// account's password from elsewhere cannot lock its owner out (the
// device's own address must not be backed off). It returns errLoginRefused,
// errThrottled, or a store error.
func (s *Server) login(ctx context.Context, account, password, remote string, knownDevice func(context.Context) (bool, error)) (store.Account, error) {
	g := s.guard
	addrKey, acctKey := "addr "+sourceKey(remote), "account "+account
	refuse := func(reason string, err error) (store.Account, error) {
		s.metrics.loginsRefused.WithLabelValues(reason).Inc()
		return store.Account{}, err
	}
	if blocked, _ := g.addrs.blocked(addrKey, time.Now()); blocked {
		return refuse(reasonThrottled, errThrottled)
	}
	acct, err := s.db.Account(ctx, account)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Account{}, err
	}
	hash := dummyHash
	if known {
		hash = acct.PassHash
		if s.verified.hit(account, hash, password) {
			return acct, nil
		}
	}
	var device struct {
		asked, known bool
		err          error
	}
	mayTry := func() bool {
		if blocked, _ := g.addrs.blocked(addrKey, time.Now()); blocked {
			return false
		}
		if blocked, _ := g.accounts.blocked(acctKey, time.Now()); !blocked {
			return true
		}
		if knownDevice == nil {
			return false
		}
		if !device.asked {
			device.asked = true
			device.known, device.err = knownDevice(ctx)
		}
		return device.known
	}
	if !mayTry() {
		if device.err != nil {
			return store.Account{}, device.err
		}
		return refuse(reasonThrottled, errThrottled)
	}
	release, err := g.gate.acquire(ctx, addrKey, acctKey)
	if err != nil {
		return store.Account{}, fmt.Errorf("wait for a password check: %w", err)
	}
	defer release()
	// Checks ahead of this one may have backed a key off, or verified
	// this very password.
	if !mayTry() {
		if device.err != nil {
			return store.Account{}, device.err
		}
		return refuse(reasonThrottled, errThrottled)
	}
	if known && s.verified.hit(account, hash, password) {
		return acct, nil
	}
	s.metrics.hashChecks.Inc()
	good, err := checkPassword(hash, password)
	if err != nil {
		s.log.Warn("password check", "account", account, "err", err)
	}
	if good && known {
		s.verified.remember(account, hash, password)
		return acct, nil
	}
	now := time.Now()
	g.addrs.fail(addrKey, now)
	g.accounts.fail(acctKey, now)
	if !known {
		return refuse(reasonUnknownAccount, errLoginRefused)
	}
	return refuse(reasonBadPassword, errLoginRefused)
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
