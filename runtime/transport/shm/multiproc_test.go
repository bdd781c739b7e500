//go:build linux

package shm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/transport"
)

// The multi-process tests re-execute the test binary: TestChild is the body
// of a child rank, driven line by line over stdin/stdout by the parent, which
// plays the rendezvous fences (create → attach → unlink).

const childEnv = "GORUN_SHM_TEST_CHILD"

// mix is splitmix64.
func mix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

// msgSpec returns the size and tag of message m from src to dst: mostly
// small, some around the eager limit, some up to 8 MiB.
func msgSpec(src, dst, m int) (size int, tag int32) {
	r := mix(uint64(src)<<40 ^ uint64(dst)<<20 ^ uint64(m))
	tag = int32(r >> 33)
	switch r % 10 {
	case 0, 1, 2, 3:
		size = int(r>>8) % 2048
	case 4:
		size = eagerLimit - 1 + int(r>>8)%3
	case 5, 6, 7:
		size = int(r>>8) % (512 << 10)
	case 8:
		size = int(r>>8) % (8 << 20)
	default:
		size = 0
	}
	return size, tag
}

// fillMsg writes message m's payload into b; checkMsg returns the first
// differing offset, or -1.
func fillMsg(b []byte, src, dst, m int) {
	seed := uint64(src)<<48 ^ uint64(dst)<<32 ^ uint64(m)<<8
	var w [8]byte
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(w[:], mix(seed+uint64(i)))
		copy(b[i:], w[:])
	}
}

func checkMsg(b []byte, src, dst, m int) int {
	want := make([]byte, len(b))
	fillMsg(want, src, dst, m)
	if bytes.Equal(b, want) {
		return -1
	}
	for i := range b {
		if b[i] != want[i] {
			return i
		}
	}
	return -1
}

// childSink verifies the messages of an exchange as they arrive.
type childSink struct {
	rank, count int
	out         func(format string, args ...any)
	block       chan struct{} // Buffer blocks on it for tag 666 (never closed)

	mu   sync.Mutex
	next map[int32]int
	errs []string
	done chan struct{} // closed once every peer's count messages arrived
	need int           // peers still sending
}

func (s *childSink) Buffer(h transport.Header) []byte {
	if h.Tag == 666 && s.block != nil {
		s.out("stuck")
		<-s.block
	}
	return make([]byte, h.Len)
}

func (s *childSink) Deliver(h transport.Header, buf []byte) {
	if h.Kind != transport.KindData || h.Tag == 666 || h.Tag == 7 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.next[h.Src]
	s.next[h.Src]++
	size, tag := msgSpec(int(h.Src), s.rank, m)
	if int(h.Len) != size || h.Tag != tag || len(buf) != size {
		s.errs = append(s.errs, fmt.Sprintf("from %d message %d: len %d tag %d, want %d %d", h.Src, m, h.Len, h.Tag, size, tag))
	} else if i := checkMsg(buf, int(h.Src), s.rank, m); i >= 0 {
		s.errs = append(s.errs, fmt.Sprintf("from %d message %d (%d bytes): differs at byte %d", h.Src, m, size, i))
	}
	if s.next[h.Src] == s.count {
		s.need--
		if s.need == 0 {
			close(s.done)
		}
	}
}

func (s *childSink) PeerLost(rank int, err error) {
	s.out("lost %d %v %v", rank, errors.Is(err, transport.ErrPeerLost), err)
}

