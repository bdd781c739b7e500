#include "textflag.h"

// func Watch(word *uint64, n int) uint64
TEXT ·Watch(SB),NOSPLIT|NOFRAME,$0-24
	MOVD	word+0(FP), R0
	MOVD	n+8(FP), R1
	MOVD	ZR, R2
	CMP	$0, R1
	BLE	done
look:
	LDAR	(R0), R2 // load-acquire
	CBNZ	R2, done
	YIELD
	SUBS	$1, R1, R1
	BNE	look
done:
	MOVD	R2, ret+16(FP)
	RET
