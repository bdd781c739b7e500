package mpi

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
	"github.com/gorun-hpc/gorun/runtime/transport"
	"github.com/gorun-hpc/gorun/runtime/transport/inproc"
	"github.com/gorun-hpc/gorun/runtime/transport/loopback"
	"github.com/gorun-hpc/gorun/runtime/transport/shm"
	"github.com/gorun-hpc/gorun/runtime/transport/tcp"
)

// A Store is the key-value exchange Init uses to publish this rank's
// endpoints and look up its peers'. *rendezvous.Client and
// *rendezvous.MemStore satisfy it.
type Store interface {
	// Set publishes value under key.
	Set(ctx context.Context, key string, value []byte) error
	// Get returns the value of key, waiting until some rank has set it.
	Get(ctx context.Context, key string) ([]byte, error)
	// Fence returns once every rank of the job has called it.
	Fence(ctx context.Context) error
}

// InProcess configures a world whose ranks are goroutines of one process,
// connected through an inproc.Hub: the way package mpitest runs tests, and a
// way for users to unit-test parallel code without a launcher.
type InProcess struct {
	Hub        *inproc.Hub // shared by all ranks of the job
	Store      Store       // shared by all ranks, e.g. rendezvous.NewMemStore(Size)
	Rank, Size int
	// Job, when done, aborts the job: every pending and later operation
	// fails with ErrAborted. Optional.
	Job context.Context
	// OnAbort is called when a rank calls Abort. Optional.
	OnAbort func(rank, code int, msg string)
}

// An Option configures Init.
type Option func(*config)

type config struct {
	inproc *InProcess
}

// WithInProcess makes Init join an in-process job instead of reading the
// launcher's environment.
func WithInProcess(p InProcess) Option {
	return func(c *config) { c.inproc = &p }
}

// peerInfo is what each rank publishes in the store under "rank/<r>".
type peerInfo struct {
	Host      string `msgpack:"host"`
	PID       int    `msgpack:"pid"`
	TCP       string `msgpack:"tcp"`
	ByteOrder uint8  `msgpack:"bo"`
	IntSize   uint8  `msgpack:"is"`
}

func peerKey(rank int) string { return "rank/" + strconv.Itoa(rank) }

// world is the state shared by every communicator of one process.
type world struct {
	rank, size           int
	localRank, localSize int
	host, job            string
	inproc               string // in-process job: unique name prefix of its regions; "" otherwise

	eng       *engine
	routes    []transport.Endpoint // by world rank
	shmRoutes []*shm.Endpoint      // by world rank: routes[r] when it is shared memory, else nil
	via       []string             // by world rank: the transport's name, for GORUN_DEBUG=routes
	endpoints []transport.Endpoint // every endpoint, for Close
	pollers   []transport.Poller   // endpoints waiters poll; fixed after Init
	// allPollers are pollers too, one per endpoint of pollers, each handing
	// every frame that has arrived (PollAll where the transport has it),
	// for waits that need them all (WaitAll, Iprobe).
	allPollers []transport.Poller
	// netPollers are the pollers other than shared memory, which
	// recvDirect polls in its own way.
	netPollers []transport.Poller
	failersMu  sync.Mutex
	failers    []transport.PeerFailer // endpoints told of peers the launcher reports gone
	store      Store
	client     *rendezvous.Client // nil unless launched
	onAbort    func(code int, msg string)
	comm       *Comm // the world communicator

	jobCtx    context.Context // done when the job aborts or the world closes
	jobCancel context.CancelFunc
	watch     sync.WaitGroup // the job watcher goroutine

	// oversubscribed: this host runs more of the job's ranks than it has
	// CPUs, so waiters yield instead of spinning (see wait).
	oversubscribed bool

	peersMu sync.Mutex
	peers   map[int]peerInfo

	nextCtx   atomic.Uint32  // lowest context id free in this process (pairs: p2p, collective)
	started   sync.WaitGroup // goroutines of Start; joined by close
	finalized atomic.Bool
	closeOnce sync.Once
}

func (w *world) route(r int) transport.Endpoint { return w.routes[r] }

