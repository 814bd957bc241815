package server_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

func TestConnectRefused(t *testing.T) {
	t.Parallel()
	// Many refusals from one address: not what the guessing limits test.
	inst := servertest.Start(t, servertest.WithConfig(noLoginLimits))
	// alice by the server's own path, with its real password hash.
	if _, err := inst.Server.AddUser(t.Context(), "alice", password("alice"), server.KindPerson); err != nil {
		t.Fatal(err)
	}
	people(t, inst, "bob")
	dial(t, inst, "bob", "bob-1")

	tests := []struct {
		name, user, pass, device string
	}{
		{"wrong password", "alice", "wrong", "alice-x"},
		{"empty password", "alice", "", "alice-x"},
		{"password of another account", "alice", password("bob"), "alice-x"},
		{"unknown account", "mallory", "pw-mallory", "mallory-1"},
		{"bad account name", "Alice", password("alice"), "alice-x"},
		{"no account", "", "", "anon-1"},
		{"device of another account", "alice", password("alice"), "bob-1"},
		{"client id too long", "alice", password("alice"), strings.Repeat("d", 129)},
	}
	for _, tt := range tests {
		cl, err := servertest.TryDial(t, inst.MQTT, tt.user, tt.pass, tt.device)
		if err == nil {
			cl.Close()
			t.Errorf("CONNECT %s (%q/%q as %q) = accepted, want refused", tt.name, tt.user, tt.pass, tt.device)
			continue
		}
		if !errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) && !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			t.Errorf("CONNECT %s = error %v, want CONNACK return code 4 or 5", tt.name, err)
		}
	}
	// Refused attempts bind nothing: their client ids are free.
	dial(t, inst, "alice", "alice-x")
	dial(t, inst, "bob", "mallory-1")
	// And the refusals did not disturb the connected device.
	bob := dial(t, inst, "bob", "bob-2")
	wantPeerStatus(t, bob, "bob-1", wire.StatusOnline)
}

// subscribe asks for filter and returns the granted QoS (0x80 = refused).
func subscribe(t *testing.T, cl *servertest.Client, filter string, got chan<- paho.Message) byte {
	t.Helper()
	tok := cl.Paho().Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- m:
		default:
		}
	})
	if !tok.WaitTimeout(servertest.Timeout) || tok.Error() != nil {
		t.Fatalf("subscribe %q: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func TestSubscriptionsConfined(t *testing.T) {
	t.Parallel()
	inst, c := start(t, "alice", "bob", "eve")
	alice, bob, eve := c[0], c[1], c[2]
	befriend(t, alice, bob)
	late := dial(t, inst, "eve", "eve-late")
	presenceOf(t, eve, "eve-late") // eve's own, before it could reach a subscription
	leaked := make(chan paho.Message, 100)
	for _, filter := range []string{"#", "+", "+/#", "$SYS/#", "$mqtter/request", "chat/room", "bob/#"} {
		if qos := subscribe(t, eve, filter, leaked); qos != 0x80 {
			t.Errorf("SUBSCRIBE %q = granted QoS %d, want refused (0x80)", filter, qos)
		}
	}
	// Subscriptions under the protocol's schemes may be granted, but only
	// the subscriber's own answers and pushes ever arrive there.
	for _, filter := range []string{"im://#", "impush://modulus/news", "impush://modulus/presence", "impush://#", "http://#"} {
		subscribe(t, eve, filter, leaked)
	}
	if !eve.Connected() {
		t.Fatal("eve's connection is down after refused subscriptions")
	}

	// Traffic between alice and bob, and raw publishes meant for others.
	m := text(wire.DM("alice", "bob"), "private")
	send(t, alice, m)
	bob.News()
	alice.OK("presence", wire.PresenceReq{Status: wire.StatusAway}, nil)
	fake := mustJSON(wire.News{Feeds: wire.DM("alice", "eve"), LastSeqID: 1, Message: text(wire.DM("alice", "eve"), "fake")})
	for _, topic := range []string{wire.PushNews, "impush://modulus/presence", "chat/room", "im://modulus/news", "bob/inbox"} {
		a := answerOn(t, bob, topic, 1, fake)
		if a.Error == "" {
			t.Errorf("bob's raw PUBLISH on %q = success, want an Error answer", topic)
		}
	}
	// A late subscriber sees nothing retained either.
	subscribe(t, late, "impush://modulus/news", leaked)

	select {
	case got := <-leaked:
		t.Errorf("eve received %q: %s, want nothing of others' traffic", got.Topic(), got.Payload())
	case <-time.After(quiet):
	}
	if !eve.Connected() {
		t.Error("eve's connection is down")
	}
	bob.NoPush(wire.PushNews, quiet)
}
