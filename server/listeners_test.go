package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mqtter test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With a certificate and key, MQTT, MQTT over WebSocket and the HTTP API all
// speak TLS, and a message crosses from a TLS client to a WSS client.
func TestTLSListeners(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) {
		c.TLSCert, c.TLSKey, c.WSAddr = certFile, keyFile, "127.0.0.1:0"
	}))
	inst.AddUser(t, "alice", "pa", false)
	inst.AddUser(t, "bob", "pb", false)
	tlsConf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	if _, err := servertest.TryDial(t, inst.MQTT, "alice", "pa", "plain"); err == nil {
		t.Error("a plain-TCP CONNECT to the TLS listener succeeded")
	}
	alice, err := servertest.TryDialTLS(t, strings.Replace(inst.MQTT, "tcp://", "ssl://", 1), "alice", "pa", "alice-tls", tlsConf)
	if err != nil {
		t.Fatalf("connect over TLS: %v", err)
	}
	bob, err := servertest.TryDialTLS(t, strings.Replace(inst.WS, "ws://", "wss://", 1), "bob", "pb", "bob-wss", tlsConf)
	if err != nil {
		t.Fatalf("connect over WSS: %v", err)
	}
	alice.OK("add_friend", map[string]string{"user": "bob"}, nil)
	bob.OK("accept_friend", map[string]string{"user": "alice"}, nil)
	m := wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.DM("alice", "bob"), MsgType: "text", Payload: []byte(`{"text":"over tls"}`), TimeCreate: 1}
	alice.OK("send", m, nil)
	if n := bob.News(); n.Message.MsgId != m.MsgId {
		t.Errorf("bob (wss) news = %+v, want %s", n, m.MsgId)
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: 5 * time.Second}
	resp, err := client.Get(strings.Replace(inst.HTTP, "http://", "https://", 1) + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("GET /healthz over TLS = %d %q, want 200 ok", resp.StatusCode, body)
	}
}

// MQTT over plain WebSocket carries requests and pushes like TCP does.
func TestWebSocketListener(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) { c.WSAddr = "127.0.0.1:0" }))
	inst.AddUser(t, "alice", "pa", false)
	inst.AddUser(t, "bob", "pb", false)
	alice := servertest.Dial(t, inst, "alice", "pa", "alice-tcp")
	bob, err := servertest.TryDial(t, inst.WS, "bob", "pb", "bob-ws")
	if err != nil {
		t.Fatalf("connect over WebSocket: %v", err)
	}
	alice.OK("add_friend", map[string]string{"user": "bob"}, nil)
	if p := bob.NextPush(wire.PushRelation); !strings.Contains(string(p.Body), `"request"`) {
		t.Errorf("bob (ws) relation push = %s, want a request", p.Body)
	}
	bob.OK("accept_friend", map[string]string{"user": "alice"}, nil)
	for i := range 3 {
		m := wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.DM("alice", "bob"), MsgType: "text", Payload: []byte(`{"text":"ws"}`), TimeCreate: 1}
		alice.OK("send", m, nil)
		if n := bob.News(); n.Message.SeqId != int64(i+1) {
			t.Errorf("bob (ws) news %d SeqId = %d, want %d", i, n.Message.SeqId, i+1)
		}
	}
	// A bad topic over WebSocket is answered too, and the connection stays.
	a := bob.CallTopic("im://modulus", []byte(`{}`))
	if !strings.Contains(a.Error, "bad") {
		t.Errorf("bad topic over ws: Error = %q", a.Error)
	}
	var convs []wire.Conversation
	bob.OK("conversations", wire.Empty{}, &convs)
	if len(convs) != 1 || convs[0].LastSeqID != 3 {
		t.Errorf("conversations over ws = %+v", convs)
	}
}
