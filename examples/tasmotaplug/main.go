// Command tasmotaplug plays a Tasmota plug against an MQTT server, as the
// Tasmota documentation describes the firmware's MQTT dialect, so that an
// adoption (mqtter thing adopt … --profile tasmota) can be tried without a
// real device. Each line "press" on stdin presses its button.
//
//	MQTTER_PASSWORD=pw tasmotaplug -broker tcp://127.0.0.1:1883 -user plug -topic plug
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
	user := flag.String("user", "", "its MQTT user: the adopted thing's account")
	client := flag.String("client", "DVES_000001", "its MQTT client id")
	topic := flag.String("topic", "tasmota_000001", "its Tasmota topic")
	dimmer := flag.Bool("dimmer", false, "a dimmable plug")
	flag.Parse()
	plug, err := devicesim.StartPlug(devicesim.PlugConfig{Broker: *broker, User: *user, Password: os.Getenv("MQTTER_PASSWORD"),
		ClientID: *client, Topic: *topic, Dimmer: *dimmer})
	if err != nil {
		fmt.Fprintln(os.Stderr, "tasmotaplug:", err)
		os.Exit(1)
	}
	defer plug.Close()
	fmt.Println("plug", *topic, "online; type press to press its button")
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
			if strings.TrimSpace(l) == "press" {
				if err := plug.Press(); err != nil {
					fmt.Fprintln(os.Stderr, "tasmotaplug:", err)
				}
				fmt.Println("power", map[bool]string{true: "ON", false: "OFF"}[plug.Power()])
			}
		case <-sig:
			return
		}
	}
}
