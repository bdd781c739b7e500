// Command hello prints each rank's place in the job: the first program to
// run under gorun.
//
//	gorun -n 4 ./examples/hello
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

func main() {
	world, err := mpi.Init(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	fmt.Printf("hello from rank %d of %d on %s\n", world.Rank(), world.Size(), world.Host())
	if err := world.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
