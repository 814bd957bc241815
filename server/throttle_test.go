package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/mqtter/mqtter/server"
	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// loginLimits is a throttle that backs an address or account off after 3
// failures for long enough that no test sees it end by itself.
func loginLimits(c *server.Config) {
	c.LoginFailures = 3
	c.LoginBackoff = time.Minute
	c.LoginBackoffMax = time.Minute
}

// noLoginLimits lets a test that is about something else fail many logins
// from one address.
func noLoginLimits(c *server.Config) { c.LoginFailures = 1000 }

// connectFrom makes one CONNECT from the loopback address ip (all of
// 127.0.0.0/8 is loopback on Linux, so each ip is a source address of its
// own), and returns the CONNECT error; a connected client is closed when
// the test ends. It speaks MQTT 3.1.1 only: paho would otherwise retry a
// refused CONNECT as 3.1, two attempts for one.
func connectFrom(t *testing.T, inst *servertest.Instance, ip, user, pass, device string) error {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(inst.MQTT).SetClientID(device).
		SetUsername(user).SetPassword(pass).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
		SetDialer(&net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}})
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(servertest.Timeout) {
		return errors.New("connect: timeout")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return nil
}

// storm makes n bad-password CONNECTs for user from ip, 4 at a time, and
// returns how many got each error.
func storm(t *testing.T, inst *servertest.Instance, ip, user string, n int) map[error]int {
	t.Helper()
	var mu sync.Mutex
	got := make(map[error]int)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := connectFrom(t, inst, ip, user, "wrong", fmt.Sprintf("guess-%s-%d", ip, i))
				mu.Lock()
				got[refusedAs(err)]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return got
}

// refusedAs maps a CONNECT error to the paho sentinel of its CONNACK code.
func refusedAs(err error) error {
	for _, s := range []error{packets.ErrorRefusedNotAuthorised, packets.ErrorRefusedServerUnavailable, packets.ErrorRefusedBadUsernameOrPassword} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

const hashChecks = "mqtter_password_hash_checks_total"

func TestLoginStormBacksOffTheAddress(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(loginLimits))
	people(t, inst, "alice")

	got := storm(t, inst, "127.0.0.2", "alice", 40)
	if got[packets.ErrorRefusedNotAuthorised] != 3 || got[packets.ErrorRefusedServerUnavailable] != 37 {
		t.Errorf("40 bad CONNECTs got %v, want 3 refused as not authorised (5) then 37 as server unavailable (3)", got)
	}
	if n := metric(t, inst, hashChecks); n != 3 {
		t.Errorf("%s = %v after the storm, want 3: a backed-off address gets no hash check", hashChecks, n)
	}
	// Backed off: even the right password is not checked from there.
	before := metric(t, inst, hashChecks)
	if err := connectFrom(t, inst, "127.0.0.2", "alice", password("alice"), "alice-new"); !errors.Is(err, packets.ErrorRefusedServerUnavailable) {
		t.Errorf("right password from the backed-off address: %v, want server unavailable", err)
	}
	if n := metric(t, inst, hashChecks); n != before {
		t.Errorf("%s went %v → %v for a login from a backed-off address", hashChecks, before, n)
	}
	for reason, want := range map[string]float64{"bad_password": 3, "throttled": 38} {
		name := `mqtter_logins_refused_total{reason="` + reason + `"}`
		if n := metric(t, inst, name); n != want {
			t.Errorf("%s = %v, want %v", name, n, want)
		}
	}
}

func TestLoginStormSparesOwnerAndOthers(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(loginLimits))
	people(t, inst, "alice", "bob")
	if err := connectFrom(t, inst, "127.0.0.1", "alice", password("alice"), "alice-1"); err != nil {
		t.Fatalf("alice's first login: %v", err)
	}
	// A restart empties the cache of verified passwords, so the logins
	// below each need a hash check during the storm.
	inst.Restart(t)

	// Storms from two addresses back the account off.
	storm(t, inst, "127.0.0.2", "alice", 2)
	storm(t, inst, "127.0.0.3", "alice", 2)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, ip := range []string{"127.0.0.4", "127.0.0.5"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				connectFrom(t, inst, ip, "alice", "wrong", fmt.Sprintf("storm-%s-%d", ip, i))
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	if err := connectFrom(t, inst, "127.0.0.1", "alice", password("alice"), "alice-new"); !errors.Is(err, packets.ErrorRefusedServerUnavailable) {
		t.Errorf("a new device of the backed-off account: %v, want server unavailable", err)
	}
	if err := connectFrom(t, inst, "127.0.0.1", "alice", "wrong", "alice-1"); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("alice's known device with a wrong password: %v, want not authorised", err)
	}
	if err := connectFrom(t, inst, "127.0.0.1", "alice", password("alice"), "alice-1"); err != nil {
		t.Errorf("alice's known device with the right password during the storm: %v, want it in", err)
	}
	if err := connectFrom(t, inst, "127.0.0.1", "bob", password("bob"), "bob-1"); err != nil {
		t.Errorf("bob's first login during the storm: %v, want it in", err)
	}
}

