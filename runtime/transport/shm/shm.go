//go:build linux

package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gorun-hpc/gorun/runtime/internal/sched"
	"github.com/gorun-hpc/gorun/runtime/transport"
)

// Tunables; variables so that tests and benchmarks can change them.
var (
	// eagerLimit is the largest payload copied through the ring (capped at
	// R/4); larger payloads use cross-memory attach. process_vm_readv
	// costs about 1.8 µs for 8 KiB and 3.7 µs for 32 KiB here, the two
	// copies through the ring much less while the two cores share a cache:
	// see the package documentation.
	eagerLimit = 64 << 10
	// leaseNap is how long the reader naps, without announcing sleep, while
	// goroutines keep calling Poll.
	leaseNap = 100 * time.Microsecond
	// peerCheck is how often an idle reader, and a Send waiting on a peer,
	// look for dead peers.
	peerCheck = 250 * time.Millisecond
	// closeTimeout bounds how long Close waits for ring space for its Bye.
	closeTimeout = 5 * time.Second
	// spinBudget is how long a waiting Send spins (yielding now and then)
	// before it sleeps with backoff; oversubSpin replaces it when the host
	// runs more local ranks than CPUs, where the spin yields the CPU to
	// them. It is the receive budget (sched.SpinBudget): a Go timer sleep
	// shorter than a millisecond often lasts one (the runtime waits for
	// timers in epoll, whose timeout is in milliseconds), so a budget of
	// 50 µs turned a receiver busy copying for 100 µs into 1–2.5 ms waits
	// (p90 and p99 of a 512 KiB allreduce on 2 ranks).
	spinBudget  = sched.SpinBudget
	oversubSpin = 2 * time.Millisecond
	// maxBackoff caps the sleeps of a waiting Send.
	maxBackoff = 250 * time.Microsecond

	// splitMin is the smallest cross-memory-attach payload whose copy the
	// receiver shares with the sender, in about splitParts chunks of
	// splitChunkMin to splitChunk bytes.
	splitMin      = 128 << 10
	splitParts    = 8
	splitChunkMin = 64 << 10
	splitChunk    = 512 << 10

	// Test hooks.
	fallocate       = unix.Fallocate
	processVMReadv  = unix.ProcessVMReadv
	processVMWritev = unix.ProcessVMWritev
)

// maxLocal bounds Config.Local.
const maxLocal = 1 << 12

// Supported reports whether this platform has the transport (Linux only:
// it needs futexes and process_vm_readv). Elsewhere Create fails, and
// package mpi routes ranks on one host over TCP instead.
const Supported = true

// Endpoint is one rank's shared-memory endpoint. Send, Poll and Close are
// safe for concurrent use by any number of goroutines; Attach and Unlink are
// called once each by the goroutine that set the endpoint up.
//
// An Endpoint implements transport.Endpoint and transport.Poller.
type Endpoint struct {
	rank    int
	me      int     // index of rank in local
	local   []int   // world ranks on the host, ascending
	slot    []int32 // by world rank up to the highest local one: index in local, or -1
	sink    transport.Sink
	fsink   transport.FrameSink      // sink, when it takes whole frames; else nil
	bsink   transport.FrameBatchSink // sink, when it takes runs of frames; else nil
	batch   frameBatch               // drainRecords' run for bsink; guarded by pollMu
	qsink   transport.QuietSink      // sink, when it can say it is quiet (Take); else nil
	dir     string
	job     string
	path    string
	n       int
	eager   int  // largest inline payload
	peeks   int  // extra looks of an empty Poll
	oversub bool // more local ranks than CPUs: waiting Sends yield the CPU
	chunk   int  // payload bytes per recChunk record

	own      *segment
	bell     *os.File // read end of this rank's bell FIFO, in the netpoller
	bellPath string
	bellBuf  [64]byte  // the reader's
	peers    []*peer   // by local index; peers[me] is this rank
	in       []inRing  // by producer's local index; guarded by pollMu
	out      []outRing // by destination's local index; valid once attached

	// pollMu admits one drainer (Poll or the reader) at a time.
	pollMu   sync.Mutex
	unmapped bool // guarded by pollMu: Close has released the mappings
	next     int  // guarded by pollMu: the ring a limited drain looks at first

	awake    atomic.Uint32 // 1 once Poll was called since the reader last looked
	attached atomic.Bool
	closed   atomic.Bool
	stop     atomic.Bool // tells the reader to exit
	checkReq atomic.Bool // asks the reader to check its peers now
	noCMA    atomic.Bool // process_vm_readv was refused: chunk large payloads
	noWritev atomic.Bool // process_vm_writev was refused: never help a split copy

	attachMu  sync.Mutex // serialises Attach with Close
	closeOnce sync.Once
	wg        sync.WaitGroup // the reader goroutine

	fileMu   sync.Mutex
	fileGone bool // guarded by fileMu: the segment file was removed
}

// segment is a mapped segment file, this rank's or a peer's.
type segment struct {
	mem      []byte
	state    *uint32
	sleeping *uint32
	ringSize int64
	n        int
}

func newSegment(mem []byte, n int) *segment {
	return &segment{
		mem:      mem,
		state:    word32(mem, offState),
		sleeping: word32(mem, offSleeping),
		ringSize: ringSize(n),
		n:        n,
	}
}

// ringOf returns the control words and data of the ring written by local
// rank i.
func (s *segment) ringOf(i int) (ringCtl, []byte) {
	c := pageSize + i*ringCtlStride
	d := dataOffset(s.n) + int64(i)*s.ringSize
	return ringCtl{
		head:   word64(s.mem, c+rcHead),
		pwait:  word32(s.mem, c+rcPWait),
		pevent: word32(s.mem, c+rcPEvent),
		cma:    word32(s.mem, c+rcCMA),
		next:   word32(s.mem, c+rcNext),
		sdone:  word32(s.mem, c+rcSDone),
		sfail:  word32(s.mem, c+rcSFail),
		chunk:  word32(s.mem, c+rcChunk),
		dst:    word64(s.mem, c+rcDst),
	}, s.mem[d : d+s.ringSize : d+s.ringSize]
}

var bellByte = [1]byte{1}

// ring rings the peer's doorbell if its reader sleeps: one byte written to
// its bell FIFO.
func (p *peer) ring() {
	s := p.seg
	if atomic.LoadUint32(s.sleeping) != 0 && atomic.CompareAndSwapUint32(s.sleeping, 1, 0) {
		p.kick()
	}
}

// kick wakes the peer's reader unconditionally. A full pipe already holds a
// wake-up; a pipe without reader (the peer is gone) fails with EPIPE, which
// Go turns into an error rather than a signal for descriptors other than
// stdout and stderr: both are fine to ignore.
func (p *peer) kick() {
	if p.bellFd >= 0 {
		_, _ = unix.Write(p.bellFd, bellByte[:])
	}
}

// ringCtl points at the control words of one ring.
type ringCtl struct {
	head   *uint64
	pwait  *uint32
	pevent *uint32
	cma    *uint32
	next   *uint32
	sdone  *uint32
	sfail  *uint32
	chunk  *uint32
	dst    *uint64
}

// wakeProducer wakes the ring's producer if it sleeps on the ring's futex
// word; the consumer calls it after publishing head or the CMA word. This
// implementation's producers poll with backoff instead (see waitOut), so
// pwait stays 0 and this costs one load of a clean cache line; it keeps the
// shared protocol open to futex sleepers.
func (c ringCtl) wakeProducer() {
	if atomic.LoadUint32(c.pwait) != 0 {
		atomic.StoreUint32(c.pwait, 0)
		atomic.AddUint32(c.pevent, 1)
		futexWake(c.pevent, 1)
	}
}

