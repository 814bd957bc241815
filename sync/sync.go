// Package sync keeps a device's history and the server's in step: it pushes
// the messages the device holds without a SeqId (history_push), its own at
// once and other devices' only after a grace period (Config.RelayAfter),
// and writes back the SeqIds it gets, and it pulls, conversation by
// conversation, what the device lacks (history by after_seq cursor),
// verifying every message before storing it. A new device restores its
// account's whole history this way, page by page, so memory stays bounded
// whatever the history's size.
//
// The package is named after its folder; it does not replace the standard
// library's sync, which it does not use.
package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/wire"
)

// PageSize is how many messages one history pull asks for (the server's
// maximum).
const PageSize = 1000

// Server is what the syncer needs of the link to the server.
type Server interface {
	Call(ctx context.Context, method string, req, out any) error
	Connected() bool
	// Connects counts the connects so far: it changes with every
	// reconnect (mqttlink.Link.Connects).
	Connects() uint64
}

// DefaultRelayAfter is Config.RelayAfter's default: a few sync intervals.
const DefaultRelayAfter = 10 * time.Second

// Config is what a Syncer works with. DB, Server and Device are required.
type Config struct {
	DB     *localdb.DB
	Server Server
	// Device is this device's id, the Device of every message it signs.
	// Its own messages (Device is this one) are pushed at once, in local
	// order; any other message it holds unsequenced, another account's or
	// another device's of this account, only after RelayAfter.
	Device string
	// Interval is how often the loop pushes (default 3s).
	Interval time.Duration
	// RelayAfter is how long this device holds an unsequenced message
	// another device signed before it pushes (relays) it itself; default
	// DefaultRelayAfter. Only the author's device knows the order of its
	// messages, and a receiver may hold a later one without an earlier
	// one: the server keeps a message's first SeqId, so a relay that comes
	// first would sequence the author's messages out of order. The author
	// gets RelayAfter to push its own first; relaying after it still
	// sequences the messages of an author that is gone for good. The time
	// counts only while connected to the server, from when this device
	// first held the message, and starts again at every reconnect: after
	// an outage every held message is old, and the author is reconnecting
	// too.
	RelayAfter time.Duration
	// Check decides whether a message the server returned may be stored
	// (well formed, sequenced, a device of its sender), apart from its
	// signature: the syncer verifies signatures itself, in batches
	// (wire.VerifyBatch), every signed message and only those. It runs on
	// several goroutines at once. Nil is CheckMessage.
	Check func(*wire.Message) error
	// Stored is told of every pulled message new to this device.
	Stored func(wire.Message)
	// Refused is told of every pulled message Check refused.
	Refused func(m wire.Message, err error)
	// Sequenced is told of the messages a push got SeqIds for.
	Sequenced func(keys []localdb.MsgKey)
	// Conflict is told of every message the server answered "conflict"
	// for: it holds another message under the same (From, MsgId). The
	// message is marked in the store (localdb.MarkConflict) and never
	// pushed again.
	Conflict func(m wire.Message, err error)
	// Progress, when set, is told how a pull goes: after every page, and
	// once more when the pull ends.
	Progress func(Progress)
	Logger   *slog.Logger
}

// Progress is how far a pull got.
type Progress struct {
	Conversation  int   // 1-based index of the conversation being pulled
	Conversations int   // how many the server listed
	Fetched       int64 // messages fetched so far in this pull
	Total         int64 // messages this pull has to fetch, as the cursors said at its start
	Done          bool  // the pull ended (Err says whether it failed)
	Err           error
}

// Result says what a sync round did.
type Result struct {
	Pushed int `json:"pushed"` // messages that got a SeqId from this push
	Pulled int `json:"pulled"` // messages new to this device from the pull
}

// Syncer pushes and pulls. Its methods may be called from any goroutine;
// rounds run one at a time.
type Syncer struct {
	cfg   Config
	log   *slog.Logger
	lock  chan struct{} // held by the round in progress
	kickc chan bool     // true: pull too
	sawc  chan saw

	// refused are messages the server would not sequence; they are not
	// pushed again until the process restarts. Guarded by lock.
	refused map[localdb.MsgKey]bool

	// marks are the relay clock: what was held when, during the
	// connection marksConn (a Connects reading). Guarded by lock.
	marks     []heldMark
	marksConn uint64

	pushed, relayed, pulled, refusedPulls, conflicts atomic.Int64
}

