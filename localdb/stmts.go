package localdb

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the statements a DB keeps prepared: the queries
// are the package's own constants, far fewer; one built at run time past
// the bound is prepared for its call only.
const maxCachedStmts = 256

// stmtCache keeps the write connection's statements prepared: SQLite
// compiles a statement's text anew at every plain Exec, which on a
// command's path cost about a third of its commits. The write pool has
// one connection, which a transaction holds: a statement is prepared
// once that transaction ended (prepareWanted), and used from the next.
type stmtCache struct {
	db     *sql.DB // the write pool: one connection
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	want   map[string]bool // used in a transaction, not prepared yet
	closed bool
}

// get returns query prepared on the write connection, or nil when it is
// not (yet): then it is noted for prepareWanted, while the cache has room.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st
	}
	if !c.closed && len(c.stmts)+len(c.want) < maxCachedStmts {
		if c.want == nil {
			c.want = make(map[string]bool)
		}
		c.want[query] = true
	}
	return nil
}

// prepareWanted prepares the statements noted by get (prepareNow); the
// caller holds no transaction. A statement that does not prepare stays
// unprepared (its plain Exec reports the error).
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	queries := make([]string, 0, len(c.want))
	for query := range c.want {
		queries = append(queries, query)
	}
	clear(c.want)
	c.mu.Unlock()
	for _, query := range queries {
		c.prepareNow(ctx, query)
	}
}

// prepareNow returns query prepared on the pool, preparing it now if it
// is not, or nil when that fails or the cache is full or closed. The
// caller holds no connection the prepare would need (the read pool, or
// the write pool between transactions), and the lock is not held while
// preparing: a transaction begun meanwhile may look up its statements.
func (c *stmtCache) prepareNow(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.stmts[query]
	full := c.closed || len(c.stmts) >= maxCachedStmts
	c.mu.Unlock()
	if ok || full {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if have, dup := c.stmts[query]; dup || c.closed {
		st.Close()
		return have // nil once closed
	}
	if c.stmts == nil {
		c.stmts = make(map[string]*sql.Stmt)
	}
	c.stmts[query] = st
	return st
}

// pending reports whether statements wait to be prepared.
func (c *stmtCache) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.want) > 0
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts, c.closed = nil, true
}

// wtx is a write transaction whose Exec and Query go through the DB's
// prepared statements.
type wtx struct {
	*sql.Tx
	stmts *stmtCache
}

func (t wtx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := t.stmts.get(query); st != nil {
		return t.Tx.StmtContext(ctx, st)
	}
	return nil
}

func (t wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

// rdb is the read pool, whose queries go through statements prepared once.
type rdb struct {
	*sql.DB
	stmts *stmtCache
}

func (r rdb) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := r.stmts.prepareNow(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return r.DB.QueryContext(ctx, query, args...)
}

func (r rdb) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := r.stmts.prepareNow(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return r.DB.QueryRowContext(ctx, query, args...)
}
