package localdb_test

import (
	"math/rand/v2"
	"testing"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/wire"
)

// Random batches, with repeats inside a batch and across batches, over the
// multi-row insert's chunk boundaries, checked against a model of what
// AddMessages promises: the first copy of a MsgId is new, a SeqId learned
// later is kept, Via is the first arrival's.
func TestAddMessagesAgainstAModel(t *testing.T) {
	db := open(t)
	rng := rand.New(rand.NewPCG(3, 4))
	var pool []wire.Message
	held := map[string]int64{} // msg_id -> seq
	via := map[string]string{}
	for round := range 40 {
		n := 1 + rng.IntN(350)
		batch := make([]wire.Message, n)
		for i := range batch {
			if len(pool) > 0 && rng.IntN(3) == 0 {
				m := pool[rng.IntN(len(pool))]
				if rng.IntN(2) == 0 {
					m.SeqId = int64(1 + rng.IntN(1000))
				}
				batch[i] = m
			} else if i > 0 && rng.IntN(10) == 0 {
				batch[i] = batch[rng.IntN(i)]
			} else {
				m := msg(feedsAB, int64(rng.IntN(2))*int64(1+rng.IntN(1000)))
				batch[i] = m
				pool = append(pool, m)
			}
		}
		v := []string{localdb.ViaP2P, localdb.ViaServer, localdb.ViaSync}[round%3]
		// what the model says
		want := make([]bool, n)
		for i, m := range batch {
			if _, ok := held[m.MsgId]; !ok {
				held[m.MsgId] = m.SeqId
				via[m.MsgId] = v
				want[i] = true
			} else if held[m.MsgId] == 0 && m.SeqId != 0 {
				held[m.MsgId] = m.SeqId
			}
		}
		got := add(t, db, v, batch...)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("round %d: added[%d] = %v, want %v", round, i, got[i], want[i])
			}
		}
	}
	h, err := db.History(t.Context(), feedsAB, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != len(held) {
		t.Fatalf("held %d, want %d", len(h), len(held))
	}
	for _, s := range h {
		if s.SeqId != held[s.MsgId] || s.Via != via[s.MsgId] {
			t.Fatalf("%s: seq %d via %s, want %d %s", s.MsgId, s.SeqId, s.Via, held[s.MsgId], via[s.MsgId])
		}
	}
}