// TestChild is a child rank; it does nothing unless run by a parent test.
func TestChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("helper process of the multi-process tests")
	}
	env := func(k string) int {
		v, err := strconv.Atoi(os.Getenv(k))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return v
	}
	rank, n, count := env("SHM_RANK"), env("SHM_N"), env("SHM_COUNT")
	mode := os.Getenv("SHM_MODE")
	if os.Getenv("SHM_NOCMA") != "" {
		processVMReadv = refuseCMA
		processVMWritev = refuseCMA
	}
	var outMu sync.Mutex
	out := func(format string, args ...any) {
		outMu.Lock()
		fmt.Printf("@"+format+"\n", args...)
		outMu.Unlock()
	}
	in := bufio.NewScanner(os.Stdin)
	expect := func(word string) {
		switch {
		case !in.Scan() && in.Err() == nil:
			// Not the failure to look at: the parent closes our stdin
			// when its test has already failed or given up.
			t.Fatalf("rank %d: the parent closed stdin while this rank waited for %q (see the parent's first error)", rank, word)
		case in.Err() != nil:
			t.Fatalf("rank %d: reading %q from the parent: %v", rank, word, in.Err())
		case in.Text() != word:
			t.Fatalf("rank %d: expected %q from the parent, got %q", rank, word, in.Text())
		}
	}
	local := make([]int, n)
	for i := range local {
		local[i] = i
	}
	sink := &childSink{rank: rank, count: count, out: out, next: map[int32]int{}, done: make(chan struct{}), need: n - 1}
	if mode == "victim" {
		sink.block = make(chan struct{})
	}
	ep, err := Create(Config{Job: os.Getenv("SHM_JOB"), Rank: rank, Local: local, Sink: sink, Dir: os.Getenv("SHM_DIR")})
	if err != nil {
		t.Fatal(err)
	}
	out("created")
	expect("attach")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ep.Attach(ctx); err != nil {
		t.Fatal(err)
	}
	out("attached")
	expect("unlink")
	if err := ep.Unlink(); err != nil {
		t.Fatal(err)
	}
	out("unlinked")

	switch mode {
	case "exchange":
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for dst := range n {
			if dst == rank {
				continue
			}
			wg.Add(1)
			go func() { // exits after count messages to dst; joined by wg
				defer wg.Done()
				for m := range count {
					size, tag := msgSpec(rank, dst, m)
					p := make([]byte, size)
					fillMsg(p, rank, dst, m)
					h := transport.Header{Kind: transport.KindData, Src: int32(rank), Dst: int32(dst), Tag: tag, Len: uint32(size)}
					if err := ep.Send(h, p); err != nil {
						errs <- fmt.Errorf("send %d to %d: %w", m, dst, err)
						return
					}
					clear(p) // Send returned: the payload is ours again
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		<-sink.done
		sink.mu.Lock()
		for _, e := range sink.errs {
			t.Error(e)
		}
		sink.mu.Unlock()
		out("exchanged nocma=%v", ep.noCMA.Load())
	case "victim":
		// Its reader blocks in Buffer of the tag-666 frame until killed.
	case "survivor":
		// Wait until the parent has seen every rank's "unlinked": the
		// victim prints "stuck" as soon as our first frame reaches it,
		// which must not overtake its "unlinked".
		expect("go")
		h := transport.Header{Kind: transport.KindData, Src: int32(rank), Dst: 1, Tag: 666, Len: 100}
		if err := ep.Send(h, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 4096)
		h.Tag, h.Len = 7, 4096
		sent := 0
		for {
			err := ep.Send(h, p)
			if err != nil {
				out("senderr %v %v", errors.Is(err, transport.ErrPeerLost), err)
				break
			}
			if sent += len(p); sent == int(ringSize(n)/2) {
				out("filled")
			}
		}
		// Later Sends, small or large, fail at once.
		big := make([]byte, 1<<20)
		h.Len = uint32(len(big))
		err := ep.Send(h, big)
		out("bigerr %v %v", errors.Is(err, transport.ErrPeerLost), err)
	}
	expect("close")
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	out("closed")
}

// child is a running child rank.
type child struct {
	rank  int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // "@"-lines of its stdout; closed at EOF
	rest  *bytes.Buffer
	done  chan struct{} // closed when the stdout reader is done
	said  []string      // the "@"-lines the parent has consumed, in order
}

func startChildren(t *testing.T, n int, env func(rank int) []string) []*child {
	t.Helper()
	cs := make([]*child, n)
	for r := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"=1", fmt.Sprintf("SHM_RANK=%d", r), fmt.Sprintf("SHM_N=%d", n))
		cmd.Env = append(cmd.Env, env(r)...)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &child{rank: r, cmd: cmd, stdin: stdin, lines: make(chan string, 100), rest: &bytes.Buffer{}, done: make(chan struct{})}
		cs[r] = c
		go func() { // exits at EOF of the child's stdout; joined in Cleanup via done
			defer close(c.done)
			defer close(c.lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if l, ok := strings.CutPrefix(sc.Text(), "@"); ok {
					c.lines <- l
				} else {
					c.rest.WriteString(sc.Text() + "\n")
				}
			}
		}()
		t.Cleanup(func() {
			// A child still waiting for a command fails when its stdin
			// closes: a consequence, if the parent has failed already.
			why := ""
			if t.Failed() {
				why = " (after the parent's failure above, which closed its stdin)"
			}
			stdin.Close()
			timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
			<-c.done
			err := cmd.Wait()
			timer.Stop()
			if err != nil && !c.killed() {
				t.Errorf("rank %d: %v%s\nstdout:\n%s\nstderr:\n%s", r, err, why, c.rest, &stderr)
			}
		})
	}
	return cs
}

