// Package devicesim simulates devices that run stock firmware, speaking
// its MQTT dialect as the firmware's documentation describes, for tests,
// benchmarks and the examples. It is a plain MQTT client (paho) and knows
// nothing of MQTTER.
package devicesim

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// PlugConfig configures a simulated Tasmota plug.
type PlugConfig struct {
	Broker   string // tcp://host:port
	User     string // its MQTT user name (MqttUser)
	Password string
	ClientID string // its MQTT client id (MqttClient, DVES_XXXXXX by default)
	Topic    string // its Topic; the full topic is the default %prefix%/%topic%/
	Dimmer   bool   // a dimmable plug (Dimmer 0…100)
	QoS      byte   // the QoS it subscribes with
}

// Plug is a Tasmota plug: POWER (and Dimmer), its last will on
// tele/<topic>/LWT, its answers on stat/<topic>/RESULT and
// stat/<topic>/POWER, its telemetry on tele/<topic>/STATE.
type Plug struct {
	cfg PlugConfig
	c   paho.Client
	in  chan paho.Message
	wg  sync.WaitGroup
	end sync.Once

	mu       sync.Mutex
	power    bool
	dimmer   int
	received []string // "Topic Payload" of every command, in order
	notify   chan struct{}
}

// StartPlug connects the plug as Tasmota does: the will Offline (retained)
// on tele/<topic>/LWT, then Online there, the subscriptions to its
// command, group and fallback topics, and its STATE.
func StartPlug(cfg PlugConfig) (*Plug, error) {
	in := make(chan paho.Message, 64)
	p := &Plug{cfg: cfg, in: in, dimmer: 50, notify: make(chan struct{}, 1)}
	lwt := p.tele("LWT")
	opts := paho.NewClientOptions().AddBroker(cfg.Broker).SetClientID(cfg.ClientID).
		SetUsername(cfg.User).SetPassword(cfg.Password).SetCleanSession(true).
		SetAutoReconnect(false).SetKeepAlive(30*time.Second).
		SetWill(lwt, "Offline", 1, true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { in <- m })
	p.c = paho.NewClient(opts)
	if err := wait(p.c.Connect()); err != nil {
		return nil, fmt.Errorf("plug %s: connect: %w", cfg.Topic, err)
	}
	p.wg.Add(1)
	go p.run()
	if err := wait(p.c.Publish(lwt, 1, true, "Online")); err != nil {
		p.Close()
		return nil, err
	}
	filters := map[string]byte{}
	for _, f := range []string{"cmnd/" + cfg.Topic + "/#", "cmnd/tasmotas/#", "cmnd/" + cfg.ClientID + "_fb/#"} {
		filters[f] = cfg.QoS
	}
	if err := wait(p.c.SubscribeMultiple(filters, nil)); err != nil {
		p.Close()
		return nil, err
	}
	return p, p.publishState()
}

func wait(tok paho.Token) error {
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("timeout")
	}
	return tok.Error()
}

func (p *Plug) tele(what string) string { return "tele/" + p.cfg.Topic + "/" + what }
func (p *Plug) stat(what string) string { return "stat/" + p.cfg.Topic + "/" + what }

// run handles commands off paho's handler, which must not publish.
func (p *Plug) run() {
	defer p.wg.Done()
	for m := range p.in {
		p.command(m.Topic(), string(m.Payload()))
	}
}

// command runs one cmnd/… PUBLISH as Tasmota does and answers on RESULT.
func (p *Plug) command(topic, payload string) {
	p.mu.Lock()
	p.received = append(p.received, topic+" "+payload)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
	parts := strings.Split(topic, "/")
	if len(parts) != 3 || parts[0] != "cmnd" {
		return
	}
	steps := [][2]string{{parts[2], payload}}
	if strings.EqualFold(parts[2], "Backlog") {
		steps = steps[:0]
		for _, s := range strings.Split(payload, ";") {
			cmd, arg, _ := strings.Cut(strings.TrimSpace(s), " ")
			steps = append(steps, [2]string{cmd, strings.TrimSpace(arg)})
		}
	}
	for _, s := range steps {
		p.run1(s[0], s[1])
	}
}

