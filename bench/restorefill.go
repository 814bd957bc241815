package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"runtime"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/wire"
)

// restoreAccount is the account whose new device restores the history.
const restoreAccount = "bob"

// restoreHistory is what a run restores: the restorer's dms with its peers and
// how many messages each holds.
type restoreHistory struct {
	peers  []string
	feeds  []string
	counts map[string]int64
	total  int
}

// restorePeerName names the i-th peer of the restorer.
func restorePeerName(i int) string {
	names := []string{"alice", "carol", "dave", "erin", "frank"}
	if i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("peer%02d", i)
}

// restoreBatch is how many messages one store job carries, the most one
// history_push may.
const restoreBatch = wire.MaxHistoryPush

// fillRestoreHistory creates the accounts with `mqtter user add`, then, through the
// server's store (the server is not running), makes the restorer friends
// with each peer, binds one signing device to every account and appends n
// signed messages spread over the dms: the first conversation gets the
// largest share, and the conversations interleave in time, as a real
// history does. The store assigns the SeqIds, as for a send.
func fillRestoreHistory(ctx context.Context, bin, dataDir string, n, convs int) (restoreHistory, error) {
	h := restoreHistory{counts: make(map[string]int64), total: n}
	for i := range convs {
		h.peers = append(h.peers, restorePeerName(i))
		h.feeds = append(h.feeds, wire.DM(restoreAccount, restorePeerName(i)))
	}
	if err := addUsers(ctx, bin, dataDir, append([]string{restoreAccount}, h.peers...)); err != nil {
		return h, err
	}

	db, err := store.Open(ctx, filepath.Join(dataDir, "mqtter.db"), nil)
	if err != nil {
		return h, err
	}
	defer db.Close()
	keys := make(map[string]crypto.PrivKey)
	for _, account := range append([]string{restoreAccount}, h.peers...) {
		key, err := bindStoreDevice(ctx, db, account)
		if err != nil {
			return h, err
		}
		keys[account] = key
	}
	now := time.Now().UnixMilli()
	for _, p := range h.peers {
		err := db.Write(ctx, func(ctx context.Context, tx store.Tx) error {
			return store.PutRelation(ctx, tx, store.Relation{A: restoreAccount, B: p, Kind: store.KindFriend,
				State: store.StateActive, Actor: p, Since: now})
		})
		if err != nil {
			return h, err
		}
	}
	return h, appendRestoreHistory(ctx, db, &h, keys, n)
}

// newDeviceKey returns a fresh device key and its peer id, the device's
// MQTT client id.
func newDeviceKey() (crypto.PrivKey, peer.ID, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	id, err := peer.IDFromPrivateKey(key)
	return key, id, err
}

// bindStoreDevice makes a device key for account and binds it as the store
// does on a device's first connect and register_device.
func bindStoreDevice(ctx context.Context, db *store.DB, account string) (crypto.PrivKey, error) {
	key, id, err := newDeviceKey()
	if err != nil {
		return nil, err
	}
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return nil, err
	}
	if _, err := db.TouchDevice(ctx, id.String(), account, time.Now()); err != nil {
		return nil, fmt.Errorf("bind a device to %s: %w", account, err)
	}
	if err := db.RegisterDevice(ctx, id.String(), account, base64.StdEncoding.EncodeToString(pub), nil); err != nil {
		return nil, fmt.Errorf("register a device of %s: %w", account, err)
	}
	return key, nil
}

// appendRestoreHistory makes n messages a chunk at a time (MsgIds in time order,
// signed on every CPU) and hands them to the store's writer a batch at a
// time, keeping a few batches in flight so signing and committing overlap.
func appendRestoreHistory(ctx context.Context, db *store.DB, h *restoreHistory, keys map[string]crypto.PrivKey, n int) error {
	const chunk = 8 * restoreBatch
	rng := mrand.New(mrand.NewPCG(1, 2)) // the same layout every run
	// Conversation i gets a share proportional to convs-i.
	weights := 0
	for i := range h.feeds {
		weights += len(h.feeds) - i
	}
	inflight := make(chan struct{}, 16)
	failed := make(chan error, 1)
	done := 0
	for done < n {
		msgs := make([]wire.Message, min(chunk, n-done))
		for i := range msgs {
			pick := rng.IntN(weights)
			c := 0
			for w := len(h.feeds); pick >= w; w-- {
				pick -= w
				c++
			}
			from := restoreAccount
			if rng.IntN(2) == 0 {
				from = h.peers[c]
			}
			msgs[i] = wire.Message{
				MsgId: wire.NewMsgID(), Feeds: h.feeds[c], MsgType: wire.MsgTypeText, From: from,
				Payload:    textPayload(restoreSentence(rng, done+i)),
				TimeCreate: time.Now().UnixMilli(),
			}
			h.counts[h.feeds[c]]++
		}
		if err := signMessages(ctx, msgs, keys); err != nil {
			return err
		}
		for len(msgs) > 0 {
			batch := msgs[:min(restoreBatch, len(msgs))]
			msgs = msgs[len(batch):]
			select {
			case inflight <- struct{}{}:
			case err := <-failed:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
			db.AppendAsync(batch, func(_ []store.Appended, err error) {
				if err != nil {
					select {
					case failed <- fmt.Errorf("append: %w", err):
					default:
					}
				}
				<-inflight
			})
			done += len(batch)
		}
	}
	for range cap(inflight) {
		select {
		case inflight <- struct{}{}:
		case err := <-failed:
			return err
		}
	}
	select {
	case err := <-failed:
		return err
	default:
		return nil
	}
}

// signMessages signs msgs with their senders' keys on every CPU.
func signMessages(ctx context.Context, msgs []wire.Message, keys map[string]crypto.PrivKey) error {
	g, _ := errgroup.WithContext(ctx)
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		g.Go(func() error {
			for i := w; i < len(msgs); i += workers {
				if err := msgs[i].Sign(keys[msgs[i].From]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// textPayload is the payload of a text message.
func textPayload(text string) json.RawMessage {
	b, _ := json.Marshal(struct {
		Text string `json:"text"`
	}{text}) // a string always encodes
	return b
}

var restoreWords = []string{"the", "meeting", "moved", "to", "friday", "bring", "coffee", "ok", "see", "you",
	"later", "thanks", "photo", "from", "yesterday", "lunch", "at", "noon", "running", "late", "sorry",
	"train", "is", "delayed", "call", "me", "when", "home", "👍", "ça", "marche"}

// restoreSentence is a message text of 3 to 25 restoreWords, numbered.
func restoreSentence(rng *mrand.Rand, i int) string {
	b := fmt.Appendf(nil, "#%d", i)
	for range 3 + rng.IntN(23) {
		b = append(b, ' ')
		b = append(b, restoreWords[rng.IntN(len(restoreWords))]...)
	}
	return string(b)
}
