package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// Account kinds.
const (
	KindPerson = "person"
	KindThing  = "thing"
)

// ErrAccountExists is returned by AddUser for a name that is taken.
var ErrAccountExists = errors.New("account exists")

// AddUser creates an account with a hashed password. For a thing it returns
// a first pairing code (valid ten minutes) that lets a person bind it.
func (s *Server) AddUser(ctx context.Context, name, password, kind string) (pairing string, err error) {
	if !wire.ValidAccount(name) {
		return "", fmt.Errorf("add user: %q is not a valid account name ([a-z0-9][a-z0-9._-]{0,62})", name)
	}
	if kind != KindPerson && kind != KindThing {
		return "", fmt.Errorf("add user: kind must be %q or %q", KindPerson, KindThing)
	}
	if password == "" {
		return "", errors.New("add user: empty password")
	}
	hash, err := HashPassword(password)
	if err != nil {
		return "", err
	}
	err = s.db.AddAccount(ctx, store.Account{Name: name, Kind: kind, PassHash: hash, Created: time.Now().UnixMilli()})
	if errors.Is(err, store.ErrExists) {
		return "", fmt.Errorf("add user %s: %w", name, ErrAccountExists)
	}
	if err != nil {
		return "", fmt.Errorf("add user %s: %w", name, err)
	}
	if kind == KindThing {
		code, _, err := s.NewPairingCode(ctx, name)
		return code, err
	}
	return "", nil
}
