//go:build linux

package launcher_test

// TestMultiHostNamespaces builds a three-host cluster on this machine out
// of Linux namespaces and runs real gorun jobs across it:
//
//   - a "switch" network namespace holds a bridge; each host is a network
//     namespace with a veth pair to the bridge and an address in
//     10.77.0.0/24 (addresses that exist only inside these namespaces, so
//     nothing on the machine changes and concurrent runs do not collide);
//   - each host's daemon runs in its own UTS namespace (its own hostname)
//     and mount namespace with a private tmpfs on /dev/shm;
//   - the launcher runs in host 1's network namespace, as on a login node.
//
// It needs root (CI runs as root) and skips, saying so loudly, where the
// namespaces cannot be made.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gorun-hpc/gorun/launcher/launchertest"
)

const (
	nsHosts     = 3
	nsSlots     = 4
	nsRanks     = nsHosts * nsSlots
	nsSubnet    = "10.77.0.0/24"
	nsJobLimit  = 2 * time.Minute
	nsLostLimit = 5 * time.Second
)

// nsHost is one host of the cluster.
type nsHost struct {
	name, ns, ip string
	daemon       *exec.Cmd
	log          *syncBuffer
	exited       chan struct{} // closed once the daemon has been reaped
}

// nsCluster is the whole test cluster.
type nsCluster struct {
	t                             *testing.T
	sw                            string // the switch's namespace
	hosts                         []*nsHost
	gorun                         string
	secret, hostfile              string
	testprog, ringprog, collcheck string
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

// skipLoudly skips the test with a reason that cannot be overlooked.
func skipLoudly(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(os.Stderr, "\n*** %s SKIPPED: %s ***\n\n", t.Name(), msg)
	t.Skipf("SKIPPED, multi-host namespace test NOT RUN: %s", msg)
}

// sh runs a setup command and fails the test if it fails.
func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func TestMultiHostNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-host namespace test skipped in -short mode")
	}
	if runtime.GOOS != "linux" {
		skipLoudly(t, "needs Linux namespaces")
	}
	if os.Geteuid() != 0 {
		skipLoudly(t, "needs root to create network namespaces (CI runs it as root)")
	}
	for _, tool := range []string{"ip", "unshare", "nsenter", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipLoudly(t, "%s is missing (apt-get install -y iproute2 util-linux)", tool)
		}
	}
	id := fmt.Sprintf("gr%d", os.Getpid()%100000)
	probe := id + "probe"
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		skipLoudly(t, "cannot create a network namespace (ip netns add: %v: %s)", err, bytes.TrimSpace(out))
	}
	sh(t, "ip", "netns", "del", probe)

	c := &nsCluster{t: t, sw: id + "sw"}
	dir := t.TempDir()
	var err error
	if c.gorun, err = launchertest.Build(dir, "../cmd/gorun"); err != nil {
		t.Fatal(err)
	}
	if c.testprog, err = launchertest.Build(dir, "../examples/internal/testprog"); err != nil {
		t.Fatal(err)
	}
	if c.ringprog, err = launchertest.Build(dir, "../examples/ring"); err != nil {
		t.Fatal(err)
	}
	if c.collcheck, err = launchertest.Build(dir, "../examples/internal/collcheck"); err != nil {
		t.Fatal(err)
	}
	c.secret = filepath.Join(dir, "secret")
	if out, err := exec.Command(c.gorun, "secret", "--out", c.secret).CombinedOutput(); err != nil {
		t.Fatalf("gorun secret: %v\n%s", err, out)
	}
	c.build()
	c.startDaemons()

	t.Run("hostnames", c.testHostnames)
	t.Run("ring", c.testRing)
	t.Run("exchange", c.testExchange)
	t.Run("collectives", c.testCollectives)
	t.Run("wrong-secret", c.testWrongSecret)
	t.Run("garbage", c.testGarbage)
	t.Run("cut-network", c.testCutNetwork)
	t.Run("cut-network-send", c.testCutNetworkSend)
	t.Run("garbage-after-cut", c.testGarbage)
	t.Run("lost-daemon", c.testLostDaemon) // last: it kills a daemon
}

