package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrTooManySessions is returned by OpenSession when the account already
// holds the most persistent sessions it may.
var ErrTooManySessions = errors.New("too many persistent sessions")

// SessionSub is one subscription of a persistent MQTT session.
type SessionSub struct {
	Filter  string
	QoS     byte
	Expires int64 // unix ms when a temporary subscription ends; 0 permanent
	Made    bool  // the SUBSCRIBE itself asked for its relation
}

// ExpiredSub is a temporary subscription whose time ran out, with the
// session it belonged to.
type ExpiredSub struct {
	ClientID, Account string
	SessionSub
}

// SessionOpen says how a client connects.
type SessionOpen struct {
	ClientID, Account string
	// Clean ends any stored session of the client id first (clean session,
	// MQTT 5 clean start).
	Clean bool
	// Keep is how long the session outlives this connection; 0 ends it
	// with the connection (a session found is still resumed).
	Keep time.Duration
	// Max is how many persistent sessions one account may hold.
	Max int
}

// OpenSession starts or resumes the persistent session of a connecting
// client. A stored session of the client id is resumed (present) unless
// o.Clean, it expired, or another account opened it (a session is never
// inherited across accounts): then it is deleted. A new session is stored
// when o.Keep is over 0, or ErrTooManySessions past o.Max. The session is
// marked connected; opened names this connection for CloseSession.
func (db *DB) OpenSession(ctx context.Context, o SessionOpen, now time.Time) (present bool, subs []SessionSub, opened int64, err error) {
	opened = now.UnixNano()
	err = db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		present, subs = false, nil
		var account string
		var expires int64
		err := tx.QueryRowContext(ctx, `SELECT account, expires FROM mqtt_sessions WHERE client_id = ?`, o.ClientID).Scan(&account, &expires)
		found := err == nil
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store: session %s: %w", o.ClientID, err)
		}
		if found && (account != o.Account || o.Clean || (expires != 0 && expires < now.UnixMilli())) {
			if err := deleteSession(ctx, tx, o.ClientID); err != nil {
				return err
			}
			found = false
		}
		if found {
			present = true
			if subs, err = sessionSubs(ctx, tx, o.ClientID); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE mqtt_sessions SET keep_ms = ?, expires = 0, opened = ? WHERE client_id = ?`,
				o.Keep.Milliseconds(), opened, o.ClientID)
			if err != nil {
				return fmt.Errorf("store: resume session %s: %w", o.ClientID, err)
			}
			return nil
		}
		if o.Keep <= 0 {
			return nil
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mqtt_sessions WHERE account = ? AND (expires = 0 OR expires >= ?)`,
			o.Account, now.UnixMilli()).Scan(&n); err != nil {
			return fmt.Errorf("store: sessions of %s: %w", o.Account, err)
		}
		if n >= o.Max {
			return fmt.Errorf("%w: %s holds %d", ErrTooManySessions, o.Account, n)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO mqtt_sessions (client_id, account, keep_ms, expires, opened) VALUES (?, ?, ?, 0, ?)`,
			o.ClientID, o.Account, o.Keep.Milliseconds(), opened)
		if err != nil {
			return fmt.Errorf("store: new session %s: %w", o.ClientID, err)
		}
		return nil
	})
	return present, subs, opened, err
}

// CloseSession ends the connection opened of a persistent session: the
// session then lives keep longer, or ends now when keep is 0. A session a
// newer connection holds is left alone.
func (db *DB) CloseSession(ctx context.Context, clientID string, opened int64, keep time.Duration, now time.Time) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		var held int64
		err := tx.QueryRowContext(ctx, `SELECT opened FROM mqtt_sessions WHERE client_id = ?`, clientID).Scan(&held)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return fmt.Errorf("store: close session %s: %w", clientID, err)
		case held != opened:
			return nil
		case keep <= 0:
			return deleteSession(ctx, tx, clientID)
		}
		_, err = tx.ExecContext(ctx, `UPDATE mqtt_sessions SET keep_ms = ?, expires = ? WHERE client_id = ?`,
			keep.Milliseconds(), now.Add(keep).UnixMilli(), clientID)
		if err != nil {
			return fmt.Errorf("store: close session %s: %w", clientID, err)
		}
		return nil
	})
}

// PutSessionSubs records subscriptions of a stored session (replacing
// those of the same filter, but a Made already recorded stays: only an
// unsubscribe or an end forgets it); it does nothing for a client id
// without one.
func (db *DB) PutSessionSubs(ctx context.Context, clientID string, subs []SessionSub) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		for _, s := range subs {
			_, err := tx.ExecContext(ctx, `INSERT INTO mqtt_session_subs (client_id, filter, qos, expires, made)
				SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM mqtt_sessions WHERE client_id = ?1)
				ON CONFLICT (client_id, filter) DO UPDATE SET qos = excluded.qos, expires = excluded.expires,
					made = mqtt_session_subs.made OR excluded.made`,
				clientID, s.Filter, s.QoS, s.Expires, s.Made)
			if err != nil {
				return fmt.Errorf("store: session %s: subscribe %q: %w", clientID, s.Filter, err)
			}
		}
		return nil
	})
}

// DeleteSessionSubs removes subscriptions of a stored session.
func (db *DB) DeleteSessionSubs(ctx context.Context, clientID string, filters []string) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		for _, f := range filters {
			if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_session_subs WHERE client_id = ? AND filter = ?`, clientID, f); err != nil {
				return fmt.Errorf("store: session %s: unsubscribe %q: %w", clientID, f, err)
			}
		}
		return nil
	})
}

