#include "textflag.h"

// func Yield()
TEXT ·Yield(SB),NOSPLIT|NOFRAME,$0-0
	MOVQ	$24, AX // SYS_sched_yield
	SYSCALL
	RET
