package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/errgroup"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/mqttlink"
	"github.com/mqtter/mqtter/p2p"
	"github.com/mqtter/mqtter/wire"
)

// benchDevice is a device of one account that the bench drives itself: a
// p2p host like a node's, registered with the server so that the peer's
// node accepts it, and a localdb of its own where it stores what it sends,
// as a node does. It sends signed dm messages to the peer's node, whose
// real handler verifies, stores and answers them.
type benchDevice struct {
	key   crypto.PrivKey
	id    peer.ID
	user  string
	feeds string
	host  *p2p.Host
	link  *mqttlink.Link
	db    *localdb.DB
}

// newBenchDevice makes a device of user, registers it with the server at
// url and opens its store in dir.
func newBenchDevice(ctx context.Context, dir, url, user, peerUser string) (*benchDevice, error) {
	return newBenchDeviceAt(ctx, dir, url, user, peerUser, "/ip4/127.0.0.1/tcp/0", nil)
}

// newBenchDeviceAt is newBenchDevice listening on listen and announcing
// announce (behind a delay link).
func newBenchDeviceAt(ctx context.Context, dir, url, user, peerUser, listen string, announce []string) (*benchDevice, error) {
	key, id, err := newDeviceKey()
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	d := &benchDevice{key: key, id: id, user: user, feeds: wire.DM(user, peerUser)}
	d.host, err = p2p.New(ctx, p2p.Config{
		Key:         key,
		ListenAddrs: []string{listen},
		Announce:    announce,
		Handler: p2p.HandlerFunc(func(context.Context, peer.ID, string, []byte) []byte {
			return wire.Fail("", "the bench device takes no requests")
		}),
		Logger: quiet,
	})
	if err != nil {
		return nil, fmt.Errorf("bench device: %w", err)
	}
	if d.db, err = localdb.Open(ctx, filepath.Join(dir, "bench-device.db"), quiet); err != nil {
		d.close()
		return nil, fmt.Errorf("bench device: %w", err)
	}
	d.link = mqttlink.Start(mqttlink.Config{Server: url, User: user, Password: benchPassword, ClientID: id.String(), Logger: quiet})
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := d.link.Wait(wctx); err != nil {
		d.close()
		return nil, fmt.Errorf("bench device: connect: %w", err)
	}
	if _, err := d.link.RegisterDevice(ctx, key, d.host.Addrs()); err != nil {
		d.close()
		return nil, fmt.Errorf("bench device: %w", err)
	}
	return d, nil
}

func (d *benchDevice) close() {
	if d.link != nil {
		d.link.Close()
	}
	if d.host != nil {
		d.host.Close()
	}
	if d.db != nil {
		d.db.Close()
	}
}

// message returns the i-th message of a run, signed.
func (d *benchDevice) message(i int) wire.Message {
	payload, _ := json.Marshal(map[string]string{"text": fmt.Sprintf("nodebench message %d: the quick brown fox jumps over the lazy dog", i)})
	m := wire.Message{MsgId: wire.NewMsgID(), Feeds: d.feeds, MsgType: wire.MsgTypeText, From: d.user,
		Payload: payload, TimeCreate: time.Now().UnixMilli()}
	if err := m.Sign(d.key); err != nil {
		panic(err) // an Ed25519 key always signs
	}
	return m
}

// request returns the topic and body that send m to device to.
func request(to peer.ID, m wire.Message) (string, []byte) {
	body, err := json.Marshal(&m)
	if err != nil {
		panic(err)
	}
	return wire.RequestTopic(to.String(), wire.MethodSend, m.MsgId), body
}

// frame returns the frame that carries m to device to.
func (d *benchDevice) frame(to peer.ID, m wire.Message) []byte {
	topic, body := request(to, m)
	return wire.AppendFrame(nil, topic, body)
}

// checkAnswer turns a request's outcome into an error unless the peer
// answered OK.
func checkAnswer(raw []byte, err error) error {
	if err != nil {
		return err
	}
	a, err := wire.ParseAnswer(raw)
	if err != nil {
		return err
	}
	return a.Err()
}

// requestLatency sends count signed messages to n's node one at a time
// and times each from the request until the answer, which n's node sends
// once the message is verified and stored. The messages are signed and
// encoded before the clock starts.
func (d *benchDevice) requestLatency(ctx context.Context, n *nodeProc, count int, timeout time.Duration) ([]time.Duration, error) {
	topics, bodies := make([]string, count), make([][]byte, count)
	for i := range count {
		topics[i], bodies[i] = request(n.id, d.message(i))
	}
	samples := make([]time.Duration, 0, count)
	for i := range count {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		raw, err := d.host.Request(rctx, n.id, n.addrs, topics[i], bodies[i])
		elapsed := time.Since(start)
		cancel()
		if err := checkAnswer(raw, err); err != nil {
			return samples, fmt.Errorf("message %d: %w", i, err)
		}
		samples = append(samples, elapsed)
	}
	return samples, nil
}

// directBurst is one burst of a throughput run, stored on the sending side.
type directBurst struct {
	topics []string
	bodies [][]byte
}