// peer is a local rank as seen by this endpoint.
type peer struct {
	rank   int
	idx    int
	seg    *segment // nil until Attach (except for this rank)
	pid    int
	pidfd  int                       // -1: none (this rank, or pidfd unsupported)
	bellFd int                       // write end of its bell FIFO; -1 when none
	dead   atomic.Bool               // its process has exited
	gone   atomic.Bool               // no more frames from or to it: Bye seen or loss reported
	err    atomic.Pointer[peerError] // why it is gone, set before gone
	isMe   bool
}

// alive reports whether the peer's process still exists.
func (p *peer) alive() bool {
	if p.isMe || p.dead.Load() {
		return !p.dead.Load()
	}
	if p.pidfd >= 0 {
		fds := [1]unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds[:], 0)
			if err == unix.EINTR {
				continue
			}
			if err == nil && n > 0 {
				p.dead.Store(true)
			}
			break
		}
	} else if err := unix.Kill(p.pid, 0); err == unix.ESRCH {
		p.dead.Store(true)
	}
	return !p.dead.Load()
}

// outRing is this rank's producer side of the ring in peer p's segment.
type outRing struct {
	mu     sync.Mutex // one record writer at a time; held across a whole frame
	p      *peer
	ctl    ringCtl
	data   []byte
	mask   uint64
	tail   uint64 // guarded by mu: bytes committed
	head   uint64 // guarded by mu: last head seen
	seq    uint32 // guarded by mu: last CMA descriptor number
	keep   []byte // guarded by mu: payload a peer may be reading
	closed bool   // guarded by mu: Close has sent its Bye

	stage [recAlign]byte // guarded by mu: a small record, before it is copied in

	liov [1]unix.Iovec // guarded by mu: for process_vm_writev
	riov [1]unix.RemoteIovec
}

// inRing is this rank's consumer side of the ring written by peer p.
type inRing struct {
	p    *peer
	ctl  ringCtl
	data []byte
	mask uint64
	head uint64 // consumed so far
	pub  uint64 // published in *ctl.head: head, or behind it after a Take

	// The frame whose payload arrives in chunks, if active.
	active bool
	cur    transport.Header
	buf    []byte
	off    int

	liov [1]unix.Iovec
	riov [1]unix.RemoteIovec
}

// peerError describes a lost or closed peer. errors.Is matches
// transport.ErrPeerLost and the cause.
type peerError struct {
	rank int
	err  error
}

func (p *peerError) Error() string {
	return fmt.Sprintf("shm: rank %d: %v", p.rank, p.err)
}

func (p *peerError) Unwrap() []error { return []error{transport.ErrPeerLost, p.err} }

var (
	errExited     = errors.New("process exited")
	errPeerClosed = errors.New("the peer closed its endpoint")
	errNoBye      = errors.New("segment closed without bye")
	errTimeout    = errors.New("timed out waiting for ring space")
	errProtocol   = errors.New("protocol error")
)

// segName returns the file name of rank's segment.
func segName(job string, rank int) string { return fmt.Sprintf("gorun-%s-%d", job, rank) }

// Create creates, sizes and maps this rank's segment in cfg.Dir. The other
// local ranks need not exist yet. It fails, naming the sizes involved and
// the remedies, when the directory has too little space.
func Create(cfg Config) (*Endpoint, error) {
	me, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		dir = DefaultDir
	}
	n := len(cfg.Local)
	size := SegmentSize(n)
	// Let local ranks read this process's memory with process_vm_readv
	// under Yama ptrace_scope=1. Without Yama the call fails: no matter.
	_ = unix.Prctl(unix.PR_SET_PTRACER, unix.PR_SET_PTRACER_ANY, 0, 0, 0)

	path := filepath.Join(dir, segName(cfg.Job, cfg.Rank))
	bellPath := path + ".bell"
	bell, bellW, err := makeBell(bellPath)
	if err != nil {
		return nil, err
	}
	created := false
	defer func() {
		if !created {
			bell.Close()
			unix.Close(bellW)
			os.Remove(bellPath)
		}
	}()
	tmp := fmt.Sprintf("%s.init-%d", path, os.Getpid())
	fd, err := unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("shm: create segment: %w", &os.PathError{Op: "open", Path: tmp, Err: err})
	}
	defer unix.Close(fd)
	fail := func(err error) (*Endpoint, error) {
		_ = unix.Unlink(tmp)
		return nil, err
	}
	if err := fallocate(fd, 0, 0, size); err != nil {
		return fail(spaceError(dir, n, size, err))
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("shm: map %s (%d bytes): %w", tmp, size, err))
	}
	binary.LittleEndian.PutUint32(mem[offVersion:], segVersion)
	binary.LittleEndian.PutUint32(mem[offN:], uint32(n))
	binary.LittleEndian.PutUint32(mem[offIndex:], uint32(me))
	binary.LittleEndian.PutUint32(mem[offPid:], uint32(os.Getpid()))
	binary.LittleEndian.PutUint32(mem[offRank:], uint32(cfg.Rank))
	binary.LittleEndian.PutUint64(mem[offRingSize:], uint64(ringSize(n)))
	atomic.StoreUint32(word32(mem, offState), stateOpen)
	atomic.StoreUint64(word64(mem, offMagic), segMagic) // publishes the fields above
	// The file appears under its final name only once initialised.
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE); err != nil {
		_ = unix.Munmap(mem)
		if err == unix.EEXIST {
			return fail(fmt.Errorf("shm: segment %s already exists: another job uses id %q, or a crashed one left it (remove it)", path, cfg.Job))
		}
		return fail(fmt.Errorf("shm: publish segment %s: %w", path, err))
	}

	created = true
	fsink, _ := cfg.Sink.(transport.FrameSink)
	bsink, _ := cfg.Sink.(transport.FrameBatchSink)
	qsink, _ := cfg.Sink.(transport.QuietSink)
	e := &Endpoint{
		rank:  cfg.Rank,
		me:    me,
		local: slices.Clone(cfg.Local),
		sink:  cfg.Sink,
		fsink: fsink,
		bsink: bsink,
		qsink: qsink,
		dir:   dir,
		job:   cfg.Job,
		path:  path,
		n:     n,
		own:   newSegment(mem, n),
		peers: make([]*peer, n),
		in:    make([]inRing, n),
		out:   make([]outRing, n),
	}
	r := e.own.ringSize
	e.eager = int(min(int64(eagerLimit), r/4))
	e.chunk = int(min(r/4, 256<<10))
	e.peeks = max(0, 8/n-1)
	e.slot = make([]int32, e.local[n-1]+1)
	for i := range e.slot {
		e.slot[i] = -1
	}
	for i, rk := range e.local {
		e.slot[rk] = int32(i)
	}
	e.oversub = n > runtime.NumCPU()
	for i, rk := range e.local {
		e.peers[i] = &peer{rank: rk, idx: i, pidfd: -1, bellFd: -1, isMe: i == me}
		ctl, data := e.own.ringOf(i)
		e.in[i] = inRing{p: e.peers[i], ctl: ctl, data: data, mask: uint64(r - 1)}
	}
	e.peers[me].seg = e.own
	e.peers[me].pid = os.Getpid()
	e.bell, e.bellPath = bell, bellPath
	e.peers[me].bellFd = bellW
	return e, nil
}

// makeBell creates the FIFO at path that wakes this rank's reader and opens
// it twice: for reading, in the netpoller (O_RDWR, so that it never sees end
// of file), and for writing, non-blocking, to wake the reader itself.
func makeBell(path string) (*os.File, int, error) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		if err == unix.EEXIST {
			return nil, -1, fmt.Errorf("shm: doorbell %s already exists: another job uses this id, or a crashed one left it (remove it)", path)
		}
		return nil, -1, fmt.Errorf("shm: create doorbell: %w", &os.PathError{Op: "mkfifo", Path: path, Err: err})
	}
	r, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Remove(path)
		return nil, -1, fmt.Errorf("shm: open doorbell: %w", err)
	}
	w, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		r.Close()
		os.Remove(path)
		return nil, -1, fmt.Errorf("shm: open doorbell: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	return r, w, nil
}

