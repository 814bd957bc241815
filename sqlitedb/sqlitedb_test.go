package sqlitedb_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/mqtter/mqtter/sqlitedb"
)

// Several processes' worth of concurrent opens of a new file apply each
// migration once, and a later migration is applied on the next open.
func TestMigrationsApplyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	v1 := fstest.MapFS{"0001_init.sql": {Data: []byte(`CREATE TABLE t (x INTEGER);`)}}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, r, err := sqlitedb.Open(t.Context(), path, sqlitedb.Options{Migrations: v1})
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			w.Close()
			r.Close()
		}()
	}
	wg.Wait()
	v2 := fstest.MapFS{
		"0001_init.sql": v1["0001_init.sql"],
		"0002_more.sql": {Data: []byte(`ALTER TABLE t ADD COLUMN y TEXT;`)},
	}
	w, r, err := sqlitedb.Open(t.Context(), path, sqlitedb.Options{Migrations: v2})
	if err != nil {
		t.Fatalf("Open with a new migration: %v", err)
	}
	defer w.Close()
	defer r.Close()
	var version int
	if err := r.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != 2 {
		t.Fatalf("user_version = %d, %v; want 2", version, err)
	}
	if _, err := w.Exec(`INSERT INTO t (x, y) VALUES (1, 'a')`); err != nil {
		t.Fatalf("insert after migration 2: %v", err)
	}
	if _, err := r.Exec(`INSERT INTO t (x) VALUES (2)`); err == nil {
		t.Error("a write through the read pool succeeded, want query_only to refuse it")
	}
	bad := fstest.MapFS{"first.sql": {Data: []byte(`SELECT 1;`)}}
	if _, _, err := sqlitedb.Open(t.Context(), filepath.Join(t.TempDir(), "b.db"), sqlitedb.Options{Migrations: bad}); err == nil {
		t.Error("a migration file without a number was accepted")
	}
}

// In a directory a user made 0755 beforehand, the database and its -wal
// and -shm files are 0600 (whatever the umask), and a warning names the
// directory.
func TestFilesPrivateAndOpenDirWarned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	path := filepath.Join(dir, "node.db")
	schema := fstest.MapFS{"0001_init.sql": {Data: []byte(`CREATE TABLE t (x INTEGER);`)}}
	w, r, err := sqlitedb.Open(t.Context(), path, sqlitedb.Options{Migrations: schema, Logger: log})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer w.Close()
	defer r.Close()
	// A write and a read make SQLite create -wal and -shm (it keeps them
	// while a connection is open).
	if _, err := w.Exec(`INSERT INTO t (x) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := r.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode of %s = %04o, want 0600", filepath.Base(name), got)
		}
	}
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), dir) {
		t.Errorf("log = %q, want a warning naming %s", logged.String(), dir)
	}

	// A file an older version left 0644 is made 0600 on the next open, and a
	// private directory draws no warning.
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(private, "old.db")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	logged.Reset()
	w2, r2, err := sqlitedb.Open(t.Context(), old, sqlitedb.Options{Migrations: schema, Logger: log})
	if err != nil {
		t.Fatalf("Open old: %v", err)
	}
	w2.Close()
	r2.Close()
	if fi, err := os.Stat(old); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("old file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if logged.Len() != 0 {
		t.Errorf("private directory logged %q, want nothing", logged.String())
	}
}

// A path with the characters SQLite's URI filenames treat specially opens
// that very file, not a truncated name beside it.
func TestPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seed#0?x=%41")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "n.db")
	schema := fstest.MapFS{"0001_init.sql": {Data: []byte(`CREATE TABLE t (x INTEGER);`)}}
	w, r, err := sqlitedb.Open(t.Context(), path, sqlitedb.Options{Migrations: schema})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer w.Close()
	defer r.Close()
	var file string
	if err := r.QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file); err != nil {
		t.Fatal(err)
	}
	if file != path {
		t.Errorf("database file = %q, want %q", file, path)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Errorf("files beside the directory: %v, want only the directory", entries)
	}
}
