package devicesim

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// BridgeConfig configures a simulated Zigbee2MQTT bridge.
type BridgeConfig struct {
	Broker   string
	User     string
	Password string
	ClientID string
	Base     string // its base_topic (zigbee2mqtt by default)
	Bulb     string // the friendly name of its one bulb
}

// Bridge is a Zigbee2MQTT bridge with one dimmable bulb (state,
// brightness 0…254): its will {"state":"offline"} on <base>/bridge/state,
// its device list on <base>/bridge/devices, the bulb's state on
// <base>/<bulb> and availability on <base>/<bulb>/availability; it takes
// <base>/<bulb>/set and /get and answers with the bulb's state (a set has
// no reply of its own).
type Bridge struct {
	cfg BridgeConfig
	c   paho.Client
	in  chan paho.Message
	wg  sync.WaitGroup
	end sync.Once

	mu         sync.Mutex
	on         bool
	brightness int
	mute       bool // takes sets without publishing the state (a bulb out of reach)
	received   []string
}

// StartBridge connects the bridge as Zigbee2MQTT does and announces its
// state, its devices, the bulb's availability and state.
func StartBridge(cfg BridgeConfig) (*Bridge, error) {
	if cfg.Base == "" {
		cfg.Base = "zigbee2mqtt"
	}
	in := make(chan paho.Message, 64)
	b := &Bridge{cfg: cfg, in: in, brightness: 100}
	opts := paho.NewClientOptions().AddBroker(cfg.Broker).SetClientID(cfg.ClientID).
		SetUsername(cfg.User).SetPassword(cfg.Password).SetCleanSession(true).
		SetAutoReconnect(false).SetKeepAlive(30*time.Second).
		SetWill(cfg.Base+"/bridge/state", `{"state":"offline"}`, 1, true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { in <- m })
	b.c = paho.NewClient(opts)
	if err := wait(b.c.Connect()); err != nil {
		return nil, fmt.Errorf("bridge %s: connect: %w", cfg.Base, err)
	}
	b.wg.Add(1)
	go b.run()
	steps := []func() error{
		func() error { return b.pub("bridge/state", `{"state":"online"}`, true) },
		func() error { return wait(b.c.Subscribe(cfg.Base+"/#", 1, nil)) },
		func() error { return b.pub("bridge/devices", b.devices(), true) },
		func() error { return b.pub(cfg.Bulb+"/availability", `{"state":"online"}`, true) },
		b.publishState,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

func (b *Bridge) pub(sub, payload string, retained bool) error {
	return wait(b.c.Publish(b.cfg.Base+"/"+sub, 1, retained, payload))
}

// devices is the bridge's device list: the coordinator and the bulb, with
// the exposes of a dimmable light.
func (b *Bridge) devices() string {
	list := []any{
		map[string]any{"ieee_address": "0x00124b0000000001", "type": "Coordinator", "friendly_name": "Coordinator", "definition": nil},
		map[string]any{"ieee_address": "0x0017880100000002", "type": "Router", "friendly_name": b.cfg.Bulb, "supported": true,
			"definition": map[string]any{"model": "SIM-BULB", "vendor": "devicesim", "description": "Simulated dimmable bulb",
				"exposes": []any{
					map[string]any{"type": "light", "features": []any{
						map[string]any{"type": "binary", "name": "state", "property": "state", "access": 7,
							"value_on": "ON", "value_off": "OFF", "value_toggle": "TOGGLE"},
						map[string]any{"type": "numeric", "name": "brightness", "property": "brightness", "access": 7,
							"value_min": 0, "value_max": 254},
					}},
					map[string]any{"type": "numeric", "name": "linkquality", "property": "linkquality", "access": 1,
						"unit": "lqi", "value_min": 0, "value_max": 255},
				}}},
	}
	out, _ := json.Marshal(list)
	return string(out)
}

func (b *Bridge) run() {
	defer b.wg.Done()
	for m := range b.in {
		b.handle(m.Topic(), m.Payload())
	}
}

// handle takes a /set or /get of the bulb; the bridge's own publishes
// coming back (it subscribes to <base>/#) are ignored.
func (b *Bridge) handle(topic string, payload []byte) {
	rest, ok := strings.CutPrefix(topic, b.cfg.Base+"/"+b.cfg.Bulb+"/")
	if !ok || (rest != "set" && rest != "get") {
		return
	}
	b.mu.Lock()
	b.received = append(b.received, topic+" "+string(payload))
	if rest == "set" {
		var set struct {
			State      string `json:"state"`
			Brightness *int   `json:"brightness"`
		}
		if json.Unmarshal(payload, &set) == nil {
			switch strings.ToUpper(set.State) {
			case "ON":
				b.on = true
			case "OFF":
				b.on = false
			case "TOGGLE":
				b.on = !b.on
			}
			if set.Brightness != nil {
				b.brightness = min(max(*set.Brightness, 0), 254)
			}
		}
	}
	mute := b.mute
	b.mu.Unlock()
	if !mute {
		b.publishState()
	}
}

// Mute makes the bridge take sets without publishing the bulb's state, as
// when the bulb is out of reach.
func (b *Bridge) Mute(mute bool) {
	b.mu.Lock()
	b.mute = mute
	b.mu.Unlock()
}

// publishState publishes the bulb's state, as the bridge does after a
// change or a get.
func (b *Bridge) publishState() error {
	b.mu.Lock()
	st := map[string]any{"state": onOff(b.on), "brightness": b.brightness, "linkquality": 120}
	b.mu.Unlock()
	out, _ := json.Marshal(st)
	return b.pub(b.cfg.Bulb, string(out), false)
}

// Switch switches the bulb from its own remote: the bridge publishes the
// new state.
func (b *Bridge) Switch(on bool) error {
	b.mu.Lock()
	b.on = on
	b.mu.Unlock()
	return b.publishState()
}

// SetAvailability publishes the bulb's availability.
func (b *Bridge) SetAvailability(online bool) error {
	return b.pub(b.cfg.Bulb+"/availability", fmt.Sprintf(`{"state":%q}`, map[bool]string{true: "online", false: "offline"}[online]), true)
}

// On reports whether the bulb is on.
func (b *Bridge) On() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.on
}

// Received returns the bulb's sets and gets, as "topic payload".
func (b *Bridge) Received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.received...)
}

// Publish publishes as the bridge, for tests of what it may not do.
func (b *Bridge) Publish(topic, payload string) error {
	return wait(b.c.Publish(topic, 0, false, payload))
}

// Close disconnects the bridge cleanly.
func (b *Bridge) Close() {
	if b.c.IsConnected() {
		b.c.Disconnect(100)
	}
	b.end.Do(func() {
		close(b.in)
		b.wg.Wait()
	})
}
