// Command z2mbridge plays a Zigbee2MQTT bridge with one dimmable bulb
// against an MQTT server, as the Zigbee2MQTT documentation describes its
// MQTT topics, so that adopting a bridge (mqtter thing adopt … --profile
// zigbee2mqtt) can be tried without Zigbee hardware. Lines "on" and "off"
// on stdin switch the bulb from its remote.
//
//	MQTTER_PASSWORD=pw z2mbridge -broker tcp://127.0.0.1:1883 -user z2m -bulb bulb
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/mqtter/mqtter/adapter/devicesim"
)

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "the MQTT server")
	user := flag.String("user", "", "its MQTT user: the adopted bridge's account")
	client := flag.String("client", "zigbee2mqtt-sim", "its MQTT client id")
	base := flag.String("base", "zigbee2mqtt", "its base topic")
	bulb := flag.String("bulb", "bulb", "the friendly name of its bulb")
	flag.Parse()
	br, err := devicesim.StartBridge(devicesim.BridgeConfig{Broker: *broker, User: *user, Password: os.Getenv("MQTTER_PASSWORD"),
		ClientID: *client, Base: *base, Bulb: *bulb})
	if err != nil {
		fmt.Fprintln(os.Stderr, "z2mbridge:", err)
		os.Exit(1)
	}
	defer br.Close()
	fmt.Println("bridge", *base, "online with", *bulb, "; type on or off to use its remote")
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				<-sig
				return
			}
			switch strings.TrimSpace(l) {
			case "on", "off":
				if err := br.Switch(strings.TrimSpace(l) == "on"); err != nil {
					fmt.Fprintln(os.Stderr, "z2mbridge:", err)
				}
			}
		case <-sig:
			return
		}
	}
}
