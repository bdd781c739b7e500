package main

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// The synchronous sends are detected as a deadlock, and both fixes complete,
// for a rank alone (sending to itself), a pair and a ring of three.
func TestDemo(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			mpitest.Run(t, n, func(c *mpi.Comm) error {
				return demo(c, io.Discard, false, 200*time.Millisecond)
			})
		})
	}
}

func TestOnlyDeadlock(t *testing.T) {
	mpitest.Run(t, 2, func(c *mpi.Comm) error {
		if err := demo(c, io.Discard, true, 200*time.Millisecond); !errors.Is(err, errDeadlock) {
			return fmt.Errorf("demo(only) = %v; want errDeadlock", err)
		}
		return nil
	})
}
