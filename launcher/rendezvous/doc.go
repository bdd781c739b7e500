// Package rendezvous is the per-job key-value store through which the ranks
// of a gorun job find each other, in the manner of PMI.
//
// The launcher runs one [Server] per job. Each rank's runtime dials it with
// a [Client], proves the job token, publishes its endpoint address with
// [Client.Set], waits for every rank with [Client.Fence] and reads its peers'
// addresses with [Client.Get]. The connection stays open for the whole job:
// the launcher pushes [Event]s (a rank failed, the job is being aborted) to
// every rank through it with [Server.Notify], a rank can ask the launcher to
// end the job ([Client.Abort]) and reports a clean [Client.Finalize].
// [MemStore] is an in-process twin for tests whose ranks are goroutines.
//
// # Wire protocol
//
// A connection starts with the mutual challenge–response of package
// runtime/auth, label "gorun-rendezvous" ([AuthLabel]), keyed with the job
// token. Nothing else is read from a peer before it has proved the token.
//
// After that, both directions carry frames:
//
//	frame = length (uint32, little-endian) | body (length bytes)
//	body  = msgpack array of exactly 8 elements:
//	        [op uint, id uint, rank int, code int, kind uint,
//	         key str|bin|nil, value bin|str|nil, text str|nil]
//
// Unused fields are zero or nil. A decoder rejects, before allocating, a
// frame longer than 1 MiB or empty, a key longer than [MaxKeyLen], a value
// longer than [MaxValueLen] and a text longer than [MaxTextLen]; it also
// rejects any other array length, an unknown op, integers out of range and
// trailing bytes. Any such violation closes that connection (the server logs
// the reason); the server goes on serving everyone else.
//
// Ops, client → server (id is chosen by the client, non-zero, and echoed in
// the reply so that many requests can be outstanding on one connection):
//
//	1 hello    rank                 first frame, id 0; answered by welcome or reject
//	2 set      id, key, value       store value under key (overwrites)
//	3 get      id, key              reply with the value once key is set
//	4 fence    id                   reply once every rank has made as many fence calls
//	5 abort    id, code, text       ask the launcher to end the job
//	6 finalize id                   the rank finalized cleanly
//	7 cancel   id                   forget the pending get or fence id (no reply)
//	8 lost     id, code = peer      this rank lost its connection to rank code
//
// Ops, server → client:
//
//	16 welcome  code = job size      hello accepted
//	17 reject   code = reason, text  hello refused (1 rank out of range, 2 rank
//	                                 already connected, 3 protocol, 4 server closing);
//	                                 the server then closes the connection
//	18 reply    id, value, code, text  answer to request id; code 0 = success,
//	                                 otherwise text says why it was refused
//	19 event    kind, rank, code, text  an [Event] pushed by [Server.Notify]
//
// The server allows 10 seconds for the auth exchange and the hello frame, so
// a silent or half-open connection cannot hold a slot; afterwards it reads
// without a deadline (a rank may legitimately wait for hours) and writes
// with a per-batch deadline. Each connection has its own reader and writer
// goroutines; replies and events are queued to the writer, so a slow or
// stuck client never blocks the server or the other ranks: when its queue
// grows past a bound the server drops that connection.
//
// The store is bounded to [MaxKeys] keys and 128 MiB of values per job, and
// each connection to 4096 outstanding blocking requests; requests beyond
// those limits are refused with an error reply, not by closing the
// connection.
package rendezvous