// Init joins the job this process was started in and returns the world
// communicator, which holds every rank (MPI_COMM_WORLD).
//
// Under gorun, Init reads the launcher's environment (GORUN_RANK, …),
// proves the job token to the launcher's rendezvous, publishes this rank's
// endpoints and waits until every rank has done the same. Without a launcher
// (go run ./prog) it returns a world of size 1, so every program also runs
// alone. ctx bounds Init only.
//
// On a host that runs more of the job's ranks than it has CPUs, Init sets
// GOMAXPROCS to 1 (each rank gets less than a CPU anyway, and fewer runtime
// threads then compete for it), unless the GOMAXPROCS environment variable
// is set.
//
// Call Finalize on the returned communicator before the program exits.
func Init(ctx context.Context, opts ...Option) (*Comm, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	var (
		w   *world
		err error
	)
	switch {
	case cfg.inproc != nil:
		w, err = initInProcess(ctx, cfg.inproc)
	case os.Getenv(rendezvous.EnvAddr) != "":
		w, err = initLaunched(ctx)
	default:
		w, err = initSingleton()
	}
	if err != nil {
		return nil, &Error{Op: "init", Rank: 0, Peer: none, Tag: none, Err: err}
	}
	return w.comm, nil
}

func newWorld(rank, size int) *world {
	w := &world{rank: rank, size: size, localRank: rank, localSize: size,
		routes: make([]transport.Endpoint, size), via: make([]string, size)}
	w.jobCtx, w.jobCancel = context.WithCancel(context.Background())
	w.nextCtx.Store(2) // the world communicator uses contexts 0 and 1
	w.eng = newEngine(w, size)
	self := loopback.New(rank, w.eng)
	w.routes[rank], w.via[rank] = self, "self"
	w.addEndpoint(self)
	w.comm = newComm(w, 0, rank, nil)
	return w
}

func initSingleton() (*world, error) {
	w := newWorld(0, 1)
	w.host, _ = os.Hostname()
	w.store = nil
	return w, nil
}

func initInProcess(ctx context.Context, p *InProcess) (*world, error) {
	if p.Hub == nil || p.Store == nil {
		return nil, errors.New("mpi: InProcess needs a Hub and a Store")
	}
	if p.Size < 1 || p.Rank < 0 || p.Rank >= p.Size {
		return nil, fmt.Errorf("%w: rank %d of size %d", ErrRank, p.Rank, p.Size)
	}
	w := newWorld(p.Rank, p.Size)
	w.host = "inproc"
	w.job = "inproc"
	// Names this job's shared-memory regions apart from other in-process
	// jobs of this process and other processes (see AllocShared).
	w.inproc = fmt.Sprintf("inproc%d.%p", os.Getpid(), p.Store)
	w.store = p.Store
	ep := p.Hub.Endpoint(p.Rank, w.eng)
	w.addEndpoint(ep)
	w.setRoutes(ep, "inproc", nil)
	if p.OnAbort != nil {
		rank := p.Rank
		w.onAbort = func(code int, msg string) { p.OnAbort(rank, code, msg) }
	}
	if p.Job != nil {
		job := p.Job
		w.watch.Add(1)
		go func() { // exits when the job ends or the world closes; joined by close
			defer w.watch.Done()
			select {
			case <-job.Done():
				w.abort(fmt.Errorf("%w: %w", ErrAborted, context.Cause(job)))
			case <-w.jobCtx.Done():
			}
		}()
	}
	if err := w.store.Fence(ctx); err != nil {
		w.close()
		return nil, fmt.Errorf("mpi: init fence: %w", err)
	}
	return w, nil
}

// envInt reads an integer environment variable set by the launcher.
func envInt(name string) (int, error) {
	v := os.Getenv(name)
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %s=%q is not a number (was this process started by gorun?)", ErrNotLaunched, name, v)
	}
	return n, nil
}

