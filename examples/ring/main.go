// Command ring passes a token around all ranks: rank 0 starts it, every
// rank adds its own rank and passes it to the right, for a number of laps.
// It shows Sendrecv (the exchange that cannot deadlock) and AnySource
// (receive from whoever sends).
//
//	gorun -n 8 ./examples/ring -laps 3
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

const tagToken = 1

func main() {
	laps := flag.Int("laps", 3, "times the token goes around the ring")
	flag.Parse()
	if err := run(*laps); err != nil {
		fmt.Fprintln(os.Stderr, "ring:", err)
		os.Exit(1)
	}
}

func run(laps int) error {
	world, err := mpi.Init(context.Background())
	if err != nil {
		return err
	}
	defer world.Finalize()
	rank, size := world.Rank(), world.Size()
	right, left := (rank+1)%size, (rank+size-1)%size

	token := []int64{0}
	if rank == 0 {
		// Rank 0 starts each lap; the token comes back from the left.
		for lap := range laps {
			st, err := mpi.Sendrecv(world, token, right, tagToken, token, mpi.AnySource, tagToken)
			if err != nil {
				return err
			}
			fmt.Printf("lap %d: token %d came back from rank %d\n", lap+1, token[0], st.Source)
		}
	} else {
		for range laps {
			if _, err := mpi.Recv(world, token, left, tagToken); err != nil {
				return err
			}
			token[0] += int64(rank)
			if err := mpi.Send(world, token, right, tagToken); err != nil {
				return err
			}
		}
	}
	if rank == 0 {
		want := int64(laps) * int64(size*(size-1)/2)
		if token[0] != want {
			return fmt.Errorf("token is %d after %d laps; want %d", token[0], laps, want)
		}
		fmt.Printf("ring of %d ranks: %d laps, token %d (correct)\n", size, laps, token[0])
	}
	return world.Finalize()
}
