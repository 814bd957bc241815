package localdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// ReplaceRelations replaces the cached relations with rels, the server's
// latest snapshot.
func (db *DB) ReplaceRelations(ctx context.Context, rels []wire.Relation) error {
	return db.inTx(ctx, "replace relations", func(tx wtx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM relations`); err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, `INSERT INTO relations (user, kind, state, since, expires)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (user) DO UPDATE SET
			kind = excluded.kind, state = excluded.state, since = excluded.since, expires = excluded.expires`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, r := range rels {
			if _, err := st.ExecContext(ctx, r.User, r.Kind, r.State, r.Since, r.Expires); err != nil {
				return fmt.Errorf("%s: %w", r.User, err)
			}
		}
		return nil
	})
}

// Relations returns the cached relations, by user.
func (db *DB) Relations(ctx context.Context) ([]wire.Relation, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT user, kind, state, since, expires
		FROM relations ORDER BY user`)
	if err != nil {
		return nil, fmt.Errorf("localdb: relations: %w", err)
	}
	defer rows.Close()
	var rels []wire.Relation
	for rows.Next() {
		var r wire.Relation
		if err := rows.Scan(&r.User, &r.Kind, &r.State, &r.Since, &r.Expires); err != nil {
			return nil, fmt.Errorf("localdb: relations: %w", err)
		}
		rels = append(rels, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: relations: %w", err)
	}
	return rels, nil
}

// ReplacePeers replaces the cached devices of related accounts with peers,
// the server's latest peers answer.
func (db *DB) ReplacePeers(ctx context.Context, peers []wire.PeerInfo) error {
	now := time.Now().UnixMilli()
	return db.inTx(ctx, "replace peers", func(tx wtx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM peers`); err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, `INSERT INTO peers (device, user, status, addrs, updated)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET
			user = excluded.user, status = excluded.status, addrs = excluded.addrs, updated = excluded.updated`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, p := range peers {
			addrs := p.Addrs
			if addrs == nil {
				addrs = []string{}
			}
			js, err := json.Marshal(addrs)
			if err != nil {
				return fmt.Errorf("%s: addrs: %w", p.Device, err)
			}
			if _, err := st.ExecContext(ctx, p.Device, p.User, p.Status, string(js), now); err != nil {
				return fmt.Errorf("%s: %w", p.Device, err)
			}
		}
		return nil
	})
}

// Peers returns the cached devices of related accounts, by user and device.
func (db *DB) Peers(ctx context.Context) ([]wire.PeerInfo, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT user, device, status, addrs
		FROM peers ORDER BY user, device`)
	if err != nil {
		return nil, fmt.Errorf("localdb: peers: %w", err)
	}
	defer rows.Close()
	var peers []wire.PeerInfo
	for rows.Next() {
		var p wire.PeerInfo
		var addrs string
		if err := rows.Scan(&p.User, &p.Device, &p.Status, &addrs); err != nil {
			return nil, fmt.Errorf("localdb: peers: %w", err)
		}
		if err := json.Unmarshal([]byte(addrs), &p.Addrs); err != nil {
			return nil, fmt.Errorf("localdb: peers: addrs of %s: %w", p.Device, err)
		}
		peers = append(peers, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: peers: %w", err)
	}
	return peers, nil
}

// PeerAccount returns the account that device belongs to, from the cache,
// or ErrNotFound if device is not a device of a related account.
func (db *DB) PeerAccount(ctx context.Context, device string) (string, error) {
	var user string
	err := db.read.QueryRowContext(ctx, `SELECT user FROM peers WHERE device = ?`, device).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("localdb: account of device %s: %w", device, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("localdb: account of device %s: %w", device, err)
	}
	return user, nil
}

// Cursor returns the pull cursor of a conversation: the last SeqId this
// device holds without gaps, 0 if none was set.
func (db *DB) Cursor(ctx context.Context, feeds string) (int64, error) {
	var seq int64
	err := db.read.QueryRowContext(ctx, `SELECT seq FROM cursors WHERE feeds = ?`, feeds).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("localdb: cursor of %s: %w", feeds, err)
	}
	return seq, nil
}

// SetCursor moves the pull cursor of a conversation to seq; it never moves
// back.
func (db *DB) SetCursor(ctx context.Context, feeds string, seq int64) error {
	return db.inTx(ctx, "set cursor of "+feeds, func(tx wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO cursors (feeds, seq) VALUES (?, ?)
			ON CONFLICT (feeds) DO UPDATE SET seq = max(seq, excluded.seq)`, feeds, seq)
		return err
	})
}

// Get returns the value stored under key in the meta table, or ErrNotFound.
func (db *DB) Get(ctx context.Context, key string) (string, error) {
	var value string
	err := db.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("localdb: get %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("localdb: get %s: %w", key, err)
	}
	return value, nil
}

// Set stores value under key in the meta table, replacing what was there.
func (db *DB) Set(ctx context.Context, key, value string) error {
	return db.inTx(ctx, "set "+key, func(tx wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}
