package node

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/mqtter/mqtter/localdb"
	mqsync "github.com/mqtter/mqtter/sync"
	"github.com/mqtter/mqtter/wire"
)

// Outbox tuning.
const (
	maxConversationsInFlight = 32 // conversations delivered at once
	maxBatch                 = 256
	retryMin                 = 500 * time.Millisecond
	retryMax                 = 30 * time.Second
	// ackHold is how long a message that may wait (a thing's ack) waits
	// for the next message of its conversation, to go in one batch with
	// it: a device that answers within it has its result go with the ack
	// instead of behind the ack's round trip.
	ackHold = 5 * time.Millisecond
)

// outbox delivers this device's own messages. Every message is durable in
// localdb's outbox before it gets here; it leaves the outbox only once a
// peer device or the server stored it. One conversation's messages are
// delivered in order, by one worker at a time; conversations go in
// parallel. A failed attempt is recorded and retried with backoff, sooner
// when something changes (the server or a peer comes back).
type outbox struct {
	n      *Node
	newc   chan outboxAdd
	kickc  chan struct{}
	donec  chan batchResult
	gone   chan []string // MsgIds delivered by another way (history_push)
	sentc  chan sentLeg  // a batch's direct leg is done
	stopc  chan struct{}
	loopWG sync.WaitGroup

	// Owned by the loop goroutine.
	queues map[string]*convQueue // by feeds
	order  []string              // the feeds of queues, oldest first: delivery starts in this order
}

type convQueue struct {
	msgs     []wire.Message // in send order
	busy     bool
	attempts int
	next     time.Time // retry not before (backoff)
	hold     time.Time // a held message waits for company until then
	// fresh: a group message (or one of a thing's feed, which travels
	// by gossip too) came that no try has taken yet. It is
	// tried at once whatever the backoff: the backoff is the server
	// leg's, which fails at every try while the server is down, and
	// the members online get a group's messages by gossip meanwhile.
	fresh bool
	// Of a queue whose messages also go by gossip (a group, a thing's
	// feed): seq numbers the messages queued (seqs, by MsgId), sent is
	// the highest whose direct leg (gossip, the devices connected) is
	// done, early the highest handed to an early gossip leg (one that
	// does not wait while the queue is busy with a try's server leg).
	seq, sent, early int
	seqs             map[string]int
	// after: this queue (a dm of a thing's node) waits until the thing's
	// feed queue after has sent its message afterSeq, or until
	// afterUntil, so that the state a command caused, in the feed, goes
	// out before the command's result, in the dm, as it did when both
	// went in the dm. Only the direct leg is waited for: the readers
	// online have the state by gossip then, and the server leg (a round
	// trip to the server and back) would delay every result by it.
	after      *convQueue
	afterSeq   int
	afterUntil time.Time
}

// feedFirstWait bounds how long a thing's dm waits for its feed's try.
const feedFirstWait = 2 * time.Second

// waitsForFeed reports whether q still waits for its thing's feed, and
// until when.
func (q *convQueue) waitsForFeed(now time.Time) (bool, time.Time) {
	a := q.after
	if a == nil || len(a.msgs) == 0 || a.sent >= q.afterSeq || !now.Before(q.afterUntil) {
		return false, time.Time{}
	}
	return true, q.afterUntil
}

// queuedMsg is a message for the loop; hold: it may wait up to ackHold
// for the next message of its conversation.
type queuedMsg struct {
	m    wire.Message
	hold bool
}

// outboxAdd is one step of the loop's intake: messages committed
// together, then the conversations whose held messages need wait for no
// more company (a thing's burst ended with its result).
type outboxAdd struct {
	msgs    []queuedMsg
	release []string // feeds
}

// sentLeg says that the messages of the queue feeds up to seq have had
// their direct leg.
type sentLeg struct {
	feeds string
	seq   int
}

// seqOf is the highest seq among msgs (0 for a queue that does not
// gossip).
func (q *convQueue) seqOf(msgs []wire.Message) int {
	last := 0
	for _, m := range msgs {
		last = max(last, q.seqs[m.MsgId])
	}
	return last
}

// legSent tells the loop, from a worker, that the messages of feeds up
// to seq had their direct leg.
func (o *outbox) legSent(feeds string, seq int) {
	select {
	case o.sentc <- sentLeg{feeds, seq}:
	case <-o.stopc:
	}
}

