package node

import (
	"encoding/json"

	"github.com/mqtter/mqtter/localdb"
	mqsync "github.com/mqtter/mqtter/sync"
	"github.com/mqtter/mqtter/wire"
)

// The local API (loopback HTTP, every call with "Authorization: Bearer
// <DIR/api.token>") speaks these JSON bodies. A failed call answers a 4xx or
// 5xx status with an APIError body.
//
//	GET  /v1/status            → Status
//	POST /v1/send              SendRequest → SendResult
//	GET  /v1/history?with=X&limit=N → HistoryResult   (X: a user or a feeds id)
//	GET  /v1/peers             → []PeerRow
//	POST /v1/sync              → SyncResult
//	POST /v1/call/{method}     the server method's body → its Result, as the server gave it
//	GET  /v1/events            Server-Sent Events, each "event: <Event.Type>" with data = Event
//	GET  /metrics              Prometheus metrics of this node

// Files a running node writes into its home directory when its local API is
// ready, and removes when it stops.
const (
	APIAddrFile  = "api.addr"  // host:port of the local API
	APITokenFile = "api.token" // the bearer token, mode 0600
)

// Server states in Status.Server.
const (
	ServerConnected    = "connected"
	ServerDisconnected = "disconnected"
)

// Status is the answer of GET /v1/status and what "mqtter status --json"
// prints.
type Status struct {
	User        string `json:"user"`
	Device      string `json:"device"` // the peer id
	Server      string `json:"server"` // ServerConnected or ServerDisconnected
	ServerURL   string `json:"server_url"`
	ServerError string `json:"server_error,omitempty"` // why it is disconnected
	// Addrs are the node's listen addresses, each ending in /p2p/<device>.
	Addrs []string `json:"addrs"`
	// Peers are the devices connected directly now (peer ids).
	Peers []string `json:"peers"`
	// Outbox counts own messages not yet delivered by any path; Unsynced
	// counts messages this device holds without a SeqId.
	Outbox   int `json:"outbox"`
	Unsynced int `json:"unsynced"`
	// Failures are the latest path failures, oldest first.
	Failures []PathFailure `json:"failures"`
	// Counters are the node's delivery counters (also on /metrics).
	Counters map[string]int64 `json:"counters"`
	// Refused are the latest messages from the server (pulled or in a
	// backup's conversations) that did not check out, newest first.
	Refused []localdb.Refused `json:"refused,omitempty"`
	// Conflicted are the latest of this device's held messages that the
	// server answered "conflict" for: it holds another message under the
	// same From and MsgId. They stay here, unsequenced, and are not sent
	// or pushed again.
	Conflicted []localdb.Conflicted `json:"conflicted,omitempty"`
	// Reachability is what the node learnt of its own reachability:
	// "public", "private" or "unknown".
	Reachability string `json:"reachability"`
	// Relay is the node's slot on the server's relay; absent when the
	// server runs none.
	Relay *RelayStatus `json:"relay,omitempty"`
	// Gossip is GossipSub's side: the groups' topics with their mesh
	// peers, and what was published, delivered and refused.
	Gossip *GossipStatus `json:"gossip,omitempty"`
	// Thing is what the node does as a thing (commands, device program,
	// rules and their dropped firings); absent for a node that is none.
	Thing *ThingStatus `json:"thing,omitempty"`
}

// RelayStatus is the node's slot on the server's relay.
type RelayStatus struct {
	Relay   []string `json:"relay"`           // the relay's addresses, as the server names them
	Addrs   []string `json:"addrs,omitempty"` // this device's relayed addresses, while it holds a slot
	Expires int64    `json:"expires,omitempty"`
	Error   string   `json:"error,omitempty"` // why the last reservation failed
	// HolePunch says that hole punching has started (the node knows a
	// public address of its own): a relayed connection that opens from
	// now on is upgraded to a direct one where the NATs allow.
	HolePunch bool `json:"hole_punch"`
}