// checkConfig validates cfg and returns the index of cfg.Rank in cfg.Local.
func checkConfig(cfg Config) (int, error) {
	switch {
	case cfg.Job == "" || strings.ContainsAny(cfg.Job, "/\x00"):
		return 0, fmt.Errorf("shm: bad job id %q", cfg.Job)
	case cfg.Sink == nil:
		return 0, fmt.Errorf("shm: rank %d: nil sink", cfg.Rank)
	case len(cfg.Local) == 0 || len(cfg.Local) > maxLocal:
		return 0, fmt.Errorf("shm: %d local ranks, want 1 to %d", len(cfg.Local), maxLocal)
	case cfg.Rank < 0 || cfg.Rank > 1<<31-1:
		return 0, fmt.Errorf("shm: rank %d out of range", cfg.Rank)
	}
	for i, r := range cfg.Local {
		if r < 0 || r > 1<<31-1 || (i > 0 && r <= cfg.Local[i-1]) {
			return 0, fmt.Errorf("shm: local ranks %v are not ascending, distinct and non-negative", cfg.Local)
		}
	}
	me, ok := slices.BinarySearch(cfg.Local, cfg.Rank)
	if !ok {
		return 0, fmt.Errorf("shm: rank %d is not among the local ranks %v", cfg.Rank, cfg.Local)
	}
	return me, nil
}

// spaceError explains a failed fallocate.
func spaceError(dir string, n int, size int64, err error) error {
	free := "an unknown amount of space"
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil {
		free = mib(int64(st.Bavail) * int64(st.Bsize))
	}
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EFBIG) || errors.Is(err, unix.EDQUOT) {
		return fmt.Errorf("shm: %s has %s free, but this rank's segment needs %s "+
			"(%d local ranks need %s in all): enlarge it (docker run --shm-size=%dm, "+
			"or mount -o remount,size=... %s) or use the TCP transport (GORUN_TRANSPORT=tcp): %w",
			dir, free, mib(size), n, mib(int64(n)*size), (int64(n)*size>>20)+64, dir, err)
	}
	return fmt.Errorf("shm: allocate %s for the segment in %s (%s free): %w", mib(size), dir, free, err)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Attach maps the segment of every other local rank, waiting (until ctx is
// done) for segments that do not exist yet, and starts the endpoint's reader
// goroutine. Call it once, after every local rank has called Create.
func (e *Endpoint) Attach(ctx context.Context) error {
	e.attachMu.Lock()
	defer e.attachMu.Unlock()
	switch {
	case e.closed.Load():
		return e.errClosed()
	case e.attached.Load():
		return fmt.Errorf("shm: rank %d: Attach called twice", e.rank)
	}
	ok := false
	defer func() {
		if !ok {
			e.releasePeers()
		}
	}()
	for i, p := range e.peers {
		if p.isMe {
			continue
		}
		if err := e.attachPeer(ctx, p); err != nil {
			return err
		}
		ctl, data := p.seg.ringOf(e.me)
		e.out[i] = outRing{p: p, ctl: ctl, data: data, mask: uint64(len(data) - 1)}
	}
	ctl, data := e.own.ringOf(e.me)
	e.out[e.me] = outRing{p: e.peers[e.me], ctl: ctl, data: data, mask: uint64(len(data) - 1)}
	e.prefault()
	ok = true
	e.attached.Store(true)
	e.wg.Add(1)
	go e.run() // exits when Close sets stop and rings the bell; joined by Close
	return nil
}

// prefault maps the pages of the rings this rank uses into its page
// tables now: the rings it writes in its peers' segments and the rings it
// reads in its own. Otherwise the first pass through a ring takes two page
// faults (writer and reader) every 4 KiB, about 0.05 µs a small message
// over the first 20,000 (a 1 MiB ring), which is what a first benchmark
// measures. Only this rank's own rings are touched: with 64 ranks, mapping
// all of every peer's segment would cost page tables for 64 times the
// memory used. The segment's memory itself is already allocated (Create
// fallocates it), so this cannot fail for lack of space; a kernel without
// MADV_POPULATE_* (before 5.14) just faults the pages in later.
func (e *Endpoint) prefault() {
	for i := range e.out {
		if i != e.me {
			_ = unix.Madvise(e.out[i].data, unix.MADV_POPULATE_WRITE)
		}
	}
	for i := range e.in {
		if i != e.me {
			_ = unix.Madvise(e.in[i].data, unix.MADV_POPULATE_READ)
		}
	}
}

// attachPeer opens, checks and maps p's segment and opens a pidfd for it.
func (e *Endpoint) attachPeer(ctx context.Context, p *peer) error {
	path := filepath.Join(e.dir, segName(e.job, p.rank))
	want := SegmentSize(e.n)
	var fd int
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 50*time.Millisecond) {
		var err error
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err == nil {
			break
		}
		if err != unix.ENOENT && err != unix.EINTR {
			return fmt.Errorf("shm: attach rank %d: %w", p.rank, &os.PathError{Op: "open", Path: path, Err: err})
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("shm: attach rank %d: segment %s: %w", p.rank, path, ctx.Err())
		case <-t.C:
		}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("shm: attach rank %d: stat %s: %w", p.rank, path, err)
	}
	if st.Size != want {
		return fmt.Errorf("shm: attach rank %d: segment %s has %d bytes, want %d: do all local ranks agree on the local ranks %v?",
			p.rank, path, st.Size, want, e.local)
	}
	mem, err := unix.Mmap(fd, 0, int(want), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("shm: attach rank %d: map %s: %w", p.rank, path, err)
	}
	bad := func(what string, got, want uint64) error {
		_ = unix.Munmap(mem)
		return fmt.Errorf("shm: attach rank %d: segment %s: %s is %d, want %d", p.rank, path, what, got, want)
	}
	le := binary.LittleEndian
	switch {
	case atomic.LoadUint64(word64(mem, offMagic)) != segMagic:
		return bad("magic", atomic.LoadUint64(word64(mem, offMagic)), segMagic)
	case le.Uint32(mem[offVersion:]) != segVersion:
		return bad("version", uint64(le.Uint32(mem[offVersion:])), segVersion)
	case le.Uint32(mem[offN:]) != uint32(e.n):
		return bad("the number of local ranks", uint64(le.Uint32(mem[offN:])), uint64(e.n))
	case le.Uint32(mem[offIndex:]) != uint32(p.idx):
		return bad("the local index", uint64(le.Uint32(mem[offIndex:])), uint64(p.idx))
	case le.Uint32(mem[offRank:]) != uint32(p.rank):
		return bad("the rank", uint64(le.Uint32(mem[offRank:])), uint64(p.rank))
	}
	// The bell exists: Create makes it before it publishes the segment.
	bellPath := path + ".bell"
	bfd, err := unix.Open(bellPath, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Munmap(mem)
		return fmt.Errorf("shm: attach rank %d: %w", p.rank, &os.PathError{Op: "open", Path: bellPath, Err: err})
	}
	p.bellFd = bfd
	p.seg = newSegment(mem, e.n)
	p.pid = int(le.Uint32(mem[offPid:]))
	if p.pid == os.Getpid() {
		p.pidfd = -1 // a rank in this process (tests): never dies on its own
		return nil
	}
	fdp, err := unix.PidfdOpen(p.pid, 0)
	switch {
	case err == nil:
		p.pidfd = fdp
	case err == unix.ESRCH:
		p.dead.Store(true)
		e.checkReq.Store(true)
	default:
		p.pidfd = -1 // no pidfd support: fall back to kill(pid, 0)
	}
	return nil
}

