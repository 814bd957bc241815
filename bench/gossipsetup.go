package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/errgroup"

	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/p2p"
	"github.com/mqtter/mqtter/wire"
)

// gossipSender is the account whose device sends the group's messages.
const gossipSender = "sender"

// gossipWorld is one size's run: a server, the sender's device (the
// bench's own p2p host with GossipSub and an MQTT link, a device of the
// group's owner), and the members' nodes, all in one group.
type gossipWorld struct {
	server  *broker
	device  *benchDevice
	gossip  *p2p.Gossip
	topic   string
	group   string
	members []*member
	events  *fanout
	stopEv  func()
	links   netLinks
	linksMu sync.Mutex
	url     string // the server's, as the devices reach it
}

// member is one member's real node: an `mqtter node` process, or
// node.Run in this process.
type member struct {
	user, home string
	api        *node.Client
	id         peer.ID
	addrs      []multiaddr.Multiaddr
	proc       *process // nil for a node in this process
	stop       func() string
}

// startGossipWorld starts and connects everything for size members. On
// error it returns what it started so far, for the caller to close.
func startGossipWorld(ctx context.Context, cfg GossipConfig, dir string, size int, procs bool, progress func(string, ...any)) (*gossipWorld, error) {
	users := []string{gossipSender}
	for i := range size {
		users = append(users, fmt.Sprintf("m%03d", i+1))
	}
	server, err := startMQTTer(ctx, cfg.MQTTer, dir, "server", users)
	if err != nil {
		return nil, err
	}
	w := &gossipWorld{server: server, links: netLinks{delay: cfg.LinkDelay}}
	if w.url, err = w.links.server(server.url()); err != nil {
		return w, err
	}
	listen, announce, err := w.links.device()
	if err != nil {
		return w, err
	}
	if w.device, err = newBenchDeviceAt(ctx, dir, w.url, gossipSender, users[1], listen, announce); err != nil {
		return w, err
	}
	if err := w.startMembers(ctx, cfg.MQTTer, dir, users[1:], procs); err != nil {
		return w, err
	}
	progress("%d members: nodes connected to the server; making the group", size)
	if err := w.makeGroup(ctx); err != nil {
		return w, err
	}
	progress("%d members: group made; waiting for the meshes", size)
	if err := w.startGossip(ctx, cfg.MeshWait, progress); err != nil {
		return w, err
	}
	return w, w.follow(ctx)
}

