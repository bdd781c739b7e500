// Command weather is gorun's showcase: a small model of the weather in a
// mid-latitude channel, temperature and humidity carried by a jet stream and
// drifting cyclones, computed by any number of ranks, each owning one block of
// the map. It writes PNG frames and an animated GIF.
//
//	gorun -n 8 ./examples/weather                # writes weather-out/weather.gif
//	go run ./examples/weather -steps 200 -out /tmp/w
//
// The files: grid.go cuts the map into blocks, halo.go swaps block edges
// with the neighbours, physics.go advances a block by one time step,
// output.go gathers the map on rank 0 and draws it. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

func main() {
	var o options
	flag.IntVar(&o.nx, "nx", 320, "grid cells west to east")
	flag.IntVar(&o.ny, "ny", 160, "grid cells south to north")
	flag.IntVar(&o.steps, "steps", 1000, "time steps")
	flag.IntVar(&o.every, "every", 40, "steps between snapshots (frame and conservation check)")
	flag.StringVar(&o.out, "out", "weather-out", "directory for the PNG frames and weather.gif (empty: none)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "weather:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	world, err := mpi.Init(context.Background())
	if err != nil {
		return err
	}
	if world.Rank() == 0 {
		o.log = os.Stdout
	}
	res, err := simulate(world, o)
	if err != nil {
		// Abort rather than Finalize: the other ranks may be waiting for this one.
		fmt.Fprintf(os.Stderr, "weather: rank %d: %v\n", world.Rank(), err)
		return world.Abort(1, "weather: "+err.Error())
	}
	if world.Rank() == 0 {
		fmt.Printf("checksum of the final T and q: %s\n", checksum(res.T, res.Q))
		printTimings(os.Stdout, res.times)
	}
	return world.Finalize()
}

// options are the run's parameters.
type options struct {
	nx, ny, steps, every int
	out                  string    // directory for frames; "" writes none
	log                  io.Writer // progress lines (rank 0); nil for none
}

// A result is what simulate returns; everything but drift is on rank 0 only.
type result struct {
	T, Q  []float64 // final fields, nx per row, row 0 in the south
	drift float64   // largest relative change of the totals of T and q seen
	times []timing  // per rank
	gif   string    // path of the animation, if written
}

// A timing is where one rank's wall time went, in seconds.
type timing struct {
	Compute, Halo, Reduce, Output float64
}

// simulate runs the model on the ranks of world, which all call it with the
// same options. The final fields do not depend on the number of ranks, bit
// for bit.
func simulate(world *mpi.Comm, o options) (*result, error) {
	if o.nx < 1 || o.ny < 1 || o.steps < 0 || o.every < 1 {
		return nil, errors.New("nx, ny and every must be positive, steps not negative")
	}
	dims, blocks, err := layout(o.nx, o.ny, world.Size())
	if err != nil {
		return nil, err
	}
	// Dimension 0 runs south to north between walls, dimension 1 west to
	// east around the periodic channel.
	cart, err := world.CartCreate(dims, []bool{false, true})
	if err != nil {
		return nil, err
	}
	defer cart.Free()
	b := blocks[cart.Rank()]
	x, err := newExchanger(cart, b, 2)
	if err != nil {
		return nil, err
	}

	T, Q := make([]float64, b.size()), make([]float64, b.size())
	newT, newQ := make([]float64, b.size()), make([]float64, b.size())
	for r := range b.h {
		for c := range b.w {
			T[b.at(r, c)], Q[b.at(r, c)] = initial(b.cols.lo+c, b.rows.lo+r, o.nx, o.ny)
		}
	}
	wd := newWind(b)
	obs := &observer{comm: cart.Comm, blocks: blocks, dims: dims, o: o}
	var tm timing
	t, wind := 0.0, []float64{0, 0} // time (s); largest Courant rate and wind speed
	rate, speed := wd.update(b, t)
	if err := collectives.Allreduce(cart.Comm, []float64{rate, speed}, wind, collectives.Max); err != nil {
		return nil, err
	}
	if err := obs.snapshot(T, Q, 0, t, wind[1], &tm); err != nil {
		return nil, err
	}
	r0, r1, c0, c1 := b.interior()
	for n := 1; n <= o.steps; n++ {
		// 1. Start sending our edges and receiving the neighbours'.
		t0 := mpi.Wtime()
		if err := x.post(T, Q); err != nil {
			return nil, err
		}
		// 2. While they travel: the wind, and a time step that is stable
		// everywhere, agreed by all ranks.
		rate, speed := wd.update(b, t)
		t1 := mpi.Wtime()
		if err := collectives.Allreduce(cart.Comm, []float64{rate, speed}, wind, collectives.Max); err != nil {
			return nil, err
		}
		dt := timeStep(wind[0], o.nx, o.ny)
		// 3. The interior cells need no halo.
		t2 := mpi.Wtime()
		step(b, newT, T, wd, dt, r0, r1, c0, c1)
		step(b, newQ, Q, wd, dt, r0, r1, c0, c1)
		// 4. Wait for the halos, then update the rim of the block.
		t3 := mpi.Wtime()
		if err := x.finish(T, Q); err != nil {
			return nil, err
		}
		t4 := mpi.Wtime()
		for _, rc := range b.rim() {
			step(b, newT, T, wd, dt, rc[0], rc[1], rc[2], rc[3])
			step(b, newQ, Q, wd, dt, rc[0], rc[1], rc[2], rc[3])
		}
		T, newT, Q, newQ = newT, T, newQ, Q
		t += dt
		tm.Compute += (t1 - t0) + (t3 - t2) + (mpi.Wtime() - t4)
		tm.Reduce += t2 - t1
		tm.Halo += t4 - t3
		if n%o.every == 0 || n == o.steps {
			if err := obs.snapshot(T, Q, n, t, wind[1], &tm); err != nil {
				return nil, err
			}
		}
	}
	return obs.finish(tm)
}
