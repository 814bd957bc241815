// Package p2p is the node's direct link to the devices of related accounts:
// a libp2p host (TCP and QUIC, Noise, yamux, identify, ping, mDNS) speaking
// the packet protocol of PROTOCOL.md §7.
//
// On a stream of protocol [ProtocolID] the opener sends request frames
// (wire.AppendFrame) and the acceptor answers each on the identical topic, in
// the order the requests came; a request may go unanswered. Many
// request/answer pairs share one stream:
//
//	opener                                  acceptor
//	  frame(topic A, body) ──────────────▶  Handler.HandlePacket
//	  frame(topic B, body) ──────────────▶  Handler.HandlePacket
//	                       ◀──────────────  frame(topic A, answer)
//	                       ◀──────────────  frame(topic B, answer)
//
// Host.Request sends one request and waits for its answer; Host.RequestAll
// writes a batch back to back and collects the answers in order. On the
// accepting side an AsyncHandler lets the stream read on while earlier
// requests wait for their answers (a node answers a message once it is
// committed, and commits a burst together).
//
// A stream is accepted only from a peer that Config.Authorize approves; a
// malformed frame resets the stream.
package p2p
