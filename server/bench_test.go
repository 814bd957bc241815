package server_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// BenchmarkRelay measures send → news at the receiver through a real server
// with 10 pipelined publishers, each to its own friend. Whole-system
// figures, against Mosquitto, come from make bench (bench/cmd/mqbench).
func BenchmarkRelay(b *testing.B) {
	const pairs = 10
	inst := servertest.Start(b)
	var wg sync.WaitGroup
	received := make(chan struct{}, 1<<16)
	type pair struct{ pub paho.Client }
	ps := make([]pair, pairs)
	for i := range pairs {
		from, to := fmt.Sprintf("p%02d", i), fmt.Sprintf("r%02d", i)
		inst.AddUser(b, from, "pw", false)
		inst.AddUser(b, to, "pw", false)
		pub := servertest.Dial(b, inst, from, "pw", from+"-d")
		rcv := servertest.Dial(b, inst, to, "pw", to+"-d")
		pub.OK("add_friend", map[string]string{"user": to}, nil)
		rcv.OK("accept_friend", map[string]string{"user": from}, nil)
		pc := pub.Paho()
		ps[i] = pair{pc}
		rcv.Paho().AddRoute(wire.PushNews, func(paho.Client, paho.Message) { received <- struct{}{} })
		_ = rcv
	}
	bodies := make([][]byte, b.N)
	for n := range b.N {
		i := n % pairs
		m := wire.Message{MsgId: wire.NewMsgID(), Feeds: wire.DM(fmt.Sprintf("p%02d", i), fmt.Sprintf("r%02d", i)),
			MsgType: "text", Payload: json.RawMessage(`{"text":"benchmark payload of a typical short message"}`), TimeCreate: 1}
		bodies[n], _ = json.Marshal(m)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; n < b.N; n += pairs {
				ps[i].pub.Publish(wire.RequestTopic("modulus", "send", fmt.Sprint(n)), 1, false, bodies[n])
			}
		}()
	}
	for range b.N {
		select {
		case <-received:
		case <-time.After(30 * time.Second):
			b.Fatal("stalled")
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	wg.Wait()
}
