package collectives

import "github.com/gorun-hpc/gorun/runtime/mpi"

// BcastValue copies *v of rank root into *v of every other rank, for any Go
// value msgpack can encode (structs travel by exported field name, as with
// mpi.SendValue). On non-root ranks *v is replaced by a freshly decoded
// value, not merged into. v must be non-nil on every rank. Ranks that pass
// different roots fail with ErrMismatch on at least one rank (agreeRoot).
// Algorithm: a root check, then the binomial tree of Bcast, each rank
// decoding the value once and encoding it again for each child.
func BcastValue[V any](c *mpi.Comm, v *V, root int) error {
	const name = "bcast value"
	if err := checkComm(name, c); err != nil {
		return err
	}
	if err := checkRoot(name, c, root); err != nil {
		return err
	}
	if v == nil {
		return countErr(name, "nil value pointer")
	}
	if c.Size() == 1 {
		return nil
	}
	k := newCall(c)
	if err := agreeRoot(k, root, stepValue); err != nil {
		return wrap(name, err)
	}
	p := c.Size()
	vr := (c.Rank() - root + p) % p
	mask := 1
	for ; mask < p; mask <<= 1 {
		if vr&mask != 0 {
			var got V
			parent := (vr - mask + root) % p
			st, err := mpi.RecvValue(k.c, &got, mpi.AnySource, k.tag(stepValue))
			if err == nil && st.Source != parent {
				err = wrongSender(st.Source, parent)
			}
			if err != nil {
				return wrap(name, err)
			}
			*v = got
			break
		}
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		if vr+mask < p {
			if err := mpi.SendValue(k.c, *v, (vr+mask+root)%p, k.tag(stepValue)); err != nil {
				return wrap(name, err)
			}
		}
	}
	return nil
}

// GatherValue collects v from every rank, for any Go value msgpack can
// encode, and returns them in rank order on root (nil on other ranks).
// Ranks that pass different roots fail with ErrMismatch on at least one
// rank. Algorithm: a root check (agreeRoot), then every rank sends
// straight to the root.
func GatherValue[V any](c *mpi.Comm, v V, root int) ([]V, error) {
	const name = "gather value"
	if err := checkComm(name, c); err != nil {
		return nil, err
	}
	if err := checkRoot(name, c, root); err != nil {
		return nil, err
	}
	if c.Size() == 1 {
		return []V{v}, nil
	}
	k := newCall(c)
	if err := agreeRoot(k, root, stepValue); err != nil {
		return nil, wrap(name, err)
	}
	if c.Rank() != root {
		return nil, wrap(name, mpi.SendValue(k.c, v, root, k.tag(stepValue)))
	}
	out := make([]V, c.Size())
	out[root] = v
	for i := range out {
		if i == root {
			continue
		}
		if _, err := mpi.RecvValue(k.c, &out[i], i, k.tag(stepValue)); err != nil {
			return nil, wrap(name, err)
		}
	}
	return out, nil
}
