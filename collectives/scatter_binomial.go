package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// scatterBinomial scatters blocks down a binomial tree rooted at root, in
// virtual ranks v = r − root mod p. The blocks form one buffer ordered by
// virtual rank: block v is [off(v), off(v+1)), off(p) is its end. data
// holds the elements [base, base+len(data)) of that buffer: all of it at
// the root, at least the subtree of the calling rank elsewhere. Virtual rank
// v with lowest set bit 2ᵐ receives the blocks of its subtree, v … v+2ᵐ−1,
// from its parent in one message (received from any source and checked,
// see recvFrom) and passes on the blocks of its children's subtrees.
//
// Cost: ⌈lg p⌉·α + (p−1)/p·nβ at the root (n the total).
func scatterBinomial[T mpi.Numeric](k call, data []T, base, root int, off func(v int) int, step int) error {
	p := k.size()
	v := (k.rank() - root + p) % p
	mask := 1
	for ; mask < p; mask <<= 1 {
		if v&mask != 0 {
			lo, hi := off(v), off(min(v+mask, p))
			if err := recvFrom(k, data[lo-base:hi-base], (v-mask+root)%p, step); err != nil {
				return err
			}
			break
		}
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		if ch := v + mask; ch < p {
			lo, hi := off(ch), off(min(ch+mask, p))
			if err := send(k, data[lo-base:hi-base], (ch+root)%p, step); err != nil {
				return err
			}
		}
	}
	return nil
}
