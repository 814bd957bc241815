package server

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqtter/mqtter/wire"
)

const (
	// maxQueuedRequests bounds a client's requests waiting for a worker; past
	// it the client's own read loop waits, so one busy client slows only
	// itself.
	maxQueuedRequests = 1024
	// maxQueuedRequestBytes bounds the bytes of a client's requests waiting
	// for a worker, by the same reasoning: a packet may be up to four
	// times the body limit, and 1024 of them would be gigabytes.
	maxQueuedRequestBytes = 4 << 20
	// maxOutbound bounds answers and pushes waiting to be written to a
	// client; a client that falls this far behind is disconnected, and gets
	// what it missed replayed from the store when it reconnects.
	maxOutbound = 32 * 1024
	// replayWindow is how many replayed pushes may wait to be written before
	// the replay reads the next page.
	replayWindow = 1024
	// fairShare is how many requests a session handles before giving its
	// worker to the next waiting session.
	fairShare = 64
	// maxWrite is the most bytes written to a client in one write.
	maxWrite = 64 << 10
	// writeTimeout bounds one write to a client; a client that takes
	// longer is disconnected.
	writeTimeout = 10 * time.Second
)

// request is one PUBLISH from a client, or an internal task run in the
// client's request order.
type request struct {
	topic    string
	body     []byte
	received time.Time
	task     func()
	// durable: the task runs even once the client is gone, as a stored
	// message's request does (what it records outlives the connection).
	durable bool
}

// size is what a queued request or packet counts against its client's
// budget: its bytes and a little for the bookkeeping.
func packetSize(topic string, body []byte) int64 { return int64(len(topic)+len(body)) + 16 }

// outPacket is an answer, a push, a PUBACK or a SUBACK/UNSUBACK waiting to
// be written.
type outPacket struct {
	topic string
	body  []byte
	ack   uint16 // when not 0, a PUBACK for this packet id (never 0 on the wire)
	raw   []byte // when not nil, an encoded packet written as it is; else a PUBLISH on topic
	// alt is the topic a subscriber gets the packet on when one of its
	// filters matches it (feeds/… for news, presence/… for presence); for
	// news, feeds and seq say which message it is.
	alt   string
	feeds string
	seq   int64
}

// session is the server's state for one connected client.
type session struct {
	srv     *Server
	cl      *mqtt.Client
	account string
	kind    string
	device  string

	// Requests, handled one at a time in arrival order.
	mu       sync.Mutex
	queue    []request
	qBytes   int64 // packetSize of the queued requests
	running  bool
	dequeued chan struct{}  // signalled when a request leaves the queue
	pending  sync.WaitGroup // sends handed to the store and not yet answered

	// Answers and pushes, written in order by one short-lived goroutine.
	omu     sync.Mutex
	out     []outPacket
	spare   []outPacket
	writing bool
	open    bool // CONNACK sent: writes may start
	// From registration until the replay of stored messages is done, live
	// news is held, so the device gets the relation snapshot first and
	// every conversation in SeqId order.
	replaying bool
	held      []outPacket
	// How the client takes answers and pushes: undecided until its first
	// packet (or SubscribeWait), then unasked or as a subscriber.
	mode        deliveryMode
	subs        []subscription // the subscriber's filters; replaced, never changed in place
	decideTimer *time.Timer
	dl          delivery    // a subscriber's messages written on feeds topics, and their acks
	ps          persistence // what the MQTT session keeps beyond the connection (persist.go)
	closed      bool
	gone        chan struct{} // closed with closed
	drained     chan struct{} // signalled after each written batch

	// Bytes of answers and pushes queued, and of the batch being written
	// (inflight, part of outBytes); the news held during the replay. Past
	// the server's SessionBudget the client's requests wait, past twice it
	// (or over it for longer than SlowTimeout) the client is disconnected.
	outBytes  int64
	inflight  int64
	heldBytes int64
	overSince time.Time // when outBytes last rose to the budget; zero while under

	// adopted is set for the device of a thing adopted through a firmware
	// adapter (adapterdevice.go): only the adapter's raw packets, PUBACKs
	// and SUBACKs are written to it.
	adopted *adoptedConn

	status   atomic.Value // "online" or "away"
	lastSeen atomic.Int64 // unix ms of the last packet
}

