// Command bench measures gorun's point-to-point and collective performance
// the way the C programs of the baseline study do (pingpong.c, ring.c,
// idle.c, coll.c), and prints the same line formats, so one parser reads both:
//
//	gorun -n 2 ./examples/bench latency [iter_scale]   half round trip (µs)
//	gorun -n 2 ./examples/bench bw [iter_scale]        windowed bandwidth (MB/s)
//	gorun -n 2 ./examples/bench pingpong [iter_scale]  both, as pingpong.c
//	gorun -n 8 ./examples/bench ring [laps] [bytes]    µs per hop of a token ring
//	gorun -n 2 ./examples/bench idle [seconds]         CPU used while blocked in Recv
//	gorun -n 8 ./examples/bench coll [target_s]        allreduce, bcast, barrier, alltoall
//	gorun -n 8 ./examples/bench allreduce [target_s]   one of them (also bcast, barrier, alltoall)
//
// Rank 0 prints the results. Set GORUN_TRANSPORT=tcp to force TCP between
// ranks of one host; BENCH_CPUPROFILE=PREFIX writes a CPU profile of each
// rank to PREFIX.rankN, BENCH_TRACE=PREFIX a Go execution trace;
// BENCH_SIZES=8,4096 limits latency and bw to those sizes. See README.md
// and compare.sh.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

const usage = `usage: gorun -n 2 bench SUBCOMMAND [ARGS]

  latency  [iter_scale]      half round trip of a blocking Send/Recv ping-pong (µs)
  bw       [iter_scale]      bandwidth with a window of 64 Isend/Irecv + ack (MB/s)
  pingpong [iter_scale]      latency and bw in one run, as pingpong.c
  ring     [laps] [bytes]    token ring over all ranks, µs per hop (default 2000 8)
  idle     [seconds]         rank 1 blocks in Recv; wall and CPU seconds (default 3)
  coll     [target_s]        allreduce, bcast, barrier, alltoall, as coll.c (µs per call)
  allreduce|bcast|barrier|alltoall [target_s]   one of the collective tests

iter_scale multiplies the iteration counts (default 1). target_s is the time
per collective test, calibrated (default 0.5). The point-to-point tests need at
least 2 ranks, the collective ones run on any number.
GORUN_TRANSPORT=tcp forces TCP between the ranks of one host.`

// config is a parsed command line.
type config struct {
	cmd    string  // latency, bw, pingpong, ring, idle, coll, allreduce, bcast, barrier, alltoall
	scale  float64 // iteration scale (latency, bw, pingpong)
	laps   int     // ring
	bytes  int     // ring message size
	secs   float64 // idle
	target float64 // seconds per collective test
}

// isColl reports whether cmd is a collective subcommand.
func isColl(cmd string) bool {
	return cmd == "coll" || slices.Contains(collOps, cmd)
}

// errUsage marks a command-line error (exit status 2).
var errUsage = errors.New("usage error")

// parseArgs parses the subcommand and its positional arguments.
func parseArgs(args []string) (config, error) {
	cfg := config{scale: 1, laps: 2000, bytes: 8, secs: 3}
	if len(args) == 0 {
		return cfg, fmt.Errorf("%w: no subcommand", errUsage)
	}
	cfg.cmd, args = args[0], args[1:]
	var maxArgs int
	switch cfg.cmd {
	case "latency", "bw", "pingpong":
		maxArgs = 1
		if len(args) > 0 {
			v, err := strconv.ParseFloat(args[0], 64)
			if err != nil || v <= 0 {
				return cfg, fmt.Errorf("%w: iter_scale %q: want a number > 0", errUsage, args[0])
			}
			cfg.scale = v
		}
	case "ring":
		maxArgs = 2
		for i, p := range []*int{&cfg.laps, &cfg.bytes} {
			if len(args) <= i {
				break
			}
			v, err := strconv.Atoi(args[i])
			if err != nil || v < 0 || (i == 0 && v == 0) {
				return cfg, fmt.Errorf("%w: ring argument %q: want laps > 0 and bytes >= 0", errUsage, args[i])
			}
			*p = v
		}
	case "idle":
		maxArgs = 1
		if len(args) > 0 {
			v, err := strconv.ParseFloat(args[0], 64)
			if err != nil || v < 0 {
				return cfg, fmt.Errorf("%w: seconds %q: want a number >= 0", errUsage, args[0])
			}
			cfg.secs = v
		}
	case "coll", "allreduce", "bcast", "barrier", "alltoall":
		maxArgs = 1
		cfg.target = defaultTarget
		if len(args) > 0 {
			v, err := strconv.ParseFloat(args[0], 64)
			if err != nil || !(v > 0) || math.IsInf(v, 0) {
				return cfg, fmt.Errorf("%w: target_s %q: want seconds per test > 0", errUsage, args[0])
			}
			cfg.target = v
		}
	case "-h", "-help", "--help", "help":
		return cfg, fmt.Errorf("%w: help requested", errUsage)
	default:
		return cfg, fmt.Errorf("%w: unknown subcommand %q", errUsage, cfg.cmd)
	}
	if len(args) > maxArgs {
		return cfg, fmt.Errorf("%w: too many arguments for %s", errUsage, cfg.cmd)
	}
	return cfg, nil
}

