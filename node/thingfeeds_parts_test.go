package node

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// A thing's dm (a command's result) queued behind a state in its feed
// waits for the direct leg of the feed's try (gossip), and no longer: not
// for its server leg, not for a feed only backing off (every ack would
// wait while the server is down), not past feedFirstWait, not for another
// account's feed.
func TestOutboxResultWaitsForFeed(t *testing.T) {
	o := &outbox{n: &Node{cfg: Config{User: "lamp"}}, queues: make(map[string]*convQueue)}
	msg := func(feeds string) wire.Message {
		return wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds, MsgType: wire.MsgTypeFeedback}
	}
	state, result := msg("t:lamp"), msg(wire.DM("alice", "lamp"))
	now := time.Now()

	o.queue(state, false)
	command := msg(wire.DM("door", "lamp"))
	command.MsgType = wire.MsgTypeCommand
	o.queue(command, false)
	if waits, _ := o.queues[command.Feeds].waitsForFeed(now); waits {
		t.Error("a rule's command waits for the thing's state")
	}
	o.queue(result, false)
	dm, feed := o.queues[result.Feeds], o.queues[state.Feeds]
	if waits, _ := dm.waitsForFeed(now); !waits {
		t.Fatal("the result does not wait for the untried state")
	}
	group := msg("g:home")
	o.queue(group, false)
	if waits, _ := o.queues[group.Feeds].waitsForFeed(now); waits {
		t.Error("a group message of the thing waits for its feed")
	}
	feed.busy, feed.fresh = true, false // the loop takes the state
	feed.early = 1
	if waits, _ := dm.waitsForFeed(now); !waits {
		t.Fatal("the result does not wait for the state's try")
	}
	if waits, _ := dm.waitsForFeed(now.Add(feedFirstWait + time.Second)); waits {
		t.Error("the result waits past feedFirstWait")
	}
	feed.sent = 1 // the try's direct leg is done; its server leg goes on
	if waits, _ := dm.waitsForFeed(now); waits {
		t.Error("the result waits for the state's server leg")
	}
	o.finish(batchResult{feeds: state.Feeds, sent: 1, delivered: map[string]bool{}, err: errors.New("server unreachable")})
	if waits, _ := dm.waitsForFeed(now); waits {
		t.Error("the result still waits after the state's try")
	}

	// The state failed and backs off: a new result does not wait for it.
	later := msg(wire.DM("alice", "lamp"))
	o.queue(later, false)
	if waits, _ := o.queues[later.Feeds].waitsForFeed(now); waits {
		t.Error("a result waits for a feed that only backs off")
	}

	// A state comes while another is tried: a result after it waits for
	// that state, not the one in flight.
	o2 := &outbox{n: &Node{cfg: Config{User: "lamp"}}, queues: make(map[string]*convQueue)}
	o2.queue(msg("t:lamp"), false)
	f2 := o2.queues["t:lamp"]
	f2.busy, f2.fresh, f2.early = true, false, 1
	o2.queue(msg("t:lamp"), false)
	second := msg(wire.DM("alice", "lamp"))
	o2.queue(second, false)
	q2 := o2.queues[second.Feeds]
	if q2.afterSeq != 2 {
		t.Errorf("a result queued behind a second state waits for message %d of the feed, want 2", q2.afterSeq)
	}
	f2.sent = 1 // the first state's leg
	if waits, _ := q2.waitsForFeed(now); !waits {
		t.Error("the result does not wait for the state before it")
	}
	f2.sent = 2 // the second's early gossip leg, while the first try's server leg goes on
	if waits, _ := q2.waitsForFeed(now); waits {
		t.Error("the result waits for the state's try after the one in flight")
	}

	// A person's node has no feed to wait for; another's feed is no
	// reason to wait.
	p := &outbox{n: &Node{cfg: Config{User: "alice"}}, queues: make(map[string]*convQueue)}
	p.queue(msg("t:lamp"), false)
	text := msg(wire.DM("alice", "bob"))
	p.queue(text, false)
	if waits, _ := p.queues[text.Feeds].waitsForFeed(now); waits {
		t.Error("alice's dm waits for a feed that is not hers")
	}
}

// A thing sends its state and events into its feed once the server listed
// it, as a dm to each of its audience when the server has no feeds (an
// older server), and nowhere when nobody hears it.
func TestThingStateTargets(t *testing.T) {
	b := newBook("lamp")
	rt := &thingRuntime{n: &Node{book: b}, self: "lamp"}
	if got := rt.stateTargets(); got != nil {
		t.Errorf("targets with nobody bound = %v, want none", got)
	}
	b.setRelations([]wire.Relation{
		{User: "alice", Kind: wire.KindPerson, State: wire.StateBound},
		{User: "door", Kind: wire.KindThing, State: wire.StateAssociated},
		{User: "carol", Kind: wire.KindPerson, State: wire.StateFriend},
	})
	if got := rt.stateTargets(); !slices.Equal(got, []string{"alice", "door"}) {
		t.Errorf("targets without a feed = %v, want a dm to alice and the door", got)
	}
	b.setThingFeeds([]wire.Group{{Feeds: "t:lamp", Members: []string{"alice", "door", "lamp"}}})
	if got := rt.stateTargets(); !slices.Equal(got, []string{"t:lamp"}) {
		t.Errorf("targets with the feed listed = %v, want the feed once", got)
	}
	b.setThingFeeds([]wire.Group{{Feeds: "g:lamp"}, {Feeds: "t:door"}})
	if got := rt.stateTargets(); !slices.Equal(got, []string{"alice", "door"}) {
		t.Errorf("targets with only another's feed listed = %v, want the dms", got)
	}
}

// Messages of a gossiping queue that come while a try is in flight get a
// gossip leg of their own at once (not after the try's server leg), which
// the loop hears of; a queue not busy, or one with nothing new, gets none.
func TestOutboxGossipsEarly(t *testing.T) {
	o := &outbox{n: &Node{cfg: Config{User: "lamp"}}, queues: make(map[string]*convQueue),
		sentc: make(chan sentLeg, 4), stopc: make(chan struct{})}
	msg := func(feeds string) wire.Message { return wire.Message{MsgId: wire.NewMsgID(), Feeds: feeds} }
	var workers sync.WaitGroup
	o.queue(msg("t:lamp"), false)
	o.gossipEarly(&workers) // not busy: the loop's own try takes it
	workers.Wait()
	if len(o.sentc) != 0 {
		t.Fatal("an idle queue got an early leg")
	}
	feed := o.queues["t:lamp"]
	feed.busy, feed.fresh, feed.early = true, false, 1 // its try is in flight
	o.queue(msg("t:lamp"), false)
	o.queue(msg("t:lamp"), false)
	o.gossipEarly(&workers)
	workers.Wait()
	select {
	case leg := <-o.sentc:
		if leg.feeds != "t:lamp" || leg.seq != 3 {
			t.Errorf("early leg = %+v, want t:lamp up to 3", leg)
		}
	default:
		t.Fatal("the messages after the try in flight got no early leg")
	}
	o.gossipEarly(&workers) // nothing new since
	workers.Wait()
	if len(o.sentc) != 0 || feed.early != 3 {
		t.Errorf("a second early leg for the same messages (early %d)", feed.early)
	}
}
