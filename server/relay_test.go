package server_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/p2p"
	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

const relayTestProto = "/mqtter/relay-test/1"

// relayPeer is a libp2p host as a node makes it, with the relay client on.
func relayPeer(t *testing.T, key crypto.PrivKey) host.Host {
	t.Helper()
	opts := append(p2p.BaseOptions("/ip4/127.0.0.1/tcp/0"), libp2p.Identity(key), libp2p.EnableRelay())
	h, err := libp2p.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(relayTestProto, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	return h
}

// The server's relay serves the devices bound here and nobody else:
// register_device names its addresses; a bound device reserves a slot and
// is reached over a circuit by another bound device; a stranger's host
// gets no slot, and no circuit to a bound device (nor can one reach it
// through the relay: it holds no slot).
func TestRelayOnlyForDevicesBoundHere(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) {
		c.RelayListen = []string{"/ip4/127.0.0.1/tcp/0"}
	}))
	people(t, inst, "alice", "bob")
	relayAddrs := inst.RelayAddrs()
	if len(relayAddrs) == 0 {
		t.Fatal("no relay addresses")
	}
	relayInfo, err := peer.AddrInfoFromString(relayAddrs[0])
	if err != nil {
		t.Fatal(err)
	}

	aliceKey, aliceID := servertest.NewDeviceKey(t)
	bobKey, bobID := servertest.NewDeviceKey(t)
	alice := dial(t, inst, "alice", aliceID)
	var reg wire.Registered
	alice.OK(wire.MethodRegisterDevice, alice.Proof(aliceKey, nil), &reg)
	if len(reg.Relay) != len(relayAddrs) || reg.Relay[0] != relayAddrs[0] {
		t.Errorf("register_device answered relay %v, want %v", reg.Relay, relayAddrs)
	}
	bob := dial(t, inst, "bob", bobID)
	bob.Register(bobKey, nil)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	aliceHost, bobHost := relayPeer(t, aliceKey), relayPeer(t, bobKey)
	strangerKey, _ := servertest.NewDeviceKey(t)
	stranger := relayPeer(t, strangerKey)
	for _, h := range []host.Host{aliceHost, bobHost, stranger} {
		if err := h.Connect(ctx, *relayInfo); err != nil {
			t.Fatalf("connect to the relay: %v", err)
		}
	}
	if _, err := client.Reserve(ctx, aliceHost, *relayInfo); err != nil {
		t.Fatalf("alice's device reserving a slot: %v", err)
	}
	if _, err := client.Reserve(ctx, stranger, *relayInfo); err == nil {
		t.Error("a stranger's host got a relay slot")
	}

	circuit := func(from host.Host, to peer.ID) error {
		addr, err := ma.NewMultiaddr(fmt.Sprintf("/p2p/%s/p2p-circuit/p2p/%s", relayInfo.ID, to))
		if err != nil {
			return err
		}
		from.Peerstore().AddAddrs(relayInfo.ID, relayInfo.Addrs, time.Hour)
		if err := from.Connect(ctx, peer.AddrInfo{ID: to, Addrs: []ma.Multiaddr{addr}}); err != nil {
			return err
		}
		s, err := from.NewStream(network.WithAllowLimitedConn(ctx, "test"), to, relayTestProto)
		if err != nil {
			return err
		}
		defer s.Close()
		if _, err := s.Write([]byte("ping")); err != nil {
			return err
		}
		s.CloseWrite()
		got, err := io.ReadAll(s)
		if err != nil {
			return err
		}
		if string(got) != "ping" {
			return fmt.Errorf("echo %q", got)
		}
		return nil
	}
	if err := circuit(bobHost, aliceHost.ID()); err != nil {
		t.Fatalf("bob's device to alice's over the relay: %v", err)
	}
	if err := circuit(stranger, aliceHost.ID()); err == nil {
		t.Error("a stranger's host reached alice's device over the relay")
	}
}
