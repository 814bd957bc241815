// Package localdb is the node's SQLite store: its whole message history,
// the outbox of its own sends, and caches of what the server told it
// (relations, devices of related accounts, pull cursors, small state), so
// the node keeps working while the server is down.
//
// The file is opened in WAL mode with one writer connection, which every
// change goes through in a transaction, and a separate pool of read-only
// connections. The schema lives in numbered migrations under sql/.
package localdb
