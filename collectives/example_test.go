package collectives_test

import (
	"context"
	"fmt"
	"log"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
	"github.com/gorun-hpc/gorun/runtime/mpi/mpitest"
)

// Every rank contributes its rank and its square; every rank gets the sums.
func ExampleAllreduce() {
	err := mpitest.Go(context.Background(), 4, func(world *mpi.Comm) error {
		r := float64(world.Rank())
		local := []float64{r, r * r}
		global := make([]float64, 2)
		if err := collectives.Allreduce(world, local, global, collectives.Sum); err != nil {
			return err
		}
		if world.Rank() == 0 {
			fmt.Println("sum of ranks:", global[0], "sum of squares:", global[1])
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: sum of ranks: 6 sum of squares: 14
}

// Rank 2 reads parameters and broadcasts them to the others.
func ExampleBcast() {
	err := mpitest.Go(context.Background(), 4, func(world *mpi.Comm) error {
		params := make([]int32, 3)
		if world.Rank() == 2 {
			copy(params, []int32{640, 480, 100})
		}
		if err := collectives.Bcast(world, params, 2); err != nil {
			return err
		}
		// Every rank now holds the parameters; check on all, print on one.
		all := make([]int32, 3*world.Size())
		if err := collectives.Gather(world, params, all, 0); err != nil {
			return err
		}
		if world.Rank() == 0 {
			fmt.Println(all)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: [640 480 100 640 480 100 640 480 100 640 480 100]
}

// Each rank computes a piece; rank 0 collects the pieces in rank order.
func ExampleGather() {
	err := mpitest.Go(context.Background(), 3, func(world *mpi.Comm) error {
		piece := []int{world.Rank() * 10, world.Rank()*10 + 1}
		var all []int
		if world.Rank() == 0 {
			all = make([]int, 2*world.Size())
		}
		if err := collectives.Gather(world, piece, all, 0); err != nil {
			return err
		}
		if world.Rank() == 0 {
			fmt.Println(all)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: [0 1 10 11 20 21]
}

// No rank passes the barrier before every rank reached it, so the second
// phase sees all the first phase's work.
func ExampleBarrier() {
	err := mpitest.Go(context.Background(), 4, func(world *mpi.Comm) error {
		// phase 1: … each rank works …
		if err := collectives.Barrier(world); err != nil {
			return err
		}
		if world.Rank() == 0 {
			fmt.Println("all", world.Size(), "ranks finished phase 1")
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: all 4 ranks finished phase 1
}

// MinLoc finds the smallest value and the rank holding it.
func ExampleAllreduceLoc() {
	err := mpitest.Go(context.Background(), 4, func(world *mpi.Comm) error {
		temp := []float64{21.5, 19.0, 23.25, 19.0}[world.Rank()]
		coldest := []collectives.Loc[float64]{{Val: temp, Idx: int32(world.Rank())}}
		if err := collectives.AllreduceLoc(world, nil, coldest, collectives.MinLoc); err != nil {
			return err
		}
		if world.Rank() == 0 {
			fmt.Printf("coldest: %.1f on rank %d\n", coldest[0].Val, coldest[0].Idx)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: coldest: 19.0 on rank 1
}