// gossipEarly publishes, by gossip only, the messages of busy queues that
// the try in flight does not carry: their try starts once that one's
// server leg ends, and the members online need not wait for it (nor a
// thing's result for its state). The try still takes them later, for the
// server; gossip does not publish a message twice.
func (o *outbox) gossipEarly(workers *sync.WaitGroup) {
	for feeds, q := range o.queues {
		if !q.busy || q.early >= q.seq {
			continue
		}
		var fresh []wire.Message
		for _, m := range q.msgs {
			if q.seqs[m.MsgId] > q.early {
				fresh = append(fresh, m)
			}
		}
		last := q.seqOf(fresh)
		q.early = q.seq
		if len(fresh) == 0 {
			continue
		}
		workers.Add(1)
		go func() {
			defer workers.Done()
			o.n.gossipSend(o.n.ctx, feeds, fresh)
			o.legSent(feeds, last)
		}()
	}
}

type batchResult struct {
	feeds     string
	sent      int             // the highest seq of the batch (see convQueue.seq)
	delivered map[string]bool // MsgId → stored somewhere, or conflicted: out of the queue
	direct    []string        // delivered directly, still in the persistent outbox
	err       error           // why the rest was not delivered
}

func newOutbox(n *Node) *outbox {
	return &outbox{
		n:      n,
		newc:   make(chan outboxAdd, 1024),
		kickc:  make(chan struct{}, 1),
		donec:  make(chan batchResult, maxConversationsInFlight),
		gone:   make(chan []string, 16),
		sentc:  make(chan sentLeg, maxConversationsInFlight),
		stopc:  make(chan struct{}),
		queues: make(map[string]*convQueue),
	}
}

// start loads what the outbox held at the last stop and starts the loop.
func (o *outbox) start(ctx context.Context) error {
	msgs, err := o.n.db.Outbox(ctx)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	for _, m := range msgs {
		o.queue(m, false)
	}
	if len(msgs) > 0 {
		o.n.log.Info("outbox: resuming", "messages", len(msgs))
	}
	o.loopWG.Add(1)
	go o.loop()
	return nil
}

// add hands newly enqueued messages to the loop, all at once, so that
// messages committed together go in one batch; a message marked hold
// may wait up to ackHold for the next message of its conversation. Then
// the held messages of the conversations release go without waiting
// longer.
func (o *outbox) add(msgs []queuedMsg, release []string) {
	select {
	case o.newc <- outboxAdd{msgs: msgs, release: release}:
	case <-o.stopc:
	}
}

// kick retries waiting conversations now.
func (o *outbox) kick() {
	select {
	case o.kickc <- struct{}{}:
	default:
	}
}

// delivered drops messages that another way (history_push) delivered.
func (o *outbox) delivered(ids []string) {
	select {
	case o.gone <- ids:
	case <-o.stopc:
	}
}

func (o *outbox) stop() {
	select {
	case <-o.stopc:
	default:
		close(o.stopc)
	}
	o.loopWG.Wait()
}

func (o *outbox) queue(m wire.Message, hold bool) {
	q := o.queues[m.Feeds]
	if q == nil {
		q = &convQueue{}
		o.queues[m.Feeds] = q
		o.order = append(o.order, m.Feeds)
	}
	var kind wire.FeedsKind // zero: feeds that do not parse
	if f, err := wire.ParseFeeds(m.Feeds); err == nil {
		kind = f.Kind
	}
	if feed := o.queues[wire.ThingFeeds(o.n.cfg.User)]; feed != nil && m.MsgType == wire.MsgTypeFeedback && kind == wire.FeedsDM && feed.sent < feed.seq {
		// A thing's state or event is in its feed, not gossiped yet:
		// the feedback it sends next in a dm (an ack, a result) leaves
		// once it is. A rule's command does not wait: what it does
		// needs no state of this thing first.
		q.after, q.afterSeq, q.afterUntil = feed, feed.seq, time.Now().Add(feedFirstWait)
	}
	switch {
	case !hold:
		q.hold = time.Time{}
	case len(q.msgs) == 0 && !q.busy:
		q.hold = time.Now().Add(ackHold)
	}
	for _, have := range q.msgs {
		if have.MsgId == m.MsgId {
			return
		}
	}
	q.msgs = append(q.msgs, m)
	if kind == wire.FeedsGroup || kind == wire.FeedsThing {
		q.fresh = true
		if q.seqs == nil {
			q.seqs = make(map[string]int)
		}
		q.seq++
		q.seqs[m.MsgId] = q.seq
	}
}

