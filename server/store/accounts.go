package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// ErrDeviceTaken is returned when a device id is already bound to another
// account.
var ErrDeviceTaken = errors.New("device id belongs to another account")

// ErrTooManyDevices is returned when a new device would take its account
// over the device limit and every device it has is connected.
var ErrTooManyDevices = errors.New("too many devices, all connected")

// DeviceLimit caps the devices bound to one account: a new device past Max
// retires the account's least recently seen devices that are not
// connected, with their cursors.
type DeviceLimit struct {
	Max       int                      // 0: no limit
	Connected func(device string) bool // a connected device is never retired
	Retired   func(device string)      // told of each retired device, inside its write job
}

// LimitDevices sets the device limit; call it before the store is used.
func (db *DB) LimitDevices(l DeviceLimit) { db.devices = l }

// Account is a person or a thing that can log in.
type Account struct {
	Name     string
	Kind     string // "person" or "thing"
	PassHash string
	Created  int64 // unix ms
}

// Device is a client id bound to an account.
type Device struct {
	ID        string
	Account   string
	PubKey    string
	Addrs     []string
	FirstSeen int64
	LastSeen  int64
}

// binding reports whether a device row binds its id to its account: a
// client id that is a libp2p peer id binds only once its key was proven, so
// that an account that merely connected first with someone else's peer id
// owns nothing.
func binding(device string, proven bool) bool {
	return proven || !wire.IsPeerID(device)
}

// AddAccount creates an account; ErrExists if the name is taken.
func (db *DB) AddAccount(ctx context.Context, a Account) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE name = ?`, a.Name).Scan(&n); err != nil {
			return fmt.Errorf("store: add account: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("store: add account %s: %w", a.Name, ErrExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (name, kind, pass_hash, created) VALUES (?, ?, ?, ?)`,
			a.Name, a.Kind, a.PassHash, a.Created)
		if err != nil {
			return fmt.Errorf("store: add account %s: %w", a.Name, err)
		}
		return nil
	})
}

// Account returns the named account or ErrNotFound.
func (db *DB) Account(ctx context.Context, name string) (Account, error) {
	a := Account{Name: name}
	err := db.read.QueryRowContext(ctx, `SELECT kind, pass_hash, created FROM accounts WHERE name = ?`, name).
		Scan(&a.Kind, &a.PassHash, &a.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("store: account %s: %w", name, err)
	}
	return a, nil
}

// TouchDevice binds device to account the first time it is seen (retiring
// stale devices of the account past the device limit, or failing with
// ErrTooManyDevices) and starts
// its delivery cursors at each of the account's conversations' current last
// SeqId (older history comes by history, not by push). A peer-id device
// another account holds without having proven its key is taken over the
// same way, as if new. It returns ErrDeviceTaken if device is bound to
// another account, and whether the device is new to account.
func (db *DB) TouchDevice(ctx context.Context, device, account string, now time.Time) (bool, error) {
	var created bool
	err := db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		var owner string
		var proven bool
		err := tx.QueryRowContext(ctx, `SELECT account, proven FROM devices WHERE device = ?`, device).Scan(&owner, &proven)
		ms := now.UnixMilli()
		switch {
		case err == nil:
			if owner == account {
				return nil
			}
			if binding(device, proven) {
				return ErrDeviceTaken
			}
			if err := db.retireDevices(ctx, tx, account); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET account = ?, pubkey = '', addrs = '[]', first_seen = ?, last_seen = ? WHERE device = ?`,
				account, ms, ms, device); err != nil {
				return fmt.Errorf("store: take over device %s: %w", device, err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM cursors WHERE device = ?`, device); err != nil {
				return fmt.Errorf("store: take over device %s: %w", device, err)
			}
			if err := deleteSession(ctx, tx, device); err != nil {
				return err
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: device %s: %w", device, err)
		default:
			if err := db.retireDevices(ctx, tx, account); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO devices (device, account, first_seen, last_seen) VALUES (?, ?, ?, ?)`,
				device, account, ms, ms); err != nil {
				return fmt.Errorf("store: add device %s: %w", device, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO cursors (device, feeds, seq)
			SELECT ?1, c.feeds, (SELECT max(seq) FROM messages m WHERE m.feeds = c.feeds) FROM (
				SELECT feeds FROM conversations WHERE a = ?2 OR b = ?2
				UNION
				SELECT c.feeds FROM group_members m JOIN conversations c ON c.feeds = m.feeds
					WHERE m.account = ?2 AND m.state = 'member') c`, device, account); err != nil {
			return fmt.Errorf("store: start cursors of %s: %w", device, err)
		}
		created = true
		return nil
	})
	return created, err
}

