// Package mpitest runs the ranks of a parallel program as goroutines of one
// test process, connected by an in-process transport. Use it to unit-test
// code written against package mpi without a launcher:
//
//	func TestHalo(t *testing.T) {
//		mpitest.Run(t, 4, func(c *mpi.Comm) error {
//			return exchangeHalo(c, grid)
//		})
//	}
//
// Ranks report failures by returning errors, never by calling t.Fatal from
// their goroutines; the first failure aborts the other ranks (their pending
// operations fail with mpi.ErrAborted) so a broken test ends instead of
// hanging.
package mpitest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/transport/inproc"
)

// Run runs fn as n ranks of one job, each on its own goroutine with its own
// world communicator, and fails t with the first error a rank returns
// ("rank 2: …"). Finalize is called for each rank after fn returns. Run
// returns when every rank has finished.
func Run(t testing.TB, n int, fn func(c *mpi.Comm) error) {
	t.Helper()
	if err := Go(t.Context(), n, fn); err != nil {
		t.Fatal(err)
	}
}

// Go is Run without a testing.TB: it returns the first rank's error.
func Go(ctx context.Context, n int, fn func(c *mpi.Comm) error) error {
	if n < 1 {
		return fmt.Errorf("mpitest: %d ranks; need at least 1", n)
	}
	job, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hub := inproc.NewHub(n)
	store := rendezvous.NewMemStore(n)
	g := new(errgroup.Group)
	errs := make([]error, n)
	for rank := range n {
		g.Go(func() error { // exits when fn and Finalize return; joined by g.Wait
			err := runRank(ctx, job, hub, store, rank, n, cancel, fn)
			errs[rank] = err
			return err
		})
	}
	_ = g.Wait() // errors are collected per rank below
	// Report the root cause: the first rank whose error is not a mere abort.
	for rank, err := range errs {
		if err != nil && !errors.Is(err, mpi.ErrAborted) {
			return fmt.Errorf("rank %d: %w", rank, err)
		}
	}
	for rank, err := range errs {
		if err != nil {
			return fmt.Errorf("rank %d: %w", rank, err)
		}
	}
	return nil
}

func runRank(ctx, job context.Context, hub *inproc.Hub, store *rendezvous.MemStore, rank, n int,
	cancel context.CancelCauseFunc, fn func(c *mpi.Comm) error) (err error) {
	c, err := mpi.Init(ctx, mpi.WithInProcess(mpi.InProcess{
		Hub: hub, Store: store, Rank: rank, Size: n, Job: job,
		OnAbort: func(r, code int, msg string) {
			cancel(fmt.Errorf("rank %d called Abort(%d): %s", r, code, msg))
		},
	}))
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
		if err != nil {
			// Abort the others before Finalize, which waits for every
			// rank: ranks blocked on this one must fail, not hang.
			cancel(fmt.Errorf("rank %d failed: %w", rank, err))
		}
		if ferr := c.Finalize(); err == nil {
			err = ferr
		}
	}()
	return fn(c)
}