// pending counts the messages waiting.
func (o *outbox) size() int {
	n := 0
	for _, q := range o.queues {
		n += len(q.msgs)
	}
	return n
}

func (o *outbox) loop() {
	defer o.loopWG.Done()
	var workers sync.WaitGroup
	defer workers.Wait()
	inFlight := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		wake := now.Add(time.Hour)
		for _, feeds := range o.order {
			q := o.queues[feeds]
			if q.busy || len(q.msgs) == 0 {
				continue
			}
			if q.next.After(now) && !q.fresh {
				wake = minTime(wake, q.next)
				continue
			}
			if q.hold.After(now) {
				wake = minTime(wake, q.hold)
				continue
			}
			if waits, until := q.waitsForFeed(now); waits {
				wake = minTime(wake, until)
				continue
			}
			if inFlight >= maxConversationsInFlight {
				break
			}
			batch := q.msgs[:min(len(q.msgs), maxBatch)]
			q.busy, q.fresh = true, false
			last := q.seqOf(batch)
			q.early = max(q.early, last)
			inFlight++
			workers.Add(1)
			go func() {
				defer workers.Done()
				r := o.n.deliverBatch(o.n.ctx, feeds, batch, func() { o.legSent(feeds, last) })
				r.sent = last
				o.donec <- r
				// Out of the persistent outbox after the conversation
				// moved on: a crash before this sends them again, and
				// the receiver keeps one copy.
				o.n.markDelivered(o.n.ctx, r.direct, localdb.ViaP2P)
			}()
			// Let the worker run now: Go runs the goroutine started last
			// first, which would send a burst's conversations in reverse
			// (a command's result behind the state sent to the thing's
			// other audience).
			runtime.Gosched()
		}
		o.gossipEarly(&workers)
		timer.Reset(time.Until(wake))
		select {
		case <-o.stopc:
			return
		case in := <-o.newc:
			for _, qm := range in.msgs {
				o.queue(qm.m, qm.hold)
			}
			for _, feeds := range in.release {
				if q := o.queues[feeds]; q != nil {
					q.hold = time.Time{}
				}
			}
		case <-o.kickc:
			for _, q := range o.queues {
				q.next = time.Time{}
			}
		case leg := <-o.sentc:
			if q := o.queues[leg.feeds]; q != nil {
				q.sent = max(q.sent, leg.seq)
			}
		case ids := <-o.gone:
			o.drop(ids)
		case r := <-o.donec:
			inFlight--
			o.finish(r)
		case <-timer.C:
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// forget removes the queue of feeds, emptied.
func (o *outbox) forget(feeds string) {
	delete(o.queues, feeds)
	if i := slices.Index(o.order, feeds); i >= 0 {
		o.order = slices.Delete(o.order, i, i+1)
	}
}

// drop removes delivered messages from the queues.
func (o *outbox) drop(ids []string) {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	for feeds, q := range o.queues {
		if q.busy {
			continue // the worker's result will settle these
		}
		kept := q.msgs[:0]
		for _, m := range q.msgs {
			if !set[m.MsgId] {
				kept = append(kept, m)
			} else {
				delete(q.seqs, m.MsgId)
			}
		}
		q.msgs = kept
		if len(q.msgs) == 0 {
			o.forget(feeds)
		}
	}
}

func (o *outbox) finish(r batchResult) {
	q := o.queues[r.feeds]
	if q == nil {
		return
	}
	q.busy = false
	q.sent = max(q.sent, r.sent)
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if !r.delivered[m.MsgId] {
			kept = append(kept, m)
		} else {
			delete(q.seqs, m.MsgId)
		}
	}
	q.msgs = kept
	if len(q.msgs) == 0 {
		o.forget(r.feeds)
		return
	}
	if r.err == nil {
		q.attempts, q.next = 0, time.Time{}
		return
	}
	q.attempts++
	backoff := retryMin << min(q.attempts-1, 6)
	q.next = time.Now().Add(min(backoff, retryMax))
}

// deliverBatch delivers msgs, the oldest waiting messages of one
// conversation, in order: directly to the devices of a dm's other account
// that answer within DirectTimeout, and through the server for the rest
// and for every group message (whose members' connected devices also get it
// directly). It reports which were delivered and why the others were not.
func (n *Node) deliverBatch(ctx context.Context, feeds string, msgs []wire.Message, sent func()) batchResult {
	res := batchResult{feeds: feeds, delivered: make(map[string]bool, len(msgs))}
	f, err := wire.ParseFeeds(feeds)
	if err != nil {
		res.err = err
		return res
	}
	direct := n.sendDirect(ctx, f, feeds, msgs)
	if sent != nil {
		sent()
	}
	if f.Kind == wire.FeedsDM {
		for id := range direct {
			res.delivered[id] = true
		}
	}
	var remaining []wire.Message
	for _, m := range msgs {
		if !res.delivered[m.MsgId] {
			remaining = append(remaining, m)
		}
	}
	for id := range res.delivered {
		res.direct = append(res.direct, id)
	}
	if len(remaining) == 0 {
		return res
	}
	if !n.link.Connected() {
		res.err = errors.New("server unreachable and no device of the recipient reachable directly")
		for _, m := range remaining {
			n.noteAttempt(ctx, m.MsgId, res.err)
		}
		return res
	}
	pushed, err := n.syncer.PushConv(ctx, feeds)
	if err != nil {
		n.log.Info("outbox: history_push before send", "err", err)
	}
	if pushed.Held[feeds] {
		// Earlier messages of ours wait to be sequenced after another
		// device's; a send now would get a SeqId ahead of them.
		res.err = errors.New("waiting: earlier messages of this conversation wait to be sequenced after another device's")
		for _, m := range remaining {
			n.noteAttempt(ctx, m.MsgId, res.err)
		}
		return res
	}
	for _, m := range remaining {
		k := localdb.KeyOf(&m)
		if pushed.Sequenced[k] {
			res.delivered[m.MsgId] = true // history_push stored and relayed it
			continue
		}
		if pushed.Conflicted[k] {
			res.delivered[m.MsgId] = true // not delivered, but out of the queue for good
			continue
		}
		var sr wire.SendResult
		if err := n.link.Call(ctx, wire.MethodSend, m, &sr); err != nil {
			if mqsync.IsConflict(err) {
				n.sendConflict(ctx, m, err)
				res.delivered[m.MsgId] = true // out of the queue for good
				continue
			}
			n.recordFailure(localdb.ViaServer, "", m.MsgId, err)
			n.noteAttempt(ctx, m.MsgId, err)
			res.err = err
			return res
		}
		// The SeqId is this message's only if the answer names it.
		if sr.MsgId != m.MsgId || sr.SeqId <= 0 {
			n.log.Warn("send answered for another message; its SeqId is not recorded",
				"msg_id", m.MsgId, "answered", sr.MsgId, "seq", sr.SeqId)
		} else if err := n.db.SetSeqs(ctx, map[localdb.MsgKey]int64{k: sr.SeqId}); err != nil {
			n.log.Warn("record SeqId", "msg_id", m.MsgId, "err", err)
		}
		n.counts.sentServer.Add(1)
		n.markDelivered(ctx, []string{m.MsgId}, localdb.ViaServer)
		n.events.publish(EventReceipt, Receipt{MsgId: m.MsgId, Feeds: m.Feeds, Path: localdb.ViaServer, SeqId: sr.SeqId})
		res.delivered[m.MsgId] = true
	}
	return res
}

// markDelivered takes messages out of the persistent outbox.
func (n *Node) markDelivered(ctx context.Context, ids []string, path string) {
	if err := n.db.DeliveredAll(context.WithoutCancel(ctx), ids, path); err != nil {
		n.log.Warn("outbox: mark delivered", "messages", len(ids), "err", err)
	}
	if path == localdb.ViaP2P {
		n.counts.sentP2P.Add(int64(len(ids)))
	}
}

func (n *Node) noteAttempt(ctx context.Context, msgID string, err error) {
	if e := n.db.OutboxAttempt(context.WithoutCancel(ctx), msgID, err.Error()); e != nil && !errors.Is(e, localdb.ErrNotFound) {
		n.log.Warn("outbox: record attempt", "msg_id", msgID, "err", e)
	}
}

// sendConflict marks a message whose send the server answered "conflict"
// for, so that it is neither sent nor pushed again.
func (n *Node) sendConflict(ctx context.Context, m wire.Message, err error) {
	fresh, e := n.db.MarkConflict(context.WithoutCancel(ctx), m, err.Error())
	if e != nil {
		n.log.Error("outbox: mark a conflict", "msg_id", m.MsgId, "err", e)
		return
	}
	if fresh {
		n.conflicted(m, err)
	}
}
