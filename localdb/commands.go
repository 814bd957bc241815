package localdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Command states as this device tracks them. The ack statuses (queued,
// accepted, rejected) and the result statuses (done, failed, partial,
// timeout) are the thing's words (package thing); pending is ours: sent,
// nothing heard yet.
const CommandPending = "pending"

// Who closed a command (Command.FinalBy).
const (
	FinalOpen  = ""      // still waiting for its result
	FinalThing = "thing" // the thing answered it for good
	FinalLocal = "local" // no result came by its expiry: timed out here
)

// Bounds of the tracking tables.
const (
	// MaxCommandsPerThing is the most closed commands kept per thing;
	// older closed ones go, some at a time (open ones stay until they
	// close).
	MaxCommandsPerThing = 500
	// MaxChain is how many downstream feedback rows one command keeps.
	MaxChain = 32
)

// Command is a command this account sent and how it went.
type Command struct {
	MsgId   string          `json:"msg_id"`
	Thing   string          `json:"thing"`
	Action  string          `json:"action,omitempty"`
	Input   json.RawMessage `json:"input,omitempty"`
	Write   json.RawMessage `json:"write,omitempty"`
	Expires int64           `json:"expires"` // unix ms; 0 while only its feedback is known
	Trace   json.RawMessage `json:"trace,omitempty"`
	State   string          `json:"state"`
	Output  json.RawMessage `json:"output,omitempty"`
	Error   string          `json:"error,omitempty"`
	FinalBy string          `json:"final_by,omitempty"`
	Created int64           `json:"created"` // unix ms
	Updated int64           `json:"updated"`
	// Chain is the feedback of the things this command's chain reached,
	// oldest first.
	Chain []ChainLink `json:"chain,omitempty"`
}

// Final reports whether the command's state will not change any more
// (but for a thing's late result replacing a local timeout).
func (c *Command) Final() bool { return c.FinalBy != FinalOpen }

// ChainLink is one feedback message that a command's chain caused.
type ChainLink struct {
	MsgId  string          `json:"msg_id"` // the feedback message
	Thing  string          `json:"thing"`
	Kind   string          `json:"kind"`
	Cmd    string          `json:"cmd,omitempty"`
	Status string          `json:"status,omitempty"`
	Event  string          `json:"event,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"` // output, event data or props
	Error  string          `json:"error,omitempty"`
	Hops   int             `json:"hops"`
	At     int64           `json:"at"` // unix ms, the thing's clock
}

// CommandUpdate is what a thing's ack or result says about a command.
type CommandUpdate struct {
	State  string
	Output json.RawMessage
	Error  string
	// Result marks a result; Final a result or a rejecting ack.
	Result, Final bool
}

// ackRank orders the open states: an ack moves a command forward only.
var ackRank = map[string]int{CommandPending: 0, "queued": 1, "accepted": 2}

const commandCols = `msg_id, thing, action, input, write, expires, trace, state, output, error, final_by, created, updated`

func scanCommand(sc interface{ Scan(...any) error }) (Command, error) {
	var c Command
	var input, write, trace, output string
	err := sc.Scan(&c.MsgId, &c.Thing, &c.Action, &input, &write, &c.Expires, &trace,
		&c.State, &output, &c.Error, &c.FinalBy, &c.Created, &c.Updated)
	c.Input, c.Write, c.Trace, c.Output = raw(input), raw(write), raw(trace), raw(output)
	return c, err
}

// raw turns a stored JSON text into a RawMessage, nil for none.
func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// RecordCommand stores a command this account sent, pending, and returns
// it as stored. A command stored already keeps its state; a stub that its
// feedback made is filled in.
func (db *DB) RecordCommand(ctx context.Context, c Command) (Command, error) {
	err := db.inTx(ctx, "record command "+c.MsgId, func(tx wtx) error {
		return recordCommand(ctx, tx, c, time.Now().UnixMilli())
	})
	if err != nil {
		return Command{}, err
	}
	return db.Command(ctx, c.MsgId)
}

// recordCommand is RecordCommand inside tx.
func recordCommand(ctx context.Context, tx wtx, c Command, now int64) error {
	if c.Created == 0 {
		c.Created = now
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO commands (`+commandCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', '', '', ?, ?)
		ON CONFLICT (msg_id) DO UPDATE SET action = excluded.action, input = excluded.input,
			write = excluded.write, expires = excluded.expires, trace = excluded.trace,
			created = excluded.created
		WHERE commands.expires = 0 AND commands.thing = excluded.thing`,
		c.MsgId, c.Thing, c.Action, string(c.Input), string(c.Write), c.Expires, string(c.Trace),
		CommandPending, c.Created, now)
	if err != nil {
		return fmt.Errorf("record command %s: %w", c.MsgId, err)
	}
	return nil // an open command: the closed ones are as many as before
}

// pruneRoom is how far below MaxCommandsPerThing a prune goes, so that
// the next pruneRoom closes of the thing prune nothing.
const pruneRoom = 32

// pruneCommands keeps at most MaxCommandsPerThing closed commands of a
// thing, the newest: once the count (commands_closed_count) is past it,
// it deletes down to pruneRoom below it (index commands_closed).
func pruneCommands(ctx context.Context, tx wtx, thing string) error {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT n FROM commands_closed_count WHERE thing = ?`, thing).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && n <= MaxCommandsPerThing) {
		return nil
	}
	if err == nil {
		_, err = tx.ExecContext(ctx, `DELETE FROM commands WHERE msg_id IN
			(SELECT msg_id FROM commands WHERE thing = ? AND final_by != '' ORDER BY created DESC LIMIT -1 OFFSET ?)`,
			thing, MaxCommandsPerThing-pruneRoom)
	}
	if err != nil {
		return fmt.Errorf("prune commands: %w", err)
	}
	return nil
}

// UpdateCommand applies thing's ack or result to the command msgID and
// reports whether the command changed. Feedback about a command not known
// yet makes a stub that RecordCommand fills in. A thing's final answer is
// never changed; an ack never moves a command back (queued before
// accepted) nor changes a closed one; a result replaces a local timeout,
// since it is what the thing reports. Feedback from another thing than the
// command's is ignored.
func (db *DB) UpdateCommand(ctx context.Context, msgID, thing string, u CommandUpdate) (Command, bool, error) {
	changed := false
	err := db.inTx(ctx, "update command "+msgID, func(tx wtx) error {
		var err error
		changed, err = updateCommand(ctx, tx, msgID, thing, u, time.Now().UnixMilli())
		return err
	})
	if err != nil || !changed {
		return Command{}, false, err
	}
	c, err := db.Command(ctx, msgID)
	return c, err == nil, err
}

// updateCommand is UpdateCommand inside tx.
func updateCommand(ctx context.Context, tx wtx, msgID, thing string, u CommandUpdate, now int64) (bool, error) {
	cur, err := scanCommand(tx.QueryRowContext(ctx, `SELECT `+commandCols+` FROM commands WHERE msg_id = ?`, msgID))
	if errors.Is(err, sql.ErrNoRows) {
		cur = Command{MsgId: msgID, Thing: thing, State: CommandPending, Created: now}
		if _, err := tx.ExecContext(ctx, `INSERT INTO commands (msg_id, thing, expires, state, created, updated)
			VALUES (?, ?, 0, ?, ?, ?)`, msgID, thing, CommandPending, now, now); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	if cur.Thing != thing {
		return false, nil
	}
	switch {
	case cur.FinalBy == FinalThing:
		return false, nil
	case u.Result:
	case cur.FinalBy == FinalLocal:
		return false, nil
	case u.Final: // a rejecting ack
	case ackRank[u.State] <= ackRank[cur.State]:
		return false, nil
	}
	finalBy := FinalOpen
	if u.Final {
		finalBy = FinalThing
	}
	if _, err := tx.ExecContext(ctx, `UPDATE commands SET state = ?, output = ?, error = ?, final_by = ?, updated = ?
		WHERE msg_id = ?`, u.State, string(u.Output), u.Error, finalBy, now, msgID); err != nil {
		return false, err
	}
	if cur.FinalBy != FinalOpen || finalBy == FinalOpen {
		return true, nil // as many closed commands as before
	}
	return true, pruneCommands(ctx, tx, thing)
}

// TimeoutCommands closes, as timed out here, the open commands whose
// expiry plus grace has passed at now, and returns them.
func (db *DB) TimeoutCommands(ctx context.Context, now time.Time, grace time.Duration, why string) ([]Command, error) {
	var ids []string
	err := db.inTx(ctx, "time out commands", func(tx wtx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE commands SET state = 'timeout', error = ?, final_by = ?, updated = ?
			WHERE final_by = '' AND expires > 0 AND expires <= ? RETURNING msg_id`,
			why, FinalLocal, now.UnixMilli(), now.Add(-grace).UnixMilli())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make([]Command, 0, len(ids))
	for _, id := range ids {
		c, err := db.Command(ctx, id)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// NextExpiry returns the earliest expiry of the open commands, false when
// none is open.
func (db *DB) NextExpiry(ctx context.Context) (int64, bool, error) {
	var next sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT min(expires) FROM commands WHERE final_by = '' AND expires > 0`).Scan(&next)
	if err != nil {
		return 0, false, fmt.Errorf("localdb: next expiry: %w", err)
	}
	return next.Int64, next.Valid, nil
}

// Command returns one tracked command with its chain, or ErrNotFound.
func (db *DB) Command(ctx context.Context, msgID string) (Command, error) {
	return command(ctx, db.read, msgID)
}

// queryer is what reads need of a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// command is Command read through q.
func command(ctx context.Context, q queryer, msgID string) (Command, error) {
	c, err := scanCommand(q.QueryRowContext(ctx, `SELECT `+commandCols+` FROM commands WHERE msg_id = ?`, msgID))
	if errors.Is(err, sql.ErrNoRows) {
		return Command{}, fmt.Errorf("localdb: command %s: %w", msgID, ErrNotFound)
	}
	if err != nil {
		return Command{}, fmt.Errorf("localdb: command %s: %w", msgID, err)
	}
	if c.Chain, err = chain(ctx, q, msgID); err != nil {
		return Command{}, err
	}
	return c, nil
}

// Commands returns the latest limit commands sent to thing, newest first,
// each with its chain.
func (db *DB) Commands(ctx context.Context, thing string, limit int) ([]Command, error) {
	if limit <= 0 || limit > MaxCommandsPerThing {
		limit = MaxCommandsPerThing
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+commandCols+` FROM commands WHERE thing = ?
		ORDER BY created DESC, msg_id DESC LIMIT ?`, thing, limit)
	if err != nil {
		return nil, fmt.Errorf("localdb: commands of %s: %w", thing, err)
	}
	var out []Command
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("localdb: commands of %s: %w", thing, err)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: commands of %s: %w", thing, err)
	}
	for i := range out {
		if out[i].Chain, err = chain(ctx, db.read, out[i].MsgId); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AddChainLink records feedback that the chain of the command originMsg
// caused, if that command is one of ours; it reports whether it did. A
// chain keeps its first MaxChain links.
func (db *DB) AddChainLink(ctx context.Context, originMsg string, l ChainLink) (bool, error) {
	added := false
	err := db.inTx(ctx, "chain of "+originMsg, func(tx wtx) error {
		var err error
		added, err = addChainLink(ctx, tx, originMsg, l)
		return err
	})
	return added, err
}

// addChainLink is AddChainLink inside tx.
func addChainLink(ctx context.Context, tx wtx, originMsg string, l ChainLink) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO command_chain
		(origin_msg, msg_id, thing, kind, cmd, status, event, body, error, hops, at)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
		WHERE EXISTS (SELECT 1 FROM commands WHERE msg_id = ? AND expires > 0)
		AND (SELECT count(*) FROM command_chain WHERE origin_msg = ?) < ?
		ON CONFLICT DO NOTHING`,
		originMsg, l.MsgId, l.Thing, l.Kind, l.Cmd, l.Status, l.Event, string(l.Body), l.Error, l.Hops, l.At,
		originMsg, originMsg, MaxChain)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func chain(ctx context.Context, q queryer, originMsg string) ([]ChainLink, error) {
	rows, err := q.QueryContext(ctx, `SELECT msg_id, thing, kind, cmd, status, event, body, error, hops, at
		FROM command_chain WHERE origin_msg = ? ORDER BY at, msg_id`, originMsg)
	if err != nil {
		return nil, fmt.Errorf("localdb: chain of %s: %w", originMsg, err)
	}
	defer rows.Close()
	var out []ChainLink
	for rows.Next() {
		var l ChainLink
		var body string
		if err := rows.Scan(&l.MsgId, &l.Thing, &l.Kind, &l.Cmd, &l.Status, &l.Event, &body, &l.Error, &l.Hops, &l.At); err != nil {
			return nil, fmt.Errorf("localdb: chain of %s: %w", originMsg, err)
		}
		l.Body = raw(body)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localdb: chain of %s: %w", originMsg, err)
	}
	return out, nil
}