// heldMark says that at time at, connected to the server, this device held
// every message up to local order through.
type heldMark struct {
	through int64
	at      time.Time
}

// New returns a Syncer; Loop runs it.
func New(cfg Config) (*Syncer, error) {
	if cfg.DB == nil || cfg.Server == nil || cfg.Device == "" {
		return nil, errors.New("sync: Config.DB, Config.Server and Config.Device are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 3 * time.Second
	}
	if cfg.RelayAfter <= 0 {
		cfg.RelayAfter = DefaultRelayAfter
	}
	if cfg.Check == nil {
		cfg.Check = CheckMessage
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Syncer{
		cfg:     cfg,
		log:     cfg.Logger,
		lock:    make(chan struct{}, 1),
		kickc:   make(chan bool, 1),
		sawc:    make(chan saw, 1024),
		refused: make(map[localdb.MsgKey]bool),
	}, nil
}

// CheckMessage is the default Check: a valid, sequenced message.
func CheckMessage(m *wire.Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if m.SeqId <= 0 {
		return errors.New("message from the server without a SeqId")
	}
	return nil
}

// Counts are the syncer's totals since New.
type Counts struct {
	Pushed, Pulled, Refused int64
	Relayed                 int64 // of Pushed, messages other devices signed
	Conflicts               int64 // pushed messages the server answered "conflict" for
}

// Counts returns the totals so far.
func (s *Syncer) Counts() Counts {
	return Counts{Pushed: s.pushed.Load(), Relayed: s.relayed.Load(), Pulled: s.pulled.Load(),
		Refused: s.refusedPulls.Load(), Conflicts: s.conflicts.Load()}
}

// Kick asks the loop for a round soon; with pull the round pulls too.
func (s *Syncer) Kick(pull bool) {
	for {
		select {
		case s.kickc <- pull:
			return
		default:
		}
		select {
		case old := <-s.kickc: // merge with the waiting kick
			pull = pull || old
		default:
		}
	}
}

// saw is a pushed message stored: its conversation and the last SeqId the
// push said the conversation has.
type saw struct {
	feeds string
	last  int64
}

// Saw tells the syncer that a pushed message of feeds is stored and that the
// push said the conversation has lastSeq messages. Once pushes pause, the
// syncer moves the cursor over what is held and pulls when a gap is left.
// It never blocks.
func (s *Syncer) Saw(feeds string, lastSeq int64) {
	select {
	case s.sawc <- saw{feeds, lastSeq}:
	default:
		s.Kick(true) // too many at once: a pull settles them all
	}
}

// settleAfter is how long pushes must pause before the cursors are moved
// over them.
const settleAfter = 200 * time.Millisecond

// Loop pushes every Interval, runs the rounds Kick asks for while the server
// is connected, and settles what Saw was told, until ctx ends.
func (s *Syncer) Loop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	pending := make(map[string]int64)
	settle := time.NewTimer(time.Hour)
	defer settle.Stop()
	for {
		pull, round := false, false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			round = true
		case pull = <-s.kickc:
			round = true
		case sw := <-s.sawc:
			pending[sw.feeds] = max(pending[sw.feeds], sw.last)
			settle.Reset(settleAfter)
		case <-settle.C:
			pull = s.settle(ctx, pending)
			clear(pending)
			round = pull
		}
		if !round || !s.cfg.Server.Connected() {
			continue
		}
		if _, err := s.Run(ctx, pull); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Info("sync", "err", err)
		}
	}
}

// settle moves the cursors of the conversations pushes touched and reports
// whether one of them has a gap to pull.
func (s *Syncer) settle(ctx context.Context, pending map[string]int64) bool {
	gap := false
	for feeds, last := range pending {
		cur, err := s.cfg.DB.Advance(ctx, feeds, last)
		if err != nil {
			s.log.Warn("sync: move the cursor", "feeds", feeds, "err", err)
			continue
		}
		if cur < last {
			s.log.Debug("sync: a gap after pushes", "feeds", feeds, "held_through", cur, "last_seq", last)
			gap = true
		}
	}
	return gap
}

func (s *Syncer) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Syncer) release() { <-s.lock }

// Run pushes this device's unsequenced messages, relays other devices'
// that have waited RelayAfter and, with pull, pulls every conversation's
// missing messages.
func (s *Syncer) Run(ctx context.Context, pull bool) (Result, error) {
	if err := s.acquire(ctx); err != nil {
		return Result{}, err
	}
	defer s.release()
	var res Result
	pushed, err := s.push(ctx, "", nil)
	res.Pushed = pushed
	if err != nil {
		return res, fmt.Errorf("push: %w", err)
	}
	if pull {
		pulled, err := s.pull(ctx)
		res.Pulled = pulled
		if err != nil {
			return res, fmt.Errorf("pull: %w", err)
		}
	}
	return res, nil
}