func TestLoginUnknownAccountLikeWrongPassword(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(loginLimits))
	people(t, inst, "alice")

	for i, user := range []string{"alice", "nobody"} {
		ip := fmt.Sprintf("127.0.1.%d", i+1)
		before := metric(t, inst, hashChecks)
		err := connectFrom(t, inst, ip, user, "wrong", user+"-d")
		if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			t.Errorf("CONNECT %s with a wrong password: %v, want CONNACK 5 (not authorised)", user, err)
		}
		if n := metric(t, inst, hashChecks) - before; n != 1 {
			t.Errorf("CONNECT %s: %v hash checks, want 1", user, n)
		}
	}
	// The unknown name backs off after as many failures as a known one.
	for i, user := range []string{"alice", "nobody"} {
		for j := range 2 {
			connectFrom(t, inst, fmt.Sprintf("127.0.2.%d", 10*i+j), user, "wrong", user+"-d")
		}
		before := metric(t, inst, hashChecks)
		err := connectFrom(t, inst, "127.0.3.1", user, "wrong", user+"-d")
		if !errors.Is(err, packets.ErrorRefusedServerUnavailable) {
			t.Errorf("CONNECT %s after 3 failures: %v, want server unavailable", user, err)
		}
		if n := metric(t, inst, hashChecks) - before; n != 0 {
			t.Errorf("CONNECT %s after 3 failures: %v hash checks, want 0", user, n)
		}
	}
	if n := metric(t, inst, `mqtter_logins_refused_total{reason="unknown_account"}`); n != 3 {
		t.Errorf("unknown_account refusals = %v, want 3", n)
	}

	// HTTP Basic answers both alike too (accounts not backed off yet).
	people(t, inst, "carol")
	var bodies []string
	for _, user := range []string{"carol", "nobody-else"} {
		status, body := basicGet(t, inst, "127.0.4.1", user, "wrong")
		if status != http.StatusUnauthorized {
			t.Errorf("Basic %s with a wrong password: status %d, want 401", user, status)
		}
		var a wire.Answer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("answer %s: %v", body, err)
		}
		bodies = append(bodies, a.Error)
	}
	if bodies[0] != bodies[1] {
		t.Errorf("Basic errors differ: known account %q, unknown %q", bodies[0], bodies[1])
	}
}

// basicGet does GET /v1/feeds with Basic credentials from loopback ip.
func basicGet(t *testing.T, inst *servertest.Instance, ip, user, pass string) (int, []byte) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c := &http.Client{Timeout: servertest.Timeout, Transport: &http.Transport{DialContext: d.DialContext}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest("GET", inst.HTTP+"/v1/feeds", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/feeds: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func TestLoginThrottleCoversHTTPBasic(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(loginLimits))
	people(t, inst, "alice", "bob")

	for range 3 {
		if status, body := basicGet(t, inst, "127.0.5.1", "alice", "wrong"); status != http.StatusUnauthorized {
			t.Errorf("bad Basic: %d %s, want 401", status, body)
		}
	}
	before := metric(t, inst, hashChecks)
	if status, body := basicGet(t, inst, "127.0.5.1", "alice", password("alice")); status != http.StatusTooManyRequests {
		t.Errorf("Basic from a backed-off address: %d %s, want 429", status, body)
	}
	if n := metric(t, inst, hashChecks); n != before {
		t.Errorf("%s went %v → %v for a Basic login from a backed-off address", hashChecks, before, n)
	}
	// One throttle for both doors.
	if err := connectFrom(t, inst, "127.0.5.1", "bob", password("bob"), "bob-1"); !errors.Is(err, packets.ErrorRefusedServerUnavailable) {
		t.Errorf("CONNECT from the address backed off over HTTP: %v, want server unavailable", err)
	}
	if status, body := basicGet(t, inst, "127.0.5.2", "bob", password("bob")); status != http.StatusOK {
		t.Errorf("bob's Basic from another address: %d %s, want 200", status, body)
	}
}

func TestLoginBackoffEnds(t *testing.T) {
	t.Parallel()
	inst := servertest.Start(t, servertest.WithConfig(func(c *server.Config) {
		c.LoginFailures, c.LoginBackoff, c.LoginBackoffMax = 2, 300*time.Millisecond, 300*time.Millisecond
	}))
	people(t, inst, "alice")
	storm(t, inst, "127.0.6.1", "alice", 2)
	if err := connectFrom(t, inst, "127.0.6.1", "alice", password("alice"), "alice-1"); !errors.Is(err, packets.ErrorRefusedServerUnavailable) {
		t.Fatalf("login while backed off: %v, want server unavailable", err)
	}
	time.Sleep(time.Second)
	if err := connectFrom(t, inst, "127.0.6.1", "alice", password("alice"), "alice-1"); err != nil {
		t.Errorf("login once the back-off ended: %v, want it in", err)
	}
}