// TakeExpiredSubs removes up to limit temporary subscriptions whose time
// ran out by now and returns them.
func (db *DB) TakeExpiredSubs(ctx context.Context, now time.Time, limit int) ([]ExpiredSub, error) {
	var out []ExpiredSub
	err := db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `SELECT s.client_id, m.account, s.filter, s.qos, s.expires, s.made
			FROM mqtt_session_subs s JOIN mqtt_sessions m ON m.client_id = s.client_id
			WHERE s.expires > 0 AND s.expires <= ? ORDER BY s.expires LIMIT ?`, now.UnixMilli(), limit)
		if err != nil {
			return fmt.Errorf("store: expired subscriptions: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e ExpiredSub
			if err := rows.Scan(&e.ClientID, &e.Account, &e.Filter, &e.QoS, &e.Expires, &e.Made); err != nil {
				return fmt.Errorf("store: expired subscriptions: %w", err)
			}
			out = append(out, e)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: expired subscriptions: %w", err)
		}
		for _, e := range out {
			if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_session_subs WHERE client_id = ? AND filter = ?`, e.ClientID, e.Filter); err != nil {
				return fmt.Errorf("store: expired subscriptions: %w", err)
			}
		}
		return nil
	})
	return out, err
}

// PurgeSessions deletes the sessions that ended by now (their client
// stayed away past their keep time) and returns how many.
func (db *DB) PurgeSessions(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM mqtt_session_subs WHERE client_id IN
			(SELECT client_id FROM mqtt_sessions WHERE expires != 0 AND expires < ?)`, now.UnixMilli())
		if err == nil {
			res, err = tx.ExecContext(ctx, `DELETE FROM mqtt_sessions WHERE expires != 0 AND expires < ?`, now.UnixMilli())
		}
		if err != nil {
			return fmt.Errorf("store: purge sessions: %w", err)
		}
		d, _ := res.RowsAffected()
		n = int(d)
		return nil
	})
	return n, err
}

// DisconnectSessions ends, as of now, the connections a server that
// stopped left marked connected: each session lives its keep time from
// now, or ends when it had none.
func (db *DB) DisconnectSessions(ctx context.Context, now time.Time) error {
	return db.writer.do(ctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM mqtt_session_subs WHERE client_id IN
			(SELECT client_id FROM mqtt_sessions WHERE expires = 0 AND keep_ms <= 0)`)
		if err == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM mqtt_sessions WHERE expires = 0 AND keep_ms <= 0`)
		}
		if err == nil {
			_, err = tx.ExecContext(ctx, `UPDATE mqtt_sessions SET expires = ? + keep_ms WHERE expires = 0`, now.UnixMilli())
		}
		if err != nil {
			return fmt.Errorf("store: disconnect sessions: %w", err)
		}
		return nil
	})
}

func sessionSubs(ctx context.Context, q Querier, clientID string) ([]SessionSub, error) {
	rows, err := q.QueryContext(ctx, `SELECT filter, qos, expires, made FROM mqtt_session_subs WHERE client_id = ? ORDER BY filter`, clientID)
	if err != nil {
		return nil, fmt.Errorf("store: session %s: %w", clientID, err)
	}
	defer rows.Close()
	var out []SessionSub
	for rows.Next() {
		var s SessionSub
		if err := rows.Scan(&s.Filter, &s.QoS, &s.Expires, &s.Made); err != nil {
			return nil, fmt.Errorf("store: session %s: %w", clientID, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func deleteSession(ctx context.Context, tx Tx, clientID string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_session_subs WHERE client_id = ?`, clientID); err != nil {
		return fmt.Errorf("store: end session %s: %w", clientID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM mqtt_sessions WHERE client_id = ?`, clientID); err != nil {
		return fmt.Errorf("store: end session %s: %w", clientID, err)
	}
	return nil
}
