package server

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// requestTopic is what a client's PUBLISH topic becomes once the hook has
// queued the request: a valid MQTT topic name (the URI topics may hold '#'
// or '+', which MQTT forbids in a topic name) that nothing subscribes to.
const requestTopic = "$mqtter/request"

// hook connects mochi to the IM service.
type hook struct {
	mqtt.HookBase
	srv *Server
}

func (h *hook) ID() string { return "mqtter" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnPacketRead, mqtt.OnPublish, mqtt.OnPacketEncode,
	}, []byte{b})
}

// OnConnectAuthenticate checks the account's password and binds the client
// id to the account as its device. The work runs on a goroutine of its own:
// SQLite (transpiled C) grows a goroutine's stack to tens of KiB, and the
// connection's goroutine, which then idles in its read loop for hours, would
// keep that stack.
//
// Once shutdown has started a CONNECT is refused with "server unavailable"
// (which clients retry), also when it started before: the broker has already
// closed the clients it knew, and would not close this one.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	ok := make(chan bool, 1)
	go func() { ok <- !h.srv.stopping.Load() && h.authenticate(cl, pk) }()
	if <-ok && !h.srv.stopping.Load() {
		return true
	}
	if h.srv.stopping.Load() {
		h.srv.byClient.Delete(cl)
		h.srv.mqtt.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		cl.Stop(packets.ErrServerShuttingDown)
	}
	return false
}

func (h *hook) authenticate(cl *mqtt.Client, pk packets.Packet) bool {
	s := h.srv
	account := string(cl.Properties.Username)
	log := s.log.With("account", account, "device", cl.ID, "remote", cl.Net.Remote)
	refuse := func(reason string, args ...any) bool {
		log.Info("connect refused", append([]any{"reason", reason}, args...)...)
		s.metrics.connectsRefused.Inc()
		return false
	}
	// unavailable answers a failure of ours with CONNACK "server
	// unavailable", which clients retry, instead of the "bad user name or
	// password" that returning false sends (and clients give up on).
	unavailable := func(reason string, err error) bool {
		log.Warn("connect failed", "reason", reason, "err", err)
		s.mqtt.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		cl.Stop(err)
		return false
	}
	if !wire.ValidAccount(account) {
		return refuse("bad account name")
	}
	if cl.ID == "" || len(cl.ID) > 128 || cl.ID == wire.ServerDevice {
		return refuse("bad client id")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	knownDevice := func(ctx context.Context) (bool, error) {
		owner, err := s.db.DeviceAccount(ctx, cl.ID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil && owner == account, err
	}
	acct, err := s.login(ctx, account, string(pk.Connect.Password), cl.Net.Remote, knownDevice)
	switch {
	case errors.Is(err, errLoginRefused):
		return refuse("wrong password or unknown account")
	case errors.Is(err, errThrottled):
		// "Server unavailable", which clients retry later, so that the
		// owner's devices caught by a back-off come back once it ends.
		log.Info("connect refused", "reason", "throttled")
		s.metrics.connectsRefused.Inc()
		s.mqtt.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		cl.Stop(err)
		return false
	case err != nil:
		return unavailable("login", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	owner, err := s.db.DeviceAccount(ctx, cl.ID)
	switch {
	case err == nil && owner != account:
		return refuse("device belongs to another account")
	case errors.Is(err, store.ErrNotFound):
		_, err := s.db.TouchDevice(ctx, cl.ID, account, time.Now())
		if errors.Is(err, store.ErrDeviceTaken) {
			return refuse("device belongs to another account")
		}
		if err != nil {
			return unavailable("device", err)
		}
	case err != nil:
		return unavailable("store", err)
	}
	sess := newSession(s, cl, account, acct.Kind)
	if err := s.adoptSession(ctx, sess); errors.Is(err, errBehindBridge) {
		return refuse(err.Error())
	} else if err != nil {
		return unavailable("adoption", err)
	}
	if sess.adopted == nil { // an adopted device speaks its dialect, with no IM session to keep
		if err := s.openPersistent(ctx, sess, pk); errors.Is(err, store.ErrTooManySessions) {
			log.Info("connect refused", "reason", err)
			s.metrics.connectsRefused.Inc()
			s.refuseSession(cl, err)
			return false
		} else if err != nil {
			return unavailable("session", err)
		}
	}
	s.byClient.Store(cl, sess)
	return true
}

// OnACLCheck lets a client publish only what the hook turned into a request.
// SUBSCRIBEs never reach the broker (OnPacketRead takes them, see
// subscribe.go); should one, it may subscribe only under the protocol's own
// schemes, where nothing but its own answers and pushes ever arrive.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		return topic == requestTopic
	}
	for _, p := range []string{"im://", "impush://", "http://", "https://"} {
		if strings.HasPrefix(topic, p) {
			return true
		}
	}
	return false
}

// OnSessionEstablish registers the device before its CONNACK goes out, so
// that anything sent to it once its client can act is pushed to it.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if c, ok := cl.Net.Conn.(*gatedConn); ok {
		c.authenticated()
	}
	sess := h.srv.session(cl)
	if sess == nil {
		return
	}
	h.srv.sessions.add(sess)
	h.srv.metrics.connections.Inc()
	h.srv.log.Debug("connected", "account", sess.account, "device", sess.device)
}

