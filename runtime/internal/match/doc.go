// Package match implements MPI message matching: the bookkeeping that pairs
// posted receives with arriving messages.
//
// A [Queue] holds two kinds of entries:
//
//   - posted receives: receive requests (of caller type R) waiting for a
//     message, each described by a pattern [Envelope] that may use [Any] as
//     its Source and/or Tag;
//   - unexpected messages: messages (of caller type M, opaque to this
//     package) that arrived before any matching receive was posted, each
//     described by a concrete Envelope.
//
// # Matching rules
//
// A message with envelope e matches a receive pattern p when
//
//	e.Context == p.Context &&
//	(p.Source == Any || p.Source == e.Source) &&
//	(p.Tag == Any || p.Tag == e.Tag)
//
// Context is never a wildcard, and wildcards are meaningful only in receive
// patterns. On top of that, the Queue guarantees MPI's ordering rules:
//
//   - Non-overtaking: when several unexpected messages match a receive, the
//     one that arrived first is taken. In particular two messages from the same
//     sender on the same context that both match are received in arrival
//     order, and an Any-source receive takes the oldest matching message
//     across all senders.
//   - Post order: when several posted receives match an arriving message, the
//     one that was posted first is satisfied, whether it names the source
//     explicitly or uses Any.
//   - A cancelled receive ([Queue.Cancel]) or a removed one
//     ([Queue.RemovePosted]) never matches afterwards.
//   - [Queue.Probe] never consumes a message.
//
// # Data structure
//
// State is kept per communicator context (a map from context id to a
// per-context record, fronted by a one-entry cache of the last context used,
// so a program talking on one communicator does no hashing). Within a context:
//
//   - each source rank owns a slot (a slice indexed by rank) holding two
//     intrusive doubly linked FIFO lists: its posted specific-source receives
//     and its unexpected messages;
//   - receives posted with Source == Any live in one per-context wildcard
//     list;
//   - every unexpected message is additionally linked into a per-context
//     arrival-order list, which Any-source receives and probes scan.
//
// Every posted receive is also linked into one queue-wide post-order list,
// used by [Queue.Cancel] and [Queue.RemovePosted], and carries a post sequence
// number. An arriving message looks at the first tag-matching receive in its
// source's list and the first tag-matching receive in the wildcard list and
// takes the one with the smaller sequence number. In the common case (short
// queues, specific source and tag) every operation is O(1); tag mismatches
// within one source cost a linear scan of that source's list only.
//
// List nodes are recycled through free lists, so once a Queue has warmed up
// to its peak occupancy, Post, Arrive, Probe, Take and Cancel allocate
// nothing. Per-context and per-source bookkeeping is retained once created;
// its size is proportional to the number of contexts and the highest source
// rank seen, not to the traffic.
//
// Sources outside 0..2^20-1 (other than Any in patterns) and negative tags
// other than Any are outside the contract but handled without panicking: such
// sources share one overflow slot per context, scanned linearly, and all
// values are compared with the rule above.
//
// The package is purely sequential: no goroutines, locks or I/O. The runtime
// serializes access to a Queue with its own mutex.
package match
