package mpi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
)

// A Request is a non-blocking operation in progress, returned by Isend,
// Issend and Irecv. Complete it with Wait, WaitContext, Test, WaitAll or
// WaitAny. A Request may be waited on from one goroutine at a time; after it
// completed, Wait returns the same result again.
//
// A Request is 64 bytes, allocated by Irecv in blocks of requestSlab (Isend
// returns a shared one): keep it so, since small messages are sent many at
// a time.
type Request struct {
	r      *request // nil when the operation completed at once, or once finished
	status Status
	err    error
}

// closed is a channel that is always ready, for requests complete at birth.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// doneCh returns a channel that is ready once the request completed, for
// select. It marks the request parked, so completion sends the token; the
// token may be taken only once, and finish caches the outcome after that.
func (q *Request) doneCh() <-chan struct{} {
	if q.r == nil {
		return closed
	}
	if q.r.state.CompareAndSwap(statePending, stateParked) || q.r.state.Load() == stateParked {
		q.r.selected = true
		return q.r.done
	}
	return closed // done
}

// finish copies the outcome out of the completed internal request and,
// unless a select may still be owed its completion token, returns the
// internal request to its world's free list.
func (q *Request) finish() (Status, error) {
	if r := q.detach(); r != nil {
		r.release()
	}
	return q.status, q.err
}

// detach is finish without the release: it returns the internal request
// for the caller to release (nil if there is none to release).
func (q *Request) detach() *request {
	r := q.r
	if r == nil {
		return nil
	}
	q.status, q.err = r.status, r.err
	q.r = nil
	if r.selected {
		return nil // a select may still be owed its completion token
	}
	// Nobody else holds r: the engine dropped it before it completed r,
	// and a waiter that parked took its token.
	return r
}

// Wait blocks until the operation completes and returns its Status (for
// receives) and error.
func (q *Request) Wait() (Status, error) {
	if q.r != nil {
		q.r.comm.w.wait(q.r)
	}
	return q.finish()
}

// WaitContext is Wait that gives up when ctx ends. A receive that has not
// matched a message by then is cancelled and returns ctx's error; a send, or
// a receive already matched, is waited for to the end, since its bytes are
// in flight.
func (q *Request) WaitContext(ctx context.Context) (Status, error) {
	// Spin and poll first, as Wait does, until the request completes or
	// ctx ends: a completion microseconds away then costs no goroutine
	// wake-up.
	if q.r != nil && spinUntil(q.r.comm.w, ctxDone{q.r, ctx}, false) && q.r.isDone() {
		return q.finish()
	}
	select {
	case <-q.doneCh():
		return q.finish()
	case <-ctx.Done():
	}
	if q.r != nil && !q.r.isSend() {
		if q.r.comm.w.eng.cancel(q.r, fmt.Errorf("mpi: wait: %w", context.Cause(ctx))) {
			return q.finish()
		}
	}
	return q.Wait()
}

func (r *request) isSend() bool { return r.op == "issend" || r.op == "ssend" }

// Test reports whether the operation has completed, and if so its Status
// and error. It never blocks.
func (q *Request) Test() (bool, Status, error) {
	if q.r != nil && !q.r.isDone() {
		q.r.comm.w.poll()
		if !q.r.isDone() {
			return false, Status{}, nil
		}
	}
	st, err := q.finish()
	return true, st, err
}

// WaitAll waits for every request. The error joins the errors of the
// requests that failed (nil when none did). Nil requests are skipped. A
// request's Status is its Wait's, which returns it again at once: WaitAll
// allocates nothing for the statuses that most callers ignore.
func WaitAll(reqs ...*Request) error {
	var (
		errs []error
		done releaser // the internal requests, released a batch at a time
	)
	for _, q := range reqs {
		if q == nil {
			continue
		}
		if q.r != nil {
			q.r.comm.w.waitFor(q.r, true)
		}
		done.add(q.detach())
		if q.err != nil {
			errs = append(errs, q.err)
		}
	}
	done.flush()
	return errors.Join(errs...)
}

