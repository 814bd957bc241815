package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// Persistent MQTT sessions and temporary subscriptions (docs/protocol.md,
// "Subscriptions"). The store keeps a session's subscriptions, not its
// messages: what a device missed comes from its delivery cursors, as for
// every device, so a resumed session replays in SeqId order and a QoS 1
// message not acknowledged before the drop, which held its cursor back,
// is sent again. mochi keeps no session of its own (its maximum session
// expiry is 0, so it forgets a client within a second of its disconnect,
// and the server never uses its inflight store, so it resends nothing):
// the CONNACK's session present flag and expiry interval are set here
// (connack), since mochi's would say what it kept.

const (
	// expiresProperty is the MQTT 5 user property of a SUBSCRIBE that makes
	// its subscriptions temporary: they end after that many seconds.
	expiresProperty = "expires_seconds"
	// expiredBatch is how many ended temporary subscriptions of absent
	// clients one store call takes.
	expiredBatch = 256
	// evWithdrawn tells the other side that a pending friend request went
	// away with the temporary subscription that made it.
	evWithdrawn = "withdrawn"
)

// persistence is what a client's MQTT session keeps beyond its connection.
type persistence struct {
	present bool   // a stored session was resumed: the CONNACK says so
	stored  bool   // the session is stored: its subscriptions are written through
	opened  int64  // this connection's mark on the stored session
	asked   bool   // an MQTT 5 client gave a Session Expiry Interval
	granted uint32 // the interval granted it, in seconds, for the CONNACK
	// keep is how long (ns) the session outlives the connection; an MQTT 5
	// DISCONNECT may change it.
	keep atomic.Int64
	// ends holds the timers that end temporary subscriptions, by filter
	// (at most maxSubscriptions); under the session's omu.
	ends map[string]*time.Timer
}

// sessionTerms reads from a CONNECT whether it starts clean and how long
// its session outlives the connection: for MQTT 3.1.1, clean session false
// keeps it SessionMax; for MQTT 5, the Session Expiry Interval, cut to
// SessionMax.
func (s *Server) sessionTerms(pk packets.Packet) (clean bool, keep time.Duration, asked bool, granted uint32) {
	clean = pk.Connect.Clean
	if pk.ProtocolVersion < 5 {
		if !clean {
			keep = s.cfg.SessionMax
		}
		return clean, keep, false, 0
	}
	if v := pk.Properties.SessionExpiryInterval; v > 0 {
		keep = min(time.Duration(v)*time.Second, s.cfg.SessionMax)
		asked, granted = true, uint32(keep/time.Second)
	}
	return clean, keep, asked, granted
}

// openPersistent starts or resumes the stored session of a connecting
// client: a resumed one's subscriptions are in force before its CONNACK
// (it is a subscriber from the start), and its temporary subscriptions
// end when their time comes. It returns store.ErrTooManySessions when the
// account holds MaxSessions already.
func (s *Server) openPersistent(ctx context.Context, sess *session, pk packets.Packet) error {
	clean, keep, asked, granted := s.sessionTerms(pk)
	now := time.Now()
	present, subs, opened, err := s.db.OpenSession(ctx, store.SessionOpen{
		ClientID: sess.device, Account: sess.account, Clean: clean, Keep: keep, Max: s.cfg.MaxSessions,
	}, now)
	if err != nil {
		return err
	}
	ps := &sess.ps
	ps.present, ps.stored, ps.opened, ps.asked, ps.granted = present, present || keep > 0, opened, asked, granted
	ps.keep.Store(int64(keep))
	var restored []subscription
	var ended []store.SessionSub
	for _, sub := range subs {
		if sub.Expires != 0 && sub.Expires <= now.UnixMilli() {
			ended = append(ended, sub)
			continue
		}
		restored = append(restored, subscription{filter: sub.Filter, qos: sub.QoS, expires: sub.Expires, made: sub.Made})
	}
	if present {
		filters := make([]string, len(restored))
		for i, sub := range restored {
			filters[i] = sub.filter
		}
		s.log.Debug("session resumed", "device", sess.device, "filters", filters, "ended", len(ended))
	}
	if len(restored) > 0 {
		sess.omu.Lock()
		sess.subs, sess.mode = restored, modeSubscribed
		sess.omu.Unlock()
		for _, sub := range restored {
			s.scheduleEnd(sess, sub)
		}
	}
	if len(ended) > 0 {
		sess.enqueue(request{task: func() {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			for _, sub := range ended {
				if err := s.db.DeleteSessionSubs(ctx, sess.device, []string{sub.Filter}); err != nil {
					s.log.Warn("end temporary subscription", "device", sess.device, "filter", sub.Filter, "err", err)
				}
				s.undoStanding(ctx, sess.account, sub.Filter, sub.Made)
			}
		}})
	}
	return nil
}

