// Command gorun starts N ranks of a program on this machine, MPI style:
//
//	gorun -n 8 ./sim -steps 100
//
// gorun's own flags come before PROGRAM; everything after PROGRAM is passed
// to the program untouched. With --hostfile or --host the ranks run on
// other machines, each running "gorun daemon" (secret made by "gorun
// secret"). See gorun --help, and package launcher for the behaviour and
// the exit statuses.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gorun-hpc/gorun/launcher"
)

// version is gorun's version, set at link time with
// -ldflags "-X main.version=v1.2.3"; empty means the module version from
// the build information.
var version string

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// exitError is an error that decides gorun's exit status.
type exitError struct {
	msg  string
	code int
}

func (e *exitError) Error() string { return e.msg }

// usage returns an error for a command-line mistake (exit status 2).
func usage(format string, args ...any) error {
	return usageOf("gorun", format, args...)
}

// usageOf returns an error for a mistake on the command line of command
// (gorun, gorun daemon, gorun secret), pointing to its help (exit status 2).
func usageOf(command, format string, args ...any) error {
	return &exitError{msg: fmt.Sprintf(format, args...) + " (see " + command + " --help)", code: launcher.ExitUsage}
}

// flagInError finds the flag an error of package flag names. Package flag
// writes every flag with one dash (-bogus for --bogus).
var flagInError = regexp.MustCompile(`^(flag provided but not defined: |flag needs an argument: |invalid value ".*" for flag |invalid boolean value ".*" for )-([^\s:=]+)`)

// onUsageError returns the OnUsageError of command (gorun, gorun daemon,
// gorun secret), run with the command line args: it turns a parse error
// into a usage error that names the flag as the user typed it (--bogus,
// not -bogus) and points to the command's help.
func onUsageError(args []string, command string) cli.OnUsageErrorFunc {
	return func(_ *cli.Context, err error, _ bool) error {
		msg := err.Error()
		m := flagInError.FindStringSubmatchIndex(msg)
		if m == nil {
			return usageOf(command, "%s", msg)
		}
		name := msg[m[4]:m[5]]
		typed := typedFlag(args, name)
		if strings.HasPrefix(msg, "flag provided but not defined: ") {
			if command == "gorun" {
				return usageOf(command, "unknown flag %s; gorun's flags go before PROGRAM", typed)
			}
			return usageOf(command, "unknown flag %s for %s", typed, command)
		}
		return usageOf(command, "%s%s%s", msg[:m[4]-1], typed, msg[m[5]:])
	}
}

// typedFlag returns the flag name as written in args (--name or -name,
// without any =value), or -name if it is not there.
func typedFlag(args []string, name string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		flag, _, _ := strings.Cut(a, "=")
		if dashes := len(flag) - len(strings.TrimLeft(flag, "-")); (dashes == 1 || dashes == 2) && flag[dashes:] == name {
			return flag
		}
	}
	return "-" + name
}

// run runs gorun with the command line args (args[0] is the program name)
// and returns its exit status. Ctrl-C (SIGINT) and SIGTERM stop the job.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// Like signal.NotifyContext, but the cause records which signal came,
	// so that the job exits with 130 or 143.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // exits at the first signal or when run returns; joined below
		defer wg.Done()
		select {
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			cancel(launcher.Interrupt{Signal: sig})
		case <-done:
		}
	}()
	defer wg.Wait()
	defer close(done)

	code := 0
	app := newApp(args, stdin, stdout, stderr, &code)
	err := app.RunContext(ctx, args)
	if err == nil {
		return code
	}
	msg := strings.TrimPrefix(err.Error(), "launcher: ")
	fmt.Fprintf(stderr, "gorun: %s\n", msg)
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, launcher.ErrUsage):
		return launcher.ExitUsage
	case code != 0:
		return code
	}
	return launcher.ExitFailure
}

const usageText = `gorun [flags] PROGRAM [ARGS...]

PROGRAM is an executable (./sim, /usr/bin/hostname), a command on PATH
(hostname) or a Go package directory (., ./examples/hello), which gorun
builds first like "go run". gorun's flags must come before PROGRAM;
everything after PROGRAM goes to the program untouched (use -- to end
gorun's flags explicitly).`