// needRanksError means the job has fewer ranks than the benchmark needs.
type needRanksError struct {
	cmd  string
	size int
}

func (e *needRanksError) Error() string {
	return fmt.Sprintf("%s needs at least 2 ranks, this job has %d: run it as\n  gorun -n 2 ./examples/bench %s",
		e.cmd, e.size, e.cmd)
}

// bench runs the benchmark cfg on c; rank 0 writes the results to out.
func bench(c *mpi.Comm, cfg config, out io.Writer) error {
	switch {
	case cfg.cmd == "coll":
		return coll(c, collOps, cfg.target, out)
	case isColl(cfg.cmd):
		return coll(c, []string{cfg.cmd}, cfg.target, out)
	case c.Size() < 2:
		return &needRanksError{cfg.cmd, c.Size()}
	}
	switch cfg.cmd {
	case "latency":
		return pingpong(c, cfg.scale, true, false, out)
	case "bw":
		return pingpong(c, cfg.scale, false, true, out)
	case "pingpong":
		return pingpong(c, cfg.scale, true, true, out)
	case "ring":
		return ring(c, cfg.laps, cfg.bytes, out)
	case "idle":
		return idle(c, cfg.secs, out)
	}
	return fmt.Errorf("%w: unknown subcommand %q", errUsage, cfg.cmd)
}

// library describes this runtime for the "# library:" header line.
func library() string {
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.GoVersion
	}
	transport := os.Getenv(rendezvous.EnvTransport)
	if transport == "" {
		transport = "default"
	}
	return fmt.Sprintf("gorun %s, transport %s", version, transport)
}

func main() {
	cfg, err := parseArgs(os.Args[1:])
	if err != nil {
		// Every rank parses the same arguments; only rank 0 (or a lone
		// process) explains.
		if r := os.Getenv(rendezvous.EnvRank); r == "" || r == "0" {
			fmt.Fprintf(os.Stderr, "bench: %v\n\n%s\n", err, usage)
		}
		os.Exit(2)
	}
	world, err := mpi.Init(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	stop, err := profile(world.Rank())
	if err == nil {
		err = bench(world, cfg, os.Stdout)
		stop()
	}
	if ferr := world.Finalize(); err == nil {
		err = ferr
	}
	var nr *needRanksError
	switch {
	case errors.As(err, &nr):
		if world.Rank() == 0 {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "bench: rank %d: %v\n", world.Rank(), err)
		os.Exit(1)
	}
}

// profile starts a CPU profile of this rank when BENCH_CPUPROFILE is set,
// written to $BENCH_CPUPROFILE.rankN, and a Go execution trace when
// BENCH_TRACE is set, written to $BENCH_TRACE.rankN (go tool trace shows
// where a slow run waited); the returned func stops both.
func profile(rank int) (func(), error) {
	var stops []func()
	stop := func() {
		for _, f := range stops {
			f()
		}
	}
	for _, p := range []struct {
		env, what string
		start     func(io.Writer) error
		end       func()
	}{
		{"BENCH_CPUPROFILE", "cpu profile", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{"BENCH_TRACE", "trace", trace.Start, trace.Stop},
	} {
		prefix := os.Getenv(p.env)
		if prefix == "" {
			continue
		}
		f, err := os.Create(fmt.Sprintf("%s.rank%d", prefix, rank))
		if err == nil {
			if err = p.start(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			stop()
			return nil, fmt.Errorf("%s: %w", p.what, err)
		}
		stops = append(stops, func() { p.end(); f.Close() })
	}
	return stop, nil
}