// answerConflict starts the server's answer to a message whose (From,
// MsgId) names another message there.
const answerConflict = "conflict"

// IsConflict reports whether err is the server's "conflict" answer.
func IsConflict(err error) bool {
	var ae *wire.AnswerError
	return errors.As(err, &ae) && strings.HasPrefix(ae.Msg, answerConflict)
}

// pull fetches, for every conversation the server lists, the messages
// after this device's cursor.
func (s *Syncer) pull(ctx context.Context) (int, error) {
	var convs []wire.Conversation
	if err := s.cfg.Server.Call(ctx, wire.MethodConversations, wire.Empty{}, &convs); err != nil {
		return 0, err
	}
	p := Progress{Conversations: len(convs)}
	cursors := make([]int64, len(convs))
	for i, c := range convs {
		cur, err := s.cfg.DB.Cursor(ctx, c.Feeds)
		if err != nil {
			return 0, err
		}
		cursors[i] = cur
		if err := s.cfg.DB.NoteLastSeq(ctx, c.Feeds, c.LastSeqID); err != nil {
			return 0, err
		}
		p.Total += max(0, c.LastSeqID-cur)
	}
	total := 0
	var err error
	for i, c := range convs {
		p.Conversation = i + 1
		var n int
		n, err = s.pullOne(ctx, c, cursors[i], &p)
		total += n
		if err != nil {
			err = fmt.Errorf("%s: %w", c.Feeds, err)
			break
		}
	}
	if s.cfg.Progress != nil {
		p.Done, p.Err = true, err
		s.cfg.Progress(p)
	}
	return total, err
}

// page is one history page on its way from the fetcher, through the
// checkers, to the writer.
type page struct {
	msgs []wire.Message
	next int64 // the cursor once this page is stored
	last int64 // the conversation's last SeqId as the page said
	err  error

	// errs is Check's verdict on each of msgs, complete once checked is
	// closed: the checkers take the page in parts, and the one that
	// finishes the last part closes it.
	errs    []error
	parts   atomic.Int32 // parts not yet checked
	checked chan struct{}
}

// checkPart is a slice of a page that one checker takes at a time: small
// enough that all CPUs share even one page, large enough that handing
// parts out costs nothing next to the signatures.
const checkPart = 128

// pagesAhead is how many fetched pages may wait for the writer, which
// bounds the memory a pull holds whatever the history's size.
const pagesAhead = 2

// part is msgs[lo:hi] of a page, for a checker.
type part struct {
	pg     *page
	lo, hi int
}