// startMembers starts the members' nodes, a few at a time, and waits
// until each is connected to the server.
func (w *gossipWorld) startMembers(ctx context.Context, bin, dir string, users []string, procs bool) error {
	var logger *slog.Logger
	if !procs {
		f, err := os.Create(filepath.Join(dir, "nodes.log"))
		if err != nil {
			return err
		}
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	w.members = make([]*member, len(users))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, user := range users {
		g.Go(func() error {
			var m *member
			listen, announce, err := w.place()
			if err != nil {
				return err
			}
			if procs {
				m, err = startMemberProc(gctx, bin, dir, user, w.url, listen, announce)
			} else {
				m, err = startMemberInProcess(gctx, dir, user, w.url, listen, announce, logger)
			}
			w.members[i] = m
			return err
		})
	}
	return g.Wait()
}

// place gives a member's device its place behind the world's links
// (devices start in parallel; the links are not).
func (w *gossipWorld) place() (listen string, announce []string, err error) {
	w.linksMu.Lock()
	defer w.linksMu.Unlock()
	return w.links.device()
}

// startMemberProc runs user's node as `mqtter node`, as nodebench does,
// listening on listen and announcing announce.
func startMemberProc(ctx context.Context, bin, dir, user, url, listen string, announce []string) (*member, error) {
	var extra []string
	for _, a := range announce {
		extra = append(extra, "--p2p-announce", a)
	}
	n, err := startNodeProcAt(ctx, bin, dir, user, url, listen, extra...)
	if err != nil {
		return nil, err
	}
	m := &member{user: user, home: n.home, proc: n.process, stop: n.shutdown}
	if err := n.waitReady(ctx); err != nil {
		return m, err
	}
	m.api, m.id, m.addrs = n.api, n.id, n.addrs
	return m, nil
}

// startMemberInProcess runs user's node with node.Run in this process,
// configured as startNodeProc configures a node process.
func startMemberInProcess(ctx context.Context, dir, user, url, listen string, announce []string, logger *slog.Logger) (*member, error) {
	home := filepath.Join(dir, user)
	nctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- node.Run(nctx, node.Config{
			Home: home, Server: url, User: user, Password: benchPassword,
			ListenAddrs: []string{listen}, Announce: announce, NoMDNS: true, SyncInterval: time.Hour,
			Logger: logger.With("node", user),
		})
	}()
	var exited error
	m := &member{user: user, home: home}
	m.stop = func() string {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				return fmt.Sprintf("%s's node: %v", user, err)
			}
		case <-time.After(10 * time.Second):
			return fmt.Sprintf("%s's node did not stop within 10 s", user)
		}
		return ""
	}
	var st node.Status
	err := waitFor(ctx, 30*time.Second, user+"'s node is up and connected to the server", func(ctx context.Context) (bool, string) {
		select {
		case exited = <-done:
			done <- exited // for stop
			return false, fmt.Sprintf("exited: %v", exited)
		default:
		}
		if m.api == nil {
			c, err := node.Dial(home)
			if err != nil {
				return false, err.Error()
			}
			m.api = c
		}
		var err error
		if st, err = m.api.Status(ctx); err != nil {
			return false, err.Error()
		}
		return st.Server == node.ServerConnected, st.Server + " " + st.ServerError
	})
	if err != nil {
		return m, err
	}
	return m, m.learn(st)
}

// learn takes the member's device id and addresses from its status.
func (m *member) learn(st node.Status) error {
	id, err := peer.Decode(st.Device)
	if err != nil {
		return fmt.Errorf("%s's device %q: %w", m.user, st.Device, err)
	}
	m.id = id
	for _, a := range st.Addrs {
		ma, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			return fmt.Errorf("%s's address %q: %w", m.user, a, err)
		}
		m.addrs = append(m.addrs, ma)
	}
	return nil
}

// makeGroup makes the sender friends with every member (a group's owner
// adds friends) and creates the group of them all.
func (w *gossipWorld) makeGroup(ctx context.Context) error {
	link := w.device.link
	var names []string
	for _, m := range w.members {
		if err := link.Call(ctx, wire.MethodAddFriend, wire.UserReq{User: m.user}, nil); err != nil {
			return fmt.Errorf("%s add_friend %s: %w", gossipSender, m.user, err)
		}
		if err := m.api.Call(ctx, wire.MethodAcceptFriend, wire.UserReq{User: gossipSender}, nil); err != nil {
			return fmt.Errorf("%s accept_friend %s: %w", m.user, gossipSender, err)
		}
		names = append(names, m.user)
	}
	var created wire.FeedsReq
	if err := link.Call(ctx, wire.MethodCreateFeeds, wire.CreateFeedsReq{Name: "gossipbench", Members: names}, &created); err != nil {
		return fmt.Errorf("create the group: %w", err)
	}
	w.group, w.topic = created.Feeds, node.GossipTopic(created.Feeds)
	w.device.feeds = created.Feeds
	return nil
}

// meshWanted is how many mesh peers each device waits for (GossipSub's
// D_lo, the node's meshLow), or all the others in a smaller group.
func meshWanted(size int) int { return min(5, size) }

