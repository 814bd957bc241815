package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/thing"
)

// Errors of the thing model's operations.
var (
	// ErrStale is returned by PutDescription for a version lower than the
	// stored one, or the same version with other content.
	ErrStale = errors.New("stale description")
	// ErrRuleLimit is returned by AddRule when a thing has as many rules
	// as it may.
	ErrRuleLimit = errors.New("too many rules")
	// ErrRuleUnrelated is returned by AddRule when the rule's maker is not
	// bound to both things, or the things are not associated.
	ErrRuleUnrelated = errors.New("relations missing for the rule")
)

// PutDescription stores d as its thing's latest description. A higher
// version replaces the stored one (changed is true); the same version
// with the same content changes nothing; a lower version, or the same
// version with other content, is ErrStale.
func (db *DB) PutDescription(ctx context.Context, d thing.Description, now time.Time) (changed bool, err error) {
	body, err := json.Marshal(&d)
	if err != nil {
		return false, fmt.Errorf("store: description of %s: %w", d.Thing, err)
	}
	err = db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		var version int64
		var stored []byte
		err := tx.QueryRowContext(ctx, `SELECT version, body FROM descriptions WHERE thing = ?`, d.Thing).Scan(&version, &stored)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store: description of %s: %w", d.Thing, err)
		case d.Version == version && bytes.Equal(stored, body):
			return nil
		case d.Version <= version:
			return fmt.Errorf("%w: %s has version %d stored", ErrStale, d.Thing, version)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO descriptions (thing, version, body, updated) VALUES (?, ?, ?, ?)
			ON CONFLICT (thing) DO UPDATE SET version = excluded.version, body = excluded.body, updated = excluded.updated`,
			d.Thing, d.Version, body, now.UnixMilli())
		if err != nil {
			return fmt.Errorf("store: description of %s: %w", d.Thing, err)
		}
		changed = true
		return nil
	})
	return changed, err
}

// Description returns thing's latest description, or ErrNotFound.
func (db *DB) Description(ctx context.Context, name string) (thing.Description, error) {
	var body []byte
	err := db.read.QueryRowContext(ctx, `SELECT body FROM descriptions WHERE thing = ?`, name).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return thing.Description{}, ErrNotFound
	}
	if err != nil {
		return thing.Description{}, fmt.Errorf("store: description of %s: %w", name, err)
	}
	var d thing.Description
	if err := json.Unmarshal(body, &d); err != nil {
		return thing.Description{}, fmt.Errorf("store: description of %s: %w", name, err)
	}
	return d, nil
}

// AddRule stores r, if its maker is bound to both its things and they are
// associated (ErrRuleUnrelated), checked in the same transaction as the
// insert, so a rule never outlives an unbinding that raced it. A rule of
// the same id stored before is ErrExists unless it is r (added is then
// false); a thing may have at most limit rules (ErrRuleLimit).
func (db *DB) AddRule(ctx context.Context, r thing.Rule, limit int) (added bool, err error) {
	body, err := json.Marshal(&r)
	if err != nil {
		return false, fmt.Errorf("store: rule %s: %w", r.ID, err)
	}
	err = db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		for _, p := range [][3]string{{r.By, r.A, KindBound}, {r.By, r.B, KindBound}, {r.A, r.B, KindAssociated}} {
			rel, err := GetRelation(ctx, tx, p[0], p[1])
			if errors.Is(err, ErrNotFound) || err == nil && (rel.Kind != p[2] || rel.State != StateActive) {
				return fmt.Errorf("%w: %s and %s are not %s", ErrRuleUnrelated, p[0], p[1], p[2])
			}
			if err != nil {
				return err
			}
		}
		var stored []byte
		err := tx.QueryRowContext(ctx, `SELECT body FROM rules WHERE id = ?`, r.ID).Scan(&stored)
		switch {
		case err == nil && bytes.Equal(stored, body):
			return nil
		case err == nil:
			return fmt.Errorf("%w: rule %s", ErrExists, r.ID)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: rule %s: %w", r.ID, err)
		}
		for _, t := range []string{r.A, r.B} {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM rules WHERE a = ?1) + (SELECT COUNT(*) FROM rules WHERE b = ?1)`, t).Scan(&n); err != nil {
				return fmt.Errorf("store: rules of %s: %w", t, err)
			}
			if n >= limit {
				return fmt.Errorf("%w: %s has %d, the most a thing may have", ErrRuleLimit, t, n)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rules (id, a, b, maker, body, created) VALUES (?, ?, ?, ?, ?, ?)`,
			r.ID, r.A, r.B, r.By, body, r.Created); err != nil {
			return fmt.Errorf("store: add rule %s: %w", r.ID, err)
		}
		added = true
		return nil
	})
	return added, err
}

// Rule returns the rule with id, or ErrNotFound.
func (db *DB) Rule(ctx context.Context, id string) (thing.Rule, error) {
	rules, err := scanRules(db.read.QueryContext(ctx, `SELECT body FROM rules WHERE id = ?`, id))
	if err != nil {
		return thing.Rule{}, err
	}
	if len(rules) == 0 {
		return thing.Rule{}, ErrNotFound
	}
	return rules[0], nil
}

// RemoveRule deletes the rule with id and returns it, or ErrNotFound.
func (db *DB) RemoveRule(ctx context.Context, id string) (thing.Rule, error) {
	var gone []thing.Rule
	err := db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		gone, err = scanRules(tx.QueryContext(ctx, `DELETE FROM rules WHERE id = ? RETURNING body`, id))
		return err
	})
	if err != nil {
		return thing.Rule{}, err
	}
	if len(gone) == 0 {
		return thing.Rule{}, ErrNotFound
	}
	return gone[0], nil
}

// RulesOf returns the rules in which thing is A or B, by id.
func (db *DB) RulesOf(ctx context.Context, name string) ([]thing.Rule, error) {
	return scanRules(db.read.QueryContext(ctx, `SELECT body FROM rules WHERE a = ?1 OR b = ?1 ORDER BY id`, name))
}

// DropRulesOfBinding deletes, inside a write job that unbinds person from
// thing, the rules person made that name thing, and returns them.
func DropRulesOfBinding(ctx context.Context, tx Tx, person, name string) ([]thing.Rule, error) {
	return scanRules(tx.QueryContext(ctx, `DELETE FROM rules WHERE maker = ?1 AND (a = ?2 OR b = ?2) RETURNING body`, person, name))
}

// DropRulesOfAssociation deletes, inside a write job that dissociates
// things x and y, the rules between them, and returns them.
func DropRulesOfAssociation(ctx context.Context, tx Tx, x, y string) ([]thing.Rule, error) {
	return scanRules(tx.QueryContext(ctx, `DELETE FROM rules WHERE (a = ?1 AND b = ?2) OR (a = ?2 AND b = ?1) RETURNING body`, x, y))
}

// scanRules decodes rows of one column, a rule's body.
func scanRules(rows *sql.Rows, err error) ([]thing.Rule, error) {
	if err != nil {
		return nil, fmt.Errorf("store: rules: %w", err)
	}
	defer rows.Close()
	var out []thing.Rule
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("store: rules: %w", err)
		}
		var r thing.Rule
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("store: rule body: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rules: %w", err)
	}
	return out, nil
}