// pullOne pulls one conversation from cursor on. One goroutine fetches
// pages ahead, one checker a CPU verifies them part by part, and this
// goroutine stores each page once all its parts are checked. Signature
// checks are most of a restore's work, so every CPU keeps checking while
// pages are fetched and stored, and no checker waits for another to end a
// page. Pages are stored in order, and the cursor moves only once its page
// is stored. It returns once the fetcher and the checkers have ended.
func (s *Syncer) pullOne(ctx context.Context, c wire.Conversation, cursor int64, p *Progress) (int, error) {
	if cursor >= c.LastSeqID {
		return 0, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	pages := make(chan *page, pagesAhead)
	parts := make(chan part, (pagesAhead+1)*(PageSize/checkPart+1))
	checkers := runtime.GOMAXPROCS(0)
	ended := make(chan struct{}, checkers)
	go s.fetch(ctx, c, cursor, pages, parts)
	for range checkers {
		go func() {
			defer func() { ended <- struct{}{} }()
			s.check(ctx, c.Feeds, parts)
		}()
	}
	defer func() {
		cancel()
		for range pages { // closed when the fetcher ends
		}
		for range checkers {
			<-ended
		}
	}()
	total := 0
	for pg := range pages {
		if pg.err != nil {
			return total, pg.err
		}
		select {
		case <-pg.checked:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			// Checkers stop checking once ctx ends: what they left is no
			// verdict to record.
			return total, err
		}
		good := s.keepChecked(pg)
		added, err := s.cfg.DB.AddMessages(ctx, good, localdb.ViaSync)
		if err != nil {
			return total, err
		}
		if err := s.cfg.DB.SetCursor(ctx, c.Feeds, pg.next); err != nil {
			return total, err
		}
		if err := s.cfg.DB.NoteLastSeq(ctx, c.Feeds, pg.last); err != nil {
			return total, err
		}
		for i, ok := range added {
			if ok {
				total++
				if s.cfg.Stored != nil {
					s.cfg.Stored(good[i])
				}
			}
		}
		s.pulled.Add(int64(len(good)))
		p.Fetched += int64(len(pg.msgs))
		if s.cfg.Progress != nil {
			s.cfg.Progress(*p)
		}
	}
	return total, ctx.Err()
}

// fetch reads pages after cursor until the conversation's last SeqId,
// hands each to the writer (pages, in order) and its parts to the checkers,
// and closes both channels.
func (s *Syncer) fetch(ctx context.Context, c wire.Conversation, cursor int64, pages chan<- *page, parts chan<- part) {
	defer close(parts)
	defer close(pages)
	last := c.LastSeqID
	for cursor < last {
		var res wire.HistoryResult
		req := wire.HistoryReq{Feeds: c.Feeds, AfterSeq: cursor, Limit: PageSize}
		pg := &page{checked: make(chan struct{})}
		if err := s.cfg.Server.Call(ctx, wire.MethodHistory, req, &res); err != nil {
			pg.err = err
		} else if len(res.Messages) == 0 {
			return // the server has nothing past cursor after all
		}
		if pg.err == nil {
			next := cursor
			for _, m := range res.Messages {
				next = max(next, m.SeqId)
			}
			if next <= cursor {
				pg.err = fmt.Errorf("history after %d did not move forward", cursor)
			}
			last = max(last, res.LastSeqID)
			pg.msgs, pg.next, pg.last = res.Messages, next, last
			pg.errs = make([]error, len(pg.msgs))
			pg.parts.Store(int32((len(pg.msgs) + checkPart - 1) / checkPart))
			cursor = next
		}
		select {
		case pages <- pg:
		case <-ctx.Done():
			return
		}
		if pg.err != nil {
			return
		}
		for lo := 0; lo < len(pg.msgs); lo += checkPart {
			select {
			case parts <- part{pg, lo, min(lo+checkPart, len(pg.msgs))}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// check verifies the parts it is handed until parts is closed, and closes
// a page's checked once its last part is done.
func (s *Syncer) check(ctx context.Context, feeds string, parts <-chan part) {
	var signed []*wire.Message
	var at []int
	for pt := range parts {
		msgs := pt.pg.msgs
		signed, at = signed[:0], at[:0]
		for i := pt.lo; i < pt.hi; i++ {
			m := &msgs[i]
			switch {
			case ctx.Err() != nil:
				pt.pg.errs[i] = ctx.Err() // the page will not be stored
			case m.Feeds != feeds:
				pt.pg.errs[i] = fmt.Errorf("a message of %s in the history of %s", m.Feeds, feeds)
			default:
				pt.pg.errs[i] = s.cfg.Check(m)
				if pt.pg.errs[i] == nil && m.Signed() {
					signed, at = append(signed, m), append(at, i)
				}
			}
		}
		for k, err := range wire.VerifyBatch(signed) {
			pt.pg.errs[at[k]] = err
		}
		if pt.pg.parts.Add(-1) == 0 {
			close(pt.pg.checked)
		}
	}
}

// keepChecked returns the messages of a checked page that passed, in page
// order, and records the others as refused.
func (s *Syncer) keepChecked(pg *page) []wire.Message {
	refused := 0
	for _, err := range pg.errs {
		if err != nil {
			refused++
		}
	}
	if refused == 0 {
		return pg.msgs
	}
	good := make([]wire.Message, 0, len(pg.msgs)-refused)
	for i, err := range pg.errs {
		if err == nil {
			good = append(good, pg.msgs[i])
			continue
		}
		s.refusedPulls.Add(1)
		s.refuse(pg.msgs[i], err)
	}
	return good
}

func (s *Syncer) refuse(m wire.Message, err error) {
	if e := s.cfg.DB.AddRefused(context.Background(), m, err.Error()); e != nil {
		s.log.Warn("record a refused message", "msg_id", m.MsgId, "err", e)
	}
	if s.cfg.Refused != nil {
		s.cfg.Refused(m, err)
	} else {
		s.log.Warn("refused a pulled message", "msg_id", m.MsgId, "feeds", m.Feeds, "err", err)
	}
}