const description = `Starts N copies ("ranks") of PROGRAM on this machine (or on several, see
below) and waits for them.
Each rank finds its rank and the job size in GORUN_RANK and GORUN_SIZE
(package mpi reads them). Rank output is forwarded line by line, never
mixing two ranks within a line; standard input goes to rank 0.

When one rank fails (non-zero status or a signal) or calls Abort, gorun
says which, stops the other ranks (SIGTERM, SIGKILL a second later) and
exits with that rank's status (128+N for signal N). Other statuses: 124
for --timeout, 130 / 143 when gorun gets SIGINT / SIGTERM, 2 for usage
errors, 1 when gorun itself fails (e.g. the package does not compile).

Examples:
   gorun -n 4 hostname                   run hostname four times
   gorun -n 8 ./examples/pi              build the package, run 8 ranks
   gorun -np 4 ./sim -steps 100          -steps 100 goes to ./sim
   gorun -n 4 -l ./sim                   prefix each line with [rank]
   gorun -n 4 --output-dir out ./sim     out/rank.0.stdout, out/rank.0.stderr, ...
   gorun -n 2 -x OMP_NUM_THREADS=4 -x HOME ./sim
   gorun -n 16 --timeout 5m ./sim        give up after five minutes

Several machines: run "gorun daemon" on every host (all with the same
secret file, made once with "gorun secret"), then
   gorun --hostfile hosts -n 64 ./sim    ranks on the hosts listed in hosts
   gorun -H node1:4,node2:4 --stage ./sim   ship ./sim to the daemons
A hostfile lists one host per line: "node1 slots=4" or "node1:4"
(optionally @PORT for a daemon not on 7070). Without --hostfile or
--host the job runs on this machine and needs no daemon.`