// releasePeers unmaps the peers' segments and closes their pidfds.
func (e *Endpoint) releasePeers() {
	for _, p := range e.peers {
		if p.isMe {
			continue
		}
		if p.seg != nil {
			_ = unix.Munmap(p.seg.mem)
			p.seg = nil
		}
		if p.pidfd >= 0 {
			_ = unix.Close(p.pidfd)
			p.pidfd = -1
		}
		if p.bellFd >= 0 {
			_ = unix.Close(p.bellFd)
			p.bellFd = -1
		}
	}
}

// Unlink removes this rank's segment file. Call it once every local rank
// has attached: from then on the mappings keep the memory alive and a
// killed job leaves nothing in the directory. Close removes the file too if
// Unlink was never called.
func (e *Endpoint) Unlink() error {
	e.fileMu.Lock()
	defer e.fileMu.Unlock()
	if e.fileGone {
		return nil
	}
	for _, path := range []string{e.path, e.bellPath} {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("shm: %w", err)
		}
	}
	e.fileGone = true
	return nil
}

func (e *Endpoint) errClosed() error {
	return fmt.Errorf("shm: send on rank %d: %w", e.rank, transport.ErrClosed)
}

// validate checks a frame before it is sent.
func (e *Endpoint) validate(h *transport.Header, payload []byte) error {
	if err := transport.CheckSend(e.rank, h, payload); err != nil {
		return fmt.Errorf("shm: %w", err)
	}
	return nil
}

// Send hands h and payload (len(payload) == h.Len) to local rank h.Dst.
// h.Src must be this endpoint's rank; KindBye is reserved to Close.
//
// A payload of up to the eager limit is copied into the ring and Send
// returns at once unless the ring is full (back-pressure: Send waits for the
// receiver to drain it). A larger payload is read by the receiver straight
// from payload (process_vm_readv), and Send returns once it has been read:
// either way the caller may reuse payload when Send returns. payload
// escapes to the heap. Sends to one destination are serialised: frames
// reach the receiver in the order their Sends returned.
//
// Errors: ErrClosed (wrapped) after Close; an error wrapping ErrPeerLost
// when the destination closed or its process is gone. Send never waits on a
// dead peer.
func (e *Endpoint) Send(h transport.Header, payload []byte) error {
	return e.SendHeader(&h, payload)
}

// SendHeader is Send with the header passed by pointer; it does not keep
// h. Package mpi calls it directly on its small-message path: through the
// Endpoint interface the header is copied on the stack, and that copy
// stalls on the stores that just wrote it.
func (e *Endpoint) SendHeader(h *transport.Header, payload []byte) error {
	if err := e.validate(h, payload); err != nil {
		return err
	}
	if e.closed.Load() {
		return e.errClosed()
	}
	if !e.attached.Load() {
		return fmt.Errorf("shm: rank %d: Send before Attach", e.rank)
	}
	if int(h.Dst) >= len(e.slot) || e.slot[h.Dst] < 0 {
		return fmt.Errorf("shm: rank %d is not on this host (local ranks %v)", h.Dst, e.local)
	}
	o := &e.out[e.slot[h.Dst]]
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return e.errClosed()
	}
	if err := e.usable(o.p); err != nil {
		return err
	}
	switch {
	case len(payload) <= e.eager:
		return e.putFrame(o, recFrame, h, payload)
	case e.noCMA.Load():
		if err := e.putFrame(o, recBegin, h, nil); err != nil {
			return err
		}
		return e.sendChunks(o, payload)
	}
	return e.sendCMA(o, h, payload)
}

// usable returns the error that stops Sends to p, or nil.
func (e *Endpoint) usable(p *peer) error {
	if p.gone.Load() {
		if pe := p.err.Load(); pe != nil {
			return pe
		}
		return &peerError{rank: p.rank, err: errPeerClosed}
	}
	if p.isMe {
		return nil
	}
	if atomic.LoadUint32(p.seg.state) == stateClosed {
		return &peerError{rank: p.rank, err: errPeerClosed}
	}
	if p.dead.Load() {
		e.requestCheck()
		return &peerError{rank: p.rank, err: errExited}
	}
	return nil
}

// requestCheck asks the reader to look at its peers now.
func (e *Endpoint) requestCheck() {
	if !e.checkReq.Swap(true) {
		e.peers[e.me].kick()
	}
}

// Wait modes for waitOut.
const (
	waitSend = iota // fail on this endpoint's Close or any trouble with the peer
	waitMust        // fail only if the peer can make no more progress (or at the deadline)
)

// waitOut waits until cond holds for ring o: it spins (yielding) for spin,
// then sleeps with growing backoff. It fails as mode says. o.mu is
// held.
//
// While it waits it drains this endpoint's own inbound rings (Poll): when
// two ranks send each other large messages at once, each is blocked here
// until the other copies its payload, and neither may depend on its
// background reader (which naps while others poll) to make that progress.
// This is safe with o.mu held: draining takes no out-ring lock (copy
// completion is signalled through atomic words), Poll only ever TryLocks,
// and Sink methods never send.
func (e *Endpoint) waitOut(o *outRing, cond func() bool, mode int, spin time.Duration, deadline time.Time) error {
	start := time.Now()
	if e.oversub && spin > 0 {
		spin = max(spin, oversubSpin)
	}
	late := false // past sched.SpinTime
	for i := 0; ; i++ {
		if cond() {
			return nil
		}
		if i < 100 {
			continue
		}
		if i&63 == 0 {
			if err := e.waitFailure(o, mode, deadline, false); err != nil {
				return err
			}
			el := time.Since(start)
			if el > spin {
				break
			}
			late = el > sched.SpinTime
		}
		if !e.Poll() && (e.oversub || (late && i&63 == 0)) {
			// The receiver may be waiting for this very core: hand it
			// over (every round when the host is oversubscribed, now and
			// then once sched.SpinTime has passed otherwise: a copy of
			// tens of KiB is done sooner, and a sched_yield under way
			// when it is adds to the Send). Not runtime.Gosched: it
			// queues this goroutine globally and wakes an idle P's
			// thread, which then spins looking for work on the core the
			// receiver needs (p99 of a 512 KiB allreduce on 2 ranks was
			// 2.5 ms, a time slice).
			sched.Yield()
		}
	}
	// Then poll with backoff sleeps on a Go timer: a futex wait here would
	// keep this goroutine's P in a system call (see run). The cap bounds
	// what a Send loses after its copy is done.
	lastCheck := start
	for backoff := 5 * time.Microsecond; ; backoff = min(2*backoff, maxBackoff) {
		if cond() {
			return nil
		}
		check := time.Since(lastCheck) >= peerCheck
		if check {
			lastCheck = time.Now()
		}
		if err := e.waitFailure(o, mode, deadline, check); err != nil {
			return err
		}
		if e.Poll() {
			backoff = 5 * time.Microsecond
			continue
		}
		time.Sleep(backoff)
	}
}

// waitFailure reports why a wait on ring o must end, or nil. With check, it
// also asks the kernel whether the peer's process still exists.
func (e *Endpoint) waitFailure(o *outRing, mode int, deadline time.Time, check bool) error {
	p := o.p
	if mode == waitSend {
		if e.closed.Load() {
			return e.errClosed()
		}
		if p.gone.Load() {
			return e.usable(p)
		}
	}
	if !p.isMe && atomic.LoadUint32(p.seg.state) == stateClosed {
		return &peerError{rank: p.rank, err: errPeerClosed}
	}
	if p.dead.Load() || (check && !p.alive()) {
		e.requestCheck()
		return &peerError{rank: p.rank, err: errExited}
	}
	if !deadline.IsZero() && time.Now().After(deadline) {
		return &peerError{rank: p.rank, err: errTimeout}
	}
	return nil
}

// reserve waits until a record of size bytes fits in ring o, with the
// header word of the record after it (see commit), and returns the
// record's offset in o.data.
func (e *Endpoint) reserve(o *outRing, size uint64, mode int, deadline time.Time) (uint64, error) {
	if err := e.reserveBytes(o, align(size)+recAlign, mode, deadline); err != nil {
		return 0, err
	}
	return o.tail & o.mask, nil // a record's first 64 bytes never wrap
}

