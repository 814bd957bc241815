package servertest

import (
	"bytes"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ConnectPacket is an encoded MQTT 3.1.1 CONNECT (clean session) for
// device as user with password, for tests that talk to the broker over a
// bare connection: silent, half-sent or never-reading clients.
func ConnectPacket(device, user, password string, keepalive uint16) []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepalive, ClientIdentifier: device,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(password),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		panic("servertest: encode CONNECT: " + err.Error()) // only a too-long field can fail: a test's own bug
	}
	return buf.Bytes()
}
