package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestMemStoreSetGet(t *testing.T) {
	m := NewMemStore(2)
	ctx := testCtx(t)
	val := []byte("v1")
	if err := m.Set(ctx, "k", val); err != nil {
		t.Fatal(err)
	}
	val[0] = 'X' // Set copied it
	v, err := m.Get(ctx, "k")
	if err != nil || string(v) != "v1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	v[0] = 'Y' // Get returned a copy
	if v, _ := m.Get(ctx, "k"); string(v) != "v1" {
		t.Fatalf("store aliased a returned slice: %q", v)
	}
	if err := m.Set(ctx, "", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Set(\"\") = %v, want ErrInvalid", err)
	}
	if err := m.Set(ctx, "big", make([]byte, MaxValueLen+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Set(big) = %v, want ErrInvalid", err)
	}
}

func TestMemStoreGetBlocksAndCancels(t *testing.T) {
	m := NewMemStore(2)
	ctx := testCtx(t)
	got := make(chan []byte, 1)
	go func() { // exits when Get returns
		v, _ := m.Get(ctx, "late")
		got <- v
	}()
	if err := m.Set(ctx, "late", []byte("now")); err != nil {
		t.Fatal(err)
	}
	if v := <-got; string(v) != "now" {
		t.Fatalf("Get = %q", v)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Get(cctx, "never"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get = %v, want context.Canceled", err)
	}
}

func TestMemStoreFenceReuse(t *testing.T) {
	const n, rounds = 6, 20
	m := NewMemStore(n)
	ctx := testCtx(t)
	onRanks(t, n, func(r int) error {
		for round := range rounds {
			if err := m.Set(ctx, fmt.Sprint(r), []byte(fmt.Sprint(round))); err != nil {
				return err
			}
			if err := m.Fence(ctx); err != nil {
				return err
			}
			for p := range n {
				v, err := m.Get(ctx, fmt.Sprint(p))
				if err != nil {
					return err
				}
				if string(v) != fmt.Sprint(round) {
					return fmt.Errorf("round %d: rank %d read %q from rank %d", round, r, v, p)
				}
			}
			if err := m.Fence(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestMemStoreFenceCancelWithdraws(t *testing.T) {
	m := NewMemStore(2)
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if err := m.Fence(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fence = %v, want context.Canceled", err)
	}
	// The cancelled call was withdrawn: a generation needs two fresh callers.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { errs[i] = m.Fence(testCtx(t)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.count != 0 {
		t.Fatalf("count = %d after a complete generation", m.count)
	}
}
