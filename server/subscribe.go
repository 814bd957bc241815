package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// SUBSCRIBE and UNSUBSCRIBE (docs/protocol.md, "Subscriptions"): the hook
// takes them off the broker and they run here, in the client's request
// order, through the same methods as the im:// requests.

// Reason codes of SUBACK and UNSUBACK.
const (
	codeRefused        = 0x80 // SUBACK failure; MQTT 5 "unspecified error"
	codeNoSubscription = 0x11 // MQTT 5 UNSUBACK: no subscription existed
)

// subRequest is one filter of a SUBSCRIBE, with the QoS asked for.
type subRequest struct {
	filter string
	qos    byte
}

// takeSubscribe takes a SUBSCRIBE on the client's read loop: the filters
// that parse are in force at once (so nothing matching is missed), and the
// rest (the relation each stands for, the SUBACK, what the client missed)
// is queued behind the client's earlier requests.
//
// expiresSeconds (the MQTT 5 user property expires_seconds, "" when
// absent) makes the subscriptions temporary (persist.go); a bad one
// refuses them all.
func (s *Server) takeSubscribe(sess *session, id uint16, reqs []subRequest, expiresSeconds string) {
	codes := make([]byte, len(reqs))
	expires, err := s.subscriptionExpiry(expiresSeconds, time.Now())
	if err != nil {
		for i := range codes {
			codes[i] = codeRefused
		}
		text, _ := errorText(err)
		sess.enqueue(request{task: func() {
			sess.push(outPacket{raw: encodeSuback(sess.cl.Properties.ProtocolVersion, id, codes, text)})
		}})
		return
	}
	filters := make([]wire.Filter, len(reqs))
	var add []subscription
	var addAt []int
	for i, r := range reqs {
		f, err := wire.ParseFilter(r.filter)
		if err != nil {
			codes[i] = codeRefused
			s.log.Info("subscribe refused", "account", sess.account, "device", sess.device, "filter", r.filter, "reason", err)
			continue
		}
		filters[i], codes[i] = f, min(r.qos, 1)
		add = append(add, subscription{filter: r.filter, qos: codes[i], expires: expires})
		addAt = append(addAt, i)
	}
	var rows []store.SessionSub
	for j, ok := range sess.subscribe(add) {
		if !ok {
			codes[addAt[j]] = codeRefused
			s.log.Info("subscribe refused", "account", sess.account, "device", sess.device, "filter", add[j].filter,
				"reason", fmt.Sprintf("more than %d subscriptions", maxSubscriptions))
			continue
		}
		rows = append(rows, store.SessionSub{Filter: add[j].filter, QoS: add[j].qos, Expires: add[j].expires})
	}
	// Into the stored session now, as the subscription takes effect: a
	// client that leaves at once (having got what it brought) and comes
	// back finds it, whatever the queued recording below has done by
	// then. That recording settles what the subscription stands for and
	// writes it again, with that.
	if sess.ps.stored && len(rows) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		if err := s.db.PutSessionSubs(ctx, sess.device, rows); err != nil {
			s.log.Warn("subscribe: stored session", "device", sess.device, "err", err)
		}
		cancel()
	}
	// Durable: a client that disconnects right after its SUBSCRIBE (having
	// got what the subscription brought at once) still has it recorded,
	// in its stored session and in what it stands for.
	sess.enqueue(request{durable: true, task: func() { s.recordSubscriptions(sess, id, reqs, filters, codes) }})
}

