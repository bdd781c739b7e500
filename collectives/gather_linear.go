package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// gatherLinear: every rank sends its block straight to the root, which has
// posted a receive for each into its place in out (counts and displs used
// on the root only). No data is forwarded, so it suits long blocks.
//
// Cost: (p−1)·α + (p−1)·nβ at the root (n per block); the root's link is
// the bottleneck, plus α for the root check that comes first (agreeRoot:
// without it a rank that sent to the wrong root would leave the real one
// waiting, unnoticed).
func gatherLinear[T mpi.Numeric](k call, own, out []T, counts, displs []int, root int) error {
	if err := agreeRoot(k, root, stepGather); err != nil {
		return err
	}
	p, r := k.size(), k.rank()
	if r != root {
		return send(k, own, root, stepGather)
	}
	reqs := make([]*mpi.Request, p)
	for i := range p {
		if i == r {
			continue
		}
		q, err := irecv(k, out[displs[i]:displs[i]+counts[i]], i, stepGather)
		if err != nil {
			_ = waitRecvs(reqs, counts) // the first error is the one to report
			return err
		}
		reqs[i] = q
	}
	copy(out[displs[r]:displs[r]+counts[r]], own)
	return waitRecvs(reqs, counts)
}
