// Command rankprog is the test helper of package launcher: a stand-in for
// a gorun program that reads its identity from GORUN_RANK and GORUN_SIZE
// and does what its arguments say, in order:
//
//	lines N          print N numbered lines to stdout, each in two writes
//	errlines N       the same on stderr
//	args             print its arguments, one per line
//	env NAME...      print "env R NAME=VALUE" (or "unset") for each NAME
//	cwd              print the working directory
//	echo             copy stdin to stdout, each line as "stdin R: LINE"
//	longline N       write N 'x' bytes and no newline
//	barrier DIR      write DIR/pid.R, then wait until DIR holds a pid file
//	                 for every rank (so all ranks run before anything fails)
//	ignoreterm       ignore SIGTERM from now on
//	exit R C         rank R exits with status C
//	killself R       rank R kills itself with SIGKILL
//	connect          connect to the rendezvous server; print every event
//	                 as "event R kind=K rank=X code=C text=T", then exit 0
//	abort R C MSG    rank R asks the launcher to abort the job (after
//	                 connect)
//	block            wait forever
//
// Anything else is an error (status 100).
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
)

func main() {
	rank, _ := strconv.Atoi(os.Getenv("GORUN_RANK"))
	size, _ := strconv.Atoi(os.Getenv("GORUN_SIZE"))
	args := os.Args[1:]
	next := func() string {
		if len(args) == 0 {
			fail("missing operand")
		}
		a := args[0]
		args = args[1:]
		return a
	}
	num := func() int {
		v, err := strconv.Atoi(next())
		if err != nil {
			fail(err.Error())
		}
		return v
	}
	var client *rendezvous.Client
	for len(args) > 0 {
		switch op := next(); op {
		case "lines", "errlines":
			f := os.Stdout
			if op == "errlines" {
				f = os.Stderr
			}
			for i := range num() {
				line := fmt.Sprintf("rank %d line %d %s", rank, i, strings.Repeat(strconv.Itoa(rank), 40+i%50))
				half := len(line) / 2
				f.WriteString(line[:half])
				f.WriteString(line[half:] + "\n")
			}
		case "args":
			for _, a := range os.Args[1:] {
				fmt.Printf("arg %d %s\n", rank, a)
			}
			return
		case "env":
			for len(args) > 0 && !isOp(args[0]) {
				name := next()
				if v, ok := os.LookupEnv(name); ok {
					fmt.Printf("env %d %s=%s\n", rank, name, v)
				} else {
					fmt.Printf("env %d %s unset\n", rank, name)
				}
			}
		case "cwd":
			wd, _ := os.Getwd()
			fmt.Printf("cwd %d %s\n", rank, wd)
		case "echo":
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				fmt.Printf("stdin %d: %s\n", rank, sc.Text())
			}
		case "longline":
			os.Stdout.WriteString(strings.Repeat("x", num()))
		case "barrier":
			dir := next()
			tmp := filepath.Join(dir, fmt.Sprintf(".tmp.%d", rank))
			if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
				fail(err.Error())
			}
			if err := os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("pid.%d", rank))); err != nil {
				fail(err.Error())
			}
			for {
				m, _ := filepath.Glob(filepath.Join(dir, "pid.*"))
				if len(m) >= size {
					break
				}
				time.Sleep(2 * time.Millisecond) // polling the file system, the barrier's only channel
			}
		case "ignoreterm":
			signal.Ignore(syscall.SIGTERM)
		case "exit":
			r, c := num(), num()
			if r == rank {
				os.Exit(c)
			}
		case "killself":
			if num() == rank {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		case "connect":
			token, err := hex.DecodeString(os.Getenv(rendezvous.EnvToken))
			if err != nil {
				fail(err.Error())
			}
			client, err = rendezvous.Dial(context.Background(), rendezvous.ClientConfig{
				Addr: os.Getenv(rendezvous.EnvAddr), Token: token, Rank: rank,
				OnEvent: func(ev rendezvous.Event) {
					fmt.Printf("event %d kind=%v rank=%d code=%d text=%s\n", rank, ev.Kind, ev.Rank, ev.Code, ev.Text)
					os.Exit(0)
				},
			})
			if err != nil {
				fail(err.Error())
			}
		case "abort":
			r, c, msg := num(), num(), next()
			if r == rank {
				if client == nil {
					fail("abort before connect")
				}
				if err := client.Abort(context.Background(), c, msg); err != nil {
					fail(err.Error())
				}
			}
		case "block":
			for {
				time.Sleep(time.Hour)
			}
		default:
			fail("unknown operation " + strconv.Quote(op))
		}
	}
}

func isOp(s string) bool {
	switch s {
	case "lines", "errlines", "args", "env", "cwd", "echo", "longline", "barrier",
		"ignoreterm", "exit", "killself", "connect", "abort", "block":
		return true
	}
	return false
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "rankprog:", msg)
	os.Exit(100)
}
