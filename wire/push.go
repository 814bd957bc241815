package wire

// Push bodies (PROTOCOL.md §3, §4), the rows of list answers, and the
// values their string fields take.

// News is the body of a PushNews push: a new message in a conversation and
// that conversation's last SeqId.
type News struct {
	Feeds     string  `json:"feeds"`
	LastSeqID int64   `json:"last_seq_id"`
	Message   Message `json:"message"`
}

// RelationEvent is the body of a PushRelation push: something happened
// between the receiving account and User (Event "request" for a new friend
// request; the server defines the others).
type RelationEvent struct {
	Event string `json:"event"`
	User  string `json:"user"`
	Kind  string `json:"kind,omitempty"`
	State string `json:"state,omitempty"`
	Feeds string `json:"feeds,omitempty"`
}

// Relation is one row of the list_relations answer and of the PushRelations
// snapshot (a JSON array of them). Since and Expires are unix milliseconds;
// Expires is set only for a relation in the recycle bin.
type Relation struct {
	User    string `json:"user"`
	Kind    string `json:"kind"`  // KindPerson or KindThing
	State   string `json:"state"` // one of the State constants
	Since   int64  `json:"since"`
	Expires int64  `json:"expires,omitempty"`
}

// Presence is the body of a PushPresence push. LastSeen (unix milliseconds)
// is set when the device went offline.
type Presence struct {
	User     string `json:"user"`
	Device   string `json:"device"`
	Status   string `json:"status"` // one of the Status constants
	LastSeen int64  `json:"last_seen,omitempty"`
}

// PeerInfo is one row of the peers answer: a device of a related account and
// the multiaddrs it registered.
type PeerInfo struct {
	User   string   `json:"user"`
	Device string   `json:"device"`
	Status string   `json:"status"`
	Addrs  []string `json:"addrs"`
}

// Group is one row of the list_feeds answer.
type Group struct {
	Feeds   string   `json:"feeds"`
	Name    string   `json:"name"`
	Owner   string   `json:"owner"`
	Members []string `json:"members"`
}

// Conversation is one row of the conversations answer.
type Conversation struct {
	Feeds     string `json:"feeds"`
	LastSeqID int64  `json:"last_seq_id"`
}

// Account kinds (PROTOCOL.md §3), as Relation.Kind carries them.
const (
	KindPerson = "person"
	KindThing  = "thing"
)

// Relation states (PROTOCOL.md §5, list_relations).
const (
	StatePendingIn  = "pending-in"
	StatePendingOut = "pending-out"
	StateFriend     = "friend"
	StateBound      = "bound"
	StateAssociated = "associated"
	StateRecycled   = "recycled"
)

// Device presence states (PROTOCOL.md §3).
const (
	StatusOnline  = "online"
	StatusAway    = "away"
	StatusOffline = "offline"
)

// EventRequest is the RelationEvent.Event of a new friend request.
const EventRequest = "request"

// RelationEvent.Event values of the thing model (extension): User is the
// thing whose description or rules changed.
const (
	EventDescribed = "described"
	EventRules     = "rules"
)