// build makes the namespaces, the bridge and the links, and registers
// their removal.
func (c *nsCluster) build() {
	t := c.t
	var made []string
	t.Cleanup(func() {
		c.stopDaemons()
		for _, ns := range made {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("cleanup: ip netns del %s: %v: %s", ns, err, out)
			}
		}
	})
	sh(t, "ip", "netns", "add", c.sw)
	made = append(made, c.sw)
	sh(t, "ip", "-n", c.sw, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", c.sw, "link", "set", "br0", "up")
	var hostfile strings.Builder
	hostfile.WriteString("# the test cluster\n")
	for i := 1; i <= nsHosts; i++ {
		h := &nsHost{name: fmt.Sprintf("%sh%d", c.sw[:len(c.sw)-2], i), ip: fmt.Sprintf("10.77.0.%d", i),
			log: &syncBuffer{}, exited: make(chan struct{})}
		h.ns = h.name
		sh(t, "ip", "netns", "add", h.ns)
		made = append(made, h.ns)
		port := fmt.Sprintf("p%d", i)
		// Both ends are made inside namespaces: nothing touches the
		// machine's own network.
		sh(t, "ip", "-n", h.ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", c.sw)
		sh(t, "ip", "-n", c.sw, "link", "set", port, "master", "br0")
		sh(t, "ip", "-n", c.sw, "link", "set", port, "up")
		sh(t, "ip", "-n", h.ns, "addr", "add", h.ip+"/24", "dev", "eth0")
		sh(t, "ip", "-n", h.ns, "link", "set", "eth0", "up")
		sh(t, "ip", "-n", h.ns, "link", "set", "lo", "up")
		fmt.Fprintf(&hostfile, "%s slots=%d\n", h.ip, nsSlots)
		c.hosts = append(c.hosts, h)
	}
	c.hostfile = filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(c.hostfile, []byte(hostfile.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startDaemons starts "gorun daemon" on every host, each with its own
// hostname and /dev/shm, and waits until they listen.
func (c *nsCluster) startDaemons() {
	t := c.t
	for _, h := range c.hosts {
		// ip netns exec, unshare and sh all exec: the pid is the daemon's.
		h.daemon = exec.Command("ip", "netns", "exec", h.ns,
			"unshare", "--uts", "--mount", "--propagation", "private",
			"sh", "-c", `hostname "$0" && mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$@"`, h.name,
			c.gorun, "daemon", "--listen", h.ip+":7070", "--secret-file", c.secret, "--log-level", "debug",
			"--cache-dir", filepath.Join(t.TempDir(), "cache"))
		h.daemon.Stdout, h.daemon.Stderr = h.log, h.log
		if err := h.daemon.Start(); err != nil {
			t.Fatalf("start the daemon of %s: %v", h.name, err)
		}
		go func() { // reaps the daemon; exits when it does (the cleanup kills it)
			_ = h.daemon.Wait()
			close(h.exited)
		}()
	}
	for _, h := range c.hosts {
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(h.log.String(), "daemon: serving") {
			select {
			case <-h.exited:
				t.Fatalf("the daemon of %s exited:\n%s", h.name, h.log)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("the daemon of %s does not serve:\n%s", h.name, h.log)
			}
			time.Sleep(20 * time.Millisecond) // polling its log; there is no other signal
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range c.hosts {
				t.Logf("log of the daemon of %s:\n%s", h.name, h.log)
			}
		}
	})
}

// stopDaemons stops the daemons still running: SIGTERM, then SIGKILL.
func (c *nsCluster) stopDaemons() {
	for _, h := range c.hosts {
		if h.daemon == nil || h.daemon.Process == nil {
			continue
		}
		_ = h.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(5 * time.Second):
			c.t.Errorf("the daemon of %s ignored SIGTERM", h.name)
			_ = h.daemon.Process.Kill()
			<-h.exited
		}
	}
}

// run runs gorun with args in host 1's network namespace.
func (c *nsCluster) run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), nsJobLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.hosts[0].ns, c.gorun}, args...)...)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	cmd.Env = append(os.Environ(), "GORUN_DEBUG=routes")
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errs.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("gorun %q: %v", args, err)
	}
	return r
}