func newSession(srv *Server, cl *mqtt.Client, account, kind string) *session {
	s := &session{
		srv: srv, cl: cl, account: account, kind: kind, device: cl.ID,
		dequeued:  make(chan struct{}, 1),
		gone:      make(chan struct{}),
		drained:   make(chan struct{}, 1),
		replaying: true,
	}
	s.status.Store(statusOnline)
	s.touch()
	return s
}

func (s *session) touch() { s.lastSeen.Store(time.Now().UnixMilli()) }

func (s *session) Status() string { return s.status.Load().(string) }

// enqueue queues r behind the client's earlier requests. It blocks while the
// client already has maxQueuedRequests or maxQueuedRequestBytes waiting
// (tasks, the server's own, never wait): the client's read loop then stops
// reading, and TCP slows the client down. It drops r if the session or the
// server ends meanwhile.
func (s *session) enqueue(r request) {
	size := packetSize(r.topic, r.body)
	for {
		s.mu.Lock()
		if isClosed(s.gone) {
			s.mu.Unlock()
			return
		}
		if r.task != nil || len(s.queue) == 0 ||
			(len(s.queue) < maxQueuedRequests && s.qBytes+size <= maxQueuedRequestBytes) {
			break
		}
		s.mu.Unlock()
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-s.dequeued:
		case <-s.gone:
		case <-s.srv.done:
			t.Stop()
			return
		case <-t.C:
		}
		t.Stop()
	}
	if r.task == nil {
		s.qBytes += size
	}
	s.queue = append(s.queue, r)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go s.drain()
	}
}

// overBudget reports whether the client's unwritten answers and pushes
// reached its byte budget.
func (s *session) overBudget() bool {
	s.omu.Lock()
	defer s.omu.Unlock()
	return s.outBytes >= int64(s.srv.cfg.SessionBudget)
}

// tryInline handles r on the calling goroutine (the client's read loop)
// when the client has nothing queued and a worker slot is free, sparing a
// goroutine switch; it reports false, doing nothing, otherwise. Only for
// requests that merely check and hand work to the store.
func (s *session) tryInline(r request) bool {
	if s.overBudget() {
		return false
	}
	s.mu.Lock()
	if s.running || len(s.queue) > 0 {
		s.mu.Unlock()
		return false
	}
	select {
	case s.srv.workers <- struct{}{}:
	default:
		s.mu.Unlock()
		return false
	}
	s.running = true
	s.mu.Unlock()
	s.srv.handle(s, r)
	<-s.srv.workers
	s.mu.Lock()
	more := len(s.queue) > 0
	s.running = more
	s.mu.Unlock()
	if more {
		go s.drain()
	}
	return true
}

// drain handles queued requests on a worker from the server's pool until the
// queue is empty.
func (s *session) drain() {
	workers, done := s.srv.workers, s.srv.done
	select {
	case workers <- struct{}{}:
	case <-done:
		return
	}
	held := true
	defer func() {
		if held {
			<-workers
		}
	}()
	for n := 1; ; n++ {
		s.mu.Lock()
		gone := isClosed(s.gone)
		if gone {
			s.dropAfterCloseLocked()
		}
		if len(s.queue) == 0 || isClosed(done) {
			s.running = false
			s.queue, s.qBytes = nil, 0
			s.mu.Unlock()
			return
		}
		r := s.queue[0]
		s.mu.Unlock()
		if r.task == nil && !gone && s.overBudget() {
			// Back-pressure: the next answer waits until the client read
			// the earlier ones, and the worker serves other clients
			// meanwhile. The request stays queued, so the queue's bounds
			// keep holding the client's read loop.
			<-workers
			ok := s.waitBacklog(0)
			select {
			case workers <- struct{}{}:
			case <-done:
				held = false
				ok = false
			}
			if !ok {
				s.mu.Lock()
				s.running = false
				s.queue, s.qBytes = nil, 0
				s.mu.Unlock()
				return
			}
		}
		s.mu.Lock()
		s.queue[0] = request{}
		s.queue = s.queue[1:]
		if r.task == nil {
			s.qBytes -= packetSize(r.topic, r.body)
		}
		s.mu.Unlock()
		select {
		case s.dequeued <- struct{}{}:
		default:
		}
		if r.task != nil {
			s.pending.Wait()
			r.task()
		} else {
			s.srv.handle(s, r)
		}
		if n%fairShare == 0 {
			<-workers
			select {
			case workers <- struct{}{}:
			case <-done:
				held = false
				s.mu.Lock()
				s.running = false
				s.mu.Unlock()
				return
			}
		}
	}
}

