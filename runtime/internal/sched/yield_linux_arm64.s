#include "textflag.h"

// func Yield()
TEXT ·Yield(SB),NOSPLIT|NOFRAME,$0-0
	MOVD	$124, R8 // SYS_sched_yield
	SVC
	RET
