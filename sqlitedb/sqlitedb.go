// Package sqlitedb opens SQLite files the way the server's and the node's
// stores both use them: pragmas in the DSN so every pooled connection gets
// them, WAL with synchronous=NORMAL, exactly one writer connection that
// begins IMMEDIATE, a separate pool of query_only readers, and the schema
// as numbered .sql files applied in order.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Options tune Open.
type Options struct {
	ReadConns  int // size of the read pool; default 4
	CacheKiB   int // page cache per connection; default 16000
	Migrations fs.FS
	// Logger gets the warning about a directory others can read; default
	// slog.Default().
	Logger *slog.Logger
}

// FileMode is the mode of every database file Open creates, and of the
// -wal and -shm files SQLite makes beside it (its unix VFS gives them the
// main file's mode): the server's file holds password hashes and the
// node's a private history, so only the owner may read them.
const FileMode os.FileMode = 0o600

// Open opens (creating if needed) the file at path, applies the pending
// migrations (files NNNN_name.sql at the root of opts.Migrations) and
// returns the single-connection writer and the read pool.
func Open(ctx context.Context, path string, opts Options) (write, read *sql.DB, err error) {
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if opts.CacheKiB <= 0 {
		opts.CacheKiB = 16000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	if err := restrictFiles(abs, opts.Logger); err != nil {
		return nil, nil, err
	}
	write, err = sql.Open("sqlite", dsn(abs, opts.CacheKiB, true))
	if err != nil {
		return nil, nil, err
	}
	// One connection that never expires: writers queue in database/sql
	// instead of spinning on SQLITE_BUSY.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	if opts.Migrations != nil {
		if err := migrateRetrying(ctx, write, opts.Migrations); err != nil {
			write.Close()
			return nil, nil, fmt.Errorf("migrate: %w", err)
		}
	}
	read, err = sql.Open("sqlite", dsn(abs, opts.CacheKiB, false))
	if err != nil {
		write.Close()
		return nil, nil, err
	}
	read.SetMaxOpenConns(opts.ReadConns)
	read.SetMaxIdleConns(opts.ReadConns)
	return write, read, nil
}

// restrictFiles creates the database file with FileMode before SQLite
// does (SQLite would create it 0644 under the usual umask, and the -wal and
// -shm files after it), takes group and other bits off files an older
// version created, and warns when the directory lets others list or enter
// it: whoever can traverse it can open a file left readable in it.
func restrictFiles(abs string, log *slog.Logger) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	f.Close()
	for _, name := range []string{abs, abs + "-wal", abs + "-shm"} {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("database file: %w", err)
		}
		if fi.Mode().Perm()&^FileMode != 0 {
			if err := os.Chmod(name, FileMode); err != nil {
				return fmt.Errorf("restrict database file: %w", err)
			}
		}
	}
	dir := filepath.Dir(abs)
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("database directory is open to other users; chmod 700 it",
			"dir", dir, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	return nil
}

// migrateRetrying runs Migrate, again while another connection holds the
// file during its own first open (switching a new file to WAL takes an
// exclusive lock that the busy timeout does not always wait for).
func migrateRetrying(ctx context.Context, db *sql.DB, migrations fs.FS) error {
	for attempt := 0; ; attempt++ {
		err := Migrate(ctx, db, migrations)
		if err == nil || attempt == 50 || !busy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func busy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// dsn builds the connection string. The writer begins its transactions
// IMMEDIATE, taking the write lock up front rather than failing to upgrade
// a read lock later; readers are query_only.
func dsn(abs string, cacheKiB int, writer bool) string {
	q := url.Values{}
	pragmas := []string{
		"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)", "foreign_keys(ON)",
		fmt.Sprintf("cache_size(-%d)", cacheKiB), "temp_store(MEMORY)",
	}
	if writer {
		q.Set("_txlock", "immediate")
	} else {
		pragmas = append(pragmas, "query_only(1)")
	}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	return "file:" + uriPath.Replace(abs) + "?" + q.Encode()
}

// uriPath escapes what SQLite's URI filenames would read otherwise: a '#'
// starts a fragment and a '?' the query, so a path holding them (Go's fuzz
// seeds get directories named "seed#0") would open another, truncated file.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// Migrate applies the numbered .sql files of migrations that are newer than
// the database's user_version, each in its own IMMEDIATE transaction that
// reads the version again first, so processes opening a new file at once
// (a server and `user add`) apply each exactly once.
func Migrate(ctx context.Context, db *sql.DB, migrations fs.FS) error {
	names, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("no migrations")
	}
	sort.Strings(names)
	for _, name := range names {
		n, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with its number", name)
		}
		text, err := fs.ReadFile(migrations, name)
		if err != nil {
			return err
		}
		if err := apply(ctx, db, n, string(text)); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, n int, text string) error {
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