func initLaunched(ctx context.Context) (*world, error) {
	rank, err := envInt(rendezvous.EnvRank)
	if err != nil {
		return nil, err
	}
	size, err := envInt(rendezvous.EnvSize)
	if err != nil {
		return nil, err
	}
	if size < 1 || rank < 0 || rank >= size {
		return nil, fmt.Errorf("%w: %s=%d, %s=%d", ErrNotLaunched, rendezvous.EnvRank, rank, rendezvous.EnvSize, size)
	}
	token, err := hex.DecodeString(os.Getenv(rendezvous.EnvToken))
	if err != nil || len(token) == 0 {
		return nil, fmt.Errorf("%w: %s is missing or not hex", ErrNotLaunched, rendezvous.EnvToken)
	}
	w := newWorld(rank, size)
	w.localRank, w.localSize = rank, size
	if lr, err := envInt(rendezvous.EnvLocalRank); err == nil {
		w.localRank = lr
	}
	if ls, err := envInt(rendezvous.EnvLocalSize); err == nil {
		w.localSize = ls
	}
	w.oversubscribed = w.localSize > goruntime.NumCPU()
	if w.oversubscribed && os.Getenv("GOMAXPROCS") == "" {
		// Each rank gets less than a CPU: one P means fewer runtime
		// threads waking to compete for it (small collectives with 8
		// ranks on 2 cores ran about 15% faster). GOMAXPROCS set by the
		// user (gorun -x GOMAXPROCS=4) wins.
		goruntime.GOMAXPROCS(1)
	}
	w.host = os.Getenv(rendezvous.EnvHost)
	if w.host == "" {
		w.host, _ = os.Hostname()
	}
	w.job = os.Getenv(rendezvous.EnvJob)

	client, err := rendezvous.Dial(ctx, rendezvous.ClientConfig{
		Addr:    os.Getenv(rendezvous.EnvAddr),
		Token:   token,
		Rank:    rank,
		OnEvent: w.event,
	})
	if err != nil {
		w.close()
		return nil, fmt.Errorf("mpi: reach the launcher at %s: %w", os.Getenv(rendezvous.EnvAddr), err)
	}
	w.client = client
	w.store = client
	w.onAbort = func(code int, msg string) {
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The launcher ends the job; if it cannot be told, exiting still ends this rank.
		_ = client.Abort(actx, code, msg)
	}

	laddr, err := listenAddr(os.Getenv(rendezvous.EnvAddr), os.Getenv(rendezvous.EnvNet))
	if err != nil {
		w.close()
		return nil, err
	}
	ep, err := tcp.Listen(ctx, tcp.Config{
		Rank:    rank,
		Token:   token,
		Sink:    w.eng,
		Listen:  laddr,
		Resolve: w.resolveTCP,
	})
	if err != nil {
		w.close()
		return nil, fmt.Errorf("mpi: listen: %w", err)
	}
	w.addEndpoint(ep)
	w.setRoutes(ep, "tcp", nil)
	info, err := msgpack.Marshal(peerInfo{
		Host: w.host, PID: os.Getpid(), TCP: ep.Addr(),
		ByteOrder: hostByteOrder(), IntSize: strconv.IntSize,
	})
	if err != nil {
		w.close()
		return nil, fmt.Errorf("mpi: encode endpoint: %w", err)
	}
	if err := client.Set(ctx, peerKey(rank), info); err != nil {
		w.close()
		return nil, fmt.Errorf("mpi: publish endpoint: %w", err)
	}
	if err := client.Fence(ctx); err != nil {
		w.close()
		return nil, fmt.Errorf("mpi: init fence: %w", err)
	}
	if err := w.setupShm(ctx); err != nil {
		w.close()
		return nil, err
	}
	w.debugRoutes()
	return w, nil
}

// setRoutes routes every peer for which only(r) is true (all when only is
// nil), other than the own rank, through ep.
func (w *world) setRoutes(ep transport.Endpoint, name string, only func(r int) bool) {
	for r := range w.routes {
		if r != w.rank && (only == nil || only(r)) {
			w.routes[r], w.via[r] = ep, name
		}
	}
}

// debugRoutes prints the transport chosen for every peer when GORUN_DEBUG
// includes "routes".
func (w *world) debugRoutes() {
	if !slices.Contains(strings.Split(os.Getenv(rendezvous.EnvDebug), ","), "routes") {
		return
	}
	var b strings.Builder
	for r, name := range w.via {
		fmt.Fprintf(&b, "mpi: route %d->%d %s\n", w.rank, r, name)
	}
	os.Stderr.WriteString(b.String())
}

// event handles a launcher event; it runs on the rendezvous client's reader.
func (w *world) event(ev rendezvous.Event) {
	switch ev.Kind {
	case rendezvous.EventRankFailed:
		err := fmt.Errorf("%w: rank %d failed: %s", ErrPeerLost, ev.Rank, ev.Text)
		w.eng.mu.Lock()
		w.eng.loseLocked(ev.Rank, err)
		w.eng.unlock()
		w.failPeer(ev.Rank, err)
	case rendezvous.EventAbort:
		w.abort(fmt.Errorf("%w: %s", ErrAborted, ev.Text))
	case rendezvous.EventLost:
		w.abort(fmt.Errorf("%w: lost the connection to the launcher", ErrAborted))
	}
}

