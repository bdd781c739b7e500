package launcher

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/launcher/launchertest"
	"github.com/gorun-hpc/gorun/runtime/auth"
)

func sampleDMsgs() []dmsg {
	sha := bytes.Repeat([]byte{7}, shaLen)
	return []dmsg{
		{op: dopSpawn, job: "0badc0de", path: "/bin/true", dir: "/tmp", argv: []string{"true", "-x"},
			env: []string{"A=1", "B="}, sha: sha,
			ranks: []rankReq{{rank: 0, env: []string{"GORUN_RANK=0"}}, {rank: 5}}},
		{op: dopSpawn, job: "ab", path: "sim"},
		{op: dopSignal, rank: 3, signal: 15},
		{op: dopEnd},
		{op: dopPing},
		{op: dopExeQuery, sha: sha},
		{op: dopExeChunk, data: bytes.Repeat([]byte{1}, maxExeChunk)},
		{op: dopExeDone, sha: sha},
		{op: dopHello, text: "node01"},
		{op: dopStarted, rank: 7, pid: 4242},
		{op: dopOutput, rank: 1, stream: streamStderr, data: []byte("panic: oops\n")},
		{op: dopExit, rank: 2, code: 3},
		{op: dopExit, rank: 2, signal: 9},
		{op: dopError, kind: errKindUsage, text: "program /x does not exist"},
		{op: dopExeStatus, have: true},
		{op: dopEnded},
	}
}

func TestDaemonFrameRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	for _, m := range sampleDMsgs() {
		b, err := encodeDFrame(&m)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		stream.Write(b)
	}
	for _, want := range sampleDMsgs() {
		got, err := readDFrame(&stream)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	}
	if _, err := readDFrame(&stream); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestDaemonFrameLimits(t *testing.T) {
	bad := []dmsg{
		{op: dopSpawn, job: "../../etc"},
		{op: dopSpawn, job: strings.Repeat("a", maxJobIDLen+1)},
		{op: dopSpawn, job: "ab", argv: make([]string, maxArgs+1)},
		{op: dopOutput, data: make([]byte, maxOutputChunk+1)},
		{op: dopExeChunk, data: make([]byte, maxExeChunk+1)},
		{op: dopExeQuery, sha: []byte{1}},
		{op: 99},
	}
	for _, m := range bad {
		if _, err := encodeDFrame(&m); err == nil {
			t.Errorf("encodeDFrame(op %d) accepted a message over the limits", m.op)
		}
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], maxDaemonFrame+1)
	if _, err := readDFrame(bytes.NewReader(hdr[:])); !errors.Is(err, errDaemonFrame) {
		t.Errorf("oversized length: %v", err)
	}
}

// FuzzDaemonFrame feeds arbitrary bytes to the frame reader: it must
// return an error or a message that encodes back to an equal message,
// never panic or allocate beyond the frame.
func FuzzDaemonFrame(f *testing.F) {
	for _, m := range sampleDMsgs() {
		if m.op == dopExeChunk {
			m.data = m.data[:10]
		}
		b, err := encodeDFrame(&m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0x90})
	f.Add([]byte{3, 0, 0, 0, 0x92, 0x02, 0xdd})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readDFrame(bytes.NewReader(b))
		if err != nil {
			return
		}
		enc, err := encodeDFrame(&m)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", m, err)
		}
		m2, err := readDFrame(bytes.NewReader(enc))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %+v: %+v, %v", m, m2, err)
		}
	})
}

// testDaemon serves a Daemon on 127.0.0.1 until the test ends.
func testDaemon(t *testing.T, secret []byte) (addr string, logs *syncBuffer) {
	t.Helper()
	return serveTestDaemon(t, &Daemon{Secret: secret})
}

// serveTestDaemon serves d on 127.0.0.1 until the test ends, with a
// temporary cache directory and a debug log.
func serveTestDaemon(t *testing.T, d *Daemon) (addr string, logs *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs = &syncBuffer{}
	d.CacheDir = t.TempDir()
	d.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }() // exits when cancelled below
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return ln.Addr().String(), logs
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rawClient is a launcher made by hand: it authenticates and then speaks
// frames directly.
type rawClient struct {
	t *testing.T
	c net.Conn
}

func dialRaw(t *testing.T, addr string, secret []byte) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := auth.Client(c, secret, DaemonAuthLabel); err != nil {
		t.Fatalf("auth: %v", err)
	}
	rc := &rawClient{t: t, c: c}
	if m := rc.read(); m.op != dopHello {
		t.Fatalf("first frame op %d, want hello", m.op)
	}
	return rc
}

func (rc *rawClient) send(m dmsg) {
	rc.t.Helper()
	b, err := encodeDFrame(&m)
	if err != nil {
		rc.t.Fatal(err)
	}
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatal(err)
	}
}