// newApp returns the urfave/cli application for the command line args;
// the root action stores the job's exit status in *code.
func newApp(args []string, stdin io.Reader, stdout, stderr io.Writer, code *int) *cli.App {
	return &cli.App{
		Name:                      "gorun",
		Usage:                     "run a program as N parallel ranks (MPI style)",
		UsageText:                 usageText,
		Description:               description,
		Version:                   versionString(),
		HideHelpCommand:           true, // "gorun help" would shadow a program named help
		DisableSliceFlagSeparator: true, // -x A=b,c keeps its comma
		Reader:                    stdin,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		// Errors are printed and mapped to exit statuses by run.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError(args, "gorun"),
		Flags: []cli.Flag{
			&cli.IntFlag{
				Name: "n", Aliases: []string{"np"},
				Value:       runtime.NumCPU(),
				DefaultText: "number of CPUs, " + strconv.Itoa(runtime.NumCPU()) + " here; with --hostfile or --host, the hosts' slots",
				Usage:       "start `N` ranks; more ranks than CPUs is fine",
			},
			&cli.BoolFlag{
				Name: "oversubscribe", DisableDefaultText: true,
				Usage: "with --hostfile/--host, allow more ranks than the hosts' slots (on this machine alone, more ranks than CPUs are always allowed)",
			},
			&cli.StringFlag{
				Name: "hostfile", Aliases: []string{"f", "machinefile"},
				Usage: "run the ranks on the hosts listed in `FILE` (one per line: node1 slots=4, or node1:4), through their gorun daemons",
			},
			&cli.StringFlag{
				Name: "host", Aliases: []string{"H"},
				Usage: "run the ranks on the hosts in `LIST` (node1:4,node2:4; name[:slots][@port]), through their gorun daemons",
			},
			&cli.StringFlag{
				Name: "map-by", Value: "slot",
				Usage: "place ranks by `slot` (fill each host in turn) or by node (round-robin over the hosts)",
			},
			&cli.StringFlag{
				Name: "secret-file", DefaultText: "~/.gorun/secret",
				Usage: "the secret shared with the daemons, in `FILE` (mode 0600; make one with gorun secret)",
			},
			&cli.StringFlag{
				Name:  "net",
				Usage: "in a job on several hosts, connect ranks and launcher over the network `CIDR` (e.g. 10.0.0.0/24)",
			},
			&cli.BoolFlag{
				Name: "stage", DisableDefaultText: true,
				Usage: "ship PROGRAM to the daemons (cached by content) instead of running the same path on every host",
			},
			&cli.BoolFlag{
				Name: "tag-output", Aliases: []string{"l", "prepend-rank"}, DisableDefaultText: true,
				Usage: "prefix each output line with [rank] (off by default, as in mpirun, so single-rank output and pipes stay clean)",
			},
			&cli.StringFlag{
				Name: "output-dir", Aliases: []string{"output-filename"},
				Usage: "write each rank's output to `DIR`/rank.R.stdout and DIR/rank.R.stderr instead of the terminal",
			},
			&cli.StringSliceFlag{
				Name:  "x",
				Usage: "export `NAME=VALUE` to every rank, or NAME with gorun's value (repeatable)",
			},
			&cli.StringFlag{
				Name:  "wdir",
				Usage: "run the ranks in `DIR` (PROGRAM is still found from the current directory)",
			},
			&cli.GenericFlag{
				Name:  "timeout",
				Value: new(timeoutValue),
				Usage: "stop the job after `DURATION` (e.g. 90s, 5m; a bare number is seconds) and exit with status 124",
			},
		},
		Commands: []*cli.Command{daemonCommand(args, stderr), secretCommand(args, stdout)},
		Action: func(c *cli.Context) error {
			if !c.Args().Present() {
				return usage("missing PROGRAM; usage: gorun [flags] PROGRAM [ARGS...]")
			}
			cfg := launcher.Config{
				N:         c.Int("n"),
				Program:   c.Args().First(),
				Args:      c.Args().Tail(),
				Env:       c.StringSlice("x"),
				Wdir:      c.String("wdir"),
				TagOutput: c.Bool("tag-output"),
				OutputDir: c.String("output-dir"),
				Timeout:   time.Duration(*c.Generic("timeout").(*timeoutValue)),
				Stdin:     stdin,
				Stdout:    stdout,
				Stderr:    stderr,
			}
			if err := hostsConfig(c, &cfg); err != nil {
				return err
			}
			var err error
			*code, err = launcher.Run(c.Context, cfg)
			return err
		},
	}
}

// hostsConfig fills in the multi-host part of cfg from --hostfile, --host,
// --map-by, --oversubscribe, --secret-file, --net and --stage.
func hostsConfig(c *cli.Context, cfg *launcher.Config) error {
	switch c.String("map-by") {
	case "slot", "core":
	case "node":
		cfg.MapByNode = true
	default:
		return usage("--map-by %q: want slot or node", c.String("map-by"))
	}
	hostfile, hostList := c.String("hostfile"), c.String("host")
	switch {
	case hostfile != "" && hostList != "":
		return usage("give either --hostfile or --host, not both")
	case hostfile != "":
		f, err := os.Open(hostfile)
		if err != nil {
			return &exitError{code: launcher.ExitUsage, msg: fmt.Sprintf("hostfile: %v", err)}
		}
		defer f.Close()
		if cfg.Hosts, err = launcher.ParseHostfile(f, hostfile); err != nil {
			return err
		}
	case hostList != "":
		var err error
		if cfg.Hosts, err = launcher.ParseHosts(hostList); err != nil {
			return err
		}
	default:
		for _, name := range []string{"net", "stage", "secret-file"} {
			if c.IsSet(name) {
				return usage("--%s needs --hostfile or --host (without them the job runs on this machine)", name)
			}
		}
		return nil
	}
	if !c.IsSet("n") {
		// As mpirun: as many ranks as the hosts have slots.
		cfg.N = 0
		for _, h := range cfg.Hosts {
			cfg.N += h.Slots
		}
	}
	cfg.Oversubscribe = c.Bool("oversubscribe")
	cfg.Net = c.String("net")
	cfg.Stage = c.Bool("stage")
	// A job that cannot be placed (more ranks than slots) is reported as
	// such, before whatever is wrong with the secret file.
	if _, _, err := launcher.Map(cfg.Hosts, cfg.N, cfg.MapByNode, cfg.Oversubscribe); err != nil {
		return err
	}
	secretFile := c.String("secret-file")
	if secretFile == "" {
		secretFile = launcher.DefaultSecretFile()
	}
	var err error
	cfg.Secret, err = launcher.ReadSecret(secretFile)
	return err
}