// OnSessionEstablished tells related accounts the device is online, and
// queues the replay of what it missed.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	sess := h.srv.session(cl)
	if sess == nil {
		return
	}
	sess.opened()
	sess.enqueue(request{task: func() {
		h.srv.presenceChanged(sess, statusOnline)
		if sess.adopted == nil {
			h.srv.resumed(sess)
			h.srv.replay(sess)
		} else {
			h.srv.adapters.connected(sess)
		}
	}})
}

// OnDisconnect records last-seen and tells related accounts the device went
// offline, unless a newer connection of the same device took over.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	s := h.srv
	v, ok := s.byClient.LoadAndDelete(cl)
	if !ok {
		return
	}
	sess := v.(*session)
	sess.close()
	s.closePersistent(sess)
	if !s.sessions.remove(sess) {
		return
	}
	s.metrics.connections.Dec()
	s.log.Debug("disconnected", "account", sess.account, "device", sess.device, "err", err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.db.SetLastSeen(ctx, sess.device, time.Now()); err != nil {
		s.log.Warn("record last seen", "device", sess.device, "err", err)
	}
	s.presenceChanged(sess, statusOffline)
	if sess.adopted != nil {
		s.adapters.dropped(sess)
	}
}

// OnPacketRead queues every PUBLISH as a request of its client, in order,
// before mochi validates the topic; PINGREQ refreshes presence.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		sess := h.srv.session(cl)
		if sess == nil {
			return pk, nil
		}
		sess.touch()
		if pk.FixedHeader.Qos == 1 && pk.PacketID != 0 {
			// Acknowledged by us, ahead of the answer and through the same
			// queue; mochi then treats it as QoS 0 and sends nothing.
			sess.puback(pk.PacketID)
			pk.FixedHeader.Qos, pk.PacketID = 0, 0
		}
		sess.decide(modeUnasked)
		if sess.adopted != nil {
			// Its firmware's dialect, never a request; never retained.
			h.srv.fromAdopted(sess, pk.TopicName, pk.Payload)
			pk.TopicName, pk.FixedHeader.Retain = requestTopic, false
			return pk, nil
		}
		r := request{topic: pk.TopicName, body: pk.Payload, received: time.Now()}
		if !inlineTopic(r.topic) || !sess.tryInline(r) {
			sess.enqueue(r)
		}
		pk.TopicName = requestTopic
	case packets.Pingreq:
		if sess := h.srv.session(cl); sess != nil {
			sess.touch()
			sess.decide(modeUnasked)
		}
	case packets.Puback:
		if sess := h.srv.session(cl); sess != nil {
			sess.acked(pk.PacketID)
		}
	case packets.Subscribe:
		sess := h.srv.session(cl)
		if sess == nil || pk.PacketID == 0 || len(pk.Filters) == 0 {
			return pk, nil // the broker refuses it
		}
		sess.touch()
		reqs := make([]subRequest, len(pk.Filters))
		for i, f := range pk.Filters {
			reqs[i] = subRequest{filter: f.Filter, qos: f.Qos}
		}
		if sess.adopted != nil {
			h.srv.adoptedSubscribe(sess, pk.PacketID, reqs)
			return ignored(pk), nil
		}
		h.srv.takeSubscribe(sess, pk.PacketID, reqs, userProperty(pk, expiresProperty))
		return ignored(pk), nil
	case packets.Unsubscribe:
		sess := h.srv.session(cl)
		if sess == nil || pk.PacketID == 0 || len(pk.Filters) == 0 {
			return pk, nil
		}
		sess.touch()
		if sess.adopted != nil {
			h.srv.adoptedUnsubscribe(sess, pk.PacketID, len(pk.Filters))
			return ignored(pk), nil
		}
		filters := make([]string, len(pk.Filters))
		for i, f := range pk.Filters {
			filters[i] = f.Filter
		}
		h.srv.takeUnsubscribe(sess, pk.PacketID, filters, userProperty(pk, "keep_seconds"))
		return ignored(pk), nil
	case packets.Disconnect:
		if sess := h.srv.session(cl); sess != nil && pk.Properties.SessionExpiryIntervalFlag {
			h.srv.disconnectExpiry(sess, pk.Properties.SessionExpiryInterval)
			// Taken: the broker, which keeps no session, would call a new
			// interval a protocol error.
			pk.Properties.SessionExpiryIntervalFlag, pk.Properties.SessionExpiryInterval = false, 0
		}
	case packets.Connect:
		// The server itself tells a device's contacts when it drops off
		// (presence, at once): a will goes nowhere, and a retained one,
		// which standard devices send, must not get the CONNECT refused
		// for retained messages being off.
		pk.Connect.WillRetain = false
	}
	return pk, nil
}