// GossipStatus is the node's GossipSub side.
type GossipStatus struct {
	Published int64 `json:"published"` // own messages published
	Delivered int64 `json:"delivered"` // others' messages accepted
	Rejected  int64 `json:"rejected"`  // messages refused, their sender's score lowered
	Ignored   int64 `json:"ignored"`   // messages dropped unjudged (a device not in the book)
	Unreached int64 `json:"unreached"` // publishes with no mesh peer
	// Meshes are the groups' topics joined, by feeds, with the devices
	// in each one's mesh (none: the group's messages go directly to
	// the devices connected, and through the server).
	Meshes map[string][]string `json:"meshes"`
}

// PathFailure is one failed attempt to deliver over one path.
type PathFailure struct {
	Time  int64  `json:"time"` // unix milliseconds
	Path  string `json:"path"` // "p2p", "gossip" or "server"
	Peer  string `json:"peer,omitempty"`
	MsgId string `json:"msg_id,omitempty"`
	Error string `json:"error"`
}

// SendRequest is the body of POST /v1/send. To is an account (a dm with it)
// or a feeds id ("g:…", "dm:…"). Without Payload the message is
// {"text":Text}; MsgType defaults to "text".
type SendRequest struct {
	To      string          `json:"to"`
	Text    string          `json:"text,omitempty"`
	MsgType string          `json:"msg_type,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// SendResult says which message was stored in the outbox.
type SendResult struct {
	MsgId string `json:"MsgId"`
	Feeds string `json:"Feeds"`
}

// HistoryEntry is a message as this device holds it, with how it first got
// it (Via: "local", "p2p", "server" or "sync").
type HistoryEntry struct {
	wire.Message
	Via string `json:"Via"`
}

// HistoryResult is the answer of GET /v1/history, oldest first: sequenced
// messages by SeqId, then unsequenced ones in local order.
type HistoryResult struct {
	Feeds    string         `json:"feeds"`
	Messages []HistoryEntry `json:"messages"`
	// Coverage says how much of the conversation this device holds;
	// Complete is Coverage.Complete().
	Coverage localdb.Coverage `json:"coverage"`
	Complete bool             `json:"complete"`
}

// PeerRow is a device of a related account as this node knows it.
type PeerRow struct {
	User      string   `json:"user"`
	Device    string   `json:"device"`
	Status    string   `json:"status"` // as the server last said
	Addrs     []string `json:"addrs"`
	Connected bool     `json:"connected"` // a direct connection is open now
	// Conns are the remote addresses of the connections open to the
	// device now: a relayed one holds /p2p-circuit, a direct one names
	// its transport and the address the device was reached at.
	Conns []string `json:"conns"`
}

// SyncResult is the answer of POST /v1/sync.
type SyncResult = mqsync.Result

// Event types on GET /v1/events.
const (
	EventMessage  = "message"  // Data: HistoryEntry, a message new to this device
	EventReceipt  = "receipt"  // Data: Receipt
	EventPresence = "presence" // Data: wire.Presence
	EventRelation = "relation" // Data: wire.RelationEvent
	EventServer   = "server"   // Data: {"server": ServerConnected|ServerDisconnected, "error"?}
)

// Event is one item of the event stream.
type Event struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Receipt says that an own message was delivered over a path.
type Receipt struct {
	MsgId string `json:"MsgId"`
	Feeds string `json:"Feeds"`
	Path  string `json:"path"`           // "p2p", "relayed", "gossip" or "server"
	Peer  string `json:"peer,omitempty"` // the device that stored it (p2p)
	// Peers is how many mesh peers a gossiped message went to (gossip).
	Peers int   `json:"peers,omitempty"`
	SeqId int64 `json:"SeqId,omitempty"`
}

// APIError is the body of a failed local API call.
type APIError struct {
	Error string `json:"error"`
}