// reserveBytes waits until need bytes are free in ring o.
func (e *Endpoint) reserveBytes(o *outRing, need uint64, mode int, deadline time.Time) error {
	size := o.mask + 1
	if size-(o.tail-o.head) >= need {
		return nil
	}
	o.head = atomic.LoadUint64(o.ctl.head)
	if size-(o.tail-o.head) >= need {
		return nil
	}
	return e.waitOut(o, func() bool {
		o.head = atomic.LoadUint64(o.ctl.head)
		return size-(o.tail-o.head) >= need
	}, mode, spinBudget, deadline)
}

func align(n uint64) uint64 { return (n + recAlign - 1) &^ (recAlign - 1) }

// copyIn copies src into the ring at absolute position pos, wrapping.
func copyIn(data []byte, mask, pos uint64, src []byte) {
	n := copy(data[pos&mask:], src)
	if n < len(src) {
		copy(data, src[n:])
	}
}

// copyOut copies the ring's bytes at absolute position pos into dst, wrapping.
func copyOut(dst, data []byte, mask, pos uint64) {
	n := copy(dst, data[pos&mask:])
	if n < len(dst) {
		copy(dst[n:], data)
	}
}

// commit publishes the record of size bytes and type typ whose body (all
// but its header word) is written at o.tail, and rings the consumer's
// doorbell if it sleeps. The header word of the next record is zeroed
// first, so that the consumer, which sees this record, stops there until
// the next one is committed; the atomic store of the header word publishes
// everything written before it (release).
func (o *outRing) commit(size uint64, typ byte) {
	o.clearNext(size)
	o.publish(size, typ)
}

// clearNext zeroes the header word of the record after the one of size
// bytes about to be written at o.tail (reserve kept room for it).
func (o *outRing) clearNext(size uint64) {
	next := (o.tail + align(size)) & o.mask
	binary.LittleEndian.PutUint64(o.data[next:next+8], 0)
}

// publish is commit once clearNext has been done: putFrame clears first,
// before it writes the record, so that fetching that cache line (a lap
// old, rarely in any cache) overlaps the writing instead of holding up the
// atomic store, which waits for every earlier store.
func (o *outRing) publish(size uint64, typ byte) {
	pos := o.tail & o.mask
	o.tail += align(size)
	atomic.StoreUint64(word64(o.data, int(pos)), size|uint64(typ)<<32)
	o.p.ring()
}

// putFrame writes a recFrame or recBegin record for h and publishes it.
func (e *Endpoint) putFrame(o *outRing, typ byte, h *transport.Header, payload []byte) error {
	size := uint64(recHdrSize + transport.HeaderSize + len(payload))
	pos, err := e.reserve(o, size, waitSend, time.Time{})
	if err != nil {
		return err
	}
	o.clearNext(size)
	if size <= recAlign {
		// The consumer may be polling this very cache line: fill it with
		// a few wide stores from a staged copy rather than many narrow
		// ones, each of which could have to take the line back.
		st := &o.stage
		h.Put(st[recHdrSize:])
		copy(st[recHdrSize+transport.HeaderSize:], payload)
		copy(o.data[pos+recHdrSize:pos+size], st[recHdrSize:size])
	} else {
		h.Put(o.data[pos+recHdrSize:])
		if end := pos + size; end <= o.mask+1 {
			copy(o.data[pos+recHdrSize+transport.HeaderSize:end], payload)
		} else {
			copyIn(o.data, o.mask, o.tail+recHdrSize+transport.HeaderSize, payload)
		}
	}
	o.publish(size, typ)
	return nil
}

// sendChunks writes payload as recChunk records following a recBegin (or a
// refused recCMA) record, waiting for space as the receiver drains them.
//
// Once begun, a frame is finished unless the receiver can take no more
// (waitMust): the receiver has handed the frame to its Sink (Buffer), and
// a frame abandoned halfway would leave the Sink waiting for a Deliver
// that never comes (a receive matched to it would hang). So this
// endpoint's own Close does not cut it short; Close waits for it.
func (e *Endpoint) sendChunks(o *outRing, payload []byte) error {
	for off := 0; off < len(payload); {
		c := min(e.chunk, len(payload)-off)
		size := uint64(recHdrSize + c)
		if _, err := e.reserve(o, size, waitMust, time.Time{}); err != nil {
			return err
		}
		copyIn(o.data, o.mask, o.tail+recHdrSize, payload[off:off+c])
		o.commit(size, recChunk)
		off += c
	}
	return nil
}

// sendCMA posts a descriptor of payload and waits until the receiver has
// read it (or refused, then sends it in chunks).
func (e *Endpoint) sendCMA(o *outRing, h *transport.Header, payload []byte) error {
	o.keep = payload // the receiver reads it: keep it reachable (and on the heap)
	defer func() { o.keep = nil }()
	o.seq++
	base := o.seq << cmaShift
	atomic.StoreUint32(o.ctl.cma, base|cmaPosted)
	const size = cmaRecSize
	pos, err := e.reserve(o, size, waitSend, time.Time{})
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	h.Put(o.data[pos+recHdrSize:])
	d := o.data[pos+recHdrSize+transport.HeaderSize:]
	le.PutUint64(d, sliceAddr(payload))
	le.PutUint32(d[8:], o.seq)
	le.PutUint32(d[12:], uint32(e.peers[e.me].pid)) // os.Getpid is a system call each time
	o.commit(size, recCMA)

	var st uint32
	helped := false
	finished := func() bool {
		st = atomic.LoadUint32(o.ctl.cma)
		if st == base|cmaSplit && !helped {
			// The receiver shares the copy: write chunks into its buffer.
			helped = true
			e.helpCopy(o, payload)
			st = atomic.LoadUint32(o.ctl.cma)
		}
		return st == base|cmaDone || st == base|cmaRefused
	}
	// Expect the copy to run at >= 4 GB/s before sleeping.
	spin := spinBudget + time.Duration(len(payload)/4)
	if err := e.waitOut(o, finished, waitSend, spin, time.Time{}); err != nil {
		// Withdraw the descriptor unless the receiver has claimed it.
		if atomic.CompareAndSwapUint32(o.ctl.cma, base|cmaPosted, base|cmaRevoked) {
			return err
		}
		// It is reading our payload: wait until it is done, or cannot be.
		if err := e.waitOut(o, finished, waitMust, 0, time.Time{}); err != nil {
			return err
		}
	}
	runtime.KeepAlive(payload)
	if st == base|cmaRefused {
		e.noCMA.Store(true) // for the rest of the job
		return e.sendChunks(o, payload)
	}
	return nil
}

// helpCopy is the sender's side of a split copy (state cmaSplit): it claims
// chunks of payload from the shared counter and writes each into the
// receiver's buffer with process_vm_writev, counting it in sdone. On a
// failure it hands that chunk back (sfail) for the receiver to read, and
// stops. It never leaves a claimed chunk unfinished. o.mu is held.
func (e *Endpoint) helpCopy(o *outRing, payload []byte) {
	if e.noWritev.Load() {
		return
	}
	c := o.ctl
	chunk := int(atomic.LoadUint32(c.chunk))
	dst := atomic.LoadUint64(c.dst)
	if chunk <= 0 || dst == 0 {
		return
	}
	nchunks := uint32((len(payload) + chunk - 1) / chunk)
	defer func() { o.liov[0].Base = nil }()
	for {
		k := atomic.AddUint32(c.next, 1) - 1
		if k >= nchunks {
			return
		}
		off := int(k) * chunk
		end := min(off+chunk, len(payload))
		o.liov[0].Base = &payload[off]
		o.liov[0].SetLen(end - off)
		o.riov[0] = unix.RemoteIovec{Base: uintptr(dst) + uintptr(off), Len: end - off}
		n, err := processVMWritev(o.p.pid, o.liov[:], o.riov[:], 0)
		if err == unix.EINTR {
			n, err = processVMWritev(o.p.pid, o.liov[:], o.riov[:], 0)
		}
		if err != nil || n != end-off {
			if err == unix.EPERM || err == unix.ENOSYS || err == unix.EACCES {
				e.noWritev.Store(true) // for the rest of the job
			}
			atomic.StoreUint32(c.sfail, k+1) // the receiver reads it itself
			atomic.AddUint32(c.sdone, 1)
			return
		}
		atomic.AddUint32(c.sdone, 1) // release: chunk k is written
	}
}

