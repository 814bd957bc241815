// Package bench measures MQTTER's server as a user sees it, from outside:
// relay latency and throughput of im://modulus/send through a real
// `mqtter server` process, the same paho clients doing plain QoS 1
// publish/subscribe through Mosquitto for comparison, and resident memory
// with many idle connections against a bare mochi broker and Mosquitto.
//
// It also measures nodes (bench/cmd/nodebench): a direct message to a real
// node process until it is stored and answered, the local API's send until
// the peer has it, the server relay, and throughput stored on both sides,
// beside a raw libp2p echo as the ceiling, with idle and loaded RSS; and a
// new node's restore of a large history (bench/cmd/restorebench), beside a
// raw insert of the same rows into SQLite as the ceiling, with peak RSS.
// And things (bench/cmd/thingbench): a command to a thing's node running
// an example device program until its result, directly and from a plain
// MQTT client through the server, and a chain through a rule, beside a
// direct message to the same node. And a group's fan-out
// (bench/cmd/gossipbench): one member's message until the last of 5, 20
// and 50 others' nodes stored it, by GossipSub and by the server's push,
// with CPU per delivery; the largest group's nodes run in the bench's
// own process (node.Run), the others as processes. And two nodes behind
// NAT routers (bench/cmd/relaybench), in network namespaces
// (internal/natlab): the time from both online to the first message
// relayed by the server's relay and to the first one direct after the
// hole punch, and latency direct, relayed and through the server.
//
// Every broker and node runs as a separate process on 127.0.0.1, but for
// gossipbench's in-process nodes and relaybench's namespaces. The figures are
// reported, never asserted: a benchmark run fails only when it cannot set
// itself up (a broker does not start, an account cannot be made).
// Commands mqbench, nodebench, restorebench, thingbench, gossipbench and relaybench are the entry points;
// `make bench` runs them all.
package bench
