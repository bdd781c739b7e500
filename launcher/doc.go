// Package launcher starts the ranks of a gorun job and supervises them until
// the job ends: it is the library behind the gorun command.
//
// [Run] resolves PROGRAM ([Resolve]; a Go package directory is compiled
// first with [Build]), starts a rendezvous server for the job, starts
// Config.N copies of the program with the GORUN_* environment of package
// launcher/rendezvous, forwards their output line by line, forwards standard
// input to rank 0, and tears the whole job down as soon as one rank fails,
// a rank calls Abort, the timeout expires or the context is cancelled.
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
// The package works on Unix systems; the parent-death signal is Linux only.
package launcher