// throughput sends msgs messages to n's node in bursts of batch, one
// burst in flight at a time as the outbox sends one conversation: each
// burst is signed and stored here in one transaction (while the previous
// one is on the wire), then written back to back with RequestAll; n's
// node verifies, stores and answers every message.
func (d *benchDevice) throughput(ctx context.Context, n *nodeProc, msgs, batch int, timeout time.Duration) NodeFlow {
	flow := NodeFlow{Path: PathBurst,
		How: fmt.Sprintf("the bench's device of alice → %s's node with p2p.RequestAll, bursts of %d, one in flight (as the outbox sends a conversation); "+
			"each burst signed and stored in one transaction on the sending side first", n.user, batch)}
	bursts := make(chan directBurst, 1)
	g, gctx := errgroup.WithContext(ctx)
	selfBefore, peerBefore := selfCPU(), n.cpuTime()
	start := time.Now()
	g.Go(func() error {
		defer close(bursts)
		for first := 0; first < msgs; first += batch {
			ms := make([]wire.Message, min(batch, msgs-first))
			b := directBurst{topics: make([]string, len(ms)), bodies: make([][]byte, len(ms))}
			for i := range ms {
				ms[i] = d.message(first + i)
				b.topics[i], b.bodies[i] = request(n.id, ms[i])
			}
			if _, err := d.db.AddMessages(gctx, ms, localdb.ViaLocal); err != nil {
				return fmt.Errorf("store on the sending side: %w", err)
			}
			select {
			case bursts <- b:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		for b := range bursts {
			rctx, cancel := context.WithTimeout(gctx, timeout)
			answers, errs := d.host.RequestAll(rctx, n.id, n.addrs, b.topics, b.bodies)
			cancel()
			for i := range answers {
				if err := checkAnswer(answers[i], errs[i]); err != nil {
					return fmt.Errorf("message %d: %w", flow.Msgs, err)
				}
				flow.Msgs++
			}
			flow.Elapsed = time.Since(start)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		flow.Err = err.Error()
	}
	if flow.Msgs > 0 {
		flow.SenderCPU = (selfCPU() - selfBefore) / time.Duration(flow.Msgs)
		flow.ReceiverCPU = (n.cpuTime() - peerBefore) / time.Duration(flow.Msgs)
	}
	return flow
}

// echoProtocol is the raw stream protocol barehost echoes (the same id as
// in bench/cmd/nodebench/barehost).
const echoProtocol protocol.ID = "/mqtter/bench-echo/1.0.0"

// echoClient drives raw echo streams to barehost; it dials on first use,
// so that barehost's idle memory is read without a connection, as the
// nodes' is.
type echoClient struct {
	h  host.Host
	to peer.AddrInfo
	s  network.Stream
}

func newEchoClient(ctx context.Context, addrs []multiaddr.Multiaddr) (*echoClient, error) {
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil || len(infos) != 1 {
		return nil, fmt.Errorf("barehost addresses %v: %v", addrs, err)
	}
	h, err := libp2p.New(p2p.BaseOptions("/ip4/127.0.0.1/tcp/0")...)
	if err != nil {
		return nil, fmt.Errorf("echo client: %w", err)
	}
	return &echoClient{h: h, to: infos[0]}, nil
}

func (e *echoClient) close() {
	if e.s != nil {
		_ = e.s.Reset()
	}
	e.h.Close()
}

func (e *echoClient) stream(ctx context.Context) (network.Stream, error) {
	if e.s != nil {
		return e.s, nil
	}
	if err := e.h.Connect(ctx, e.to); err != nil {
		return nil, fmt.Errorf("echo: connect: %w", err)
	}
	s, err := e.h.NewStream(ctx, e.to.ID, echoProtocol)
	if err != nil {
		return nil, fmt.Errorf("echo: open stream: %w", err)
	}
	e.s = s
	return s, nil
}

// latency echoes count frames of size bytes one at a time.
func (e *echoClient) latency(ctx context.Context, count, size int, timeout time.Duration) ([]time.Duration, error) {
	s, err := e.stream(ctx)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, size)
	back := make([]byte, size)
	samples := make([]time.Duration, 0, count)
	for range count {
		if err := ctx.Err(); err != nil {
			return samples, err
		}
		_ = s.SetDeadline(time.Now().Add(timeout))
		start := time.Now()
		if _, err := s.Write(frame); err != nil {
			return samples, fmt.Errorf("echo: %w", err)
		}
		if _, err := io.ReadFull(s, back); err != nil {
			return samples, fmt.Errorf("echo: %w", err)
		}
		samples = append(samples, time.Since(start))
	}
	return samples, nil
}

// throughput echoes msgs frames of size bytes in bursts of batch, one
// burst in flight at a time, written in writes of 64 KiB as RequestAll
// does; peer is the echoing process.
func (e *echoClient) throughput(ctx context.Context, peer *process, msgs, batch, size int, timeout time.Duration) NodeFlow {
	flow := NodeFlow{Path: PathEcho, How: fmt.Sprintf("frames of %d bytes in bursts of %d, echoed by barehost", size, batch)}
	s, err := e.stream(ctx)
	if err != nil {
		flow.Err = err.Error()
		return flow
	}
	burst := make([]byte, size*batch)
	back := make([]byte, len(burst))
	selfBefore, peerBefore := selfCPU(), peer.cpuTime()
	start := time.Now()
	for flow.Msgs < msgs {
		k := min(batch, msgs-flow.Msgs)
		out := burst[:k*size]
		_ = s.SetDeadline(time.Now().Add(timeout))
		werr := make(chan error, 1)
		go func() {
			for len(out) > 0 {
				n := min(len(out), 64<<10)
				if _, err := s.Write(out[:n]); err != nil {
					werr <- err
					return
				}
				out = out[n:]
			}
			werr <- nil
		}()
		_, rerr := io.ReadFull(s, back[:k*size])
		if err := errors.Join(<-werr, rerr); err != nil {
			flow.Err = fmt.Sprintf("echo: %v", err)
			break
		}
		flow.Msgs += k
		flow.Elapsed = time.Since(start)
	}
	if flow.Msgs > 0 {
		flow.SenderCPU = (selfCPU() - selfBefore) / time.Duration(flow.Msgs)
		flow.ReceiverCPU = (peer.cpuTime() - peerBefore) / time.Duration(flow.Msgs)
	}
	return flow
}
