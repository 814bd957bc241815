//go:build tools

package p2p

// GossipSub (group and thing fan-out, DESIGN.md) is pinned at v0.19.0, with
// go-libp2p v0.52.0; this import keeps `go mod tidy` from dropping the pin
// before the code that uses it lands.
import _ "github.com/libp2p/go-libp2p-pubsub"