// refuseSession answers a CONNECT whose persistent session would be one
// more than the account may hold (store.ErrTooManySessions): MQTT 5 gets
// "quota exceeded" with the reason, MQTT 3.1.1 "not authorized" (retrying
// does not help until a session of the account ends).
func (s *Server) refuseSession(cl *mqtt.Client, err error) {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: packets.Err3NotAuthorized.Code}
	if cl.Properties.ProtocolVersion == 5 {
		ack.ReasonCode = packets.ErrQuotaExceeded.Code
		ack.Properties.ReasonString = fmt.Sprintf("%s: at most %d per account (a clean connect of one ends it)",
			store.ErrTooManySessions, s.cfg.MaxSessions)
	}
	if werr := cl.WritePacket(ack); werr != nil {
		s.log.Debug("refuse session", "device", cl.ID, "err", werr)
	}
	cl.Stop(err)
}

// connack sets what mochi cannot know in a successful CONNACK: whether a
// stored session was resumed and, for MQTT 5, the expiry interval granted.
func (s *Server) connack(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	sess := s.session(cl)
	if sess == nil || pk.ReasonCode != 0 {
		return pk
	}
	pk.SessionPresent = sess.ps.present
	if sess.ps.asked {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = sess.ps.granted, true
	}
	return pk
}

// disconnectExpiry takes the Session Expiry Interval of an MQTT 5
// DISCONNECT: the session then outlives the connection that long (cut to
// SessionMax), or ends with it at 0. A session that was to end with its
// connection cannot be made to last (MQTT 5 calls that a protocol error).
func (s *Server) disconnectExpiry(sess *session, seconds uint32) {
	if !sess.ps.stored || (sess.ps.keep.Load() == 0 && seconds > 0) {
		return
	}
	sess.ps.keep.Store(int64(min(time.Duration(seconds)*time.Second, s.cfg.SessionMax)))
}

// closePersistent stops the session's temporary subscription timers and
// starts the stored session's time away (or ends it, without one).
func (s *Server) closePersistent(sess *session) {
	sess.omu.Lock()
	for _, t := range sess.ps.ends {
		t.Stop()
	}
	sess.ps.ends = nil
	sess.omu.Unlock()
	if !sess.ps.stored {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.db.CloseSession(ctx, sess.device, sess.ps.opened, time.Duration(sess.ps.keep.Load()), time.Now()); err != nil {
		s.log.Warn("close persistent session", "device", sess.device, "err", err)
	}
}

// resumed sends a client whose stored session came back the current
// presence its restored filters match, as a SUBSCRIBE would have.
func (s *Server) resumed(sess *session) {
	if !sess.ps.present {
		return
	}
	sess.omu.Lock()
	subs := sess.subs
	sess.omu.Unlock()
	filters := make([]string, len(subs))
	for i, sub := range subs {
		filters[i] = sub.filter
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	s.presenceSnapshot(ctx, sess, filters)
}

// subscriptionExpiry parses the expires_seconds of a SUBSCRIBE into when
// its subscriptions end (unix ms; 0 when absent), cut to SessionMax.
func (s *Server) subscriptionExpiry(v string, now time.Time) (int64, error) {
	return expiresAt(v, now, s.cfg.SessionMax)
}

// expiresAt is now plus v seconds, at most longest, in unix ms; 0 for "".
// v must be a whole number over 0.
func expiresAt(v string, now time.Time, longest time.Duration) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil:
		return 0, badRequest("%s: %v", expiresProperty, errors.Unwrap(err))
	case n <= 0:
		return 0, badRequest("%s must be over 0", expiresProperty)
	}
	d := longest
	if n < int64(longest/time.Second) {
		d = time.Duration(n) * time.Second
	}
	return now.Add(d).UnixMilli(), nil
}

// subscribed records granted filters (made says which asked for their
// relation) in the stored session and arms the end of the temporary ones.
func (s *Server) subscribed(ctx context.Context, sess *session, granted []string, made []bool) error {
	var rows []store.SessionSub
	sess.omu.Lock()
	subs := slices.Clone(sess.subs)
	for i, f := range granted {
		if j := slices.IndexFunc(subs, func(x subscription) bool { return x.filter == f }); j >= 0 {
			subs[j].made = subs[j].made || made[i]
			rows = append(rows, store.SessionSub{Filter: f, QoS: subs[j].qos, Expires: subs[j].expires, Made: subs[j].made})
		}
	}
	sess.subs = subs
	sess.omu.Unlock()
	for _, r := range rows {
		s.scheduleEnd(sess, subscription{filter: r.Filter, qos: r.QoS, expires: r.Expires, made: r.Made})
	}
	if !sess.ps.stored || len(rows) == 0 {
		return nil
	}
	return s.db.PutSessionSubs(ctx, sess.device, rows)
}