// WaitAny waits until one of reqs completes and returns its index, Status
// and error. Nil requests are skipped; with no non-nil request it returns
// index -1 at once.
func WaitAny(reqs ...*Request) (int, Status, error) {
	// Spin and poll first, as Wait does: a completion microseconds away
	// then costs no goroutine wake-up.
	var w *world
	for _, q := range reqs {
		if q != nil && q.r != nil {
			w = q.r.comm.w
			break
		}
	}
	if w != nil && spinUntil(w, anyDone(reqs), false) {
		i := anyDone(reqs).first()
		st, err := reqs[i].finish()
		return i, st, err
	}
	cases := make([]reflect.SelectCase, 0, len(reqs))
	idx := make([]int, 0, len(reqs))
	for i, q := range reqs {
		if q == nil {
			continue
		}
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(q.doneCh())})
		idx = append(idx, i)
	}
	if len(cases) == 0 {
		return -1, Status{}, nil
	}
	chosen, _, _ := reflect.Select(cases)
	i := idx[chosen]
	st, err := reqs[i].finish()
	return i, st, err
}

// ctxDone is WaitContext's spinning condition: the request completed or
// the context ended (the spinning restarts while frames arrive, so it must
// look at ctx itself).
type ctxDone struct {
	r   *request
	ctx context.Context
}

func (d ctxDone) isDone() bool { return d.r.isDone() || d.ctx.Err() != nil }

// anyDone is WaitAny's condition: some request has completed (or completed
// at birth, or was finished already).
type anyDone []*Request

func (a anyDone) isDone() bool { return a.first() >= 0 }

// first returns the index of the first completed request, or -1.
func (a anyDone) first() int {
	for i, q := range a {
		if q != nil && (q.r == nil || q.r.isDone()) {
			return i
		}
	}
	return -1
}

// Isend starts sending buf to dst with tag and returns a Request. buf must
// not be modified until the request completes. Messages are buffered at the
// receiver, so an Isend completes without waiting for a matching receive.
func Isend[T Numeric](c *Comm, buf []T, dst, tag int) (*Request, error) {
	if err := Send(c, buf, dst, tag); err != nil {
		return nil, err
	}
	return sent, nil
}

// sent is the Request of every Isend: it completed at once without error.
// Its methods never modify a Request whose operation completed at birth, so
// it is shared.
var sent = &Request{}

// Issend starts a synchronous-mode send: the request completes when the
// receiver has matched the message.
func Issend[T Numeric](c *Comm, buf []T, dst, tag int) (*Request, error) {
	r, err := c.ssend("issend", asBytes(buf), typeCode[T](), dst, tag)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return &Request{}, nil
	}
	return &Request{r: r}, nil
}

// Irecv starts receiving into buf from src (or AnySource) with tag (or
// AnyTag) and returns a Request. buf must not be read or modified until the
// request completes. Errors are those of Recv.
func Irecv[T Numeric](c *Comm, buf []T, src, tag int) (*Request, error) {
	if null, err := c.checkRecv("irecv", src, tag); err != nil || null {
		if err != nil {
			return nil, err
		}
		return &Request{status: procNullStatus()}, nil
	}
	return c.w.eng.irecv(c, src, tag, asBytes(buf), typeCode[T]()), nil
}

// Start runs fn on its own goroutine and returns a Request that completes,
// with fn's error, when fn returns. It is how non-blocking operations built
// from blocking ones (package collectives' Ibcast, Iallreduce…) return a
// Request. fn must end when the job aborts (blocking calls on c do);
// Finalize waits for it.
func Start(c *Comm, fn func() error) *Request {
	r := newRequest(c, "start", none, none)
	w := c.w
	w.started.Add(1)
	go func() { // exits when fn returns; joined by world.close
		defer w.started.Done()
		r.fail(fn())
	}()
	return &Request{r: r}
}
