// Package store keeps the central server's state in SQLite: accounts,
// devices, relations, groups, messages with their SeqIds, delivery cursors,
// pairing codes and API tokens.
//
// One connection writes, from one goroutine, in group-committed batches: every
// write (a message append or any other change) is a job queued to the writer,
// which runs as many queued jobs as it can in one transaction. SeqIds are
// assigned there and nowhere else, so a conversation's SeqIds are 1, 2, 3 …
// without gaps. A separate pool of read-only connections serves queries; in
// WAL mode readers see every committed batch and never block the writer.
//
// Keys are chosen so inserts append: the message rowid grows with arrival,
// MsgIds are time-ordered ULIDs, and (feeds, seq) grows inside a
// conversation.
package store
