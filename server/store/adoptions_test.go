package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/store"
)

// Only an existing thing is adopted; adopting it again changes its
// profile and topic.
func TestAdoptions(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	ctx := context.Background()
	for _, a := range []store.Account{{Name: "plug", Kind: "thing"}, {Name: "alice", Kind: "person"}} {
		if err := db.AddAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"alice", "nobody"} {
		if err := db.PutAdoption(ctx, store.Adoption{Thing: name, Profile: "tasmota", Topic: "x"}, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PutAdoption(%s) = %v, want ErrNotFound", name, err)
		}
	}
	if _, err := db.Adoption(ctx, "plug"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Adoption before adopt = %v, want ErrNotFound", err)
	}
	for _, topic := range []string{"plug-1", "plug-2"} {
		if err := db.PutAdoption(ctx, store.Adoption{Thing: "plug", Profile: "tasmota", Topic: topic}, time.Now()); err != nil {
			t.Fatal(err)
		}
		a, err := db.Adoption(ctx, "plug")
		if err != nil || a.Profile != "tasmota" || a.Topic != topic {
			t.Errorf("Adoption(plug) = %+v, %v; want tasmota %s", a, err, topic)
		}
	}
}