// retireDevices makes room for one more device of account under the
// device limit: it deletes the least recently seen devices that are not
// connected, and their cursors and persistent sessions, or returns
// ErrTooManyDevices.
func (db *DB) retireDevices(ctx context.Context, tx Tx, account string) error {
	l := db.devices
	if l.Max <= 0 {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE account = ?`, account).Scan(&n); err != nil {
		return fmt.Errorf("store: count devices of %s: %w", account, err)
	}
	excess := n - l.Max + 1
	if excess <= 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT device FROM devices WHERE account = ? ORDER BY last_seen, first_seen, device`, account)
	if err != nil {
		return fmt.Errorf("store: stale devices of %s: %w", account, err)
	}
	var stale []string
	for rows.Next() && len(stale) < excess {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return fmt.Errorf("store: stale devices of %s: %w", account, err)
		}
		if l.Connected == nil || !l.Connected(d) {
			stale = append(stale, d)
		}
	}
	rows.Close()
	if len(stale) < excess {
		return fmt.Errorf("store: add a device to %s (limit %d): %w", account, l.Max, ErrTooManyDevices)
	}
	for _, d := range stale {
		if _, err := tx.ExecContext(ctx, `DELETE FROM cursors WHERE device = ?`, d); err != nil {
			return fmt.Errorf("store: retire device %s: %w", d, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE device = ?`, d); err != nil {
			return fmt.Errorf("store: retire device %s: %w", d, err)
		}
		if err := deleteSession(ctx, tx, d); err != nil {
			return err
		}
		if l.Retired != nil {
			l.Retired(d)
		}
	}
	return nil
}

// RegisterDevice records a device's public key and listen addresses, and
// that it proved its key: from now on the id is bound to account.
func (db *DB) RegisterDevice(ctx context.Context, device, account, pubkey string, addrs []string) error {
	js, err := json.Marshal(addrs)
	if err != nil {
		return fmt.Errorf("store: register device: %w", err)
	}
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET pubkey = ?, addrs = ?, proven = 1 WHERE device = ? AND account = ?`,
			pubkey, string(js), device, account)
		if err != nil {
			return fmt.Errorf("store: register device %s: %w", device, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: register device %s: %w", device, ErrNotFound)
		}
		return nil
	})
}

// SetLastSeen records when a device was last connected.
func (db *DB) SetLastSeen(ctx context.Context, device string, t time.Time) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE devices SET last_seen = ? WHERE device = ?`, t.UnixMilli(), device)
		if err != nil {
			return fmt.Errorf("store: last seen %s: %w", device, err)
		}
		return nil
	})
}

// DeviceAccount returns the account a device is bound to, or ErrNotFound
// (also for a peer-id device whose key was not proven yet).
func (db *DB) DeviceAccount(ctx context.Context, device string) (string, error) {
	var account string
	var proven bool
	err := db.read.QueryRowContext(ctx, `SELECT account, proven FROM devices WHERE device = ?`, device).Scan(&account, &proven)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !binding(device, proven) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: device %s: %w", device, err)
	}
	return account, nil
}

// Devices returns the devices bound to account (not the peer-id devices
// that did not prove their key).
func (db *DB) Devices(ctx context.Context, account string) ([]Device, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT device, pubkey, addrs, first_seen, last_seen, proven FROM devices WHERE account = ? ORDER BY device`, account)
	if err != nil {
		return nil, fmt.Errorf("store: devices of %s: %w", account, err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d := Device{Account: account}
		var addrs string
		var proven bool
		if err := rows.Scan(&d.ID, &d.PubKey, &addrs, &d.FirstSeen, &d.LastSeen, &proven); err != nil {
			return nil, fmt.Errorf("store: devices of %s: %w", account, err)
		}
		if !binding(d.ID, proven) {
			continue
		}
		if err := json.Unmarshal([]byte(addrs), &d.Addrs); err != nil {
			d.Addrs = nil
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PutPairingCode stores a one-time code that lets a person bind thing.
func (db *DB) PutPairingCode(ctx context.Context, code, thing string, expires time.Time) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pairing_codes WHERE expires < ?`, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("store: pairing code: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO pairing_codes (code, thing, expires) VALUES (?, ?, ?)`, code, thing, expires.UnixMilli())
		if err != nil {
			return fmt.Errorf("store: pairing code: %w", err)
		}
		return nil
	})
}

