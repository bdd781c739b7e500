package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// bcastBinomial broadcasts buf from root down a binomial tree. Ranks are
// renumbered so that the root is virtual rank 0 (v = r − root mod p); v
// receives from v with its lowest set bit cleared, then sends to v+2ʲ for
// each 2ʲ below that bit (largest subtree first). Every rank receives the
// whole message once. The receive is posted for any source (recvFrom), so
// that a parent that built its tree around another root is detected when
// its message reaches the wrong child.
//
// Cost: ⌈lg p⌉·(α + nβ) on the critical path.
func bcastBinomial[T mpi.Numeric](k call, buf []T, root int) error {
	p := k.size()
	v := (k.rank() - root + p) % p
	mask := 1
	for ; mask < p; mask <<= 1 {
		if v&mask != 0 {
			if err := recvFrom(k, buf, (v-mask+root)%p, stepBcast); err != nil {
				return err
			}
			break
		}
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		if v+mask < p {
			if err := send(k, buf, (v+mask+root)%p, stepBcast); err != nil {
				return err
			}
		}
	}
	return nil
}