// dropAfterCloseLocked drops the queued requests of a client that is gone,
// but those that store messages (their PUBACK went out when they were
// read, and a client that disconnects right after it, as mosquitto_pub
// does, must not lose what it sent) and the durable tasks.
func (s *session) dropAfterCloseLocked() {
	keep := s.queue[:0]
	for _, r := range s.queue {
		switch {
		case r.task != nil && r.durable:
			keep = append(keep, r)
		case r.task != nil:
		case storesMessages(r.topic):
			keep = append(keep, r)
		default:
			s.qBytes -= packetSize(r.topic, r.body)
		}
	}
	clear(s.queue[len(keep):])
	s.queue = keep
}

// storesMessages reports a request that stores messages (send,
// history_push).
func storesMessages(topic string) bool {
	t, err := wire.ParseTopic(topic)
	return err == nil && t.Scheme == wire.SchemeIM && pipelined[t.Method()]
}

// send queues a PUBLISH for this client. It never blocks.
func (s *session) send(topic string, body []byte) {
	s.push(outPacket{topic: topic, body: body})
}

// push queues p for this client. It never blocks.
func (s *session) push(p outPacket) {
	s.omu.Lock()
	start := s.queueLocked(p)
	s.omu.Unlock()
	if start {
		go s.flush()
	}
}

// puback queues the PUBACK of a QoS 1 request. It goes through the same
// queue as answers and pushes, so under load it shares their writes
// instead of costing a syscall of its own; PUBACKs stay in the order the
// PUBLISHes came.
func (s *session) puback(id uint16) {
	s.omu.Lock()
	start := false
	if !s.closed {
		s.out = append(s.out, outPacket{ack: id})
		start = s.writableLocked() && !s.writing
		s.writing = s.writing || start
	}
	s.omu.Unlock()
	if start {
		go s.flush()
	}
}

// sendNews queues a live news push, or holds it while the replay runs.
func (s *session) sendNews(feeds string, seq int64, body []byte) {
	if s.adopted != nil {
		return // its commands reach it through the adapter
	}
	p := s.newsPacket(feeds, seq, body)
	s.omu.Lock()
	if s.replaying && !s.closed {
		size := packetSize(wire.PushNews, body)
		if len(s.held) < maxOutbound && s.outBytes+s.heldBytes+size <= s.hardLimit() {
			s.held = append(s.held, p)
			s.heldBytes += size
			s.srv.metrics.queuedBytes.Add(float64(size))
		} else {
			s.tooSlowLocked()
		}
		s.omu.Unlock()
		return
	}
	start := s.queueLocked(p)
	s.omu.Unlock()
	if start {
		go s.flush()
	}
}

// newsPacket is the push of a stored message: news on impush://modulus/news,
// and the message itself on its feeds topic for a subscriber.
func (s *session) newsPacket(feeds string, seq int64, body []byte) outPacket {
	return outPacket{topic: wire.PushNews, body: body, alt: wire.FeedsTopic(s.account, feeds), feeds: feeds, seq: seq}
}

// holdNews holds live news from now until replayed, for a replay that
// starts.
func (s *session) holdNews() {
	s.omu.Lock()
	if !s.closed {
		s.replaying = true
	}
	s.omu.Unlock()
}

// replayed ends the replay: held news the replay did not already carry
// (replayed maps feeds to the last SeqId it pushed) is queued, in order,
// before any later push.
func (s *session) replayed(replayed map[string]int64) {
	s.omu.Lock()
	held := s.held
	s.held, s.replaying = nil, false
	s.srv.metrics.queuedBytes.Sub(float64(s.heldBytes))
	s.heldBytes = 0
	start := false
	for _, h := range held {
		if h.seq > replayed[h.feeds] {
			start = s.queueLocked(h) || start
		}
	}
	s.omu.Unlock()
	if start {
		go s.flush()
	}
}

// queueLocked appends a packet to the outbound queue and reports whether
// the caller must start the writer.
func (s *session) queueLocked(p outPacket) bool {
	if s.closed || (s.adopted != nil && p.raw == nil) {
		return false
	}
	size := packetSize(p.topic, p.body)
	over := s.outBytes + s.heldBytes + size
	if len(s.out) >= maxOutbound || (len(s.out) > 0 && over > s.hardLimit()) ||
		(!s.overSince.IsZero() && time.Since(s.overSince) > s.srv.cfg.SlowTimeout) {
		s.tooSlowLocked()
		return false
	}
	s.out = append(s.out, p)
	s.outBytes += size
	s.srv.metrics.queuedBytes.Add(float64(size))
	s.srv.metrics.queued(s.outBytes + s.heldBytes)
	if s.overSince.IsZero() && s.outBytes >= int64(s.srv.cfg.SessionBudget) {
		s.overSince = time.Now()
	}
	start := s.writableLocked() && !s.writing
	s.writing = s.writing || start
	return start
}

