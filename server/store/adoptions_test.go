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
	for _, a := range []store.Account{{Name: "plug", Kind: "thing"}, {Name: "alice", Kind: "person"}, {Name: "bulb", Kind: "thing"}, {Name: "lamp", Kind: "thing"}} {
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
	// Things behind a bridge: one per name there.
	if err := db.PutAdoption(ctx, store.Adoption{Thing: "bulb", Profile: "zigbee2mqtt", Topic: "bulb", Bridge: "z2m"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := db.PutAdoption(ctx, store.Adoption{Thing: "lamp", Profile: "zigbee2mqtt", Topic: "bulb", Bridge: "z2m"}, time.Now()); !errors.Is(err, store.ErrExists) {
		t.Errorf("a second thing behind z2m as bulb = %v, want ErrExists", err)
	}
	if a, err := db.AdoptionBehind(ctx, "z2m", "bulb"); err != nil || a.Thing != "bulb" {
		t.Errorf("AdoptionBehind(z2m, bulb) = %+v, %v; want bulb", a, err)
	}
	if _, err := db.AdoptionBehind(ctx, "", "plug-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AdoptionBehind of a thing on no bridge = %v, want ErrNotFound", err)
	}
}