// unsubscribed drops filters from the stored session and their timers.
func (s *Server) unsubscribed(ctx context.Context, sess *session, filters []string) {
	sess.omu.Lock()
	for _, f := range filters {
		if t := sess.ps.ends[f]; t != nil {
			t.Stop()
			delete(sess.ps.ends, f)
		}
	}
	sess.omu.Unlock()
	if !sess.ps.stored {
		return
	}
	if err := s.db.DeleteSessionSubs(ctx, sess.device, filters); err != nil {
		s.log.Warn("unsubscribe: stored session", "device", sess.device, "err", err)
	}
}

// scheduleEnd arms the end of a temporary subscription (and disarms that
// of a filter made permanent).
func (s *Server) scheduleEnd(sess *session, sub subscription) {
	sess.omu.Lock()
	defer sess.omu.Unlock()
	if t := sess.ps.ends[sub.filter]; t != nil {
		t.Stop()
		delete(sess.ps.ends, sub.filter)
	}
	if sub.expires == 0 || sess.closed {
		return
	}
	if sess.ps.ends == nil {
		sess.ps.ends = make(map[string]*time.Timer)
	}
	d := max(time.Until(time.UnixMilli(sub.expires)), 0)
	sess.ps.ends[sub.filter] = time.AfterFunc(d, func() { s.subscriptionEnded(sess, sub.filter, sub.expires) })
}

// subscriptionEnded ends a temporary subscription whose time came, in the
// client's request order, as if the client had unsubscribed, except for
// what it stood for: undoStanding.
func (s *Server) subscriptionEnded(sess *session, filter string, expires int64) {
	sess.enqueue(request{task: func() {
		sess.omu.Lock()
		i := slices.IndexFunc(sess.subs, func(x subscription) bool { return x.filter == filter && x.expires == expires })
		var sub subscription
		if i >= 0 {
			sub = sess.subs[i]
		}
		sess.omu.Unlock()
		if i < 0 {
			return // unsubscribed or subscribed anew meanwhile
		}
		sess.unsubscribe(filter)
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		s.unsubscribed(ctx, sess, []string{filter})
		s.undoStanding(ctx, sess.account, filter, sub.made)
		s.log.Info("temporary subscription ended", "account", sess.account, "device", sess.device, "filter", filter)
	}})
}

// undoStanding undoes, at the end of a temporary subscription, the
// relation the subscription itself asked for (made): a friend request
// still pending is withdrawn, and a friendship it led to goes to the
// recycle bin, restorable, as an UNSUBSCRIBE puts it. A relation that was
// there before the subscription, a binding and a group are left alone.
func (s *Server) undoStanding(ctx context.Context, account, filter string, made bool) {
	f, err := wire.ParseFilter(filter)
	if !made || err != nil || f.Kind != wire.FilterDM {
		return
	}
	event := ""
	now := time.Now()
	err = s.changeRelation(ctx, account, f.Name, func(ctx context.Context, tx store.Tx, r store.Relation, found bool) error {
		switch {
		case !found || r.Kind != store.KindFriend:
		case r.State == store.StatePending && r.Actor == account:
			event = evWithdrawn
			return store.DeleteRelation(ctx, tx, account, f.Name)
		case r.State == store.StateActive:
			event = evRemoved
			r.State, r.Actor, r.Since, r.Expires = store.StateRecycled, account, now.UnixMilli(), now.Add(s.cfg.RecycleMax).UnixMilli()
			return store.PutRelation(ctx, tx, r)
		}
		return nil
	})
	if err != nil {
		s.log.Warn("end temporary subscription: relation", "account", account, "user", f.Name, "err", err)
		return
	}
	if event == "" {
		return
	}
	s.relationEvent(f.Name, wire.RelationEvent{Event: event, User: account})
	if rels, err := s.relationsOf(ctx, account); err == nil {
		if body, err := json.Marshal(rels); err == nil {
			s.pushAccount(account, wire.PushRelations, body)
		}
	}
}

// sweepPersistent ends the temporary subscriptions whose time came while
// their client was away, and deletes the sessions that ended.
func (s *Server) sweepPersistent(ctx context.Context) {
	now := time.Now()
	for {
		ended, err := s.db.TakeExpiredSubs(ctx, now, expiredBatch)
		if err != nil {
			s.log.Warn("temporary subscriptions", "err", err)
			return
		}
		for _, e := range ended {
			if sess, ok := s.sessions.device(e.ClientID); ok && sess.account == e.Account {
				s.subscriptionEnded(sess, e.Filter, e.Expires)
				continue
			}
			s.undoStanding(ctx, e.Account, e.Filter, e.Made)
		}
		if len(ended) < expiredBatch {
			break
		}
	}
	if n, err := s.db.PurgeSessions(ctx, now); err != nil {
		s.log.Warn("purge persistent sessions", "err", err)
	} else if n > 0 {
		s.log.Info("persistent sessions ended", "count", n)
	}
}
