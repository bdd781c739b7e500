package mpi

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// SendValue sends any Go value (struct, map, string, slice…) that msgpack
// can encode to rank dst with tag. Receive it with RecvValue. Exported
// struct fields travel by name, so sender and receiver may use different
// but compatible types.
func SendValue(c *Comm, v any, dst, tag int) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return c.errorf("send value", dst, tag, fmt.Errorf("mpi: encode %T: %w", v, err))
	}
	return c.send("send value", b, typeValue, dst, tag)
}

// RecvValue receives a message sent with SendValue from src (or AnySource)
// with tag (or AnyTag) and decodes it into v, which must be a non-nil
// pointer. A message sent with Send (numeric elements) fails with ErrType.
func RecvValue(c *Comm, v any, src, tag int) (Status, error) {
	r, err := c.recvRequest("recv value", src, tag)
	if err != nil || r == nil {
		return procNullStatus(), err
	}
	r.value = true
	c.w.eng.post(r)
	c.w.wait(r)
	st, data, err := r.status, r.data, r.err
	r.release()
	if err != nil {
		return st, err
	}
	if err := msgpack.Unmarshal(data, v); err != nil {
		return st, c.errorf("recv value", src, tag, fmt.Errorf("mpi: decode into %T: %w", v, err))
	}
	return st, nil
}
