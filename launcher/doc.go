// Package launcher starts the ranks of a gorun job and supervises them until
// the job ends: it is the library behind the gorun command.
//
// [Run] resolves PROGRAM ([Resolve]; a Go package directory is compiled
// first with [Build]), starts a rendezvous server for the job, starts
// Config.N copies of the program with the GORUN_* environment of package
// launcher/rendezvous (and glibc's rseq registration turned off through
// GLIBC_TUNABLES, unless that sets glibc.pthread.rseq already: with more
// ranks than cores it costs every context switch a little), forwards their
// output line by line, forwards standard input to rank 0, and tears the
// whole job down as soon as one rank fails, a rank calls Abort, the timeout
// expires or the context is cancelled.
//
// # Endings and exit codes
//
// Run returns the status the gorun command exits with:
//
//	0        every rank exited with status 0
//	1..255   the first rank to fail exited with this status
//	128+s    the first rank to fail was killed by signal s (137 for SIGKILL)
//	code     a rank called Abort(code) (1 if code is 0 or outside 1..255,
//	         so an aborted job never reports success)
//	124      Config.Timeout expired (as coreutils timeout(1))
//	128+s    the context was cancelled with cause [Interrupt]{s}
//	         (130 for SIGINT, 143 for SIGTERM); 130 for any other cancellation
//	2        [ErrUsage]: the configuration or PROGRAM is wrong; nothing ran
//	1        the launcher itself failed (build error, cannot start a rank)
//
// Only the first failure is the cause of the ending: ranks that die because
// the job is being stopped are not reported. The cause is written as one
// line to Config.Stderr, e.g.
//
//	gorun: rank 3 (pid 4242 on host h1) exited with status 2; stopping 7 other ranks
//
// and pushed to the ranks still connected to the rendezvous
// (rendezvous.EventRankFailed or rendezvous.EventAbort). The other ranks
// then get SIGTERM and, one second later, SIGKILL, so a job ends within
// about a second even when ranks are stuck or ignore SIGTERM. Signals go to
// each rank's process group, so the children of a rank (a shell script's
// commands) are stopped too.
//
// # Processes
//
// Every rank runs in its own process group, so the terminal's Ctrl-C reaches
// only gorun, which then stops the job in order. On Linux each rank also has
// a parent-death signal (SIGKILL): if gorun is killed outright its ranks die
// with it. The kernel delivers that signal when the thread that forked the
// rank exits, so Run forks all ranks from one goroutine locked to its OS
// thread and keeps it locked until every rank has been reaped. Children that
// a rank moves into a new session or process group escape both mechanisms.
//
// # Output
//
// Each rank's stdout and stderr are forwarded to Config.Stdout and
// Config.Stderr (or to per-rank files under Config.OutputDir) in whole
// lines: the text of two ranks never mixes within a line. Lines longer than
// 64 KiB are cut into 64 KiB pieces, each ended with a newline, and a final
// line without a newline gets one. A line appears once it is complete, so a
// prompt without a newline shows only when the line is finished or the rank
// exits.
//
// # Several machines
//
// With Config.Hosts the ranks run on other machines, each started by the
// gorun daemon of its host ([Daemon], "gorun daemon"); no SSH is involved.
// The launcher connects to every daemon over TCP and both sides prove the
// shared secret ([ReadSecret]) with the challenge-response of package
// runtime/auth (label [DaemonAuthLabel]); a daemon reads nothing else from
// a peer before, and limits how many connections, from one address and in
// all, may be in the handshake at once (see [Daemon.Serve]). [Map] places
// the ranks; each rank's GORUN_HOST is its
// host's name as listed, so ranks with the same name share memory.
//
// After the handshake both directions carry frames: a little-endian
// uint32 length (at most 4 MiB) and a msgpack array whose first element is
// the op. The launcher sends one spawn request per host (job id, program
// path or the SHA-256 of a staged executable, working directory, argv, the
// -x variables, and per rank its number and GORUN_* variables), signals
// for single ranks, the end of the job, and, with Config.Stage, the
// executable in 1 MiB chunks unless the daemon has it cached. The daemon
// reports each rank's start (pid), its output in chunks, which the
// launcher cuts into lines as for local ranks, and its exit status. Both
// sides send a ping every second and give the other up after 3 seconds of
// silence: the launcher then reports
//
//	gorun: lost the daemon on host h2 (no word from it for 3s); stopping 8 ranks
//
// and tells the ranks on the other hosts, whose blocked calls fail with an
// error naming the host; they have a quarter of a second to report it
// before they are stopped as for a failed rank. The daemon, for its part,
// kills the job's ranks (SIGTERM, SIGKILL a second later).
// A daemon also kills its ranks when the job ends, and removes the job's
// shared memory. Ranks on another host start from the daemon's
// environment plus the -x variables (and GORUN_DEBUG and GORUN_TRANSPORT
// if set), in Config.Wdir or else the launcher's current directory, which
// must exist there; standard input is not forwarded to them.
//
// The rendezvous server then listens on the launcher's address in
// Config.Net, or on its address towards the first daemon, and the ranks
// learn it from GORUN_RENDEZVOUS. The secret authenticates launchers and
// daemons; it does not encrypt: run multi-host jobs on a trusted network.
//
// The package works on Unix systems; the parent-death signal is Linux only.
package launcher
