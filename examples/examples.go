// Package examples holds the example device programs: small POSIX sh
// scripts that a thing's node runs with --thing-handler (embedded here so
// that the demo can write them out), and Go versions of the same devices
// under lamp/ and doorsensor/.
package examples

import _ "embed"

// Lamp is lamp.sh: a dimmable lamp (on, brightness; toggle, set).
//
//go:embed lamp.sh
var Lamp string

// DoorSensor is doorsensor.sh: a door sensor (open; event opened; open and
// close to play the door).
//
//go:embed doorsensor.sh
var DoorSensor string