// writableLocked reports whether queued packets may be written: the
// CONNACK is out and the client's first packet told how it takes them.
func (s *session) writableLocked() bool { return s.open && s.mode != modeUndecided }

// hardLimit is the most bytes a client may have queued, held news
// included: twice its budget, for the answers and pushes that come while
// its requests already wait.
func (s *session) hardLimit() int64 { return 2 * int64(s.srv.cfg.SessionBudget) }

// tooSlowLocked drops a client that let maxOutbound packets or twice its
// byte budget pile up, or stayed over its budget for SlowTimeout; it gets
// what it missed replayed when it reconnects (its cursors move only by its
// own acks).
func (s *session) tooSlowLocked() {
	s.closeLocked()
	s.srv.log.Warn("client too slow, disconnecting", "account", s.account, "device", s.device)
	s.srv.metrics.slowClients.Inc()
	go s.srv.mqtt.DisconnectClient(s.cl, packets.ErrQuotaExceeded)
}

// opened lets writes start once the CONNACK is out and the client's first
// packet (or SubscribeWait) told how it takes answers and pushes; what was
// queued before (pushes for a device registered a moment earlier) goes
// first.
func (s *session) opened() {
	s.omu.Lock()
	s.open = true
	if s.mode == modeUndecided && !s.closed {
		s.decideTimer = time.AfterFunc(s.srv.cfg.SubscribeWait, func() { s.decide(modeUnasked) })
	}
	start := len(s.out) > 0 && s.writableLocked() && !s.writing
	s.writing = s.writing || start
	s.omu.Unlock()
	if start {
		go s.flush()
	}
}