// recordSubscriptions makes each filter a standing subscription (standing),
// answers with the SUBACK, then sends the current presence and the
// messages after the device's cursor that the granted filters match.
func (s *Server) recordSubscriptions(sess *session, id uint16, reqs []subRequest, filters []wire.Filter, codes []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var reason string
	var granted []string
	var made []bool
	for i, r := range reqs {
		if codes[i] == codeRefused {
			continue
		}
		asked, err := s.standing(ctx, sess, filters[i])
		if err != nil {
			codes[i] = codeRefused
			sess.unsubscribe(r.filter)
			text, _ := errorText(err)
			if reason == "" {
				reason = text
			}
			s.log.Info("subscribe refused", "account", sess.account, "device", sess.device, "filter", r.filter, "reason", text)
			continue
		}
		granted = append(granted, r.filter)
		made = append(made, asked)
	}
	if err := s.subscribed(ctx, sess, granted, made); err != nil {
		// The subscriptions hold for this connection only; the SUBACK must
		// not say they were recorded for the next.
		s.log.Warn("subscribe: stored session", "device", sess.device, "err", err)
		for i := range codes {
			if codes[i] != codeRefused {
				codes[i], reason = codeRefused, "the session could not be stored"
			}
		}
		sess.unsubscribe(granted...)
		granted = nil
	}
	sess.push(outPacket{raw: encodeSuback(sess.cl.Properties.ProtocolVersion, id, codes, reason)})
	if len(granted) == 0 {
		return
	}
	s.presenceSnapshot(ctx, sess, granted)
	replayed := make(map[string]int64)
	sess.holdNews()
	defer sess.replayed(replayed)
	s.replayConversations(ctx, sess, func(feeds string) bool {
		topic := wire.FeedsTopic(sess.account, feeds)
		return slices.ContainsFunc(granted, func(f string) bool { return wire.MatchFilter(f, topic) })
	}, replayed)
}

// standing records what a subscription to f stands for, through the
// im:// methods: to a person, a friend request (or its acceptance, or the
// restore of a relation the subscriber put in the recycle bin); to a group
// the subscriber is not in, an application to join; to a thing's feed, it
// must be one of its readers already. A subscription to a
// relation or group that exists already, to a presence the subscriber
// sees, or under a wildcard or the protocol's schemes is just a
// subscription. An error refuses the subscription; made reports that it
// asked for a friendship (a request, an acceptance or a restore).
func (s *Server) standing(ctx context.Context, sess *session, f wire.Filter) (made bool, err error) {
	me := sess.account
	switch f.Kind {
	case wire.FilterDM:
		if f.Name == me {
			return false, badRequest("that is you")
		}
		r, found, err := s.dir.relation(ctx, me, f.Name)
		if err != nil {
			return false, err
		}
		live := found && !(r.State == store.StateRecycled && r.Expires < time.Now().UnixMilli())
		switch {
		case live && r.State == store.StateActive, live && r.State == store.StatePending && r.Actor == me:
			return false, nil
		case live && r.State == store.StateRecycled && r.Actor == me:
			return true, s.invoke(ctx, sess, "restore_friend", wire.UserReq{User: f.Name})
		}
		return true, s.invoke(ctx, sess, "add_friend", wire.UserReq{User: f.Name})
	case wire.FilterGroup:
		g, err := s.groupArg(ctx, f.Name)
		if err != nil {
			return false, err
		}
		if g.IsMember(me) || slices.Contains(g.Applicants, me) {
			return false, nil
		}
		return false, s.invoke(ctx, sess, "apply_join_feeds", wire.FeedsReq{Feeds: f.Name})
	case wire.FilterThing:
		// Reading a thing's feed comes with a binding or an association,
		// which a subscription cannot make.
		ok, err := rights{ctx, s}.Member(f.Name, me)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, forbidden("not a reader of %s", f.Name)
		}
	case wire.FilterPresence:
		if f.Name == me {
			return false, nil
		}
		contacts, err := s.contacts(ctx, me)
		if err != nil {
			return false, err
		}
		if !slices.Contains(contacts, f.Name) {
			return false, forbidden("%s is not related to you", f.Name)
		}
	}
	return false, nil
}

// invoke runs an im:// method for sess, as a request with body req would.
func (s *Server) invoke(ctx context.Context, sess *session, method string, req any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	c := &call{srv: s, sess: sess, method: method, body: body, trace: wire.NewTrace(), start: time.Now()}
	_, err = methods[method](s, ctx, c)
	s.metrics.request(method, err, time.Since(c.start))
	if err == nil && changesRelations[method] {
		s.pushRelationsToOthers(ctx, sess)
	}
	return err
}

