package node

import (
	"maps"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// book is the node's in-memory view of whom it may talk to: the devices of
// related accounts (from the server's peers answer, cached in localdb so it
// holds while the server is down, plus addresses found by mDNS), the
// account's relations and its groups.
type book struct {
	mu        sync.RWMutex
	self      string // this account
	devices   map[string]wire.PeerInfo
	found     map[string][]multiaddr.Multiaddr // by device: addresses from mDNS
	relations map[string]wire.Relation
	groups    map[string]wire.Group // by feeds
	// thingFeeds are the things' feeds this account reads ("t:<thing>",
	// list_thing_feeds), in a group's shape: Members are the readers.
	thingFeeds map[string]wire.Group
}

func newBook(self string) *book {
	return &book{
		self:      self,
		devices:   make(map[string]wire.PeerInfo),
		found:     make(map[string][]multiaddr.Multiaddr),
		relations: make(map[string]wire.Relation),
		groups:    make(map[string]wire.Group),

		thingFeeds: make(map[string]wire.Group),
	}
}

func (b *book) setPeers(peers []wire.PeerInfo) {
	m := make(map[string]wire.PeerInfo, len(peers))
	for _, p := range peers {
		m[p.Device] = p
	}
	b.mu.Lock()
	b.devices = m
	b.mu.Unlock()
}

func (b *book) setRelations(rels []wire.Relation) {
	m := make(map[string]wire.Relation, len(rels))
	for _, r := range rels {
		m[r.User] = r
	}
	b.mu.Lock()
	b.relations = m
	b.mu.Unlock()
}

func (b *book) setGroups(groups []wire.Group) {
	m := make(map[string]wire.Group, len(groups))
	for _, g := range groups {
		m[g.Feeds] = g
	}
	b.mu.Lock()
	b.groups = m
	b.mu.Unlock()
}

// setThingFeeds replaces the things' feeds this account reads; a row
// that names no thing's feed is left out.
func (b *book) setThingFeeds(feeds []wire.Group) {
	m := make(map[string]wire.Group, len(feeds))
	for _, g := range feeds {
		if f, err := wire.ParseFeeds(g.Feeds); err == nil && f.Kind == wire.FeedsThing {
			m[g.Feeds] = g
		}
	}
	b.mu.Lock()
	b.thingFeeds = m
	b.mu.Unlock()
}

// setStatus records a presence change of a known device; it reports false
// for a device the book does not know.
func (b *book) setStatus(device, status string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.devices[device]
	if ok {
		p.Status = status
		b.devices[device] = p
	}
	return ok
}

// offline reports whether the server last said the device is offline.
func (b *book) offline(device string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.devices[device].Status == wire.StatusOffline
}

// addFound records addresses that mDNS found for a device.
func (b *book) addFound(device string, addrs []multiaddr.Multiaddr) {
	b.mu.Lock()
	b.found[device] = addrs
	b.mu.Unlock()
}

// authorized reports whether id is a device of a related account (or of
// this account), the only peers whose streams are accepted.
func (b *book) authorized(id peer.ID) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.devices[id.String()]
	return ok
}

// account returns the account a device belongs to.
func (b *book) account(device string) (string, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	p, ok := b.devices[device]
	return p.User, ok
}

// target is a device to try directly, with every address known for it.
type target struct {
	id    peer.ID
	addrs []multiaddr.Multiaddr
}

// devicesOf returns the devices of the accounts, with their addresses.
func (b *book) devicesOf(accounts ...string) []target {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []target
	for dev, p := range b.devices {
		if !slices.Contains(accounts, p.User) {
			continue
		}
		id, err := peer.Decode(dev)
		if err != nil {
			continue // a plain MQTT device: reachable through the server only
		}
		t := target{id: id}
		for _, a := range p.Addrs {
			if ma, err := multiaddr.NewMultiaddr(a); err == nil {
				t.addrs = append(t.addrs, ma)
			}
		}
		t.addrs = append(t.addrs, b.found[dev]...)
		out = append(out, t)
	}
	slices.SortFunc(out, func(x, y target) int { return compareStrings(string(x.id), string(y.id)) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// peers returns the known devices, by user and device.
func (b *book) peers() []wire.PeerInfo {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]wire.PeerInfo, 0, len(b.devices))
	for _, p := range b.devices {
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y wire.PeerInfo) int {
		if c := compareStrings(x.User, y.User); c != 0 {
			return c
		}
		return compareStrings(x.Device, y.Device)
	})
	return out
}

