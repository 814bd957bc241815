package server

import (
	"context"
	"time"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Store is what the server needs of its storage, so that another backend
// (PostgreSQL, when the IM service runs as several nodes) is one more
// implementation. Every change goes through Write or Append*, whose
// implementation must commit in submission order and assign SeqIds in one
// place.
type Store interface {
	accountStore
	relationStore
	messageStore
	thingStore
	sessionStore
	adapterStore
	// Write runs fn as one all-or-nothing change, in order with the others.
	Write(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error
	Close() error
}

type accountStore interface {
	Account(ctx context.Context, name string) (store.Account, error)
	AddAccount(ctx context.Context, a store.Account) error
	TouchDevice(ctx context.Context, device, account string, now time.Time) (bool, error)
	DeviceAccount(ctx context.Context, device string) (string, error)
	Devices(ctx context.Context, account string) ([]store.Device, error)
	RegisterDevice(ctx context.Context, device, account, pubkey string, addrs []string) error
	SetLastSeen(ctx context.Context, device string, t time.Time) error
	PutPairingCode(ctx context.Context, code, thing string, expires time.Time) error
	PutToken(ctx context.Context, hash, account string, expires time.Time) error
	TokenAccount(ctx context.Context, hash string, now time.Time) (string, error)
}

type relationStore interface {
	Relation(ctx context.Context, x, y string) (store.Relation, error)
	RelationsOf(ctx context.Context, account string) ([]store.Relation, error)
	PurgeExpired(ctx context.Context, now time.Time) ([]store.Relation, error)
	Group(ctx context.Context, feeds string) (store.Group, error)
	GroupsOf(ctx context.Context, account string) ([]string, error)
}

type messageStore interface {
	Append(ctx context.Context, msgs []wire.Message) ([]store.Appended, error)
	AppendAsync(msgs []wire.Message, done func([]store.Appended, error))
	History(ctx context.Context, feeds string, afterSeq int64, limit, maxBytes int) ([]wire.Message, error)
	LastSeq(ctx context.Context, feeds string) (int64, error)
	Conversations(ctx context.Context, account string, groups []string) ([]wire.Conversation, error)
	Cursors(ctx context.Context, device string) (map[string]int64, error)
	SetCursor(ctx context.Context, device, feeds string, seq int64) error
	MessagesByID(ctx context.Context, msgID string, limit int) ([]wire.Message, error)
}

// thingStore keeps the thing model: the latest description of each thing
// and the rules between associated things. AddRule checks, in its own
// transaction, that the maker is bound to both things and they are
// associated; unbind_thing and dissociate drop the rules that depended on
// them (store.DropRulesOfBinding, DropRulesOfAssociation) in theirs.
type thingStore interface {
	PutDescription(ctx context.Context, d thing.Description, now time.Time) (changed bool, err error)
	Description(ctx context.Context, name string) (thing.Description, error)
	AddRule(ctx context.Context, r thing.Rule, limit int) (added bool, err error)
	Rule(ctx context.Context, id string) (thing.Rule, error)
	RemoveRule(ctx context.Context, id string) (thing.Rule, error)
	RulesOf(ctx context.Context, name string) ([]thing.Rule, error)
}

// sessionStore keeps persistent MQTT sessions and their subscriptions
// (persist.go).
type sessionStore interface {
	OpenSession(ctx context.Context, o store.SessionOpen, now time.Time) (present bool, subs []store.SessionSub, opened int64, err error)
	CloseSession(ctx context.Context, clientID string, opened int64, keep time.Duration, now time.Time) error
	PutSessionSubs(ctx context.Context, clientID string, subs []store.SessionSub) error
	DeleteSessionSubs(ctx context.Context, clientID string, filters []string) error
	TakeExpiredSubs(ctx context.Context, now time.Time, limit int) ([]store.ExpiredSub, error)
	PurgeSessions(ctx context.Context, now time.Time) (int, error)
	DisconnectSessions(ctx context.Context, now time.Time) error
}

// adapterStore keeps which things are adopted through a firmware adapter
// profile (adapter.go).
type adapterStore interface {
	PutAdoption(ctx context.Context, a store.Adoption, now time.Time) error
	Adoption(ctx context.Context, thing string) (store.Adoption, error)
	AdoptionBehind(ctx context.Context, bridge, topic string) (store.Adoption, error)
}

var _ Store = (*store.DB)(nil)
