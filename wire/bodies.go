package wire

// Service methods: the path of an im topic (PROTOCOL.md §5). "send" is also
// the method of a direct node-to-node message (§7).
const (
	MethodRegisterDevice    = "register_device"
	MethodPeers             = "peers"
	MethodPresence          = "presence"
	MethodAddFriend         = "add_friend"
	MethodAcceptFriend      = "accept_friend"
	MethodRejectFriend      = "reject_friend"
	MethodRemoveFriend      = "remove_friend"
	MethodRestoreFriend     = "restore_friend"
	MethodListRelations     = "list_relations"
	MethodCreateFeeds       = "create_feeds"
	MethodApplyJoinFeeds    = "apply_join_feeds"
	MethodAgreeJoinFeeds    = "agree_join_feeds"
	MethodRemoveFeedsMember = "remove_feeds_member"
	MethodDissolveFeeds     = "dissolve_feeds"
	MethodListFeeds         = "list_feeds"
	MethodPairingCode       = "pairing_code"
	MethodBindThing         = "bind_thing"
	MethodUnbindThing       = "unbind_thing"
	MethodAssociate         = "associate"
	MethodDissociate        = "dissociate"
	MethodSend              = "send"
	MethodHistoryPush       = "history_push"
	MethodHistory           = "history"
	MethodConversations     = "conversations"
	MethodAck               = "ack"
	MethodToken             = "token"
	// MethodDeviceChallenge gives the challenge a register_device proof
	// signs (extension).
	MethodDeviceChallenge = "device_challenge"

	// The thing model (extension; bodies in package thing).
	MethodDescribe    = "describe"    // a thing publishes its thing.Description
	MethodDescription = "description" // {"thing"} → the latest thing.Description
	MethodAddRule     = "add_rule"    // a signed thing.Rule → {"id"}
	MethodRemoveRule  = "remove_rule" // {"id"}
	MethodListRules   = "list_rules"  // {"thing"?} → []thing.Rule
	// MethodListThingFeeds lists the things' feeds ("t:<thing>") the
	// caller reads, each with its readers: {} → []Group (extension).
	MethodListThingFeeds = "list_thing_feeds"
)

// MaxHistoryPush is the most messages one history_push may carry.
const MaxHistoryPush = 500

// Empty is the body of the methods that take none ({}): peers,
// list_relations, list_feeds, pairing_code, conversations, token.
type Empty struct{}

// RegisterDevice is the body of register_device. PubKey is the device's
// libp2p public key, libp2p-marshalled (crypto.MarshalPublicKey) and in
// standard padded base64; Addrs are multiaddrs. Challenge is the one
// device_challenge answered on this connection and Sig the device key's
// signature over DeviceProofBytes, standard padded base64: without them
// the server does not bind the peer id (see docs/protocol.md).
type RegisterDevice struct {
	PeerID    string   `json:"peer_id"`
	PubKey    string   `json:"pubkey"`
	Addrs     []string `json:"addrs"`
	Challenge string   `json:"challenge,omitempty"`
	Sig       string   `json:"sig,omitempty"`
}

// Registered is the result of register_device: Relay are the server's
// libp2p relay addresses (each ending in /p2p/<relay id>), where a device
// may reserve a slot; none when the server runs no relay.
type Registered struct {
	Relay []string `json:"relay"`
}

// DeviceChallenge is the result of device_challenge: an opaque string
// (at most 256 bytes) to sign into a register_device proof, valid until
// Expires (unix ms), for this account and client id only.
type DeviceChallenge struct {
	Challenge string `json:"challenge"`
	Expires   int64  `json:"expires"`
}

// PresenceReq is the body of presence: Status is StatusOnline or StatusAway.
type PresenceReq struct {
	Status string `json:"status"`
}

// UserReq is the body of add_friend, accept_friend, reject_friend,
// remove_friend (which alone reads KeepSeconds) and restore_friend.
type UserReq struct {
	User        string `json:"user"`
	KeepSeconds int64  `json:"keep_seconds,omitempty"`
}

// CreateFeedsReq is the body of create_feeds; the answer is a FeedsReq with
// the new group's conversation id.
type CreateFeedsReq struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// FeedsReq is the body of apply_join_feeds and dissolve_feeds, and the result
// of create_feeds.
type FeedsReq struct {
	Feeds string `json:"feeds"`
}

// AgreeJoinReq is the body of agree_join_feeds.
type AgreeJoinReq struct {
	Applicant string `json:"applicant"`
	Feeds     string `json:"feeds"`
}

// RemoveMemberReq is the body of remove_feeds_member.
type RemoveMemberReq struct {
	Member string `json:"member"`
	Feeds  string `json:"feeds"`
}

// PairingCode is the result of pairing_code: a one-time code and when it
// expires (unix milliseconds).
type PairingCode struct {
	Code    string `json:"code"`
	Expires int64  `json:"expires"`
}

// BindThingReq is the body of bind_thing and (without Code) unbind_thing.
type BindThingReq struct {
	Thing string `json:"thing"`
	Code  string `json:"code,omitempty"`
}

// AssociateReq is the body of associate and dissociate: two things of one owner.
type AssociateReq struct {
	A string `json:"a"`
	B string `json:"b"`
}

// SendResult is the result of send: where the server put the message.
type SendResult struct {
	MsgId string `json:"MsgId"`
	Feeds string `json:"Feeds"`
	SeqId int64  `json:"SeqId"`
}

// HistoryPushReq is the body of history_push: at most MaxHistoryPush
// messages. The result is a []SeqResult.
type HistoryPushReq struct {
	Messages []Message `json:"messages"`
}

// SeqResult is one row of the history_push result. From (an extension)
// names the message's author: a MsgId is unique per sender only, so
// (From, MsgId) is what names a message.
type SeqResult struct {
	MsgId string `json:"MsgId"`
	SeqId int64  `json:"SeqId"`
	From  string `json:"From,omitempty"`
}

// HistoryReq is the body of history: up to Limit messages of Feeds with a
// SeqId above AfterSeq.
type HistoryReq struct {
	Feeds    string `json:"feeds"`
	AfterSeq int64  `json:"after_seq"`
	Limit    int    `json:"limit"`
}

// HistoryResult is the result of history (and of GET /v1/history).
type HistoryResult struct {
	Messages  []Message `json:"messages"`
	LastSeqID int64     `json:"last_seq_id"`
}

// AckReq is the body of ack: this device has everything in Feeds up to SeqID.
type AckReq struct {
	Feeds string `json:"feeds"`
	SeqID int64  `json:"seq_id"`
}

// Token is the result of token: a bearer token for the HTTP API and when it
// expires (unix milliseconds).
type Token struct {
	Token   string `json:"token"`
	Expires int64  `json:"expires"`
}

// ProxyRequest is the body of an http or https topic: the request the server
// makes on the client's behalf to the topic's URL.
type ProxyRequest struct {
	Header map[string][]string `json:"Header"`
	Body   string              `json:"Body"`
	Method string              `json:"Method"`
}

// ProxyResponse is the answer to a ProxyRequest. Err is set when the request
// could not be made (or was refused); StatusCode is the HTTP status otherwise.
type ProxyResponse struct {
	Header     map[string][]string `json:"Header"`
	Body       string              `json:"Body"`
	Err        string              `json:"Err"`
	StatusCode int                 `json:"StatusCode"`
}
