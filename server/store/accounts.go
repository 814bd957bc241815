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

// TouchDevice binds device to account the first time it is seen and starts
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
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET account = ?, pubkey = '', addrs = '[]', first_seen = ?, last_seen = ? WHERE device = ?`,
				account, ms, ms, device); err != nil {
				return fmt.Errorf("store: take over device %s: %w", device, err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM cursors WHERE device = ?`, device); err != nil {
				return fmt.Errorf("store: take over device %s: %w", device, err)
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: device %s: %w", device, err)
		default:
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

// TakePairingCode consumes code for thing inside a write job: it reports
// whether the code was valid and unexpired, and deletes it either way.
func TakePairingCode(ctx context.Context, tx Tx, code, thing string, now time.Time) (bool, error) {
	var expires int64
	err := tx.QueryRowContext(ctx, `SELECT expires FROM pairing_codes WHERE code = ? AND thing = ?`, code, thing).Scan(&expires)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: pairing code: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pairing_codes WHERE code = ?`, code); err != nil {
		return false, fmt.Errorf("store: pairing code: %w", err)
	}
	return expires >= now.UnixMilli(), nil
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
