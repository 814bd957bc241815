package store

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
var ErrNotFound = errors.New("not found")

// ErrExists is returned when a row that must be new already exists.
var ErrExists = errors.New("already exists")

// ErrClosed is returned for work handed to a closed store.
var ErrClosed = errors.New("store closed")

// DB is the server's SQLite store. It is safe for concurrent use.
type DB struct {
	log     *slog.Logger
	read    *sql.DB
	write   *sql.DB
	writer  *writer
	devices DeviceLimit // set by LimitDevices

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database file at path, applies the
// pending migrations and starts the writer. log may be nil.
func Open(ctx context.Context, path string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	schema, err := fs.Sub(migrations, "sql")
	if err != nil {
		return nil, err
	}
	write, read, err := sqlitedb.Open(ctx, path, sqlitedb.Options{ReadConns: 8, CacheKiB: 32000, Migrations: schema, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{log: log, read: read, write: write}
	db.writer, err = startWriter(ctx, write, log)
	if err != nil {
		read.Close()
		write.Close()
		return nil, fmt.Errorf("store: start writer: %w", err)
	}
	return db, nil
}

// Close stops the writer after the queued jobs and closes the database. It
// is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.writer.close()
		db.closeErr = errors.Join(db.read.Close(), db.write.Close())
	})
	return db.closeErr
}
