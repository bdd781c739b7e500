package mpi

import (
	"reflect"
	"unsafe"
)

// Numeric is the set of element types the typed calls accept. Slices of
// these types travel as raw bytes in the machine's byte order, with no
// encoding step. Named types (type Celsius float64) are accepted and travel
// as their underlying type.
type Numeric interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr |
		~float32 | ~float64 | ~complex64 | ~complex128
}

// typeValue is the type code of a msgpack-encoded Go value (SendValue).
const typeValue uint8 = 0xff

// typeCode returns the wire code for T: its reflect.Kind, whose numbering is
// part of Go's compatibility promise.
func typeCode[T Numeric]() uint8 {
	return uint8(reflect.TypeFor[T]().Kind())
}

// typeName names a wire type code for error messages.
func typeName(code uint8) string {
	if code == typeValue {
		return "Go value (msgpack)"
	}
	return reflect.Kind(code).String()
}

// elemSize returns the size in bytes of one element of T.
func elemSize[T Numeric]() int {
	var z T
	return int(unsafe.Sizeof(z))
}

// sizeOfCode returns the element size of a wire type code, or 1 for values.
func sizeOfCode(code uint8) int {
	switch reflect.Kind(code) {
	case reflect.Int8, reflect.Uint8:
		return 1
	case reflect.Int16, reflect.Uint16:
		return 2
	case reflect.Int32, reflect.Uint32, reflect.Float32:
		return 4
	case reflect.Int, reflect.Uint, reflect.Uintptr:
		return int(unsafe.Sizeof(int(0)))
	case reflect.Int64, reflect.Uint64, reflect.Float64, reflect.Complex64:
		return 8
	case reflect.Complex128:
		return 16
	}
	return 1
}

// codeShift[code] is log2(sizeOfCode(code)): element counts of a payload are
// a shift away, not a division, on every received message.
var codeShift = func() (t [256]uint8) {
	for c := range t {
		for sz := sizeOfCode(uint8(c)); sz > 1; sz >>= 1 {
			t[c]++
		}
	}
	return t
}()

// asBytes returns the memory of buf as a byte slice, without copying.
//
// Invariant: the result aliases buf and is valid only as long as buf is; it
// has length len(buf)*sizeof(T). Numeric types contain no pointers, so the
// garbage collector needs no type information for these bytes, and every
// byte pattern written into them is a valid T.
func asBytes[T Numeric](buf []T) []byte {
	if len(buf) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(buf))), len(buf)*elemSize[T]())
}

// hostByteOrder is 1 on little-endian machines and 2 on big-endian ones;
// Init refuses peers that differ, since payloads are raw memory.
func hostByteOrder() uint8 {
	x := uint16(1)
	if *(*byte)(unsafe.Pointer(&x)) == 1 {
		return 1
	}
	return 2
}