// canMessage reports whether a dm with user is allowed: an active
// relation of friends, a bound thing or associated things.
func (b *book) canMessage(user string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch b.relations[user].State {
	case wire.StateFriend, wire.StateBound, wire.StateAssociated:
		return true
	}
	return false
}

// bookRights is the write rule's view of the book (wire.Rights), so that
// the node's send and its direct receive apply the server's rule, from the
// cached relations while the server is down. The book knows only this
// account's relations and groups: a pair without this account, or a group
// this account is not in, is unknown and so not allowed.
type bookRights struct{ b *book }

var _ wire.Rights = bookRights{}

// Related reports whether the other one of a and b is related to this
// account.
func (r bookRights) Related(a, b string) (bool, error) {
	switch r.b.self {
	case a:
		return a != b && r.b.canMessage(b), nil
	case b:
		return r.b.canMessage(a), nil
	}
	return false, nil
}

// Member reports whether account is a member of a group of this account,
// or a reader of a thing's feed this account reads.
func (r bookRights) Member(feeds, account string) (bool, error) {
	g, ok := r.b.group(feeds)
	return ok && slices.Contains(g.Members, account), nil
}

// gossipFeeds returns the feeds whose messages travel by gossip: the
// groups this account is a member of and the things' feeds it reads,
// sorted.
func (b *book) gossipFeeds() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := slices.Collect(maps.Keys(b.groups))
	out = slices.AppendSeq(out, maps.Keys(b.thingFeeds))
	slices.Sort(out)
	return out
}

// group returns a group this account is a member of, or a thing's feed
// it reads (its readers as Members).
func (b *book) group(feeds string) (wire.Group, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if g, ok := b.groups[feeds]; ok {
		return g, true
	}
	g, ok := b.thingFeeds[feeds]
	return g, ok
}

// members returns the accounts of the conversation other than this one.
func (b *book) members(f wire.Feeds, feeds string) []string {
	if f.Kind == wire.FeedsDM {
		return []string{f.Peer(b.self)}
	}
	g, ok := b.group(feeds)
	if !ok {
		return nil
	}
	var out []string
	for _, m := range g.Members {
		if m != b.self {
			out = append(out, m)
		}
	}
	return out
}

var _ thing.Relations = bookRights{}

// Tie returns the relation between a and b as this account's book knows
// it: only pairs that include this account are known. The kind of this
// account itself follows from the relation: both of an association are
// things, and a binding joins a person and a thing. Tie(a, a) answers a
// thing for an account whose feed the book lists (the server lists only
// things' feeds), and nothing else.
func (r bookRights) Tie(a, b string) (state, kindB string, err error) {
	if a == b {
		if _, ok := r.b.group(wire.ThingFeeds(a)); ok {
			return "", wire.KindThing, nil
		}
		return "", "", nil
	}
	self := r.b.self
	var other string
	switch self {
	case a:
		other = b
	case b:
		other = a
	default:
		return "", "", nil
	}
	if other == self {
		return "", "", nil
	}
	r.b.mu.RLock()
	rel, ok := r.b.relations[other]
	r.b.mu.RUnlock()
	if !ok {
		return "", "", nil
	}
	switch rel.State {
	case wire.StateFriend, wire.StateBound, wire.StateAssociated:
		state = rel.State
	default:
		return "", "", nil
	}
	if b == other {
		return state, rel.Kind, nil
	}
	switch {
	case state == wire.StateAssociated:
		kindB = wire.KindThing
	case state == wire.StateBound && rel.Kind == wire.KindPerson:
		kindB = wire.KindThing
	case state == wire.StateBound && rel.Kind == wire.KindThing:
		kindB = wire.KindPerson
	}
	return state, kindB, nil
}

// DeviceOwner returns the account of a device the book knows.
func (r bookRights) DeviceOwner(device string) (string, bool, error) {
	a, ok := r.b.account(device)
	return a, ok, nil
}