// jobArgs are gorun's flags for a job on the whole cluster.
func (c *nsCluster) jobArgs(extra ...string) []string {
	return append([]string{"--hostfile", c.hostfile, "--secret-file", c.secret, "-n", strconv.Itoa(nsRanks)}, extra...)
}

// hostOf is the host index of rank r (ranks fill each host's slots in turn).
func hostOf(r int) int { return r / nsSlots }

// pidLine matches "pid RANK PID [JOB]", tagged "[RANK] " with gorun -l.
var pidLine = regexp.MustCompile(`(?m)^(?:\[\d+\] )?pid (\d+) (\d+)\b`)

// rankPids returns the pids testprog's ranks printed.
func rankPids(out string) []int {
	var ps []int
	for _, m := range pidLine.FindAllStringSubmatch(out, -1) {
		p, _ := strconv.Atoi(m[2])
		ps = append(ps, p)
	}
	return ps
}

// shmLeft returns the gorun files left in host h's /dev/shm.
func (c *nsCluster) shmLeft(t *testing.T, h *nsHost) []string {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(h.daemon.Process.Pid), "-m", "ls", "/dev/shm").CombinedOutput()
	if err != nil {
		t.Fatalf("list /dev/shm of %s: %v: %s", h.name, err, out)
	}
	var left []string
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "gorun-") {
			left = append(left, f)
		}
	}
	return left
}

