// Package server is the central MQTTER server: an embedded mochi MQTT broker
// whose hooks authenticate accounts, confine each client to the protocol's
// topics and hand every PUBLISH to the IM service, which answers on the
// identical topic, stores and sequences messages, delivers them to online
// devices and replays what a device missed when it connects. It also serves
// the HTTP API (history, groups, conversations, server-to-server push,
// health and metrics).
//
// A request travels:
//
//	PUBLISH (client read loop) → hook: parse, queue on the client's session
//	→ worker pool (one request of a client at a time, in order)
//	→ method → store (group-committed writer) → answer to that client only
//	→ pushes to the online devices of the accounts concerned
//
// Nothing is broadcast through the broker's topic tree: answers and pushes
// are written to the one client they are for.
package server
