package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Adoption is a thing whose device runs stock firmware, spoken to through
// an adapter profile: the profile's name and the device's topic in it. A
// thing behind a bridge names the bridge's account in Bridge, and Topic is
// its name there.
type Adoption struct {
	Thing   string
	Profile string
	Topic   string
	Bridge  string
	Updated int64 // unix ms
}

// PutAdoption adopts a thing through a profile, or changes its profile or
// topic. The thing must be an existing account of kind thing (ErrNotFound
// otherwise); another thing behind the same bridge under the same topic is
// ErrExists.
func (db *DB) PutAdoption(ctx context.Context, a Adoption, now time.Time) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		var kind string
		err := tx.QueryRowContext(ctx, `SELECT kind FROM accounts WHERE name = ?`, a.Thing).Scan(&kind)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && kind != "thing") {
			return fmt.Errorf("store: adopt %s: no such thing: %w", a.Thing, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: adopt %s: %w", a.Thing, err)
		}
		if a.Bridge != "" {
			var other string
			err := tx.QueryRowContext(ctx, `SELECT thing FROM adoptions WHERE bridge = ? AND topic = ? AND thing != ?`, a.Bridge, a.Topic, a.Thing).Scan(&other)
			if err == nil {
				return fmt.Errorf("store: adopt %s: %s is %s behind %s already: %w", a.Thing, a.Topic, other, a.Bridge, ErrExists)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: adopt %s: %w", a.Thing, err)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO adoptions (thing, profile, topic, bridge, updated) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (thing) DO UPDATE SET profile = excluded.profile, topic = excluded.topic, bridge = excluded.bridge, updated = excluded.updated`,
			a.Thing, a.Profile, a.Topic, a.Bridge, now.UnixMilli())
		if err != nil {
			return fmt.Errorf("store: adopt %s: %w", a.Thing, err)
		}
		return nil
	})
}

// Adoption returns the adoption of thing, or ErrNotFound for a thing (or
// any account) that is not adopted.
func (db *DB) Adoption(ctx context.Context, thing string) (Adoption, error) {
	a := Adoption{Thing: thing}
	err := db.read.QueryRowContext(ctx, `SELECT profile, topic, bridge, updated FROM adoptions WHERE thing = ?`, thing).
		Scan(&a.Profile, &a.Topic, &a.Bridge, &a.Updated)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("store: adoption of %s: %w", thing, err)
	}
	return a, nil
}

// AdoptionBehind returns the thing adopted behind bridge under topic, or
// ErrNotFound.
func (db *DB) AdoptionBehind(ctx context.Context, bridge, topic string) (Adoption, error) {
	a := Adoption{Bridge: bridge, Topic: topic}
	err := db.read.QueryRowContext(ctx, `SELECT thing, profile, updated FROM adoptions WHERE bridge = ? AND topic = ? AND bridge != ''`, bridge, topic).
		Scan(&a.Thing, &a.Profile, &a.Updated)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("store: adoption behind %s: %w", bridge, err)
	}
	return a, nil
}