// What GuessPairingCode reports of a code that does not bind.
var (
	ErrPairingWrong       = errors.New("wrong or expired pairing code")
	ErrPairingInvalidated = errors.New("pairing code invalidated after too many wrong guesses: the thing needs a fresh pairing_code")
)

// GuessPairingCode consumes code for thing inside a write job and returns
// nil if it was the thing's valid, unexpired code. A code that is not one
// of the thing's counts as a wrong guess at each of its unexpired codes; a
// code with maxWrong wrong guesses no longer binds (ErrPairingInvalidated,
// also for the wrong guess that reaches the limit, and for any guess while
// the thing has no other code left). The caller must commit the job for a
// wrong guess too, or the count is lost.
func GuessPairingCode(ctx context.Context, tx Tx, code, thing string, now time.Time, maxWrong int) error {
	var expires, wrong int64
	err := tx.QueryRowContext(ctx, `SELECT expires, wrong FROM pairing_codes WHERE code = ? AND thing = ?`, code, thing).Scan(&expires, &wrong)
	switch {
	case err == nil && wrong >= int64(maxWrong) && expires >= now.UnixMilli():
		return ErrPairingInvalidated
	case err == nil:
		if _, err := tx.ExecContext(ctx, `DELETE FROM pairing_codes WHERE code = ?`, code); err != nil {
			return fmt.Errorf("store: pairing code: %w", err)
		}
		if expires < now.UnixMilli() {
			return ErrPairingWrong
		}
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: pairing code: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE pairing_codes SET wrong = wrong + 1 WHERE thing = ? AND expires >= ? AND wrong < ?`,
		thing, now.UnixMilli(), maxWrong); err != nil {
		return fmt.Errorf("store: pairing code: %w", err)
	}
	var live, dead int
	err = tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(wrong < ?), 0), COALESCE(SUM(wrong >= ?), 0) FROM pairing_codes WHERE thing = ? AND expires >= ?`,
		maxWrong, maxWrong, thing, now.UnixMilli()).Scan(&live, &dead)
	if err != nil {
		return fmt.Errorf("store: pairing code: %w", err)
	}
	if live == 0 && dead > 0 {
		return ErrPairingInvalidated
	}
	return ErrPairingWrong
}

// PutToken stores the hash of an API bearer token for account.
func (db *DB) PutToken(ctx context.Context, hash, account string, expires time.Time) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE expires < ?`, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("store: token: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (hash, account, expires) VALUES (?, ?, ?)`, hash, account, expires.UnixMilli())
		if err != nil {
			return fmt.Errorf("store: token: %w", err)
		}
		return nil
	})
}

// TokenAccount returns the account of an unexpired token hash, or ErrNotFound.
func (db *DB) TokenAccount(ctx context.Context, hash string, now time.Time) (string, error) {
	var account string
	err := db.read.QueryRowContext(ctx, `SELECT account FROM tokens WHERE hash = ? AND expires >= ?`, hash, now.UnixMilli()).Scan(&account)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: token: %w", err)
	}
	return account, nil
}

// Write runs fn as one write job in the writer's next batch and waits for
// the commit. fn runs inside a savepoint: an error undoes all it did.
func (db *DB) Write(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	return db.writer.do(ctx, fn)
}
