// Package node is the daemon every person's computer and every thing runs:
// it wires the node's SQLite store (localdb), its MQTT link to the server
// (mqttlink) and its libp2p host (p2p), picks the path each message takes,
// and serves the local API that the command line and apps drive.
//
// A message travels like this:
//
//	send (local API)
//	  → localdb: stored with SeqId 0 and put in the outbox (durable first)
//	  → p2p: every reachable device of the recipient, answered once stored there
//	  → otherwise the server's send, which stores, sequences and pushes it
//	  → history_push: unsequenced messages go up and come back with SeqIds
//	receive (direct frame or push) → verify → localdb (dedupe by MsgId) → event
package node