func (p *Plug) run1(cmd, arg string) {
	p.mu.Lock()
	result := map[string]any{}
	switch strings.ToUpper(cmd) {
	case "POWER":
		switch strings.ToUpper(arg) {
		case "ON", "1", "TRUE":
			p.power = true
		case "OFF", "0", "FALSE":
			p.power = false
		case "TOGGLE", "2":
			p.power = !p.power
		}
		result["POWER"] = onOff(p.power)
	case "DIMMER":
		if !p.cfg.Dimmer {
			result["Command"] = "Unknown"
			break
		}
		if n, err := strconv.Atoi(arg); err == nil {
			p.dimmer = min(max(n, 0), 100)
			p.power = p.dimmer > 0
		}
		result["POWER"], result["Dimmer"] = onOff(p.power), p.dimmer
	case "STATE":
		p.mu.Unlock()
		p.publishState()
		return
	default:
		result["Command"] = "Unknown"
	}
	power := p.power
	p.mu.Unlock()
	b, _ := json.Marshal(result)
	p.c.Publish(p.stat("RESULT"), 0, false, b)
	if _, ok := result["POWER"]; ok {
		p.c.Publish(p.stat("POWER"), 0, false, onOff(power))
	}
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// publishState publishes tele/<topic>/STATE, as at connect and every
// TelePeriod.
func (p *Plug) publishState() error {
	p.mu.Lock()
	st := map[string]any{"Time": time.Now().UTC().Format("2006-01-02T15:04:05"), "Uptime": "0T00:00:01",
		"UptimeSec": 1, "Heap": 25, "POWER": onOff(p.power), "Wifi": map[string]any{"AP": 1, "RSSI": 80}}
	if p.cfg.Dimmer {
		st["Dimmer"] = p.dimmer
	}
	p.mu.Unlock()
	b, _ := json.Marshal(st)
	return wait(p.c.Publish(p.tele("STATE"), 0, false, b))
}

// Press switches the plug over with its button: Tasmota then publishes
// the new power on stat/<topic>/RESULT and stat/<topic>/POWER.
func (p *Plug) Press() error {
	p.mu.Lock()
	p.power = !p.power
	power := p.power
	p.mu.Unlock()
	b, _ := json.Marshal(map[string]string{"POWER": onOff(power)})
	if err := wait(p.c.Publish(p.stat("RESULT"), 0, false, b)); err != nil {
		return err
	}
	return wait(p.c.Publish(p.stat("POWER"), 0, false, onOff(power)))
}

// Power reports whether the plug is switched on.
func (p *Plug) Power() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.power
}

// Received returns every command the plug got, as "topic payload".
func (p *Plug) Received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.received...)
}

// WaitReceived waits until the plug got n commands in all, or d passed.
func (p *Plug) WaitReceived(n int, d time.Duration) []string {
	deadline := time.After(d)
	for {
		if got := p.Received(); len(got) >= n {
			return got
		}
		select {
		case <-p.notify:
		case <-deadline:
			return p.Received()
		}
	}
}

// Publish publishes as the plug, for tests of what it may not do.
func (p *Plug) Publish(topic string, payload string, retained bool) error {
	return wait(p.c.Publish(topic, 0, retained, payload))
}

// Subscribe subscribes as the plug and returns the granted QoS (0x80:
// refused).
func (p *Plug) Subscribe(filter string) (byte, error) {
	tok := p.c.Subscribe(filter, 0, nil)
	if err := wait(tok); err != nil {
		return 0, err
	}
	return tok.(*paho.SubscribeToken).Result()[filter], nil
}

// Close disconnects the plug cleanly (the broker drops its will).
func (p *Plug) Close() {
	if p.c.IsConnected() {
		p.c.Disconnect(100)
	}
	p.closeIn()
}

func (p *Plug) closeIn() {
	p.end.Do(func() {
		close(p.in)
		p.wg.Wait()
	})
}