// checkRoutes checks the routes every rank printed (GORUN_DEBUG=routes,
// "mpi: route A->B shm|tcp|self"): shared memory within a host, TCP
// between hosts, and one route from every rank to every rank.
func checkRoutes(t *testing.T, stderr string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^mpi: route (\d+)->(\d+) (\w+)$`)
	ms := re.FindAllStringSubmatch(stderr, -1)
	if len(ms) == 0 {
		t.Errorf("the ranks printed no routes with GORUN_DEBUG=routes; stderr:\n%s", stderr)
		return
	}
	seen := make(map[[2]int]string)
	for _, m := range ms {
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		if prev, ok := seen[[2]int{a, b}]; ok {
			t.Errorf("route %d->%d printed twice (%s, then %s)", a, b, prev, m[3])
		}
		seen[[2]int{a, b}] = m[3]
	}
	for a := range nsRanks {
		for b := range nsRanks {
			want := "tcp"
			switch {
			case a == b:
				want = "self"
			case hostOf(a) == hostOf(b):
				want = "shm"
			}
			switch via, ok := seen[[2]int{a, b}]; {
			case !ok:
				t.Errorf("rank %d printed no route to rank %d", a, b)
			case via != want:
				t.Errorf("route %d->%d (hosts %d and %d) is %s, want %s", a, b, hostOf(a), hostOf(b), via, want)
			}
		}
	}
	if len(seen) != nsRanks*nsRanks {
		t.Errorf("%d routes printed, want %d", len(seen), nsRanks*nsRanks)
	}
	counts := make(map[string]int)
	for _, via := range seen {
		counts[via]++
	}
	t.Logf("routes: %v", counts)
}

func (c *nsCluster) testHostnames(t *testing.T) {
	r := c.run(t, "--host", "10.77.0.1:1,10.77.0.2:1,10.77.0.3:1", "--secret-file", c.secret, "-l", "hostname")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	for i, h := range c.hosts {
		if want := fmt.Sprintf("[%d] %s\n", i, h.name); !strings.Contains(r.stdout, want) {
			t.Errorf("missing %q in:\n%s", want, r.stdout)
		}
	}
}

func (c *nsCluster) testRing(t *testing.T) {
	r := c.run(t, c.jobArgs("--net", nsSubnet, c.ringprog, "-laps", "4")...)
	want := fmt.Sprintf("ring of %d ranks: 4 laps, token %d (correct)", nsRanks, 4*nsRanks*(nsRanks-1)/2)
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("exit %d, want 0 and %q\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, r.stderr)
	}
	checkRoutes(t, r.stderr)
}

// testCollectives runs every collective across the three hosts against a
// serial computation (examples/internal/collcheck), on the world and on a
// split communicator: the host-aware algorithms (regions on each host,
// leaders over TCP, the sliced long allreduce) with real processes.
func (c *nsCluster) testCollectives(t *testing.T) {
	r := c.run(t, c.jobArgs(c.collcheck)...)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("collcheck ok: %d ranks", nsRanks)) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	launchertest.WaitGone(t, rankPids(r.stdout)...)
	for _, h := range c.hosts {
		if left := c.shmLeft(t, h); len(left) > 0 {
			t.Errorf("%s: /dev/shm still holds %q", h.name, left)
		}
	}
}

func (c *nsCluster) testExchange(t *testing.T) {
	// Without --net: the launcher picks its address toward the first
	// daemon and each rank its address toward the launcher.
	r := c.run(t, c.jobArgs(c.testprog, "exchange", "12")...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for rank := range nsRanks {
		if !strings.Contains(r.stdout, fmt.Sprintf("rank %d exchanged ok", rank)) {
			t.Errorf("rank %d did not finish its exchange", rank)
		}
	}
	checkRoutes(t, r.stderr)
	pids := rankPids(r.stdout)
	if len(pids) != nsRanks {
		t.Errorf("%d ranks printed their pid, want %d:\n%s", len(pids), nsRanks, r.stdout)
	}
	launchertest.WaitGone(t, pids...)
	for _, h := range c.hosts {
		if left := c.shmLeft(t, h); len(left) > 0 {
			t.Errorf("%s: /dev/shm still holds %q", h.name, left)
		}
	}
}

func (c *nsCluster) testWrongSecret(t *testing.T) {
	other := filepath.Join(t.TempDir(), "other-secret")
	if out, err := exec.Command(c.gorun, "secret", "--out", other).CombinedOutput(); err != nil {
		t.Fatalf("gorun secret: %v\n%s", err, out)
	}
	r := c.run(t, "--hostfile", c.hostfile, "--secret-file", other, c.testprog, "exchange", "1")
	if r.code != 2 || !strings.Contains(r.stderr, "rejected our secret") || strings.Contains(r.stdout, "pid ") {
		t.Errorf("exit %d (want 2), stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(c.hosts[0].log.String(), "wrong secret") {
		t.Errorf("the daemon did not log the wrong secret")
	}
}

// dialIn connects to addr from network namespace ns, on a thread that
// moves into ns and is then discarded (it stays locked).
func dialIn(ns, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() { // dials from inside ns; exits right after, taking its thread with it
		runtime.LockOSThread() // never unlocked: the runtime ends the thread
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func (c *nsCluster) testGarbage(t *testing.T) {
	target := c.hosts[1]
	addr := target.ip + ":7070"
	silent, err := dialIn(c.hosts[0].ns, addr) // says nothing, held open throughout
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for range 3 {
		g, err := dialIn(c.hosts[0].ns, addr)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 4096)
		_, _ = rand.Read(junk)
		_, _ = g.Write(junk)
		_ = g.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, _ = io.Copy(io.Discard, g) // the daemon closes it
		g.Close()
	}
	r := c.run(t, c.jobArgs(c.ringprog, "-laps", "2")...)
	want := fmt.Sprintf("ring of %d ranks: 2 laps, token %d (correct)", nsRanks, 2*nsRanks*(nsRanks-1)/2)
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("after garbage: exit %d, want 0 and %q\nstderr:\n%s", r.code, want, r.stderr)
	}
	if !strings.Contains(target.log.String(), "failed the handshake") {
		t.Errorf("the daemon of %s did not log the garbage", target.name)
	}
	select {
	case <-target.exited:
		t.Fatalf("the daemon of %s died", target.name)
	default:
	}
}

func (c *nsCluster) testLostDaemon(t *testing.T) {
	victim := c.hosts[1]
	c.breakMidJob(t, victim, "it closed the connection", func() {
		if err := victim.daemon.Process.Kill(); err != nil {
			t.Fatal(err)
		}
	})
}

// testCutNetwork takes host 3 off the network mid-job: both sides must
// notice the silence, the launcher ending the job and the daemon killing
// its ranks.
func (c *nsCluster) testCutNetwork(t *testing.T) {
	victim := c.hosts[2]
	port := fmt.Sprintf("p%d", len(c.hosts))
	c.breakMidJob(t, victim, "no word from it for 3s", func() {
		sh(t, "ip", "-n", c.sw, "link", "set", port, "down")
	})
	sh(t, "ip", "-n", c.sw, "link", "set", port, "up")
}

// testCutNetworkSend cuts host 3 off the network and then has rank 1
// (host 1) send to rank 9 (host 3) for the first time: its dial gets no
// answer at all. It must fail once the launcher reports the host lost
// (a few seconds), with an error naming the rank and the host, and not
// wait out the 10 s dial deadline, by when the rank would long have been
// stopped without a word.
func (c *nsCluster) testCutNetworkSend(t *testing.T) {
	victim := c.hosts[2]
	port := fmt.Sprintf("p%d", len(c.hosts))
	const dst = 9
	if hostOf(1) != 0 || hostOf(dst) != 2 {
		t.Fatalf("ranks 1 and %d are on hosts %d and %d; want 0 and 2", dst, hostOf(1), hostOf(dst))
	}
	// Rank 0, on host 1 like the launcher, waits for a line from this
	// pipe before it tells rank 1 to send.
	fifo := filepath.Join(t.TempDir(), "go")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), nsJobLimit)
	defer cancel()
	cmd, stdout, errs := c.startTagged(t, ctx, c.testprog, "blocksend", strconv.Itoa(dst), fifo)
	pids, sc := awaitBlocking(t, cmd, stdout, errs)
	sh(t, "ip", "-n", c.sw, "link", "set", port, "down")
	defer sh(t, "ip", "-n", c.sw, "link", "set", port, "up")
	cut := time.Now()
	// Opened for reading and writing, the pipe never blocks this side; the
	// line waits in it for rank 0, whose open returns once a writer exists.
	goPipe, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer goPipe.Close()
	if _, err := io.WriteString(goPipe, "go\n"); err != nil {
		t.Fatal(err)
	}
	sending := false
	for sc.Scan() {
		sending = sending || strings.HasSuffix(sc.Text(), fmt.Sprintf("sending 1 to %d", dst))
	}
	err = cmd.Wait()
	elapsed := time.Since(cut)
	if !sending {
		t.Errorf("rank 1 never began its send to rank %d", dst)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("gorun: %v; want a non-zero exit", err)
	}
	if elapsed > nsLostLimit {
		t.Errorf("the job ended %v after the cut; want within %v", elapsed, nsLostLimit)
	}
	// Without the launcher's notice reaching the dial, the Send would sit
	// in its dial until stopped, and print nothing.
	m := regexp.MustCompile(`(?m)^\[1\] blocked send returned: (.*)$`).FindStringSubmatch(errs.String())
	switch {
	case m == nil:
		t.Errorf("rank 1 did not report its send to rank %d failing; stderr:\n%s", dst, errs.String())
	case !strings.Contains(m[1], "lost the daemon on host "+victim.ip) || !strings.Contains(m[1], fmt.Sprintf("rank %d", dst)):
		t.Errorf("rank 1: send returned %q; want an error naming rank %d and host %s", m[1], dst, victim.ip)
	default:
		t.Logf("%v after the cut, rank 1: %s", elapsed.Round(time.Millisecond), m[1])
	}
	launchertest.WaitGone(t, pids...)
}

// breakMidJob runs a job of blocked ranks on the whole cluster, calls
// breakHost once every rank is blocked in its receive, and checks that the
// job ends within nsLostLimit with a message naming victim and reason,
// that every rank elsewhere saw its receive fail with an error naming the
// host, and that nothing is left.
func (c *nsCluster) breakMidJob(t *testing.T, victim *nsHost, reason string, breakHost func()) {
	ctx, cancel := context.WithTimeout(t.Context(), nsJobLimit)
	defer cancel()
	cmd, stdout, errs := c.startTagged(t, ctx, c.testprog, "block")
	pids, _ := awaitBlocking(t, cmd, stdout, errs)
	killed := time.Now()
	breakHost()
	_, _ = io.Copy(io.Discard, stdout)
	err := cmd.Wait()
	elapsed := time.Since(killed)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("gorun: %v; want a non-zero exit", err)
	}
	if elapsed > nsLostLimit {
		t.Errorf("the job ended %v after its daemon died; want within %v", elapsed, nsLostLimit)
	}
	// Ranks elsewhere may notice the lost peers over TCP and exit before
	// gorun hears of the daemon: fewer than 8 may be left to stop.
	want := regexp.MustCompile(`(?m)^gorun: lost the daemon on host ` + regexp.QuoteMeta(victim.ip) + ` \(` +
		regexp.QuoteMeta(reason) + `\); stopping [1-8] ranks$`)
	if m := want.FindString(errs.String()); m == "" {
		t.Errorf("stderr does not match %s:\n%s", want, errs.String())
	} else {
		t.Logf("after %v: %s", elapsed.Round(time.Millisecond), m)
	}
	launchertest.WaitGone(t, pids...)
	last := time.Since(killed)
	t.Logf("the job ended %v after the break, its last rank %v after", elapsed.Round(time.Millisecond), last.Round(time.Millisecond))
	if last > nsLostLimit {
		t.Errorf("the last rank ended %v after the break; want within %v", last, nsLostLimit)
	}
	// Every rank on the other hosts is blocked in a receive (rank 3 or 7
	// on a peer of the lost host, the others on peers that are fine): the
	// launcher tells them of the loss before it stops them, so each
	// receive fails with an error naming the host, which the rank prints.
	// The ranks of the lost host cannot be heard from: they died with
	// their daemon, or their output is behind the cut.
	blocked := regexp.MustCompile(`(?m)^\[(\d+)\] blocked recv returned: (.*)$`)
	got := make(map[int]string)
	for _, m := range blocked.FindAllStringSubmatch(errs.String(), -1) {
		r, _ := strconv.Atoi(m[1])
		got[r] = m[2]
	}
	lostHost := slices.Index(c.hosts, victim)
	for r := range nsRanks {
		if hostOf(r) == lostHost {
			continue
		}
		if msg, ok := got[r]; !ok {
			t.Errorf("rank %d (host %d) did not report its blocked receive failing; stderr:\n%s", r, hostOf(r), errs.String())
		} else if !strings.Contains(msg, "lost the daemon on host "+victim.ip) {
			t.Errorf("rank %d: blocked recv returned %q; want an error naming host %s", r, msg, victim.ip)
		}
	}
	for _, h := range c.hosts {
		select {
		case <-h.exited:
			continue // its /dev/shm went with its mount namespace
		default:
		}
		if left := c.shmLeft(t, h); len(left) > 0 {
			t.Errorf("%s: /dev/shm still holds %q", h.name, left)
		}
	}
}

// awaitBlocking reads a job's tagged output (gorun -l) until every rank has
// printed its pid and then, past testprog's barrier, "blocking R" as it
// enters its receive, and returns the pids and the scanner, positioned
// after those lines. If fewer ranks start, it kills the job and fails the
// test with its stderr.
func awaitBlocking(t *testing.T, cmd *exec.Cmd, stdout io.Reader, errs *syncBuffer) ([]int, *bufio.Scanner) {
	t.Helper()
	var pids []int
	blocking := regexp.MustCompile(`^\[\d+\] blocking \d+$`)
	sc := bufio.NewScanner(stdout)
	for n := 0; n < nsRanks && sc.Scan(); {
		if m := pidLine.FindStringSubmatch(sc.Text()); m != nil {
			p, _ := strconv.Atoi(m[2])
			pids = append(pids, p)
		} else if blocking.MatchString(sc.Text()) {
			n++
		}
	}
	if len(pids) < nsRanks {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Logf("pid lines: %v; rest of stdout: %q", pids, sc.Text())
		t.Fatalf("only %d ranks started; stderr:\n%s", len(pids), errs.String())
	}
	return pids, sc
}

// startTagged starts a job on the whole cluster from host 1's namespace,
// with gorun -l (each output line tagged with its rank), and returns it
// with its stdout pipe and a buffer collecting its stderr. If the job is
// still running 30 s on, it gets SIGQUIT: a stack dump beats a silent hang.
func (c *nsCluster) startTagged(t *testing.T, ctx context.Context, prog ...string) (*exec.Cmd, io.ReadCloser, *syncBuffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.hosts[0].ns, c.gorun},
		c.jobArgs(append([]string{"-l"}, prog...)...)...)...)
	errs := new(syncBuffer)
	cmd.Stderr = errs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stuck := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Signal(syscall.SIGQUIT) })
	t.Cleanup(func() { stuck.Stop() })
	return cmd, stdout, errs
}
