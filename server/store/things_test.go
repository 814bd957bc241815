package store_test

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
)

func TestDescriptionVersions(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	ctx := context.Background()
	if _, err := db.Description(ctx, "lamp"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Description before any = %v, want ErrNotFound", err)
	}
	d := func(v int64, title string) thing.Description {
		return thing.Description{Thing: "lamp", Version: v, Title: title}
	}
	for _, tt := range []struct {
		d           thing.Description
		changed     bool
		err         error
		wantVersion int64
	}{
		{d(1, "a"), true, nil, 1},
		{d(1, "a"), false, nil, 1},
		{d(1, "b"), false, store.ErrStale, 1},
		{d(3, "c"), true, nil, 3},
		{d(2, "d"), false, store.ErrStale, 3},
	} {
		changed, err := db.PutDescription(ctx, tt.d, time.Now())
		if changed != tt.changed || !errors.Is(err, tt.err) {
			t.Errorf("PutDescription(v%d %q) = %v, %v; want %v, %v", tt.d.Version, tt.d.Title, changed, err, tt.changed, tt.err)
		}
		if got, err := db.Description(ctx, "lamp"); err != nil || got.Version != tt.wantVersion {
			t.Errorf("Description after v%d = v%d, %v; want v%d", tt.d.Version, got.Version, err, tt.wantVersion)
		}
	}
}

// relate writes the relations of a household: alice bound to lamp and
// switch, which are associated.
func relate(t *testing.T, db *store.DB) {
	t.Helper()
	err := db.Write(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, r := range []store.Relation{
			{A: "alice", B: "lamp", Kind: store.KindBound, State: store.StateActive, Actor: "alice", Since: 1},
			{A: "alice", B: "switch", Kind: store.KindBound, State: store.StateActive, Actor: "alice", Since: 1},
			{A: "lamp", B: "switch", Kind: store.KindAssociated, State: store.StateActive, Actor: "alice", Since: 1},
		} {
			if err := store.PutRelation(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRulesHoldWithTheirRelations(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "s.db"))
	ctx := context.Background()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rule := func(id, a, b, by string) thing.Rule {
		r := thing.Rule{ID: id, A: a, B: b, When: thing.When{Event: "pressed"}, Then: thing.Then{Action: "toggle"}, By: by, Created: 1}
		if err := r.Sign(key); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := rule("r1", "switch", "lamp", "alice")
	if _, err := db.AddRule(ctx, r1, 2); !errors.Is(err, store.ErrRuleUnrelated) {
		t.Fatalf("AddRule without relations = %v, want ErrRuleUnrelated", err)
	}
	relate(t, db)
	for _, tt := range []struct {
		r     thing.Rule
		added bool
		err   error
	}{
		{r1, true, nil},
		{r1, false, nil},
		{rule("r1", "lamp", "switch", "alice"), false, store.ErrExists},
		{rule("r2", "switch", "lamp", "bob"), false, store.ErrRuleUnrelated},
		{rule("r3", "lamp", "switch", "alice"), true, nil},
		{rule("r4", "lamp", "switch", "alice"), false, store.ErrRuleLimit},
	} {
		added, err := db.AddRule(ctx, tt.r, 2)
		if added != tt.added || !errors.Is(err, tt.err) {
			t.Errorf("AddRule(%s %s→%s by %s) = %v, %v; want %v, %v", tt.r.ID, tt.r.A, tt.r.B, tt.r.By, added, err, tt.added, tt.err)
		}
	}
	if got, err := db.Rule(ctx, "r1"); err != nil || got.Sig != r1.Sig || got.Verify() != nil {
		t.Errorf("Rule(r1) = %+v, %v; want r1 as signed", got, err)
	}
	if rules, err := db.RulesOf(ctx, "lamp"); err != nil || len(rules) != 2 || rules[0].ID != "r1" || rules[1].ID != "r3" {
		t.Errorf("RulesOf(lamp) = %+v, %v; want r1, r3", rules, err)
	}
	if gone, err := db.RemoveRule(ctx, "r3"); err != nil || gone.ID != "r3" {
		t.Errorf("RemoveRule(r3) = %+v, %v", gone, err)
	}
	if _, err := db.RemoveRule(ctx, "r3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RemoveRule(r3) twice = %v, want ErrNotFound", err)
	}
	var dropped []thing.Rule
	err = db.Write(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		dropped, err = store.DropRulesOfAssociation(ctx, tx, "lamp", "switch")
		return err
	})
	if err != nil || len(dropped) != 1 || dropped[0].ID != "r1" {
		t.Errorf("DropRulesOfAssociation = %+v, %v; want r1", dropped, err)
	}
	if rules, err := db.RulesOf(ctx, "switch"); err != nil || len(rules) != 0 {
		t.Errorf("RulesOf(switch) after the drop = %+v, %v; want none", rules, err)
	}
}
