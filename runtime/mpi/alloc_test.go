package mpi_test

import (
	"testing"

	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// TestSteadyStateAllocs pins zero allocations per small blocking send and
// receive once the runtime has warmed up (the self transport here; each
// transport's own tests check its side).
func TestSteadyStateAllocs(t *testing.T) {
	t.Setenv("GORUN_RENDEZVOUS", "")
	c, err := mpi.Init(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Finalize()
	out, in := []float64{1, 2, 3}, make([]float64, 3)
	step := func() {
		if err := mpi.Send(c, out, 0, 5); err != nil {
			t.Fatal(err)
		}
		if _, err := mpi.Recv(c, in, 0, 5); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Errorf("Send+Recv of 3 float64 allocates %.1f times; want 0", n)
	}
}

func BenchmarkSelfSendRecv(b *testing.B) {
	b.Setenv("GORUN_RENDEZVOUS", "")
	c, err := mpi.Init(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Finalize()
	out, in := make([]byte, 8), make([]byte, 8)
	b.ReportAllocs()
	b.SetBytes(8)
	for b.Loop() {
		if err := mpi.Send(c, out, 0, 1); err != nil {
			b.Fatal(err)
		}
		if _, err := mpi.Recv(c, in, 0, 1); err != nil {
			b.Fatal(err)
		}
	}
}
