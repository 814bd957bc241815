package wire

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// batchOf returns n messages signed by keys in turn.
func batchOf(t testing.TB, keys []crypto.PrivKey, n int) []Message {
	t.Helper()
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = signedMessage(t, keys[i%len(keys)])
		msgs[i].Payload = json.RawMessage(fmt.Sprintf(`{"text":"message %d"}`, i))
		if err := msgs[i].Sign(keys[i%len(keys)]); err != nil {
			t.Fatal(err)
		}
	}
	return msgs
}

func ptrs(msgs []Message) []*Message {
	out := make([]*Message, len(msgs))
	for i := range msgs {
		out[i] = &msgs[i]
	}
	return out
}

// Every way a message's signature can go wrong, found inside a batch.
func TestVerifyBatchFindsEachBadOne(t *testing.T) {
	keys := []crypto.PrivKey{newKey(t), newKey(t), newKey(t)}
	msgs := batchOf(t, keys, 40)
	for i, err := range VerifyBatch(ptrs(msgs)) {
		if err != nil {
			t.Fatalf("valid message %d: %v", i, err)
		}
	}
	bad := map[int]string{}
	msgs[3].Payload = json.RawMessage(`{"text":"changed"}`)
	bad[3] = "changed payload"
	sig, _ := base64.StdEncoding.DecodeString(msgs[7].Sig)
	sig[40] ^= 1
	msgs[7].Sig = base64.StdEncoding.EncodeToString(sig)
	bad[7] = "flipped bit in s"
	msgs[11].Device = msgs[12].Device // another device's key
	bad[11] = "another device"
	msgs[15].Sig = ""
	bad[15] = "unsigned"
	msgs[19].Sig = "not base64!"
	bad[19] = "malformed Sig"
	msgs[23].Device = "12D3KooWnot-a-peer-id"
	bad[23] = "malformed Device"
	sig, _ = base64.StdEncoding.DecodeString(msgs[27].Sig)
	for i := 32; i < 64; i++ {
		sig[i] = 0xff // s ≥ L: not canonical
	}
	msgs[27].Sig = base64.StdEncoding.EncodeToString(sig)
	bad[27] = "non-canonical s"
	errs := VerifyBatch(ptrs(msgs))
	for i := range msgs {
		want := msgs[i].Verify()
		switch {
		case bad[i] != "" && errs[i] == nil:
			t.Errorf("message %d (%s) passed the batch", i, bad[i])
		case bad[i] == "" && errs[i] != nil:
			t.Errorf("message %d is valid, the batch says %v", i, errs[i])
		case (want == nil) != (errs[i] == nil):
			t.Errorf("message %d: batch %v, Verify %v", i, errs[i], want)
		case errs[i] != nil && errs[i].Error() != want.Error():
			t.Errorf("message %d: batch says %q, Verify %q", i, errs[i], want)
		}
	}
}

// Random batches with random damage agree with Verify, message by message.
func TestVerifyBatchAgreesWithVerify(t *testing.T) {
	keys := []crypto.PrivKey{newKey(t), newKey(t)}
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 30 {
		msgs := batchOf(t, keys, 1+rng.IntN(70))
		for i := range msgs {
			if rng.IntN(12) == 0 {
				msgs[i].TimeCreate++ // signed over, so the signature no longer fits
			}
		}
		errs := VerifyBatch(ptrs(msgs))
		for i := range msgs {
			if want := msgs[i].Verify(); (want == nil) != (errs[i] == nil) {
				t.Fatalf("round %d, message %d of %d: batch %v, Verify %v", round, i, len(msgs), errs[i], want)
			}
		}
	}
	if errs := VerifyBatch(nil); len(errs) != 0 {
		t.Errorf("VerifyBatch(nil) = %v", errs)
	}
}

func BenchmarkVerifyEach(b *testing.B) {
	msgs := batchOf(b, []crypto.PrivKey{newKey(b)}, 128)
	for b.Loop() {
		for i := range msgs {
			if err := msgs[i].Verify(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs))/1000, "µs/msg")
}

func BenchmarkVerifyBatch(b *testing.B) {
	msgs := ptrs(batchOf(b, []crypto.PrivKey{newKey(b), newKey(b), newKey(b)}, 128))
	for b.Loop() {
		for _, err := range VerifyBatch(msgs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs))/1000, "µs/msg")
}

// FuzzVerifyBatch puts one arbitrary message among valid ones: the batch
// must say of each what Verify says, and never panic.
func FuzzVerifyBatch(f *testing.F) {
	key := goldenKey(f)
	good := signedMessage(f, key)
	f.Add(good.Sig, good.Device, []byte(good.Payload))
	f.Add("", good.Device, []byte(`{"text":"x"}`))
	f.Add(good.Sig, "12D3KooW", []byte(good.Payload))
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 64)), good.Device, []byte(good.Payload))
	others := batchOf(f, []crypto.PrivKey{key}, minBatch)
	f.Fuzz(func(t *testing.T, sig, device string, payload []byte) {
		odd := good
		odd.Sig, odd.Device, odd.Payload = sig, device, json.RawMessage(payload)
		msgs := append([]Message{odd}, others...)
		errs := VerifyBatch(ptrs(msgs))
		for i := range msgs {
			if want := msgs[i].Verify(); (want == nil) != (errs[i] == nil) {
				t.Fatalf("message %d: batch %v, Verify %v", i, errs[i], want)
			}
		}
	})
}
