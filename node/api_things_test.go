package node

import (
	"crypto/rand"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/thing"
)

// A rule the local API makes is complete, made by the node's account and
// signed by its device key; a malformed one is a bad request.
func TestBuildRule(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := peer.IDFromPrivateKey(key)
	now := time.UnixMilli(1_700_000_000_000)
	req := RuleRequest{A: "button", B: "lamp", When: thing.When{Event: "pressed",
		If: []thing.Cond{{Path: "count", Op: "ge", Value: []byte(`2`)}}},
		Then: thing.Then{Action: "toggle", Input: []byte(`{"on":true}`)}}
	r, err := buildRule(req, "alice", key, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(); err != nil {
		t.Errorf("Verify = %v", err)
	}
	if r.By != "alice" || r.Device != self.String() || r.Created != now.UnixMilli() || r.ID == "" {
		t.Errorf("rule = %+v, want by alice, device %s, created %d, an id", r, self, now.UnixMilli())
	}
	r.Then.Action = "explode"
	if err := r.Verify(); err == nil {
		t.Error("Verify passed a rule changed after signing")
	}
	req.ID = "my-rule"
	if r, _ := buildRule(req, "alice", key, now); r.ID != "my-rule" {
		t.Errorf("id = %q, want the one asked for", r.ID)
	}
	for name, bad := range map[string]RuleRequest{
		"no trigger": {A: "button", B: "lamp", Then: thing.Then{Action: "toggle"}},
		"self":       {A: "lamp", B: "lamp", When: thing.When{Event: "x"}, Then: thing.Then{Action: "toggle"}},
		"bad op":     {A: "button", B: "lamp", When: thing.When{Event: "x", If: []thing.Cond{{Op: "like", Value: []byte(`1`)}}}, Then: thing.Then{Action: "t"}},
	} {
		_, err := buildRule(bad, "alice", key, now)
		var ue *userError
		if !errors.As(err, &ue) || ue.status != http.StatusBadRequest {
			t.Errorf("%s: buildRule = %v, want a bad request", name, err)
		}
	}
}
