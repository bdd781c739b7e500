// Package mpi is gorun's message-passing runtime: the API a parallel Go
// program uses to exchange messages between the ranks that `gorun -n N`
// starts.
//
// # Lifecycle
//
//	world, err := mpi.Init(ctx)   // join the job; world holds every rank
//	if err != nil { … }
//	defer world.Finalize()        // collective: every rank calls it
//	rank, size := world.Rank(), world.Size()
//
// Without a launcher (go run ./prog, or running the binary directly) Init
// returns a world of size 1, so programs also run alone.
//
// # Messages
//
// Typed calls are generic functions over slices of any Numeric element type;
// the bytes travel as they are in memory, with no encoding:
//
//	err = mpi.Send(world, temps, 1, tagHalo)                // []float64
//	st, err := mpi.Recv(world, buf, mpi.AnySource, mpi.AnyTag)
//	st.Source, st.Tag, st.Count                            // who, which, how many
//
// Any Go value travels through msgpack with SendValue and RecvValue.
// Non-blocking calls (Isend, Irecv, Issend) return a *Request to Wait on;
// Sendrecv is the deadlock-free exchange stencils need; Ssend completes only
// once the receiver has matched the message; Probe and Iprobe look at a
// message before receiving it.
//
// # Ordering and matching
//
// A receive matches a message by communicator, source and tag; AnySource and
// AnyTag are wildcards, accepted only when receiving. Messages from one rank
// to another on one communicator are non-overtaking: of the messages that
// match a receive, the earliest sent is taken. Receives posted earlier match
// first. Each communicator has its own matching context, and collective
// algorithms use a second one (Comm.Collective), so their traffic never
// matches user receives.
//
// # Buffering
//
// A send returns once its buffer may be reused. Messages that arrive before
// a matching receive is posted are buffered by the receiver, so a blocking
// Send never waits for the receiver to post (Ssend does, by design).
//
// # Concurrency
//
// Every function and method is safe for concurrent use by any number of
// goroutines (MPI_THREAD_MULTIPLE). Order between messages sent concurrently
// by different goroutines is whatever order the sends happened in.
//
// # Errors and failures
//
// Nothing panics or exits on a caller's mistake: every call returns an error,
// an *Error that names the operation, ranks and tag and wraps a sentinel for
// errors.Is (ErrTruncate, ErrType, ErrRank, ErrTag, ErrPeerLost, ErrAborted,
// ErrFinalized). When a rank dies, operations waiting on it fail with
// ErrPeerLost, and the launcher ends the job; no call hangs forever on a
// dead peer.
//
// # Transports
//
// Each peer is reached through one transport, chosen at Init: the rank
// itself through a loopback copy, ranks on the same host through shared
// memory, ranks on other hosts through TCP, and goroutine ranks of one test
// process through an in-process hub (package mpitest). GORUN_TRANSPORT=tcp
// forces TCP between processes, for comparison; GORUN_DEBUG=routes prints
// the choice for every peer.
//
// # Waiting
//
// A blocked call polls the shared-memory and TCP transports from its own
// goroutine for about 20 µs, then yields the core between polls for up to
// 1 ms, then parks until a transport's reader wakes it: a waiting rank costs
// no CPU after the first millisecond; the millisecond counts from the last
// poll that made progress, so a large message streaming in keeps its
// receiver polling. When a host runs more of the job's ranks than it has
// CPUs, waiters yield from the first empty poll. Every way to wait follows
// this policy: blocking calls, Wait, WaitAll, WaitAny and WaitContext; and
// the calls that only look, Test and Iprobe, poll once before they answer,
// so a loop of them makes progress by itself.
package mpi
