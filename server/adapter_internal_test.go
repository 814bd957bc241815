package server

import (
	"fmt"
	"testing"
)

// A thing's adapter remembers the commands it took, to drop a
// re-delivered one, and forgets the oldest past maxAdapterSeen: its memory
// is bounded whatever the commands.
func TestAdopteeRemembersBounded(t *testing.T) {
	ad := &adoptee{seenSet: make(map[string]bool)}
	for i := range maxAdapterSeen + 10 {
		ad.remember(fmt.Sprintf("alice\x00cmd-%d", i))
	}
	if len(ad.seen) != maxAdapterSeen || len(ad.seenSet) != maxAdapterSeen {
		t.Fatalf("remembers %d (%d), want %d", len(ad.seen), len(ad.seenSet), maxAdapterSeen)
	}
	if ad.seenSet["alice\x00cmd-0"] || !ad.seenSet["alice\x00cmd-10"] || !ad.seenSet[fmt.Sprintf("alice\x00cmd-%d", maxAdapterSeen+9)] {
		t.Error("the oldest are not the ones forgotten")
	}
}