// ignored is what a SUBSCRIBE or UNSUBSCRIBE the server took becomes for
// the broker: a QoS 0 PUBLISH of a request, which OnPublish drops, so the
// broker neither records a subscription nor answers it.
func ignored(pk packets.Packet) packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish},
		TopicName:       requestTopic,
		ProtocolVersion: pk.ProtocolVersion,
	}
}

// userProperty returns the value of an MQTT 5 user property of pk, or "".
func userProperty(pk packets.Packet, key string) string {
	for _, p := range pk.Properties.User {
		if p.Key == key {
			return p.Val
		}
	}
	return ""
}

// encodeSuback and encodeUnsuback keep the packet types inside the hook.
func encodeSuback(version byte, id uint16, codes []byte, reason string) []byte {
	return encodeSubAck(packets.Suback, version, id, codes, reason)
}

func encodeUnsuback(version byte, id uint16, codes []byte, reason string) []byte {
	return encodeSubAck(packets.Unsuback, version, id, codes, reason)
}

// encodeSubAck encodes the SUBACK (typ packets.Suback) or UNSUBACK (typ
// packets.Unsuback) of packet id with a reason code per filter (for a
// SUBACK the granted QoS or codeRefused; for an UNSUBACK success,
// codeNoSubscription or codeRefused, which only MQTT 5 carries); an MQTT 5
// client also gets the first refusal's reason.
func encodeSubAck(typ, version byte, id uint16, codes []byte, reason string) []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: typ},
		PacketID:        id,
		ReasonCodes:     codes,
		ProtocolVersion: version,
	}
	if version == 5 {
		pk.Properties.ReasonString = reason
	}
	var buf bytes.Buffer
	if typ == packets.Suback {
		pk.SubackEncode(&buf) // cannot fail
	} else {
		pk.UnsubackEncode(&buf)
	}
	return buf.Bytes()
}

// OnPacketEncode sets the session present flag and the granted session
// expiry of a CONNACK (persist.go).
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack {
		return h.srv.connack(cl, pk)
	}
	return pk
}

// OnPublish acknowledges requests without routing them to subscribers.
func (h *hook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, packets.CodeSuccessIgnore
}

func (s *Server) session(cl *mqtt.Client) *session {
	v, ok := s.byClient.Load(cl)
	if !ok {
		return nil
	}
	return v.(*session)
}

// inlineTopic reports a request cheap enough to run on the client's read
// loop: a send, which only checks the message and queues it to the store.
func inlineTopic(topic string) bool {
	t, err := wire.ParseTopic(topic)
	return err == nil && t.Scheme == wire.SchemeIM && t.Method() == wire.MethodSend
}