// Poll hands frames that have already arrived to the Sink from the calling
// goroutine, and reports whether it handed any. It never blocks: if another
// goroutine (or the endpoint's reader) is delivering, it returns false at
// once. While goroutines keep calling Poll, producers skip waking the
// reader. Poll must not be called from inside a Sink method.
func (e *Endpoint) Poll() bool { return e.poll(1) }

// PollAll is Poll that hands every frame that has arrived
// (transport.BatchPoller).
func (e *Endpoint) PollAll() bool { return e.poll(0) }

// poll is Poll and PollAll: it delivers at most max frames (0: all).
func (e *Endpoint) poll(max int) bool {
	if e.awake.Load() == 0 {
		e.awake.Store(1)
	}
	// The fast path of a spinning waiter: look without locking. Close
	// replaces the mapping by zero pages rather than unmapping it (see
	// release), so this reads valid memory even after Close.
	if atomic.LoadUint32(e.own.sleeping) == 0 && !e.anyReady() {
		// Look a few more times (about 20 ns with two ranks): callers
		// budget their spinning in Polls, and a frame that lands now is
		// seen within nanoseconds rather than after the caller's loop.
		for range e.peeks {
			if e.anyReady() {
				goto found
			}
		}
		return false
	}
found:
	if !e.pollMu.TryLock() {
		return false
	}
	if e.unmapped {
		e.pollMu.Unlock()
		return false
	}
	// If the reader sleeps, wake it now (once): it sees the Poll and naps
	// without announcing sleep, so that senders need not wake it.
	e.peers[e.me].ring()
	n := e.drainLocked(max)
	e.pollMu.Unlock()
	return n > 0
}

// drainLocked delivers the records published so far, at most max frames
// (0: all); pollMu is held. Poll delivers one frame a call: a waiter whose
// message that was returns at once, without first looking at the next
// record's header, a cache line the sender has just written (a miss that
// would sit between the arrival and the reply). Rings are visited from a
// rotating start, so a busy one cannot starve the others.
func (e *Endpoint) drainLocked(max int) int {
	n := 0
	k := len(e.in)
	for j := range k {
		i := e.next + j
		if i >= k {
			i -= k
		}
		r := &e.in[i]
		r.publishLag()
		if r.ready(r.head) && !r.p.gone.Load() {
			n += e.drainRing(r, max-n)
			if max > 0 && n >= max {
				if e.next = i + 1; e.next == k {
					e.next = 0
				}
				break
			}
		}
	}
	return n
}

// anyReady reports whether some ring may hold a committed record, without
// pollMu: it looks at the published head, which a drainer that holds
// pollMu may not have published yet (see pending), so it errs on the side
// of true.
func (e *Endpoint) anyReady() bool {
	for i := range e.in {
		r := &e.in[i]
		if r.ready(atomic.LoadUint64(r.ctl.head)) {
			return true
		}
	}
	return false
}

// ready reports whether a record is committed at absolute position pos,
// which must be where the consumer is (or was): the producer zeroes the
// header word there before it commits the record before it.
func (r *inRing) ready(pos uint64) bool {
	return atomic.LoadUint64(word64(r.data, int(pos&r.mask))) != 0
}

// pending reports whether any ring holds unconsumed records.
func (e *Endpoint) pending() bool {
	for i := range e.in {
		r := &e.in[i]
		// Without pollMu, a drainer may not have published head yet:
		// the header word at the old head is the consumed record's,
		// non-zero (the producer cannot overwrite it before head moves
		// on), so the answer errs on the side of true.
		if !r.p.gone.Load() && r.ready(atomic.LoadUint64(r.ctl.head)) {
			return true
		}
	}
	return false
}

// drainRing consumes the committed records of ring r, at most one ring's
// worth and at most max frames (max <= 0: no limit), and returns how many
// frames it delivered. pollMu is held.
func (e *Endpoint) drainRing(r *inRing, max int) int {
	n := e.drainRecords(r, max)
	r.publishLag()
	return n
}

// publishLag publishes head if it is ahead of what was published: records
// drained, or taken (Take publishes lazily, see takeRecord).
func (r *inRing) publishLag() {
	if r.head != r.pub {
		r.publishHead()
	}
}

// publishHead hands the space of the records consumed so far back to the
// producer.
func (r *inRing) publishHead() {
	r.pub = r.head
	atomic.StoreUint64(r.ctl.head, r.head) // release: done reading the records
	r.ctl.wakeProducer()
}

// drainRecords is drainRing's loop. It publishes head itself when a
// sixteenth of the ring has been consumed since the last time (so that a
// producer streaming chunks can refill the ring meanwhile); drainRing
// publishes the rest.
func (e *Endpoint) drainRecords(r *inRing, max int) int {
	ringBytes := r.mask + 1
	start := r.head
	delivered := 0
	for r.head-start < ringBytes && (max <= 0 || delivered < max) {
		pos := r.head & r.mask
		w := atomic.LoadUint64(word64(r.data, int(pos))) // acquire: the record is written
		if w == 0 {
			break
		}
		size, typ := uint32(w), byte(w>>32)
		if size < recHdrSize || uint64(size) > ringBytes-recAlign || w>>40 != 0 {
			e.protocolError(r, fmt.Errorf("record of %d bytes", size))
			return delivered
		}
		var (
			h       transport.Header
			buf     []byte
			deliver bool
			err     error
		)
		if typ != recChunk {
			err = h.Decode(r.data[pos+recHdrSize : pos+recHdrSize+transport.HeaderSize])
			if err == nil && (int(h.Src) != r.p.rank || int(h.Dst) != e.rank) {
				err = fmt.Errorf("frame from rank %d to rank %d", h.Src, h.Dst)
			}
			if err != nil {
				e.protocolError(r, err)
				return delivered
			}
			if r.active { // the sender gave up on its chunked frame
				r.active, r.buf = false, nil
			}
		}
		switch typ {
		case recFrame:
			if uint64(size) != recHdrSize+transport.HeaderSize+uint64(h.Len) {
				e.protocolError(r, fmt.Errorf("%s frame of %d bytes in a %d-byte record", h.Kind, h.Len, size))
				return delivered
			}
			deliver = true
			off := pos + recHdrSize + transport.HeaderSize
			end := off + uint64(h.Len)
			inPlace := h.Kind == transport.KindData && end <= ringBytes // the payload is contiguous in the ring
			if inPlace && e.bsink != nil && max != 1 {
				// This frame and the data frames right behind it, in
				// place, under one lock of the Sink's. The run consumes
				// their records itself.
				b := &e.batch
				*b = frameBatch{e: e, r: r, start: start, max: max, delivered: delivered, first: delivered, h: h, payload: r.data[off:end:end], size: uint64(size)}
				e.bsink.DeliverFrames(b)
				b.finish()
				delivered = b.delivered
				*b = frameBatch{}
				continue
			} else if inPlace && e.fsink != nil {
				// Hand it over in place, in one call.
				e.fsink.DeliverFrame(h, r.data[off:end:end])
				deliver = false
				delivered++
			} else if h.Kind == transport.KindData {
				buf = e.sink.Buffer(h)
				if len(buf) != int(h.Len) {
					e.protocolError(r, fmt.Errorf("sink returned a %d-byte buffer for a %d-byte frame", len(buf), h.Len))
					return delivered
				}
				copyOut(buf, r.data, r.mask, r.head+recHdrSize+transport.HeaderSize)
			}
		case recBegin:
			r.active, r.cur, r.off = true, h, 0
			r.buf = e.sink.Buffer(h)
			if len(r.buf) != int(h.Len) {
				e.protocolError(r, fmt.Errorf("sink returned a %d-byte buffer for a %d-byte frame", len(r.buf), h.Len))
				return delivered
			}
			if h.Len == 0 {
				h, buf, deliver = r.cur, r.buf, true
				r.active, r.buf = false, nil
			}
		case recChunk:
			c := int(size) - recHdrSize
			if !r.active || c > len(r.buf)-r.off {
				e.protocolError(r, fmt.Errorf("unexpected %d-byte chunk", c))
				return delivered
			}
			copyOut(r.buf[r.off:r.off+c], r.data, r.mask, r.head+recHdrSize)
			r.off += c
			if r.off == len(r.buf) {
				h, buf, deliver = r.cur, r.buf, true
				r.active, r.buf = false, nil
			}
		case recCMA:
			addr, seq := cmaDescriptor(r.data[pos+recHdrSize+transport.HeaderSize:])
			buf, deliver = e.readCMA(r, h, addr, seq)
		default:
			e.protocolError(r, fmt.Errorf("record type %d", typ))
			return delivered
		}
		r.head += align(uint64(size))
		if r.head-r.pub >= ringBytes/16 {
			r.publishHead()
		}
		if !deliver {
			continue
		}
		if h.Kind == transport.KindBye {
			// Nothing follows a Bye: the peer is gone, in order.
			r.p.err.CompareAndSwap(nil, &peerError{rank: r.p.rank, err: errPeerClosed})
			r.p.gone.Store(true)
		}
		e.sink.Deliver(h, buf)
		delivered++
		if h.Kind == transport.KindBye {
			return delivered
		}
	}
	return delivered
}