// presenceSnapshot sends a subscriber the current presence of every device
// of the accounts whose presence topic one of filters matches: the
// retained availability, before any change.
func (s *Server) presenceSnapshot(ctx context.Context, sess *session, filters []string) {
	var accounts []string
	for _, f := range filters {
		pf, err := wire.ParseFilter(f)
		switch {
		case err != nil:
		case pf.Kind == wire.FilterPresence:
			accounts = append(accounts, pf.Name)
		case pf.Kind == wire.FilterWildcard && strings.HasPrefix(f, wire.TopicPresence):
			// Every contact: those whose topic f matches are kept below.
			contacts, err := s.contacts(ctx, sess.account)
			if err != nil {
				s.log.Warn("presence snapshot: contacts", "account", sess.account, "err", err)
				return
			}
			accounts = append(append(accounts, sess.account), contacts...)
		}
	}
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)
	now := time.Now()
	for _, a := range accounts {
		topic := wire.PresenceTopic(a)
		if !slices.ContainsFunc(filters, func(f string) bool { return wire.MatchFilter(f, topic) }) {
			continue
		}
		devices, err := s.db.Devices(ctx, a)
		if err != nil {
			s.log.Warn("presence snapshot: devices", "account", a, "err", err)
			continue
		}
		for _, d := range s.peerDevices(devices, now) {
			if d.ID == sess.device {
				continue
			}
			p := wire.Presence{User: a, Device: d.ID, Status: statusOffline, LastSeen: d.LastSeen}
			if other, ok := s.sessions.device(d.ID); ok && !other.cl.Closed() {
				p.Status, p.LastSeen = other.Status(), 0
			}
			if body, err := json.Marshal(p); err == nil {
				sess.send(topic, body)
			}
		}
	}
}

// takeUnsubscribe takes an UNSUBSCRIBE on the client's read loop: nothing
// more arrives on the filters from now; the relation each stood for goes
// to the recycle bin (keepSeconds, from the MQTT 5 user property
// "keep_seconds", as remove_friend's keep_seconds) in the client's request
// order, and the UNSUBACK follows.
func (s *Server) takeUnsubscribe(sess *session, id uint16, filters []string, keepSeconds string) {
	had := sess.unsubscribe(filters...)
	// Out of a stored session now, since a client that disconnects right
	// after its UNSUBSCRIBE loses the queued task; and again in order,
	// after any SUBSCRIBE of the same filter still queued.
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	s.unsubscribed(ctx, sess, filters)
	cancel()
	sess.enqueue(request{task: func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		s.unsubscribed(ctx, sess, filters)
		codes := make([]byte, len(filters))
		reason := ""
		for i, filter := range filters {
			if !had[i] {
				codes[i] = codeNoSubscription
			}
			err := s.endStanding(ctx, sess, filter, keepSeconds)
			if err != nil {
				codes[i] = codeRefused
				text, _ := errorText(err)
				if reason == "" {
					reason = text
				}
				s.log.Info("unsubscribe: relation kept", "account", sess.account, "device", sess.device, "filter", filter, "reason", text)
			}
		}
		sess.push(outPacket{raw: encodeUnsuback(sess.cl.Properties.ProtocolVersion, id, codes, reason)})
	}})
}

// endStanding ends what a subscription to filter stands for: a friendship
// goes to the recycle bin (remove_friend). A binding, a pending request or
// a group membership stays: they end by their own methods.
func (s *Server) endStanding(ctx context.Context, sess *session, filter, keepSeconds string) error {
	f, err := wire.ParseFilter(filter)
	if err != nil || f.Kind != wire.FilterDM || f.Name == sess.account {
		return nil
	}
	r, found, err := s.dir.relation(ctx, sess.account, f.Name)
	if err != nil {
		return err
	}
	if !found || r.State != store.StateActive || r.Kind != store.KindFriend {
		return nil
	}
	req := wire.UserReq{User: f.Name}
	if keepSeconds != "" {
		if req.KeepSeconds, err = strconv.ParseInt(keepSeconds, 10, 64); err != nil {
			return badRequest("keep_seconds: %v", errors.Unwrap(err))
		}
	}
	return s.invoke(ctx, sess, "remove_friend", req)
}
