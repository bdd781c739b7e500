#!/usr/bin/env bash
# ab.sh - A/B of gorun builds against OpenMPI for one message size.
#
#   examples/bench/ab.sh ROUNDS BENCH_BINARY [BENCH_BINARY ...]
#
# Each round runs OpenMPI's pingpong.c (default transport, or TCP with
# TCP=1) and then `gorun -n 2 BINARY latency` for every binary given (built
# from examples/bench at different commits, e.g. `go build -o /tmp/b.new
# ./examples/bench`), and prints every round's half round trip (or bandwidth) at SZ bytes
# (default 8) and the median per configuration. Alternating rounds let the
# machine's drifts hit every build alike; compare medians of one run only.
#
# Knobs: SZ=8, BW=1 (bandwidth, window of 64, `bench bw`: MB/s, higher is
# better; default: latency), TCP=1 (OpenMPI --mca btl tcp,self, GORUN_TRANSPORT=tcp),
# GORUN=path to the gorun binary (default: gorun on PATH),
# PINGPONG=path to a compiled pingpong.c (default: built with mpicc into a
# temporary directory from $BASELINE_DIR/c/pingpong.c).
set -u
[ $# -ge 2 ] || { sed -n 2,17p "$0" >&2; exit 2; }
R=$1; shift
SZ=${SZ:-8}
col=2 sub=latency
[ "${BW:-}" = 1 ] && col=3 sub=bw
GORUN=${GORUN:-gorun}
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel) || exit 1
BASELINE_DIR=${BASELINE_DIR:-$ROOT/../shared/bench}
if [ -z "${PINGPONG:-}" ]; then
    PINGPONG=$(mktemp -d)/pingpong
    mpicc.openmpi -O2 -o "$PINGPONG" "$BASELINE_DIR/c/pingpong.c" || exit 1
fi
ompi=(mpirun.openmpi --allow-run-as-root -n 2)
genv=(env -u GORUN_TRANSPORT)
if [ "${TCP:-}" = 1 ]; then
    ompi=(mpirun.openmpi --allow-run-as-root --mca btl tcp,self -n 2)
    genv=(env GORUN_TRANSPORT=tcp)
fi
declare -A res
for _ in $(seq "$R"); do
    v=$(timeout 120 "${ompi[@]}" "$PINGPONG" 2>/dev/null | awk -v s="$SZ" -v c=$col '$1==s{print $c; exit}')
    res[openmpi]+="${v:-?} "
    for b in "$@"; do
        v=$(BENCH_SIZES=$SZ timeout 120 "${genv[@]}" "$GORUN" -n 2 "$b" $sub 2>&1 | awk -v s="$SZ" -v c=$col '$1==s{print $c}')
        res[$b]+="${v:-?} "
    done
done
for k in openmpi "$@"; do
    med=$(echo "${res[$k]}" | tr ' ' '\n' | grep -v '^?*$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$k: ${res[$k]}  median $med"
done
