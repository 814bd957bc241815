package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// mosquittoTool returns the path of a Debian mosquitto-clients tool, or
// skips the test.
func mosquittoTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian mosquitto-clients; .ci/run installs it)", name)
	}
	return path
}

// mosquitto runs a mosquitto-clients tool against inst as user with
// device as its client id, and returns its standard output.
func mosquitto(t *testing.T, inst *servertest.Instance, tool, user, device string, args ...string) string {
	t.Helper()
	out, err := runMosquitto(t, inst, tool, user, device, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runMosquitto is mosquitto for any goroutine: it returns the failure.
func runMosquitto(t *testing.T, inst *servertest.Instance, tool, user, device string, args ...string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimPrefix(inst.MQTT, "tcp://"))
	if err != nil {
		return "", err
	}
	path, err := exec.LookPath(tool)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"-h", host, "-p", port, "-u", user, "-P", password(user), "-i", device}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %q: %w\nstdout: %s\nstderr: %s", tool, args, err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// subLines parses mosquitto_sub -v output: one "topic payload" a line,
// each payload a message.
func subLines(t *testing.T, out string) (topics []string, msgs []wire.Message) {
	t.Helper()
	for line := range strings.Lines(strings.TrimSpace(out)) {
		topic, payload, _ := strings.Cut(strings.TrimSpace(line), " ")
		var m wire.Message
		if err := json.Unmarshal([]byte(payload), &m); err != nil {
			t.Fatalf("mosquitto_sub line %q: %v", line, err)
		}
		topics, msgs = append(topics, topic), append(msgs, m)
	}
	return topics, msgs
}

// mosquitto_sub, mosquitto_pub and mosquitto_rr against the real server:
// a subscription that is a friend request, messages on the topic in
// order, the offline ones after a reconnect, the recycle bin by
// UNSUBSCRIBE, and the answer of a request.
func TestMosquittoClients(t *testing.T) {
	t.Parallel()
	mosquittoTool(t, "mosquitto_sub")
	inst, c := start(t, "alice", "bob")
	alice, bob := c[0], c[1]
	dm := wire.DM("alice", "bob")

	// alice asks by subscribing; QoS 1, so her acks move her cursor.
	type result struct {
		out string
		err error
	}
	first := make(chan result, 1)
	go func() {
		out, err := runMosquitto(t, inst, "mosquitto_sub", "alice", "alice-mq", "-t", "feeds/dm/bob", "-q", "1", "-v", "-C", "3", "-W", "15")
		first <- result{out, err}
	}()
	relationEvent(t, bob, "request")
	bob.OK("accept_friend", map[string]string{"user": "alice"}, nil)
	for i := 1; i <= 2; i++ {
		send(t, bob, text(dm, fmt.Sprint(i)))
	}
	// The third comes from mosquitto_pub, as a request of bob's.
	m := text(dm, "3")
	body, _ := json.Marshal(m)
	mosquitto(t, inst, "mosquitto_pub", "bob", "bob-mq", "-t", wire.RequestTopic("modulus", "send", "pub-1"), "-q", "1", "-m", string(body))
	res := <-first
	if res.err != nil {
		t.Fatal(res.err)
	}
	topics, msgs := subLines(t, res.out)
	if !slices.Equal(topics, []string{"feeds/dm/bob", "feeds/dm/bob", "feeds/dm/bob"}) || !slices.Equal(seqIDs(msgs), []int64{1, 2, 3}) {
		t.Fatalf("mosquitto_sub got %v %v, want SeqIds 1 2 3 on feeds/dm/bob", topics, seqIDs(msgs))
	}
	if msgs[2].MsgId != m.MsgId || msgs[2].From != "bob" {
		t.Errorf("third = %+v, want bob's mosquitto_pub message", msgs[2])
	}

	// Offline: what bob sends meanwhile comes first at the next
	// subscription, and only that.
	waitCursor(t, inst, "alice-mq", dm, 3)
	waitOffline(t, inst, "alice", "alice-mq")
	send(t, bob, text(dm, "4"))
	send(t, bob, text(dm, "5"))
	out := mosquitto(t, inst, "mosquitto_sub", "alice", "alice-mq", "-t", "feeds/dm/bob", "-q", "1", "-v", "-C", "2", "-W", "15")
	if _, msgs := subLines(t, out); !slices.Equal(seqIDs(msgs), []int64{4, 5}) {
		t.Errorf("after the reconnect mosquitto_sub got %v, want 4 5", seqIDs(msgs))
	}

	// mosquitto_rr subscribes to the answer's topic, publishes the request
	// and prints the first message: the answer.
	topic := wire.RequestTopic("modulus", "list_relations", "rr-1")
	out = mosquitto(t, inst, "mosquitto_rr", "alice", "alice-rr", "-t", topic, "-e", topic, "-m", "{}", "-W", "15")
	a, err := wire.ParseAnswer([]byte(strings.TrimSpace(out)))
	var rels []wire.Relation
	if err != nil || a.Error != "" || json.Unmarshal(a.Result, &rels) != nil || len(rels) != 1 || rels[0].User != "bob" || rels[0].State != "friend" {
		t.Errorf("mosquitto_rr printed %q, want the answer listing bob as a friend", out)
	}

	// UNSUBSCRIBE (MQTT 5, with keep_seconds) puts bob in the recycle bin.
	// mosquitto_sub wants a topic too: a quiet one, and its -W time-out
	// (exit status 27) ends it once the UNSUBACK had time to come.
	_, err = runMosquitto(t, inst, "mosquitto_sub", "alice", "alice-mq", "-V", "5", "-t", "feeds/g/+", "-U", "feeds/dm/bob",
		"-D", "unsubscribe", "user-property", "keep_seconds", "60", "-W", "1")
	if ee := (*exec.ExitError)(nil); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 27) {
		t.Fatal(err)
	}
	r := wantRelation(t, alice, "bob", "person", "recycled")
	if left := time.Until(time.UnixMilli(r.Expires)); left > 61*time.Second || left < 50*time.Second {
		t.Errorf("recycled for %v more, want about 60 s", left)
	}
	relationEvent(t, bob, "removed")
}
