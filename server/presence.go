package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// Device presence.
const (
	statusOnline  = "online"
	statusAway    = "away"
	statusOffline = "offline"
)

const maxAddrs = 32

// pushAccount sends a push to every connected device of account.
func (s *Server) pushAccount(account, topic string, body []byte) {
	sessions := s.sessions.sessions(account)
	for _, sess := range sessions {
		sess.send(topic, body)
	}
	s.metrics.pushes.WithLabelValues(pushKind(topic)).Add(float64(len(sessions)))
}

func pushKind(topic string) string {
	switch topic {
	case wire.PushNews:
		return "news"
	case wire.PushPresence:
		return "presence"
	case wire.PushRelation, wire.PushRelations:
		return "relation"
	}
	return "other"
}

// presenceChanged records sess's status and tells the account's other
// devices and its contacts.
func (s *Server) presenceChanged(sess *session, status string) {
	if status != statusOffline {
		sess.status.Store(status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !s.deviceBound(ctx, sess) {
		return
	}
	related, err := s.contacts(ctx, sess.account)
	if err != nil {
		s.log.Warn("presence: contacts", "account", sess.account, "err", err)
		return
	}
	body, err := json.Marshal(wire.Presence{User: sess.account, Device: sess.device, Status: status, LastSeen: sess.lastSeen.Load()})
	if err != nil {
		return
	}
	p := outPacket{topic: wire.PushPresence, body: body, alt: wire.PresenceTopic(sess.account)}
	for _, account := range append(related, sess.account) {
		for _, other := range s.sessions.sessions(account) {
			if other != sess {
				other.push(p)
			}
		}
	}
}

func (s *Server) presence(ctx context.Context, c *call) (any, error) {
	var req wire.PresenceReq
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if req.Status != statusOnline && req.Status != statusAway {
		return nil, badRequest("status must be %q or %q", statusOnline, statusAway)
	}
	if c.sess.Status() != req.Status {
		s.presenceChanged(c.sess, req.Status)
	}
	return nil, nil
}

func (s *Server) registerDevice(ctx context.Context, c *call) (any, error) {
	var req wire.RegisterDevice
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := need("peer_id", req.PeerID); err != nil {
		return nil, err
	}
	if req.PeerID != c.sess.device {
		return nil, forbidden("peer_id must be this connection's client id %q", c.sess.device)
	}
	id, err := peer.Decode(req.PeerID)
	if err != nil {
		return nil, badRequest("peer_id: %v", err)
	}
	var pub crypto.PubKey
	if req.PubKey != "" {
		raw, err := base64.StdEncoding.DecodeString(req.PubKey)
		if err != nil {
			return nil, badRequest("pubkey: not base64: %v", err)
		}
		if pub, err = crypto.UnmarshalPublicKey(raw); err != nil {
			return nil, badRequest("pubkey: %v", err)
		}
		if !id.MatchesPublicKey(pub) {
			return nil, badRequest("pubkey does not match peer_id")
		}
	} else {
		if pub, err = id.ExtractPublicKey(); err != nil {
			return nil, badRequest("pubkey: needed, the peer id does not hold the key: %v", err)
		}
		raw, err := crypto.MarshalPublicKey(pub)
		if err != nil {
			return nil, badRequest("pubkey: %v", err)
		}
		req.PubKey = base64.StdEncoding.EncodeToString(raw)
	}
	if len(req.Addrs) > maxAddrs {
		return nil, badRequest("more than %d addrs", maxAddrs)
	}
	for _, a := range req.Addrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return nil, badRequest("addr %q: %v", a, err)
		}
	}
	// The proof: without it an account could bind another device's peer id.
	if req.Challenge == "" || req.Sig == "" {
		return nil, forbidden("register_device needs a proof of the device key: sign a device_challenge (challenge, sig)")
	}
	if err := s.proofKey.check(c.sess.account, c.sess.device, req.Challenge, time.Now()); err != nil {
		return nil, forbidden("challenge: %v", err)
	}
	sig, err := base64.StdEncoding.DecodeString(req.Sig)
	if err != nil {
		return nil, badRequest("sig: not base64: %v", err)
	}
	if ok, err := pub.Verify(wire.DeviceProofBytes(c.sess.account, req.PeerID, req.Challenge), sig); err != nil || !ok {
		return nil, forbidden("sig: not the device key's signature over the challenge")
	}
	if req.Addrs == nil {
		req.Addrs = []string{}
	}
	if err := s.db.RegisterDevice(ctx, c.sess.device, c.sess.account, req.PubKey, req.Addrs); errors.Is(err, store.ErrNotFound) {
		// Another account took the unproven id over since this CONNECT.
		return nil, forbidden("device %s belongs to another account", c.sess.device)
	} else if err != nil {
		return nil, err
	}
	s.presenceChanged(c.sess, c.sess.Status())
	return wire.Registered{Relay: append([]string{}, s.RelayAddrs()...)}, nil
}

