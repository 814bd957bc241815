package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mqtter/mqtter/adapter"
	"github.com/mqtter/mqtter/server/store"
)

// Adopt sets up a thing whose device runs stock firmware: the device
// logs in as thing name and speaks the firmware's dialect, mapped by
// profile for the device's topic. A new name becomes a thing account with
// the password password returns; an existing thing keeps its password and
// gets the profile and topic given. It returns a fresh pairing code for a
// person to bind the thing. The server's admin runs it (`mqtter thing
// adopt` on the data directory); no method of the protocol reaches it.
//
// With bridge, name is a thing behind that bridge (a Zigbee device): the
// bridge must be adopted already with the same profile, and topic is the
// thing's name there (its friendly name); its commands and reports go
// through the bridge's connection.
func (s *Server) Adopt(ctx context.Context, name, profile, topic, bridge string, password func() (string, error)) (code string, created bool, err error) {
	if bridge == "" {
		if _, err := adapter.New(profile, topic); err != nil {
			return "", false, fmt.Errorf("adopt %s: %w", name, err)
		}
	} else {
		b, err := s.db.Adoption(ctx, bridge)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return "", false, fmt.Errorf("adopt %s: bridge %s is not adopted (adopt it first)", name, bridge)
		case err != nil:
			return "", false, fmt.Errorf("adopt %s: %w", name, err)
		case b.Profile != profile || b.Bridge != "" || profile != adapter.ProfileZigbee2MQTT:
			return "", false, fmt.Errorf("adopt %s: bridge %s is a %s device, not a %s bridge", name, bridge, b.Profile, profile)
		case bridge == name:
			return "", false, fmt.Errorf("adopt %s: a bridge is not behind itself", name)
		}
		if !adapter.ValidDeviceName(topic) {
			return "", false, fmt.Errorf("adopt %s: %.80q is no device name behind a bridge", name, topic)
		}
	}
	acct, err := s.db.Account(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		pw, err := password()
		if err != nil {
			return "", false, err
		}
		if _, err := s.AddUser(ctx, name, pw, KindThing); err != nil {
			return "", false, err
		}
		created = true
	case err != nil:
		return "", false, fmt.Errorf("adopt %s: %w", name, err)
	case acct.Kind != KindThing:
		return "", false, fmt.Errorf("adopt %s: a %s, not a thing", name, acct.Kind)
	}
	if err := s.db.PutAdoption(ctx, store.Adoption{Thing: name, Profile: profile, Topic: topic, Bridge: bridge}, time.Now()); err != nil {
		return "", false, fmt.Errorf("adopt %s: %w", name, err)
	}
	code, _, err = s.NewPairingCode(ctx, name)
	return code, created, err
}