// startGossip starts GossipSub on the sender's host, with the members'
// devices the only peers it lets in, connects it to every member, and
// waits until every device's mesh of the group
// is full enough.
func (w *gossipWorld) startGossip(ctx context.Context, wait time.Duration, progress func(string, ...any)) error {
	ids := make(map[peer.ID]bool, len(w.members))
	for _, m := range w.members {
		ids[m.id] = true
	}
	g, err := w.device.host.StartGossip(p2p.GossipConfig{
		MayJoin: func(id peer.ID, topic string) bool { return topic == w.topic && ids[id] },
		// The sender takes nothing from the group: its own messages
		// coming back are duplicates, dropped before this.
		Validate: func(context.Context, peer.ID, string, []byte) (any, p2p.Verdict) { return nil, p2p.Ignore },
		Deliver:  func(peer.ID, string, any) {},
	})
	if err != nil {
		return fmt.Errorf("sender's gossip: %w", err)
	}
	w.gossip = g
	if err := g.Join(w.topic); err != nil {
		return err
	}
	// Connected to every member, GossipSub picks the sender's mesh
	// among them all (a node dials five members a round while its mesh
	// is thin; members prune a sender they have no room for, and one
	// dialled to a few only is left with a thin mesh).
	dials, dctx := errgroup.WithContext(ctx)
	dials.SetLimit(8)
	for _, m := range w.members {
		dials.Go(func() error {
			cctx, cancel := context.WithTimeout(dctx, 5*time.Second)
			defer cancel()
			if err := w.device.host.Connect(cctx, m.id, m.addrs); err != nil {
				return fmt.Errorf("sender dials %s: %w", m.user, err)
			}
			return nil
		})
	}
	if err := dials.Wait(); err != nil {
		return err
	}
	want := meshWanted(len(w.members))
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for tick := 0; ; tick++ {
		full, thinnest, err := w.meshes(ctx, want)
		if err == nil && full == len(w.members) && len(g.MeshPeers(w.topic)) >= want {
			return nil
		}
		state := fmt.Sprintf("%d of %d members' meshes hold %d peers or more (the thinnest %d), the sender's %d",
			full, len(w.members), want, thinnest, len(g.MeshPeers(w.topic)))
		if err != nil {
			state = err.Error()
		}
		if tick%20 == 19 {
			progress("waiting for the meshes: %s", state)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for the group's meshes: %w (last: %s)", err, state)
		}
	}
}

// meshes returns how many members' meshes of the group hold want peers
// or more, and the size of the thinnest.
func (w *gossipWorld) meshes(ctx context.Context, want int) (full, thinnest int, err error) {
	thinnest = len(w.members)
	for _, m := range w.members {
		st, err := m.api.Status(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("%s's status: %w", m.user, err)
		}
		n := 0
		if st.Gossip != nil {
			n = len(st.Gossip.Meshes[w.group])
		}
		if n >= want {
			full++
		}
		thinnest = min(thinnest, n)
	}
	return full, thinnest, nil
}

// close stops everything and returns what went wrong.
func (w *gossipWorld) close() []string {
	var problems []string
	if w.stopEv != nil {
		w.stopEv()
	}
	if w.gossip != nil {
		w.gossip.Close()
	}
	if w.device != nil {
		w.device.close()
	}
	var g errgroup.Group
	msgs := make([]string, len(w.members))
	for i, m := range w.members {
		if m != nil && m.stop != nil {
			g.Go(func() error { msgs[i] = m.stop(); return nil })
		}
	}
	_ = g.Wait()
	if w.server != nil {
		msgs = append(msgs, w.server.process.shutdown())
	}
	msgs = append(msgs, w.links.close()...)
	for _, msg := range msgs {
		if msg != "" {
			problems = append(problems, msg)
		}
	}
	return problems
}

// cpuTime is the CPU time used so far by every process of the run: this
// one (the sender, and the members run in it), the server and the member
// processes.
func (w *gossipWorld) cpuTime() time.Duration {
	total := selfCPU() + w.server.process.cpuTime()
	for _, m := range w.members {
		if m.proc != nil {
			total += m.proc.cpuTime()
		}
	}
	return total
}
