// Command lamp is an example device program for a thing's node: a lamp
// with the properties on and brightness and the actions toggle and set.
// Run it as the node's handler:
//
//	mqtter node --home DIR --server tcp://HOST:PORT --user lamp --thing-handler ./lamp
//
// It reads one invocation (a JSON object) a line on stdin and writes
// feedback, one JSON object a line, on stdout: its description at start,
// then for each command the state it caused and the result. Its log goes
// to stderr, which the node logs.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/mqtter/mqtter/thing"
)

func main() {
	log.SetFlags(0)
	out := json.NewEncoder(os.Stdout) // one object a line
	percent := func(v float64) *float64 { return &v }
	level := thing.Schema{Type: "integer", Minimum: percent(0), Maximum: percent(100), Unit: "%"}
	out.Encode(thing.Feedback{Kind: thing.KindDescription, Description: &thing.Description{
		Version: 1, Title: "A dimmable lamp",
		Properties: map[string]*thing.Property{
			"on":         {Schema: thing.Schema{Type: "boolean"}, Observable: true},
			"brightness": {Schema: level, Observable: true},
		},
		Actions: map[string]*thing.Action{
			"toggle": {Title: "Switch on or off"},
			"set": {Title: "Set on and/or brightness", Idempotent: true, Input: &thing.Schema{
				Type: "object", Properties: map[string]*thing.Schema{"on": {Type: "boolean"}, "brightness": &level},
			}},
		},
	}})

	on, brightness := false, 100
	report := func(cause string) {
		out.Encode(thing.Feedback{Kind: thing.KindState, Cause: cause, Props: map[string]json.RawMessage{
			"on": json.RawMessage(fmt.Sprint(on)), "brightness": json.RawMessage(fmt.Sprint(brightness)),
		}})
	}
	report(thing.CauseLocal)

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for in.Scan() {
		var inv thing.Invocation
		if err := json.Unmarshal(in.Bytes(), &inv); err != nil {
			log.Printf("lamp: not an invocation: %v", err)
			continue
		}
		result := thing.Feedback{Kind: thing.KindResult, Cmd: inv.Cmd, Status: thing.ResultDone}
		switch inv.Action {
		case "toggle":
			on = !on
		case "set":
			var set struct {
				On         *bool `json:"on"`
				Brightness *int  `json:"brightness"`
			}
			if err := json.Unmarshal(inv.Input, &set); err != nil {
				result.Status, result.Error = thing.ResultFailed, "input: "+err.Error()
				break
			}
			if set.On != nil {
				on = *set.On
			}
			if set.Brightness != nil {
				brightness = *set.Brightness
			}
		default:
			result.Status, result.Error = thing.ResultFailed, "no such action: "+inv.Action
		}
		log.Printf("lamp: %s from %s: on=%v brightness=%d", inv.Action, inv.From, on, brightness)
		if result.Status == thing.ResultDone {
			report(inv.Cmd)
			result.Output = json.RawMessage(fmt.Sprintf(`{"on":%v,"brightness":%d}`, on, brightness))
		}
		out.Encode(result)
	}
}
