// Command doorsensor is an example device program for a thing's node: a
// door sensor with the property open and the event opened. A real one
// reports by itself; for a demo the actions open and close play the door.
// Run it as the node's handler:
//
//	mqtter node --home DIR --server tcp://HOST:PORT --user door --thing-handler ./doorsensor
//
// With a rule "when door reports opened, lamp toggles" (made by a person
// bound to both), opening the door switches the lamp.
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
	out.Encode(thing.Feedback{Kind: thing.KindDescription, Description: &thing.Description{
		Version: 1, Title: "A door sensor",
		Properties: map[string]*thing.Property{
			"open": {Schema: thing.Schema{Type: "boolean"}, ReadOnly: true, Observable: true},
		},
		Events: map[string]*thing.Event{
			"opened": {Title: "The door opened", Data: &thing.Schema{Type: "object"}},
		},
		Actions: map[string]*thing.Action{
			"open":  {Title: "Open the door (demo)"},
			"close": {Title: "Close the door (demo)"},
		},
	}})

	open := false
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for in.Scan() {
		var inv thing.Invocation
		if err := json.Unmarshal(in.Bytes(), &inv); err != nil {
			log.Printf("doorsensor: not an invocation: %v", err)
			continue
		}
		result := thing.Feedback{Kind: thing.KindResult, Cmd: inv.Cmd, Status: thing.ResultDone}
		switch inv.Action {
		case "open", "close":
			was := open
			open = inv.Action == "open"
			out.Encode(thing.Feedback{Kind: thing.KindState, Cause: inv.Cmd,
				Props: map[string]json.RawMessage{"open": json.RawMessage(fmt.Sprint(open))}})
			if open && !was {
				out.Encode(thing.Feedback{Kind: thing.KindEvent, Event: "opened", Cause: inv.Cmd,
					Data: json.RawMessage(`{"open":true}`)})
			}
		default:
			result.Status, result.Error = thing.ResultFailed, "no such action: "+inv.Action
		}
		log.Printf("doorsensor: %s from %s: open=%v", inv.Action, inv.From, open)
		out.Encode(result)
	}
}
