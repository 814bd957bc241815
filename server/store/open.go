package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
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
	log    *slog.Logger
	read   *sql.DB
	write  *sql.DB
	writer *writer

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database file at path, applies the
// pending migrations and starts the writer. log may be nil.
func Open(ctx context.Context, path string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	dsn := func(extra ...string) string {
		q := url.Values{}
		for _, p := range append([]string{
			"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)",
			"foreign_keys(ON)", "cache_size(-32000)", "temp_store(MEMORY)",
		}, extra...) {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		return "file:" + abs + "?" + q.Encode()
	}
	write, err := sql.Open("sqlite", dsn())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn("query_only(1)"))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open %s for reading: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
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

// migrate applies the numbered files under sql/ that are newer than the
// database's user_version, each in its own IMMEDIATE transaction that reads
// the version again first, so processes opening a new file at once (a
// server and `user add`) apply each migration exactly once.
func migrate(ctx context.Context, db *sql.DB) error {
	names, err := fs.Glob(migrations, "sql/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		n, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its number", base)
		}
		text, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if err := applyMigration(ctx, db, n, string(text)); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, n int, text string) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read user_version: %w", err)
	}
	if n <= version {
		return nil
	}
	if _, err := tx.ExecContext(ctx, text); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", n)); err != nil {
		return err
	}
	return tx.Commit()
}
