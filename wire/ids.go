package wire

import (
	"crypto/rand"
	"encoding/hex"
	"sync"

	"github.com/oklog/ulid/v2"
)

// NewTrace returns a fresh request trace id: 16 random lowercase hex characters.
func NewTrace() string {
	var b [8]byte
	rand.Read(b[:]) // never fails; a broken system source crashes the program
	return hex.EncodeToString(b[:])
}

// msgIDs makes the process's MsgIds. Time and entropy are taken under one
// lock, so ids come out strictly increasing even across goroutines and when
// the wall clock steps back (the id then keeps the last time used). The
// entropy is from crypto/rand rather than ulid's default math/rand source,
// because MsgIds must not collide across devices.
var msgIDs = struct {
	sync.Mutex
	lastMs  uint64
	entropy *ulid.MonotonicEntropy
}{entropy: ulid.Monotonic(rand.Reader, 0)}

// NewMsgID returns a fresh MsgId: a 26-character ULID, time-ordered so that
// database keys built on it stay append-mostly, and strictly increasing
// within the process. It is safe for concurrent use.
func NewMsgID() string {
	msgIDs.Lock()
	defer msgIDs.Unlock()
	ms := max(ulid.Now(), msgIDs.lastMs)
	id, err := ulid.New(ms, msgIDs.entropy)
	if err != nil {
		// The entropy overflowed within this millisecond: borrow the next
		// one, where the entropy starts afresh.
		ms++
		if id, err = ulid.New(ms, msgIDs.entropy); err != nil {
			id = ulid.ULID{} // unreachable: crypto/rand does not fail
			_ = id.SetTime(ms)
			var e [10]byte
			rand.Read(e[:])
			_ = id.SetEntropy(e[:])
		}
	}
	msgIDs.lastMs = ms
	return id.String()
}
