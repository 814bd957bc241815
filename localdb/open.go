package localdb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"

	"github.com/mqtter/mqtter/sqlitedb"
)

//go:embed sql/*.sql
var migrations embed.FS

// ErrNotFound is returned when the asked-for row does not exist.
var ErrNotFound = errors.New("localdb: not found")

// readConns is the size of the read pool.
const readConns = 4

// DB is the node's store. It is safe for concurrent use.
type DB struct {
	log   *slog.Logger
	read  rdb     // query_only connections, statements kept prepared (readStmts)
	write *sql.DB // exactly one connection: SQLite has one writer anyway

	closeOnce sync.Once
	closeErr  error

	// insertStmts are prepared once on the write connection: a full chunk
	// of AddMessages and the single row a direct message commits alone.
	insertStmts map[int]*sql.Stmt
	// stmts are the other statements of write transactions, prepared at
	// their first use.
	stmts     stmtCache
	readStmts stmtCache
}

// Schema returns the numbered migrations that make a node database, as
// sqlitedb.Options.Migrations takes them; Open applies them.
func Schema() (fs.FS, error) { return fs.Sub(migrations, "sql") }

// Open opens (creating if needed) the database file at path and applies
// the pending migrations. log may be nil.
func Open(ctx context.Context, path string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	schema, err := Schema()
	if err != nil {
		return nil, err
	}
	write, read, err := sqlitedb.Open(ctx, path, sqlitedb.Options{ReadConns: readConns, Migrations: schema})
	if err != nil {
		return nil, fmt.Errorf("localdb: open %s: %w", path, err)
	}
	db := &DB{log: log, write: write, insertStmts: make(map[int]*sql.Stmt, 2), stmts: stmtCache{db: write}, readStmts: stmtCache{db: read}}
	db.read = rdb{read, &db.readStmts}
	for _, rows := range []int{1, insertRows} {
		st, err := write.PrepareContext(ctx, insertMessages(rows))
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("localdb: open %s: prepare: %w", path, err)
		}
		db.insertStmts[rows] = st
	}
	log.Debug("localdb opened", "path", path)
	return db, nil
}

// Close closes the database. It is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		for _, st := range db.insertStmts {
			st.Close()
		}
		db.stmts.close()
		db.readStmts.close()
		db.closeErr = errors.Join(db.read.Close(), db.write.Close())
		if db.closeErr != nil {
			db.closeErr = fmt.Errorf("localdb: close: %w", db.closeErr)
		}
	})
	return db.closeErr
}

// inTx runs fn in one write transaction and commits it when fn succeeds.
func (db *DB) inTx(ctx context.Context, op string, fn func(tx wtx) error) error {
	err := db.tx(ctx, op, fn)
	if db.stmts.pending() {
		db.stmts.prepareWanted(context.WithoutCancel(ctx)) // the connection is free again
	}
	return err
}

func (db *DB) tx(ctx context.Context, op string, fn func(tx wtx) error) error {
	tx, err := db.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return fmt.Errorf("localdb: %s: begin: %w", op, err)
	}
	defer tx.Rollback()
	if err := fn(wtx{tx, &db.stmts}); err != nil {
		return fmt.Errorf("localdb: %s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("localdb: %s: commit: %w", op, err)
	}
	return nil
}
