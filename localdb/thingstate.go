package localdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Bounds of what is kept per thing.
const (
	// MaxPropsPerThing is how many properties are kept per thing: a
	// report of a new one past it drops the one reported longest ago.
	MaxPropsPerThing = 128
	// MaxEventsPerThing is how many recent events are kept per thing.
	MaxEventsPerThing = 50
)

// ThingProp is the last value a thing reported for one property.
type ThingProp struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
	Rev   int64           `json:"rev"`
	At    int64           `json:"at"` // unix ms, the thing's clock
	Cause string          `json:"cause,omitempty"`
}

// ThingEvent is an event a thing reported.
type ThingEvent struct {
	MsgId string          `json:"msg_id"`
	Thing string          `json:"thing"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
	Cause string          `json:"cause,omitempty"`
	At    int64           `json:"at"` // unix ms, the thing's clock
}

// SetThingProps records a state report of thing and returns the
// properties it changed, by name. A property keeps the report with the
// higher rev (on a tie, the later one), so reports that arrive out of
// order leave the newest.
func (db *DB) SetThingProps(ctx context.Context, thing string, props map[string]json.RawMessage, rev, at int64, cause string) ([]string, error) {
	var changed []string
	err := db.inTx(ctx, "state of "+thing, func(tx wtx) error {
		var err error
		changed, err = setThingProps(ctx, tx, thing, props, rev, at, cause)
		return err
	})
	return changed, err
}

// setThingProps is SetThingProps inside tx.
func setThingProps(ctx context.Context, tx wtx, thing string, props map[string]json.RawMessage, rev, at int64, cause string) ([]string, error) {
	var changed []string
	for _, name := range slices.Sorted(maps.Keys(props)) {
		res, err := tx.ExecContext(ctx, `INSERT INTO thing_props (thing, prop, value, rev, at, cause)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (thing, prop) DO UPDATE SET
			value = excluded.value, rev = excluded.rev, at = excluded.at, cause = excluded.cause
			WHERE excluded.rev > thing_props.rev OR (excluded.rev = thing_props.rev AND excluded.at > thing_props.at)`,
			thing, name, string(props[name]), rev, at, cause)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if n, err := res.RowsAffected(); err == nil && n > 0 {
			changed = append(changed, name)
		}
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM thing_props WHERE thing = ? AND prop NOT IN
		(SELECT prop FROM thing_props WHERE thing = ? ORDER BY at DESC LIMIT ?)`, thing, thing, MaxPropsPerThing)
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// ThingProps returns the last reported properties of thing, by name.
func (db *DB) ThingProps(ctx context.Context, thing string) ([]ThingProp, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT prop, value, rev, at, cause FROM thing_props
		WHERE thing = ? ORDER BY prop`, thing)
	if err != nil {
		return nil, fmt.Errorf("localdb: state of %s: %w", thing, err)
	}
	defer rows.Close()
	out := []ThingProp{}
	for rows.Next() {
		var p ThingProp
		var value string
		if err := rows.Scan(&p.Name, &value, &p.Rev, &p.At, &p.Cause); err != nil {
			return nil, fmt.Errorf("localdb: state of %s: %w", thing, err)
		}
		p.Value = raw(value)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: state of %s: %w", thing, err)
	}
	return out, nil
}

// SetDescription caches a thing's description (JSON) if its version is
// higher than the cached one's, and reports whether it was.
func (db *DB) SetDescription(ctx context.Context, thing string, version int64, body []byte) (bool, error) {
	stored := false
	err := db.inTx(ctx, "description of "+thing, func(tx wtx) error {
		var err error
		stored, err = setDescription(ctx, tx, thing, version, body, time.Now().UnixMilli())
		return err
	})
	return stored, err
}

// setDescription is SetDescription inside tx.
func setDescription(ctx context.Context, tx wtx, thing string, version int64, body []byte, now int64) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO thing_descriptions (thing, version, body, at) VALUES (?, ?, ?, ?)
		ON CONFLICT (thing) DO UPDATE SET version = excluded.version, body = excluded.body, at = excluded.at
		WHERE excluded.version > thing_descriptions.version`,
		thing, version, string(body), now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Description returns the cached description of thing (JSON) and when it
// was cached (unix ms), or ErrNotFound.
func (db *DB) Description(ctx context.Context, thing string) (json.RawMessage, int64, error) {
	var body string
	var at int64
	err := db.read.QueryRowContext(ctx, `SELECT body, at FROM thing_descriptions WHERE thing = ?`, thing).Scan(&body, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("localdb: description of %s: %w", thing, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("localdb: description of %s: %w", thing, err)
	}
	return json.RawMessage(body), at, nil
}

// AddThingEvent records an event, keeping the latest MaxEventsPerThing of
// its thing.
func (db *DB) AddThingEvent(ctx context.Context, ev ThingEvent) error {
	return db.inTx(ctx, "event of "+ev.Thing, func(tx wtx) error {
		return addThingEvent(ctx, tx, ev)
	})
}

// addThingEvent is AddThingEvent inside tx.
func addThingEvent(ctx context.Context, tx wtx, ev ThingEvent) error {
	r, err := tx.ExecContext(ctx, `INSERT INTO thing_events (thing, msg_id, event, data, cause, at)
		VALUES (?, ?, ?, ?, ?, ?)`, ev.Thing, ev.MsgId, ev.Event, string(ev.Data), ev.Cause, ev.At)
	if err != nil {
		return err
	}
	// Every thing's events are pruned at every eventsPruneEvery-th row
	// (by the table's own ids, which no sender chooses): each keeps at most
	// that many more than the bound.
	if id, err := r.LastInsertId(); err != nil || id%eventsPruneEvery != 0 {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM thing_events WHERE id IN (SELECT id FROM
		(SELECT id, row_number() OVER (PARTITION BY thing ORDER BY id DESC) AS newer FROM thing_events)
		WHERE newer > ?)`, MaxEventsPerThing)
	return err
}

// eventsPruneEvery is how many events are added between two prunes.
const eventsPruneEvery = 16

// ThingEvents returns the recent events of thing, newest first.
func (db *DB) ThingEvents(ctx context.Context, thing string, limit int) ([]ThingEvent, error) {
	if limit <= 0 || limit > MaxEventsPerThing {
		limit = MaxEventsPerThing
	}
	rows, err := db.read.QueryContext(ctx, `SELECT msg_id, thing, event, data, cause, at FROM thing_events
		WHERE thing = ? ORDER BY id DESC LIMIT ?`, thing, limit)
	if err != nil {
		return nil, fmt.Errorf("localdb: events of %s: %w", thing, err)
	}
	defer rows.Close()
	out := []ThingEvent{}
	for rows.Next() {
		var ev ThingEvent
		var data string
		if err := rows.Scan(&ev.MsgId, &ev.Thing, &ev.Event, &data, &ev.Cause, &ev.At); err != nil {
			return nil, fmt.Errorf("localdb: events of %s: %w", thing, err)
		}
		ev.Data = raw(data)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: events of %s: %w", thing, err)
	}
	return out, nil
}
