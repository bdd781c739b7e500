#include "textflag.h"

// func Watch(word *uint64, n int) uint64
TEXT ·Watch(SB),NOSPLIT|NOFRAME,$0-24
	MOVQ	word+0(FP), AX
	MOVQ	n+8(FP), CX
	XORQ	BX, BX
	TESTQ	CX, CX
	JLE	done
look:
	MOVQ	(AX), BX // a load is an acquire on amd64
	TESTQ	BX, BX
	JNZ	done
	PAUSE
	DECQ	CX
	JNZ	look
done:
	MOVQ	BX, ret+16(FP)
	RET