// daemonCommand is "gorun daemon": the per-host agent of multi-host jobs.
func daemonCommand(args []string, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "daemon",
		OnUsageError: onUsageError(args, "gorun daemon"),
		Usage:        "serve multi-host jobs on this machine (to run a program named daemon, write ./daemon)",
		Description: `Runs until SIGINT or SIGTERM, starting the ranks of jobs on this machine
for gorun launchers that prove the shared secret. The secret file must
exist, belong to this user and be readable by nobody else (mode 0600).`,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name: "listen", Value: fmt.Sprintf(":%d", launcher.DefaultDaemonPort),
				Usage: "listen for launchers at `ADDR` (host:port)",
			},
			&cli.StringFlag{
				Name: "secret-file", DefaultText: "~/.gorun/secret",
				Usage: "the shared secret, in `FILE` (mode 0600; make one with gorun secret)",
			},
			&cli.StringFlag{
				Name: "log-level", Value: "info",
				Usage: "log `LEVEL`: debug, info, warn or error (the log goes to stderr)",
			},
			&cli.StringFlag{
				Name: "cache-dir", DefaultText: "~/.cache/gorun/exe",
				Usage: "keep programs shipped by gorun --stage in `DIR`",
			},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usage("gorun daemon takes no arguments (got %q)", c.Args().First())
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return usage("--log-level %q: want debug, info, warn or error", c.String("log-level"))
			}
			secretFile := c.String("secret-file")
			if secretFile == "" {
				secretFile = launcher.DefaultSecretFile()
			}
			secret, err := launcher.ReadSecret(secretFile)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return &exitError{code: launcher.ExitFailure, msg: fmt.Sprintf("daemon: %v", err)}
			}
			d := &launcher.Daemon{
				Secret:   secret,
				Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
				CacheDir: c.String("cache-dir"),
			}
			return d.Serve(c.Context, ln)
		},
	}
}

// secretCommand is "gorun secret": it makes the shared secret.
func secretCommand(args []string, stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "secret",
		OnUsageError: onUsageError(args, "gorun secret"),
		Usage:        "make a new secret file for the daemons (to run a program named secret, write ./secret)",
		Description: `Writes 32 random bytes, hex encoded, to a new file with mode 0600. Copy
the file to the same place on every host (or give its path with
--secret-file to gorun and gorun daemon). An existing file is never
replaced.`,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name: "out", DefaultText: "~/.gorun/secret",
				Usage: "write the secret to `FILE`",
			},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usage("gorun secret takes no arguments (got %q)", c.Args().First())
			}
			out := c.String("out")
			if out == "" {
				out = launcher.DefaultSecretFile()
			}
			if err := launcher.WriteSecret(out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "gorun: wrote a new secret to %s; copy it to every host (mode 0600)\n", out)
			return nil
		},
	}
}

// timeoutValue is the value of --timeout: a Go duration or, as in
// mpirun, a number of seconds.
type timeoutValue time.Duration

func (v *timeoutValue) Set(s string) error {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs < 0 {
			return fmt.Errorf("negative timeout %s", s)
		}
		*v = timeoutValue(secs * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 90s or 5m, or seconds")
	}
	if d < 0 {
		return fmt.Errorf("negative timeout %s", s)
	}
	*v = timeoutValue(d)
	return nil
}

func (v *timeoutValue) String() string {
	if v == nil || *v == 0 {
		return ""
	}
	return time.Duration(*v).String()
}

// versionString returns version, or the module version recorded in the
// binary, or "(devel)".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
