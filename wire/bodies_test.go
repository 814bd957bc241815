package wire

import (
	"encoding/json"
	"testing"
)

// TestBodyJSONNames pins every body's JSON field names to PROTOCOL.md §3–§5.
func TestBodyJSONNames(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{News{Feeds: "dm:a:b", LastSeqID: 42}, `{"feeds":"dm:a:b","last_seq_id":42,"message":{"MsgId":"","Feeds":"","SeqId":0,"MsgType":"","From":"","Payload":null,"TimeCreate":0,"Device":""}}`},
		{RelationEvent{Event: EventRequest, User: "bob"}, `{"event":"request","user":"bob"}`},
		{RelationEvent{Event: "e", User: "u", Kind: "k", State: "s", Feeds: "f"}, `{"event":"e","user":"u","kind":"k","state":"s","feeds":"f"}`},
		{Relation{User: "bob", Kind: KindPerson, State: StateRecycled, Since: 1, Expires: 2}, `{"user":"bob","kind":"person","state":"recycled","since":1,"expires":2}`},
		{Relation{User: "bob", Kind: KindThing, State: StateFriend, Since: 1}, `{"user":"bob","kind":"thing","state":"friend","since":1}`},
		{Presence{User: "bob", Device: "d", Status: StatusOffline, LastSeen: 5}, `{"user":"bob","device":"d","status":"offline","last_seen":5}`},
		{PeerInfo{User: "bob", Device: "d", Status: StatusOnline, Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}, `{"user":"bob","device":"d","status":"online","addrs":["/ip4/127.0.0.1/tcp/1"]}`},
		{Group{Feeds: "g:1", Name: "n", Owner: "o", Members: []string{"o"}}, `{"feeds":"g:1","name":"n","owner":"o","members":["o"]}`},
		{Conversation{Feeds: "g:1", LastSeqID: 3}, `{"feeds":"g:1","last_seq_id":3}`},
		{Empty{}, `{}`},
		{RegisterDevice{PeerID: "p", PubKey: "k", Addrs: []string{"a"}}, `{"peer_id":"p","pubkey":"k","addrs":["a"]}`},
		{PresenceReq{Status: StatusAway}, `{"status":"away"}`},
		{UserReq{User: "bob"}, `{"user":"bob"}`},
		{UserReq{User: "bob", KeepSeconds: 60}, `{"user":"bob","keep_seconds":60}`},
		{CreateFeedsReq{Name: "n", Members: []string{"a", "b"}}, `{"name":"n","members":["a","b"]}`},
		{FeedsReq{Feeds: "g:1"}, `{"feeds":"g:1"}`},
		{AgreeJoinReq{Applicant: "a", Feeds: "g:1"}, `{"applicant":"a","feeds":"g:1"}`},
		{RemoveMemberReq{Member: "a", Feeds: "g:1"}, `{"member":"a","feeds":"g:1"}`},
		{PairingCode{Code: "c", Expires: 9}, `{"code":"c","expires":9}`},
		{BindThingReq{Thing: "t", Code: "c"}, `{"thing":"t","code":"c"}`},
		{BindThingReq{Thing: "t"}, `{"thing":"t"}`},
		{AssociateReq{A: "x", B: "y"}, `{"a":"x","b":"y"}`},
		{SendResult{MsgId: "m", Feeds: "g:1", SeqId: 4}, `{"MsgId":"m","Feeds":"g:1","SeqId":4}`},
		{HistoryPushReq{Messages: []Message{}}, `{"messages":[]}`},
		{[]SeqResult{{MsgId: "m", SeqId: 4}}, `[{"MsgId":"m","SeqId":4}]`},
		{[]SeqResult{{MsgId: "m", SeqId: 4, From: "alice"}}, `[{"MsgId":"m","SeqId":4,"From":"alice"}]`},
		{HistoryReq{Feeds: "g:1", AfterSeq: 10, Limit: 50}, `{"feeds":"g:1","after_seq":10,"limit":50}`},
		{HistoryResult{Messages: []Message{}, LastSeqID: 3}, `{"messages":[],"last_seq_id":3}`},
		{AckReq{Feeds: "g:1", SeqID: 7}, `{"feeds":"g:1","seq_id":7}`},
		{Token{Token: "t", Expires: 9}, `{"token":"t","expires":9}`},
		{ProxyRequest{Header: map[string][]string{}, Body: "", Method: "GET"}, `{"Header":{},"Body":"","Method":"GET"}`},
		{ProxyResponse{Header: map[string][]string{"A": {"b"}}, Body: "x", StatusCode: 200}, `{"Header":{"A":["b"]},"Body":"x","Err":"","StatusCode":200}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.v)
		if err != nil || string(got) != tt.want {
			t.Errorf("json.Marshal(%T) = %s, %v, want %s", tt.v, got, err, tt.want)
		}
	}
}

func TestMethodsAreTopicPaths(t *testing.T) {
	for _, m := range []string{
		MethodRegisterDevice, MethodPeers, MethodPresence, MethodAddFriend, MethodAcceptFriend,
		MethodRejectFriend, MethodRemoveFriend, MethodRestoreFriend, MethodListRelations,
		MethodCreateFeeds, MethodApplyJoinFeeds, MethodAgreeJoinFeeds, MethodRemoveFeedsMember,
		MethodDissolveFeeds, MethodListFeeds, MethodPairingCode, MethodBindThing, MethodUnbindThing,
		MethodAssociate, MethodDissociate, MethodSend, MethodHistoryPush, MethodHistory,
		MethodConversations, MethodAck, MethodToken,
	} {
		s := RequestTopic(RouteModulus, m, "1")
		tp, err := ParseTopic(s)
		if err != nil || tp.Method() != m {
			t.Errorf("ParseTopic(%q) = %+v, %v, want method %q", s, tp, err, m)
		}
	}
}
