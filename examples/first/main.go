package main

import (
	"context"
	"fmt"
	"log"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

func main() {
	world, err := mpi.Init(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer world.Finalize()

	switch {
	case world.Size() == 1:
		fmt.Println("rank 0 is alone: no one to send to (run me with gorun -n 2 .)")
	case world.Rank() == 0:
		err = mpi.Send(world, []float64{3.14, 2.72}, 1, 0) // to rank 1, tag 0
	case world.Rank() == 1:
		buf := make([]float64, 2)
		var st mpi.Status
		st, err = mpi.Recv(world, buf, 0, mpi.AnyTag)
		fmt.Printf("rank 1 got %v from rank %d\n", buf[:st.Count], st.Source)
	}
	if err != nil {
		log.Fatal(err)
	}
}