// reportLost tells the launcher that this rank lost peer, before the loss
// fails any operation. It is a no-op after Finalize, when peers closing
// their connections is expected, and without a launcher.
func (w *world) reportLost(peer int) {
	if w.client == nil || w.finalized.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// If the launcher cannot be told, it is gone or ending the job anyway.
	_ = w.client.ReportLost(ctx, peer)
}

// peer returns rank's published endpoint information.
func (w *world) peer(ctx context.Context, rank int) (peerInfo, error) {
	w.peersMu.Lock()
	info, ok := w.peers[rank]
	w.peersMu.Unlock()
	if ok {
		return info, nil
	}
	b, err := w.store.Get(ctx, peerKey(rank))
	if err != nil {
		return peerInfo{}, fmt.Errorf("mpi: look up rank %d: %w", rank, err)
	}
	if err := msgpack.Unmarshal(b, &info); err != nil {
		return peerInfo{}, fmt.Errorf("mpi: rank %d published a bad endpoint: %w", rank, err)
	}
	if info.ByteOrder != hostByteOrder() || int(info.IntSize) != strconv.IntSize {
		return peerInfo{}, fmt.Errorf("mpi: rank %d on %s has another byte order or int size; gorun needs alike machines", rank, info.Host)
	}
	w.peersMu.Lock()
	if w.peers == nil {
		w.peers = make(map[int]peerInfo)
	}
	w.peers[rank] = info
	w.peersMu.Unlock()
	return info, nil
}

func (w *world) resolveTCP(ctx context.Context, rank int) (string, error) {
	info, err := w.peer(ctx, rank)
	if err != nil {
		return "", err
	}
	return info.TCP, nil
}

// abort ends the job for this process: every pending and later operation
// fails with err, also a Send still waiting for a connection (say, to a
// host the launcher has just reported lost).
func (w *world) abort(err error) {
	w.eng.abort(err)
	w.failPeer(-1, err)
	w.jobCancel()
}

// close releases the world's endpoints and goroutines. Idempotent.
func (w *world) close() {
	w.closeOnce.Do(func() {
		w.jobCancel()
		for _, ep := range w.endpoints {
			// Close errors at shutdown leave nothing to act on.
			_ = ep.Close()
		}
		w.eng.acks.Wait()
		w.watch.Wait()
		w.started.Wait()
		if w.client != nil {
			_ = w.client.Close()
		}
	})
}

// Finalize ends this process's part in the job. It is collective: it returns
// once every rank has called it, so no rank tears down its endpoints while
// another may still send to it. It must be called on the world communicator;
// later calls return nil. Operations after Finalize fail with ErrFinalized.
func (c *Comm) Finalize() error {
	w := c.w
	if c != w.comm {
		return c.errorf("finalize", none, none, errors.New("mpi: Finalize must be called on the world communicator from Init"))
	}
	if !w.finalized.CompareAndSwap(false, true) {
		return nil
	}
	defer w.close()
	if w.store == nil {
		return nil
	}
	if err := w.store.Fence(w.jobCtx); err != nil {
		if w.jobCtx.Err() != nil {
			err = w.eng.abortedErr()
		}
		return c.errorf("finalize", none, none, err)
	}
	if w.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.client.Finalize(ctx); err != nil {
			return c.errorf("finalize", none, none, err)
		}
	}
	return nil
}

func (e *engine) abortedErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.aborted != nil {
		return e.aborted
	}
	return ErrAborted
}

// Abort ends the whole job: the launcher prints msg, stops every rank and
// exits with code. Under a launcher, or alone, Abort does not return: the
// process exits with code. In an in-process job (mpitest), Abort fails every
// pending operation of every rank with ErrAborted and returns that error.
func (c *Comm) Abort(code int, msg string) error {
	w := c.w
	err := fmt.Errorf("%w: rank %d called Abort(%d): %s", ErrAborted, c.rank, code, msg)
	if w.onAbort != nil {
		w.onAbort(code, msg)
	}
	w.abort(err)
	if w.client != nil || w.store == nil {
		if w.store == nil {
			fmt.Fprintf(os.Stderr, "mpi: Abort(%d): %s\n", code, msg)
		}
		os.Exit(code)
	}
	return c.errorf("abort", none, none, err)
}
