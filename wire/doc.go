// Package wire holds everything MQTTER puts on the wire: URI topics, the
// node-to-node packet framing, the request/answer envelope and the JSON bodies
// of every method and push, the Message type and its Ed25519 signature.
// It is the protocol contract (PROTOCOL.md) in Go types; it does no I/O
// beyond the io.Reader and io.Writer it is given.
//
// # Topics
//
// Every packet has a topic, a URI parsed by [ParseTopic] and formatted by
// [Topic.String]; the two are exact inverses:
//
//	<scheme>://[<user>[:<password>]@]<host>[:<port>]/<path>[;<params>][?<query>][#<fragment>]
//
//	scheme    [a-z][a-z0-9+.-]*                      im impush http https local system …
//	user      unreserved / %XX / sub-delims          no ":" and no "@"
//	password  unreserved / %XX / sub-delims / ":"    no "@"
//	host      reg-name: unreserved / %XX / sub-delims (never empty),
//	          or an IPv6 literal "[…]" (brackets kept in Topic.Host, zone as "%25zone")
//	port      1 to 5 digits, at most 65535
//	path      pchar / "/"                            ends at the first ";", "?" or "#"
//	params    pchar / "/" / ";"                      ends at the first "?" or "#"
//	query     pchar / "/" / "?"                      ends at the first "#"; kept raw
//	fragment  pchar / "/" / "?"                      no further "#"
//
//	unreserved = A-Z a-z 0-9 - . _ ~    sub-delims = ! $ & ' ( ) * + , =
//	pchar      = unreserved / %XX / sub-delims / ":" / "@"
//	(";" separates the params, so it appears only in params and query)
//
// A topic is at most [MaxTopicLen] bytes. Non-ASCII UTF-8 is allowed in every
// part but scheme and port (IRI style); control characters, spaces, invalid
// UTF-8 and a "%" not followed by two hex digits are not. The "/" after the
// authority is required: "im://modulus" is a bad topic, "im://modulus/" has an
// empty path. MQTT forbids "+" and "#" in a PUBLISH topic, so a topic with a
// fragment or a literal "+" can travel only on a direct stream ([MQTTSafe]);
// [RequestTopic] escapes a space in the msg_id as "%20", not "+". Example:
//
//	im://12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm/send?msg_id=7
//	└┬┘  └──────────────────────── host ───────────────────┘ └┬─┘ └─query─┘
//	scheme                                                   path = method
//
// # Frames
//
// On a direct libp2p stream (protocol /mqtter/packet/1.0.0) packets travel as
// frames, one after another:
//
//	+--------------------+-------------+-------------------+------------+
//	| uvarint(len topic) | topic bytes | uvarint(len body) | body bytes |
//	+--------------------+-------------+-------------------+------------+
//	  1..2 bytes           ≤ 4096        1..10 bytes         ≤ maxBody
//
// Lengths are unsigned LEB128 varints (encoding/binary), minimally encoded.
// A reader checks each length against its limit before it allocates. Framing
// does not look inside the topic: the receiver parses it with [ParseTopic].
//
// # Signing
//
// A [Message] is signed by the sending device's libp2p Ed25519 key over
// [Message.SigningBytes], which covers every field but SeqId and Sig:
//
//	"mqtter/msg/v1\x00"
//	uvarint(len) MsgId
//	uvarint(len) Feeds
//	uvarint(len) MsgType
//	uvarint(len) From
//	uvarint(len) canonical(Payload)
//	uvarint(len) TimeCreate as decimal ASCII
//	uvarint(len) Device
//
// canonical(Payload) is the JSON value re-encoded by [CanonicalJSON]: object
// keys sorted by their UTF-8 bytes, no insignificant whitespace, numbers
// exactly as written, strings re-escaped minimally: only '"', '\' and
// U+0000–U+001F are escaped, as \" \\ \b \t \n \f \r or else \u00xx with
// lowercase hex; U+007F, U+0080–U+009F, '/', U+2028 and every other
// character stay literal UTF-8 (no HTML escaping). A
// payload that an intermediary re-indented, reordered or re-escaped still
// verifies; one whose numbers were rewritten (1.50 as 1.5) does not. Payloads
// with duplicate keys, invalid UTF-8 or lone surrogates cannot be signed.
// Sig is the standard base64 encoding of the 64-byte signature; Device is the
// signer's peer id, from which the verifier takes the public key.
//
// # Device proof
//
// A register_device proves the device key by signing [DeviceProofBytes]
// over a challenge from device_challenge:
//
//	"mqtter/register_device/v1\x00" account "\x00" peer id "\x00" challenge "\x00"
//
// with Sig and PubKey in standard padded base64 ([ProveDevice] fills them).
package wire