func (s *Server) peers(ctx context.Context, c *call) (any, error) {
	return s.Peers(ctx, c.sess.account, c.sess.device)
}

// contacts returns the accounts that see account's devices: those with an
// active relation to it, those sharing a group with it and those reading a
// thing's feed it reads, sorted, without account itself.
func (s *Server) contacts(ctx context.Context, account string) ([]string, error) {
	accounts, err := s.relatedAccounts(ctx, account)
	if err != nil {
		return nil, err
	}
	groups, err := s.db.GroupsOf(ctx, account)
	if err != nil {
		return nil, err
	}
	for _, feeds := range groups {
		g, found, err := s.dir.group(ctx, feeds)
		if err != nil {
			return nil, err
		}
		if found {
			accounts = append(accounts, g.Members...)
		}
	}
	// Readers of a thing's feed relay its messages to each other by
	// gossip, as a group's members do: they see each other's devices.
	feeds, err := s.thingFeedsOf(ctx, account)
	if err != nil {
		return nil, err
	}
	for _, f := range feeds {
		readers, err := s.feedReaders(ctx, f[len(wire.ThingFeeds("")):])
		if err != nil {
			return nil, err
		}
		accounts = append(accounts, readers...)
	}
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)
	return slices.DeleteFunc(accounts, func(a string) bool { return a == account }), nil
}

// Peers lists the devices of the accounts related to account (by an active
// relation or a shared group) and account's own devices other than self,
// with their status and addresses: per account, at most MaxDevices, those
// connected, with addresses or seen lately (peerDevices).
func (s *Server) Peers(ctx context.Context, account, self string) ([]wire.PeerInfo, error) {
	accounts, err := s.contacts(ctx, account)
	if err != nil {
		return nil, err
	}
	accounts = append(accounts, account)
	out := []wire.PeerInfo{}
	for _, a := range accounts {
		devices, err := s.db.Devices(ctx, a)
		if err != nil {
			return nil, err
		}
		for _, d := range s.peerDevices(devices, time.Now()) {
			if d.ID == self {
				continue
			}
			status := statusOffline
			if sess, ok := s.sessions.device(d.ID); ok && !sess.cl.Closed() {
				status = sess.Status()
			}
			addrs := d.Addrs
			if addrs == nil {
				addrs = []string{}
			}
			out = append(out, wire.PeerInfo{User: a, Device: d.ID, Status: status, Addrs: addrs})
		}
	}
	return out, nil
}

func (s *Server) token(ctx context.Context, c *call) (any, error) {
	token, hash := randomToken()
	expires := time.Now().Add(s.cfg.TokenTTL)
	if err := s.db.PutToken(ctx, hash, c.sess.account, expires); err != nil {
		return nil, err
	}
	return wire.Token{Token: token, Expires: expires.UnixMilli()}, nil
}