// read returns the next frame other than a ping.
func (rc *rawClient) read() dmsg {
	rc.t.Helper()
	for {
		_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := readDFrame(rc.c)
		if err != nil {
			rc.t.Fatalf("read: %v", err)
		}
		if m.op != dopPing {
			return m
		}
	}
}

func testSecret(t *testing.T) []byte {
	k, err := auth.NewKey(32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// spawnSleepers starts n ranks of "sh -c 'echo up; exec sleep 1000'" and
// returns their pids.
func (rc *rawClient) spawnSleepers(job string, n int) []int {
	rc.t.Helper()
	req := dmsg{op: dopSpawn, job: job, path: "/bin/sh", dir: "/", argv: []string{"sh", "-c", "echo up; exec sleep 1000"}}
	for r := range n {
		req.ranks = append(req.ranks, rankReq{rank: r, env: []string{"GORUN_RANK=" + string(rune('0'+r))}})
	}
	rc.send(req)
	pids := make([]int, n)
	for got, outs := 0, 0; got < n || outs < n; {
		m := rc.read()
		switch m.op {
		case dopStarted:
			pids[m.rank] = m.pid
			got++
		case dopOutput:
			if string(m.data) != "up\n" || m.stream != streamStdout {
				rc.t.Fatalf("output %q on stream %d", m.data, m.stream)
			}
			outs++
		default:
			rc.t.Fatalf("unexpected frame %+v", m)
		}
	}
	return pids
}

func TestDaemonKillsRanksWhenLauncherDisconnects(t *testing.T) {
	secret := testSecret(t)
	addr, _ := testDaemon(t, secret)
	for _, how := range []string{"close", "silent"} {
		t.Run(how, func(t *testing.T) {
			rc := dialRaw(t, addr, secret)
			job := map[string]string{"close": "c1", "silent": "c2"}[how]
			shm := "/dev/shm/gorun-" + job + "-test"
			if err := os.WriteFile(shm, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(shm)
			pids := rc.spawnSleepers(job, 3)
			start := time.Now()
			if how == "close" {
				rc.c.Close()
			} // else: stop sending pings and never read again
			launchertest.WaitGone(t, pids...)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("ranks outlived the launcher by %v; want < 5s", d)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				if _, err := os.Stat(shm); errors.Is(err, os.ErrNotExist) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s still exists", shm)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestDaemonEndAndSignal(t *testing.T) {
	secret := testSecret(t)
	addr, _ := testDaemon(t, secret)
	rc := dialRaw(t, addr, secret)
	pids := rc.spawnSleepers("e1", 2)
	rc.send(dmsg{op: dopSignal, rank: 1, signal: 9})
	if m := rc.read(); m.op != dopExit || m.rank != 1 || m.signal != 9 {
		t.Fatalf("after SIGKILL to rank 1: %+v, want its exit by signal 9", m)
	}
	rc.send(dmsg{op: dopEnd})
	if m := rc.read(); m.op != dopExit || m.rank != 0 || m.signal != 15 {
		t.Fatalf("after end: %+v, want rank 0's exit by SIGTERM", m)
	}
	if m := rc.read(); m.op != dopEnded {
		t.Fatalf("after end: %+v, want ended", m)
	}
	launchertest.WaitGone(t, pids...)
}

func TestDaemonRefusesBadRequests(t *testing.T) {
	secret := testSecret(t)
	addr, _ := testDaemon(t, secret)
	for _, tt := range []struct {
		name string
		req  dmsg
		kind int
		want string
	}{
		{"missing-program", dmsg{op: dopSpawn, job: "b1", path: "/no/such/prog", ranks: []rankReq{{rank: 0}}},
			errKindUsage, "program /no/such/prog does not exist"},
		{"missing-dir", dmsg{op: dopSpawn, job: "b2", path: "/bin/sh", dir: "/no/such/dir", ranks: []rankReq{{rank: 0}}},
			errKindUsage, "working directory /no/such/dir does not exist"},
		{"not-on-path", dmsg{op: dopSpawn, job: "b3", path: "no-such-command-gorun", ranks: []rankReq{{rank: 0}}},
			errKindUsage, `program "no-such-command-gorun" not found on PATH`},
		{"staged-missing", dmsg{op: dopSpawn, job: "b4", sha: bytes.Repeat([]byte{1}, shaLen), ranks: []rankReq{{rank: 0}}},
			errKindUsage, "is not in the cache"},
		{"dup-rank", dmsg{op: dopSpawn, job: "b5", path: "/bin/sh", ranks: []rankReq{{rank: 0}, {rank: 0}}},
			errKindProto, "rank 0 requested twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr, secret)
			rc.send(tt.req)
			m := rc.read()
			if m.op != dopError || m.kind != tt.kind || !strings.Contains(m.text, tt.want) {
				t.Fatalf("got %+v; want error kind %d containing %q", m, tt.kind, tt.want)
			}
			dc := &daemonConn{host: "h9"}
			if err := dc.hostError(m); !strings.Contains(err.Error(), "host h9: ") ||
				errors.Is(err, ErrUsage) != (tt.kind == errKindUsage) {
				t.Errorf("hostError: %v", err)
			}
		})
	}
}

func TestDaemonStaging(t *testing.T) {
	secret := testSecret(t)
	d := &Daemon{Secret: secret}
	addr, logs := serveTestDaemon(t, d)
	exe := []byte("#!/bin/sh\necho staged \"$@\"\n")
	dir := t.TempDir()
	path := filepath.Join(dir, "prog")
	if err := os.WriteFile(path, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, sum, err := readExe(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	c, err := dialDaemon(t.Context(), "h1", addr, secret, slog.New(slog.DiscardHandler), &wg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.stage(t.Context(), exe, sum); err != nil {
		t.Fatalf("stage: %v", err)
	}
	cached := filepath.Join(d.CacheDir, hex.EncodeToString(sum))
	before, err := os.Stat(cached)
	if err != nil {
		t.Fatalf("the staged program is not in the cache: %v", err)
	}
	if err := c.stage(t.Context(), exe, sum); err != nil { // cached now
		t.Fatalf("stage again: %v", err)
	}
	// The second call found the program in the cache and sent nothing: an
	// upload would have renamed a new file into place and been logged.
	after, err := os.Stat(cached)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Errorf("the second stage replaced the cached program: it uploaded it again")
	}
	if n := strings.Count(logs.String(), "daemon: staged a program"); n != 1 {
		t.Errorf("the daemon received the program %d times, want once", n)
	}
	if !strings.Contains(logs.String(), "daemon: staged program found in the cache") {
		t.Errorf("the daemon did not log the cache hit")
	}
	rr, err := c.addRank(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.send(&dmsg{op: dopSpawn, job: "5a", sha: sum, argv: []string{"prog", "a b"}, dir: dir,
		ranks: []rankReq{{rank: 0}}}); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(rr.outR)
	if err != nil {
		t.Fatal(err)
	}
	if st := <-rr.exit; st.failed() || string(out) != "staged a b\n" {
		t.Errorf("staged program: %+v, output %q", st, out)
	}
	c.close()
	wg.Wait()
	closeAll(rr.outR, rr.errR)
}

func TestDaemonSurvivesGarbageAndWrongSecrets(t *testing.T) {
	secret := testSecret(t)
	addr, logs := testDaemon(t, secret)
	// A silent connection, held open for the whole test.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Garbage instead of the handshake, and garbage after a good one.
	for _, junk := range [][]byte{bytes.Repeat([]byte{0xff}, 200), []byte("GET / HTTP/1.0\r\n\r\n")} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(junk)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c) // the daemon closes it
		c.Close()
	}
	rc := dialRaw(t, addr, secret)
	_, _ = rc.c.Write([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	if m := rc.read(); m.op != dopError || m.kind != errKindProto {
		t.Errorf("after a garbage frame: %+v, want a protocol error", m)
	}
	// A wrong secret.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := auth.Client(c, testSecret(t), DaemonAuthLabel); !errors.Is(err, auth.ErrRejected) {
		t.Errorf("wrong secret: %v, want ErrRejected", err)
	}
	c.Close()
	// The daemon still serves a job.
	rc = dialRaw(t, addr, secret)
	pids := rc.spawnSleepers("9a", 1)
	rc.c.Close()
	launchertest.WaitGone(t, pids...)
	if !strings.Contains(logs.String(), "wrong secret") {
		t.Errorf("the daemon did not log the wrong secret:\n%s", logs.String())
	}
}

// TestDaemonHandshakeFlood: one address holding many idle connections
// before auth gets at most maxPeerHandshakes of them served and the rest
// closed at once, so a launcher from another address still gets a job.
func TestDaemonHandshakeFlood(t *testing.T) {
	secret := testSecret(t)
	addr, logs := testDaemon(t, secret) // on 127.0.0.1
	flooder := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	const flood = maxHandshakes + 6
	held, closed := 0, 0
	for range flood {
		c, err := flooder.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The daemon either sends its challenge (the connection holds a
		// handshake slot) or closes the connection at once.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		switch _, err := c.Read(b[:]); {
		case err == nil:
			held++
		case errors.Is(err, io.EOF):
			closed++
		default:
			t.Fatalf("flood connection: %v", err)
		}
	}
	if held != maxPeerHandshakes || closed != flood-maxPeerHandshakes {
		t.Errorf("of %d connections from one address, %d were served and %d closed; want %d served",
			flood, held, closed, maxPeerHandshakes)
	}
	// While the flood holds its slots, a launcher from 127.0.0.1 runs a job.
	rc := dialRaw(t, addr, secret)
	pids := rc.spawnSleepers("f1", 1)
	rc.c.Close()
	launchertest.WaitGone(t, pids...)
	if want := fmt.Sprintf("%d connections from 127.0.0.2 are authenticating already", maxPeerHandshakes); !strings.Contains(logs.String(), want) {
		t.Errorf("the daemon did not log the flood:\n%s", logs.String())
	}
}

// holdSlot dials addr from the loopback address ip and reports whether the
// daemon gave the connection a handshake slot (it sends its challenge) or
// closed it at once. The connection stays open until the test ends.
func holdSlot(t *testing.T, addr string, ip net.IP) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	switch _, err := c.Read(b[:]); {
	case err == nil:
		return c, true
	case errors.Is(err, io.EOF):
		return c, false
	default:
		t.Fatalf("connection from %v: %v", ip, err)
		return nil, false
	}
}

// TestDaemonHandshakeFloodManySources: flooders on enough addresses to
// take every handshake slot (maxHandshakes/maxPeerHandshakes of them, each
// at its own limit) do not lock out a launcher from another address: its
// connection takes the slot of the oldest flood connection, and it runs a
// job. The flooders then only evict each other.
func TestDaemonHandshakeFloodManySources(t *testing.T) {
	secret := testSecret(t)
	// A long auth timeout: a flood connection that is closed during the
	// test was evicted, not timed out.
	addr, logs := serveTestDaemon(t, &Daemon{Secret: secret, AuthTimeout: time.Minute}) // on 127.0.0.1
	sources := maxHandshakes / maxPeerHandshakes
	closed := func(c net.Conn, what string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("%s: read %d more bytes, %v; want it closed", what, n, err)
		}
	}
	flood := make([]net.Conn, 0, maxHandshakes)
	for i := range sources {
		ip := net.IPv4(127, 0, 0, byte(2+i))
		for range maxPeerHandshakes {
			c, held := holdSlot(t, addr, ip)
			if !held {
				t.Fatalf("flood connection %d (from %v) was closed at once; want a slot while there are free ones", len(flood), ip)
			}
			flood = append(flood, c)
		}
	}
	// Every slot is taken, each source at its own limit.
	if _, held := holdSlot(t, addr, net.IPv4(127, 0, 0, 2)); held {
		t.Errorf("a ninth connection from 127.0.0.2 got a slot")
	}
	// The launcher, from 127.0.0.1, gets through and runs a job.
	rc := dialRaw(t, addr, secret)
	pids := rc.spawnSleepers("f2", 1)
	rc.c.Close()
	launchertest.WaitGone(t, pids...)
	// It took the slot of the oldest flood connection, which was closed.
	closed(flood[0], "the oldest flood connection")
	// The launcher's slot is free again once it has authenticated: a
	// fresh address takes it, and its next connection evicts the oldest
	// of a source holding the full eight (127.0.0.2 holds seven now).
	fresh := net.IPv4(127, 0, 0, byte(2+sources))
	for i := range 2 {
		if _, held := holdSlot(t, addr, fresh); !held {
			t.Fatalf("connection %d from a fresh address was closed at once", i)
		}
	}
	closed(flood[maxPeerHandshakes], "the oldest connection from 127.0.0.3")
	if !strings.Contains(logs.String(), "every handshake slot is taken") {
		t.Errorf("the daemon did not log the evictions:\n%s", logs.String())
	}
}

// TestDaemonClosesSilentConnection: a connection that says nothing is
// closed once AuthTimeout has passed, and the daemon goes on serving.
func TestDaemonClosesSilentConnection(t *testing.T) {
	secret := testSecret(t)
	const timeout = 300 * time.Millisecond
	addr, logs := serveTestDaemon(t, &Daemon{Secret: secret, AuthTimeout: timeout})
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, c) // the challenge, then EOF at the daemon's deadline
	elapsed := time.Since(start)
	if err != nil || n == 0 {
		t.Fatalf("silent connection: read %d bytes, %v; want the challenge, then EOF", n, err)
	}
	if elapsed < timeout || elapsed > daemonAuthTimeout {
		t.Errorf("the daemon closed the silent connection after %v; want after its deadline of %v", elapsed, timeout)
	}
	if !strings.Contains(logs.String(), "failed the handshake") {
		t.Errorf("the daemon did not log the silent connection:\n%s", logs.String())
	}
	rc := dialRaw(t, addr, secret)
	pids := rc.spawnSleepers("5e", 1)
	rc.c.Close()
	launchertest.WaitGone(t, pids...)
}
