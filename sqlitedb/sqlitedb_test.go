package sqlitedb_test

import (
	"path/filepath"
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