func (c *child) killed() bool {
	return c.cmd.ProcessState != nil && c.cmd.ProcessState.String() == "signal: killed"
}

func (c *child) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		t.Fatalf("rank %d: %v", c.rank, err)
	}
}

// expect waits for the child's next line, which must start with prefix. d
// is a hang guard, not a performance bound: make it generous.
func (c *child) expect(t *testing.T, prefix string, d time.Duration) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	start := time.Now()
	select {
	case l, ok := <-c.lines:
		if !ok {
			<-c.done
			t.Fatalf("rank %d exited while the parent expected %q (after %q); its other output:\n%s",
				c.rank, prefix, c.said, c.rest)
		}
		c.said = append(c.said, l)
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("rank %d said %q where the parent expected %q (its lines so far: %q)", c.rank, l, prefix, c.said)
		}
		return l
	case <-timer.C:
		t.Fatalf("rank %d: no %q after waiting %v (hang guard; its lines so far: %q)",
			c.rank, prefix, time.Since(start).Round(time.Millisecond), c.said)
	}
	return ""
}

// fences runs the create → attach → unlink sequence across children.
func fences(t *testing.T, cs []*child) {
	t.Helper()
	for _, step := range [][2]string{{"", "created"}, {"attach", "attached"}, {"unlink", "unlinked"}} {
		if step[0] != "" {
			for _, c := range cs {
				c.send(t, step[0])
			}
		}
		for _, c := range cs {
			c.expect(t, step[1], time.Minute)
		}
	}
}

func TestMultiProcessExchange(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process exchange in -short mode")
	}
	for _, tc := range []struct {
		name  string
		n     int
		nocma bool
	}{{"cma-4ranks", 4, false}, {"fallback-3ranks", 3, true}, {"cma-2ranks", 2, false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			job := newJob()
			cs := startChildren(t, tc.n, func(int) []string {
				env := []string{"SHM_MODE=exchange", "SHM_COUNT=24", "SHM_JOB=" + job, "SHM_DIR=" + dir}
				if tc.nocma {
					env = append(env, "SHM_NOCMA=1")
				}
				return env
			})
			fences(t, cs)
			assertEmpty(t, dir)
			for _, c := range cs {
				l := c.expect(t, "exchanged", 5*time.Minute)
				if want := fmt.Sprintf("nocma=%v", tc.nocma); !strings.HasSuffix(l, want) {
					t.Errorf("rank %d: %q, want %s", c.rank, l, want)
				}
			}
			for _, c := range cs {
				c.send(t, "close")
			}
			for _, c := range cs {
				c.expect(t, "closed", time.Minute)
			}
			assertEmpty(t, dir)
		})
	}
}

func TestMultiProcessKill(t *testing.T) {
	dir := t.TempDir()
	job := newJob()
	cs := startChildren(t, 2, func(r int) []string {
		mode := "survivor"
		if r == 1 {
			mode = "victim"
		}
		return []string{"SHM_MODE=" + mode, "SHM_COUNT=0", "SHM_JOB=" + job, "SHM_DIR=" + dir}
	})
	fences(t, cs)
	cs[0].send(t, "go") // every rank has said "unlinked": start sending
	cs[1].expect(t, "stuck", time.Minute)
	cs[0].expect(t, "filled", time.Minute)
	// The survivor now fills the victim's ring and blocks in Send.
	start := time.Now()
	if err := cs[1].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// The reports come in any order: the blocked Send and, after it, the
	// large one fail in the survivor's main goroutine, while its reader
	// reports the loss (PeerLost) on its own time.
	got := map[string]string{}
	for range 3 {
		l := cs[0].expect(t, "", time.Minute)
		got[strings.Fields(l)[0]] = l
	}
	elapsed := time.Since(start)
	t.Logf("survivor noticed the kill after %v: %q", elapsed, got)
	if l := got["senderr"]; !strings.HasPrefix(l, "senderr true") {
		t.Errorf("blocked Send to the killed rank: %q, want an ErrPeerLost", l)
	}
	if l := got["lost"]; !strings.HasPrefix(l, "lost 1 true") {
		t.Errorf("PeerLost: %q, want rank 1 with ErrPeerLost", l)
	}
	if l := got["bigerr"]; !strings.HasPrefix(l, "bigerr true") {
		t.Errorf("large Send to the killed rank: %q, want an ErrPeerLost", l)
	}
	cs[0].send(t, "close")
	cs[0].expect(t, "closed", time.Minute)
	assertEmpty(t, dir)
}
