package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// gatherBinomial gathers blocks of n elements up a binomial tree in virtual
// ranks v = r − root mod p: v collects the blocks of its subtree v …
// v+2ᵐ−1 (2ᵐ its lowest set bit) in virtual-rank order, receiving each
// child's subtree in one message, and sends them to its parent in one
// message. The root then rotates the blocks into rank order.
//
// Cost: ⌈lg p⌉·α + (p−1)·nβ at the root; latency-optimal for short blocks.
func gatherBinomial[T mpi.Numeric](k call, own, out []T, n, root int) error {
	p, r := k.size(), k.rank()
	v := (r - root + p) % p
	end := subtreeOf(v, p)
	buf := own
	switch {
	case v == 0 && root == 0:
		buf = out
		copy(buf[:n], own)
	case end-v > 1:
		buf = make([]T, (end-v)*n)
		copy(buf[:n], own)
	}
	for mask := 1; mask < p; mask <<= 1 {
		if v&mask != 0 {
			return send(k, buf, (v-mask+root)%p, stepGather)
		}
		ch := v + mask
		if ch >= p {
			continue
		}
		chEnd := min(ch+mask, p)
		if err := recv(k, buf[(ch-v)*n:(chEnd-v)*n], (ch+root)%p, stepGather); err != nil {
			return err
		}
	}
	if root != 0 { // v == 0 here: rotate virtual-rank order into rank order
		for j := range p {
			i := (j + root) % p
			copy(out[i*n:(i+1)*n], buf[j*n:(j+1)*n])
		}
	}
	return nil
}

// subtreeOf returns the end of the binomial subtree of virtual rank v among
// p: the subtree is the virtual ranks [v, end).
func subtreeOf(v, p int) (end int) {
	if v == 0 {
		return p
	}
	return min(v+v&-v, p)
}
