package mpi

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
	"github.com/gorun-hpc/gorun/runtime/transport/shm"
)

// setupShm routes the ranks that share this host through shared memory.
// It runs after every rank has published its endpoint. Fences are job-wide,
// so every rank runs both of them, whether or not it has local peers:
//
//	create own segment → fence → map the peers' segments → fence → unlink
//
// After the unlink no file of the job is left in /dev/shm, so even a kill -9
// leaves nothing behind. GORUN_TRANSPORT=tcp skips all of it, on every rank.
// On a platform without the transport a rank takes part in the fences (the
// job may have Linux hosts too) with no local peers: its neighbours on the
// host reach it over TCP.
func (w *world) setupShm(ctx context.Context) error {
	if os.Getenv(rendezvous.EnvTransport) == "tcp" || w.job == "" {
		return nil
	}
	local := []int{}
	for r := range w.size {
		if r == w.rank {
			local = append(local, r)
			continue
		}
		if !shm.Supported {
			continue
		}
		info, err := w.peer(ctx, r)
		if err != nil {
			return err
		}
		if info.Host == w.host {
			local = append(local, r)
		}
	}
	var ep *shm.Endpoint
	if len(local) > 1 {
		var err error
		ep, err = shm.Create(shm.Config{Job: w.job, Rank: w.rank, Local: local, Sink: w.eng})
		if err != nil {
			return fmt.Errorf("mpi: shared memory for %d ranks on %s: %w (or run with GORUN_TRANSPORT=tcp)", len(local), w.host, err)
		}
		w.addEndpoint(ep)
	}
	if err := w.store.Fence(ctx); err != nil {
		return fmt.Errorf("mpi: init fence: %w", err)
	}
	if ep != nil {
		if err := ep.Attach(ctx); err != nil {
			return fmt.Errorf("mpi: attach shared memory: %w", err)
		}
	}
	if err := w.store.Fence(ctx); err != nil {
		return fmt.Errorf("mpi: init fence: %w", err)
	}
	if ep != nil {
		if err := ep.Unlink(); err != nil {
			return fmt.Errorf("mpi: shared memory: %w", err)
		}
		w.setRoutes(ep, "shm", func(r int) bool { return slices.Contains(local, r) })
		w.shmRoutes = make([]*shm.Endpoint, w.size)
		for _, r := range local {
			if r != w.rank {
				w.shmRoutes[r] = ep
			}
		}
	}
	return nil
}