// waitBacklog waits until fewer than n packets (any number when n is 0)
// and fewer bytes than the client's budget wait to be written, or the
// client is gone (false). A client that stays over its budget for
// SlowTimeout is disconnected as too slow.
func (s *session) waitBacklog(n int) bool {
	for {
		s.omu.Lock()
		closed, l, bytes, since := s.closed, len(s.out), s.outBytes, s.overSince
		if !closed && !since.IsZero() && time.Since(since) > s.srv.cfg.SlowTimeout {
			s.tooSlowLocked()
			closed = true
		}
		s.omu.Unlock()
		if closed || s.cl.Closed() {
			return false
		}
		if (n == 0 || l < n) && bytes < int64(s.srv.cfg.SessionBudget) {
			return true
		}
		select {
		case <-s.drained:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// flush writes queued packets until the queue is empty. Packets waiting
// together go out in one write: under load a client's answers and pushes
// share syscalls.
func (s *session) flush() {
	var buf bytes.Buffer
	for {
		s.omu.Lock()
		batch := s.out
		if len(batch) == 0 || s.closed {
			s.out = nil
			s.writing = false
			s.omu.Unlock()
			return
		}
		s.out, s.spare = s.spare[:0], nil
		mode, subs := s.mode, s.subs
		var inflight int64
		for _, p := range batch {
			if p.topic != "" {
				inflight += packetSize(p.topic, p.body)
			}
		}
		s.inflight = inflight
		s.omu.Unlock()
		buf.Reset()
		n := 0
		var err error
		var written map[string]bool // conversations with messages written on their feeds topics
		for i, p := range batch {
			if err == nil {
				n += s.encode(&buf, p, mode, subs, &written)
				if buf.Len() >= maxWrite {
					err = s.writeOut(buf.Bytes(), n)
					buf.Reset()
					n = 0
				}
			}
			batch[i] = outPacket{}
		}
		if err == nil && buf.Len() > 0 {
			err = s.writeOut(buf.Bytes(), n)
		}
		if err != nil {
			s.srv.log.Debug("write to client", "device", s.device, "err", err)
			s.close()
		} else {
			for feeds := range written {
				s.delivered(feeds)
			}
		}
		s.omu.Lock()
		s.spare = batch[:0]
		s.outBytes -= s.inflight
		s.srv.metrics.queuedBytes.Sub(float64(s.inflight))
		s.inflight = 0
		if s.outBytes < int64(s.srv.cfg.SessionBudget) {
			s.overSince = time.Time{}
		}
		s.omu.Unlock()
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
}

// encode appends p to buf as the packets the client gets of it (none, one
// or two: a subscriber may match both of its topics) and returns how many.
//
// Answers and pushes are QoS 0 PUBLISHes: delivery is already at least
// once above MQTT: a lost answer is retried by the client (every method is
// idempotent or harmless to repeat), and a lost push is replayed from the
// store at the next CONNECT, up to the device's cursor. A subscriber's
// messages on feeds topics go at the QoS it was granted (subscriberEncode).
func (s *session) encode(buf *bytes.Buffer, p outPacket, mode deliveryMode, subs []subscription, written *map[string]bool) int {
	switch {
	case p.ack != 0:
		ack := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Puback},
			PacketID:        p.ack,
			ProtocolVersion: s.cl.Properties.ProtocolVersion,
		}
		ack.PubackEncode(buf)
		return 1
	case p.raw != nil:
		buf.Write(p.raw)
		return 1
	case s.withholds(p, mode, subs):
		return 0
	case mode == modeSubscribed:
		return s.subscriberEncode(buf, p, subs, written)
	}
	s.encodePublish(buf, p.topic, p.body, 0, 0)
	return 1
}

// encodePublish appends a PUBLISH.
func (s *session) encodePublish(buf *bytes.Buffer, topic string, body []byte, qos byte, id uint16) {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:       topic,
		Payload:         body,
		PacketID:        id,
		ProtocolVersion: s.cl.Properties.ProtocolVersion,
	}
	pk.PublishEncode(buf) // cannot fail: a QoS 1 packet always has its id
}

// writeOut writes encoded packets to the client's connection, under the
// client's lock so they never interleave with the broker's own writes.
func (s *session) writeOut(b []byte, packetCount int) error {
	cl := s.cl
	if cl.Closed() {
		return mqtt.ErrConnectionClosed
	}
	cl.Lock()
	conn := cl.Net.Conn
	conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	n, err := conn.Write(b)
	conn.SetWriteDeadline(time.Time{})
	cl.Unlock()
	info := s.srv.mqtt.Info
	atomic.AddInt64(&info.BytesSent, int64(n))
	atomic.AddInt64(&info.PacketsSent, int64(packetCount))
	atomic.AddInt64(&info.MessagesSent, int64(packetCount))
	if err != nil {
		go s.srv.mqtt.DisconnectClient(cl, packets.ErrUnspecifiedError)
		return err
	}
	return nil
}

// close marks the session gone: nothing more is written to it.
func (s *session) close() {
	s.omu.Lock()
	s.closeLocked()
	s.omu.Unlock()
}

// closeLocked drops what waits to be written (the batch being written
// stays counted until its writer is done) and wakes whoever waits on the
// session.
func (s *session) closeLocked() {
	if s.closed {
		return
	}
	s.closed = true
	drop := s.outBytes - s.inflight + s.heldBytes
	s.srv.metrics.queuedBytes.Sub(float64(drop))
	s.outBytes, s.heldBytes = s.inflight, 0
	s.out, s.held = nil, nil
	if s.decideTimer != nil {
		s.decideTimer.Stop()
	}
	close(s.gone)
}

// registry indexes the sessions of connected clients.
type registry struct {
	mu        sync.RWMutex
	byDevice  map[string]*session
	byAccount map[string][]*session
}

func newRegistry() *registry {
	return &registry{byDevice: make(map[string]*session), byAccount: make(map[string][]*session)}
}

// add registers s, replacing any earlier session of the same device.
func (r *registry) add(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byDevice[s.device]; ok {
		r.removeLocked(old)
	}
	r.byDevice[s.device] = s
	r.byAccount[s.account] = append(r.byAccount[s.account], s)
}

// remove unregisters s if it is still the device's current session.
func (r *registry) remove(s *session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byDevice[s.device] != s {
		return false
	}
	r.removeLocked(s)
	return true
}

func (r *registry) removeLocked(s *session) {
	delete(r.byDevice, s.device)
	list := r.byAccount[s.account]
	for i, x := range list {
		if x == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.byAccount, s.account)
	} else {
		r.byAccount[s.account] = list
	}
}

// sessions returns the connected sessions of account.
func (r *registry) sessions(account string) []*session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byAccount[account]
}

func (r *registry) device(id string) (*session, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.byDevice[id]
	return s, ok
}

func (r *registry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byDevice)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
