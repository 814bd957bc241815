package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Relation kinds and states as stored.
const (
	KindFriend     = "friend"
	KindBound      = "bound"
	KindAssociated = "associated"

	StatePending  = "pending"
	StateActive   = "active"
	StateRecycled = "recycled"
)

// Querier is what reads need: the read pool or a write job's Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Relation links two accounts, A < B.
type Relation struct {
	A, B    string
	Kind    string
	State   string
	Actor   string // who asked (pending) or who removed it (recycled)
	Since   int64  // unix ms
	Expires int64  // unix ms, recycled only
}

// Other returns the account of r that is not account.
func (r Relation) Other(account string) string {
	if r.A == account {
		return r.B
	}
	return r.A
}

func ordered(x, y string) (string, string) {
	if x < y {
		return x, y
	}
	return y, x
}

// GetRelation reads the relation between x and y, or ErrNotFound.
func GetRelation(ctx context.Context, q Querier, x, y string) (Relation, error) {
	a, b := ordered(x, y)
	r := Relation{A: a, B: b}
	err := q.QueryRowContext(ctx, `SELECT kind, state, actor, since, expires FROM relations WHERE a = ? AND b = ?`, a, b).
		Scan(&r.Kind, &r.State, &r.Actor, &r.Since, &r.Expires)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("store: relation %s %s: %w", a, b, err)
	}
	return r, nil
}

// PutRelation inserts or replaces r.
func PutRelation(ctx context.Context, tx Tx, r Relation) error {
	r.A, r.B = ordered(r.A, r.B)
	_, err := tx.ExecContext(ctx, `INSERT INTO relations (a, b, kind, state, actor, since, expires) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (a, b) DO UPDATE SET kind = excluded.kind, state = excluded.state, actor = excluded.actor,
			since = excluded.since, expires = excluded.expires`,
		r.A, r.B, r.Kind, r.State, r.Actor, r.Since, r.Expires)
	if err != nil {
		return fmt.Errorf("store: put relation %s %s: %w", r.A, r.B, err)
	}
	return nil
}

// DeleteRelation removes the relation between x and y, if any.
func DeleteRelation(ctx context.Context, tx Tx, x, y string) error {
	a, b := ordered(x, y)
	if _, err := tx.ExecContext(ctx, `DELETE FROM relations WHERE a = ? AND b = ?`, a, b); err != nil {
		return fmt.Errorf("store: delete relation %s %s: %w", a, b, err)
	}
	return nil
}

// Relation reads the relation between x and y, or ErrNotFound.
func (db *DB) Relation(ctx context.Context, x, y string) (Relation, error) {
	return GetRelation(ctx, db.read, x, y)
}

// RelationsOf returns every relation account takes part in.
func (db *DB) RelationsOf(ctx context.Context, account string) ([]Relation, error) {
	return scanRelations(db.read.QueryContext(ctx, `SELECT a, b, kind, state, actor, since, expires FROM relations WHERE a = ?1
		UNION ALL SELECT a, b, kind, state, actor, since, expires FROM relations WHERE b = ?1`, account))
}

// PurgeExpired deletes recycled relations whose time ran out and returns them.
func (db *DB) PurgeExpired(ctx context.Context, now time.Time) ([]Relation, error) {
	var gone []Relation
	err := db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		gone, err = scanRelations(tx.QueryContext(ctx, `DELETE FROM relations WHERE state = ? AND expires < ?
			RETURNING a, b, kind, state, actor, since, expires`, StateRecycled, now.UnixMilli()))
		return err
	})
	return gone, err
}

func scanRelations(rows *sql.Rows, err error) ([]Relation, error) {
	if err != nil {
		return nil, fmt.Errorf("store: relations: %w", err)
	}
	defer rows.Close()
	var out []Relation
	for rows.Next() {
		var r Relation
		if err := rows.Scan(&r.A, &r.B, &r.Kind, &r.State, &r.Actor, &r.Since, &r.Expires); err != nil {
			return nil, fmt.Errorf("store: relations: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: relations: %w", err)
	}
	return out, nil
}