// batchMax bounds the frames of one FrameBatchSink.DeliverFrames call: the
// Sink may hold its lock throughout, and other goroutines wait for it (to
// post a receive). 64 is the window of the OSU-style bandwidth test.
const batchMax = 64

// frameBatch is the transport.FrameSource of one drainRecords run handed
// to a FrameBatchSink: the data frame drainRecords found (h, payload, size)
// and then every whole data frame right behind it in the ring, each
// contiguous there, up to what drainRecords may still deliver and at most
// batchMax in all. A record of any other kind, or anything drainRecords
// would have to report, ends the run and is left to drainRecords. pollMu
// is held throughout.
type frameBatch struct {
	e          *Endpoint
	r          *inRing
	start      uint64 // r.head when drainRecords began: it drains one ring's worth
	max        int    // drainRecords' limit (<= 0: none)
	delivered  int
	first      int // delivered when the run began
	h          transport.Header
	payload    []byte
	size       uint64 // record size of the frame handed out last, not yet consumed; 0: none
	handedHead bool   // h and payload (the first frame) were handed out
}

// NextFrame implements transport.FrameSource. The Sink has delivered the
// frame handed out before, so its record is consumed first.
func (b *frameBatch) NextFrame(h *transport.Header) ([]byte, bool) {
	if !b.handedHead {
		b.handedHead = true
		*h = b.h
		return b.payload, true
	}
	b.finish()
	r := b.r
	ringBytes := r.mask + 1
	if r.head-b.start >= ringBytes || (b.max > 0 && b.delivered >= b.max) || b.delivered-b.first >= batchMax {
		return nil, false
	}
	pos := r.head & r.mask
	w := atomic.LoadUint64(word64(r.data, int(pos))) // acquire: the record is written
	size := uint64(uint32(w))
	if byte(w>>32) != recFrame || w>>40 != 0 || size < recHdrSize+transport.HeaderSize || size > ringBytes-recAlign {
		return nil, false // nothing yet, another kind, or garbage for drainRecords to report
	}
	off := pos + recHdrSize
	if h.Decode(r.data[off:off+transport.HeaderSize]) != nil || h.Kind != transport.KindData ||
		int(h.Src) != r.p.rank || int(h.Dst) != b.e.rank || size != recHdrSize+transport.HeaderSize+uint64(h.Len) {
		return nil, false
	}
	off += transport.HeaderSize
	end := off + uint64(h.Len)
	if end > ringBytes {
		return nil, false // the payload wraps: drainRecords copies it
	}
	b.size = size
	return r.data[off:end:end], true
}

// finish consumes the record of the frame handed out last, which the Sink
// has delivered, publishing head as drainRecords does.
func (b *frameBatch) finish() {
	if !b.handedHead || b.size == 0 {
		return // the first frame was not handed out, or nothing is pending
	}
	r := b.r
	r.head += align(b.size)
	if r.head-r.pub >= (r.mask+1)/16 {
		r.publishHead()
	}
	b.size = 0
	b.delivered++
}

// cmaDescriptor decodes the payload's address and the sequence number from
// d, the {addr u64, seq u32, pid u32} descriptor of a recCMA record (the
// pid is the peer's, known from its segment).
func cmaDescriptor(d []byte) (addr uint64, seq uint32) {
	return binary.LittleEndian.Uint64(d), binary.LittleEndian.Uint32(d[8:])
}

// readCMA handles a cross-memory-attach descriptor: it claims it, reads the
// payload into the Sink's buffer and reports done, or refused (then the
// payload follows in chunks). It returns the buffer and whether the frame is
// complete.
func (e *Endpoint) readCMA(r *inRing, h transport.Header, addr uint64, seq uint32) ([]byte, bool) {
	base := seq << cmaShift
	if !atomic.CompareAndSwapUint32(r.ctl.cma, base|cmaPosted, base|cmaReading) {
		return nil, false // revoked by a sender that gave up
	}
	buf := e.sink.Buffer(h)
	if len(buf) != int(h.Len) {
		atomic.StoreUint32(r.ctl.cma, base|cmaDone) // release the sender
		e.protocolError(r, fmt.Errorf("sink returned a %d-byte buffer for a %d-byte frame", len(buf), h.Len))
		return nil, false
	}
	var err error = unix.EPERM
	if !e.noCMA.Load() {
		if len(buf) >= splitMin && splitChunk > 0 {
			err = e.splitRead(r, buf, addr, base)
		} else {
			err = r.readRemote(r.p.pid, buf, addr)
		}
		if err == unix.EPERM || err == unix.ENOSYS || err == unix.EACCES {
			e.noCMA.Store(true) // for the rest of the job
		}
	}
	if err != nil {
		// Refused (or failed): the sender sends the payload in chunks. If
		// it is dead instead, they never come and checkPeers reports it.
		atomic.StoreUint32(r.ctl.cma, base|cmaRefused)
		r.ctl.wakeProducer()
		r.active, r.cur, r.buf, r.off = true, h, buf, 0
		return nil, false
	}
	atomic.StoreUint32(r.ctl.cma, base|cmaDone)
	r.ctl.wakeProducer()
	return buf, true
}

// splitRead reads the payload at addr in the sender's memory into buf,
// sharing the copy with the sender: it publishes buf's address and a chunk
// size, announces cmaSplit, and both sides claim chunks from a shared
// counter, the receiver reading them (process_vm_readv), the sender writing
// them (process_vm_writev). Then it waits for the sender's chunks in flight
// and reads any chunk the sender could not write. A non-nil error means buf
// is incomplete (the caller answers refused: the sender then sends the
// whole payload through the ring, after its last write into buf). pollMu
// is held.
func (e *Endpoint) splitRead(r *inRing, buf []byte, addr uint64, base uint32) error {
	c := r.ctl
	chunk := int(min(max(roundUp(int64(len(buf)/splitParts), 4096), int64(splitChunkMin)), int64(splitChunk)))
	nchunks := uint32((len(buf) + chunk - 1) / chunk)
	// Published by the store of the state below; the sender loads them
	// only after it has seen cmaSplit with its own sequence number.
	atomic.StoreUint64(c.dst, sliceAddr(buf))
	atomic.StoreUint32(c.chunk, uint32(chunk))
	atomic.StoreUint32(c.next, 0)
	atomic.StoreUint32(c.sdone, 0)
	atomic.StoreUint32(c.sfail, 0)
	atomic.StoreUint32(c.cma, base|cmaSplit)
	c.wakeProducer()
	mine := uint32(0)
	for {
		k := atomic.AddUint32(c.next, 1) - 1
		if k >= nchunks {
			break
		}
		mine++
		off := int(k) * chunk
		end := min(off+chunk, len(buf))
		if err := r.readRemote(r.p.pid, buf[off:end], addr+uint64(off)); err != nil {
			atomic.AddUint32(c.next, nchunks) // the sender stops claiming
			return err
		}
	}
	// The sender finishes every chunk it claimed, or dies.
	want := nchunks - mine
	for i := 0; atomic.LoadUint32(c.sdone) != want; i++ {
		switch {
		case i < 100:
		case i&1023 == 0 && !r.p.alive():
			return errExited
		case i&7 == 0:
			sched.Yield() // the sender may be waiting for this core (not Gosched: see waitOut)
		}
	}
	if f := atomic.LoadUint32(c.sfail); f != 0 {
		off := int(f-1) * chunk
		end := min(off+chunk, len(buf))
		if err := r.readRemote(r.p.pid, buf[off:end], addr+uint64(off)); err != nil {
			return err
		}
	}
	runtime.KeepAlive(buf)
	return nil
}

// readRemote reads len(buf) bytes at addr in process pid into buf.
func (r *inRing) readRemote(pid int, buf []byte, addr uint64) error {
	defer func() { r.liov[0].Base = nil }()
	for off := 0; off < len(buf); {
		r.liov[0].Base = &buf[off]
		r.liov[0].SetLen(len(buf) - off)
		r.riov[0] = unix.RemoteIovec{Base: uintptr(addr) + uintptr(off), Len: len(buf) - off}
		n, err := processVMReadv(pid, r.liov[:], r.riov[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return unix.EFAULT
		}
		off += n
	}
	return nil
}

// protocolError drops a peer whose ring holds garbage: its frames stop and
// the Sink hears it is lost. pollMu is held.
func (e *Endpoint) protocolError(r *inRing, err error) {
	pe := &peerError{rank: r.p.rank, err: fmt.Errorf("%w: %w", errProtocol, err)}
	r.active, r.buf = false, nil
	if r.p.err.CompareAndSwap(nil, pe) {
		r.p.gone.Store(true)
		if !e.closed.Load() {
			// Under pollMu, like Buffer and Deliver: no Sink call waits on it.
			e.sink.PeerLost(r.p.rank, pe)
		}
	}
}

// run is the reader goroutine: it drains the rings and sleeps on the
// doorbell while they are empty and nobody polls.
func (e *Endpoint) run() {
	defer e.wg.Done()
	lastCheck := time.Now()
	for !e.stop.Load() {
		// Never block on pollMu: a sync.Mutex hands itself to a waiter
		// that may have no P to run on, and the pollers spinning on
		// TryLock would fail until the scheduler gets to it. Failing to
		// get it means somebody is polling: treat that as awake.
		n, busy := 0, true
		if e.pollMu.TryLock() {
			n, busy = e.drainLocked(0), false
			e.pollMu.Unlock()
		}
		if e.checkReq.Swap(false) || time.Since(lastCheck) >= peerCheck {
			e.checkPeers()
			lastCheck = time.Now()
		}
		if n > 0 {
			continue
		}
		if e.awake.Swap(0) != 0 || busy {
			// Somebody polls: nap without announcing sleep, so that
			// senders need not wake us, and look again. A Go timer, not a
			// futex: a goroutine in a blocking system call keeps its P
			// (stalling the goroutines queued on it) until sysmon retakes
			// it, which can take milliseconds.
			time.Sleep(leaseNap)
			continue
		}
		atomic.StoreUint32(e.own.sleeping, 1)
		// Check after announcing sleep: a producer that published before
		// our store is seen here, one that publishes after sees sleeping=1
		// and writes to the bell, which ends the Read below.
		if e.stop.Load() || e.awake.Load() != 0 || e.checkReq.Load() || e.pending() {
			atomic.CompareAndSwapUint32(e.own.sleeping, 1, 0)
			continue
		}
		// The bell is a FIFO in the netpoller: the goroutine parks without
		// holding a P (a futex system call would hold it).
		_ = e.bell.SetReadDeadline(time.Now().Add(max(peerCheck-time.Since(lastCheck), time.Millisecond)))
		_, _ = e.bell.Read(e.bellBuf[:])
		atomic.CompareAndSwapUint32(e.own.sleeping, 1, 0)
	}
}

// checkPeers reports peers whose process exited, or whose segment closed
// without a Bye, as lost: after delivering every frame they published.
func (e *Endpoint) checkPeers() {
	for i, p := range e.peers {
		if p.isMe || p.gone.Load() {
			continue
		}
		var cause error
		switch {
		case !p.alive():
			cause = errExited
		case atomic.LoadUint32(p.seg.state) == stateClosed:
			cause = errNoBye
		default:
			continue
		}
		pe := &peerError{rank: p.rank, err: cause}
		e.pollMu.Lock()
		if !e.unmapped && !p.gone.Load() {
			e.drainRing(&e.in[i], 0)
		}
		report := p.err.CompareAndSwap(nil, pe)
		p.gone.Store(true)
		e.pollMu.Unlock()
		if report && !e.closed.Load() {
			e.sink.PeerLost(p.rank, pe)
		}
	}
}

// Close sends KindBye to every local peer still there (after the frames
// already sent), stops the reader goroutine and waits for it, marks the
// segment closed, unmaps everything and removes the segment file if Unlink
// was not called. Sends after Close fail with ErrClosed; the Sink gets no
// call after Close returns. Close is idempotent and safe to call
// concurrently; it must not be called from inside a Sink method. A Send
// that a peer is reading from keeps Close waiting until that peer is done
// (or gone).
func (e *Endpoint) Close() error {
	e.closeOnce.Do(e.shutdown)
	return nil
}

func (e *Endpoint) shutdown() {
	e.attachMu.Lock()
	e.closed.Store(true)
	attached := e.attached.Load()
	e.attachMu.Unlock()
	if attached {
		deadline := time.Now().Add(closeTimeout)
		for i := range e.out {
			o := &e.out[i]
			o.mu.Lock()
			if !o.p.isMe && e.usable(o.p) == nil {
				const size = recHdrSize + transport.HeaderSize
				h := transport.Header{Kind: transport.KindBye, Src: int32(e.rank), Dst: int32(o.p.rank)}
				if pos, err := e.reserve(o, size, waitMust, deadline); err == nil {
					h.Put(o.data[pos+recHdrSize:])
					o.commit(size, recFrame)
				}
			}
			o.closed = true
			o.mu.Unlock()
		}
		e.stop.Store(true)
		e.peers[e.me].kick()
		e.wg.Wait()
	}
	e.pollMu.Lock()
	e.unmapped = true
	atomic.StoreUint32(e.own.state, stateClosed)
	for i := range e.in {
		e.in[i].buf = nil
	}
	e.pollMu.Unlock()
	e.releasePeers()
	release(e, e.own.mem)
	_ = e.bell.Close()
	if fd := e.peers[e.me].bellFd; fd >= 0 {
		_ = unix.Close(fd)
	}
	_ = e.Unlink()
}
