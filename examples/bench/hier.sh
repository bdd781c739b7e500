#!/usr/bin/env bash
# hier.sh - host-aware vs flat Allreduce across three "hosts" made of Linux
# namespaces on this machine (the setup of launcher/multihost_test.go's
# TestMultiHostNamespaces):
#
#   - a "switch" network namespace holds a bridge; each host is a network
#     namespace with a veth pair to it and an address in 10.78.0.0/24
#     (addresses that exist only inside these namespaces);
#   - each host's `gorun daemon` runs in its own UTS and mount namespace
#     (its own hostname, a private tmpfs on /dev/shm), so ranks on one host
#     share memory and ranks on different hosts talk TCP over the bridge;
#   - the launcher runs in host 1's namespace.
#
# It runs `bench allreduce` with 12 ranks (4 per host) in RUNS interleaved
# rounds, each round once with the host-aware algorithm
# (GORUN_COLL_HIERARCHY=on, the default) and once flat
# (GORUN_COLL_HIERARCHY=off), alternating which goes first, and prints a
# markdown table of the medians (µs per call, max over ranks), the ratio
# flat / host-aware of those medians, the median of the per-round ratios
# (the two runs of a round are neighbours in time, so their ratio is less
# exposed to a machine whose speed drifts) and every round's values.
#
# All namespaces share this machine's CPUs: it measures the structure of
# the traffic (how much crosses "hosts", over TCP through veths and a
# bridge, versus shared memory), not a real network.
#
# Needs root, iproute2 and util-linux. Removes its namespaces and stops its
# daemons on exit. Every job is bounded by `timeout`.
#
# Knobs (environment):
#   RUNS=3          rounds (each runs both algorithms)
#   SIZES=1048576   allreduce sizes in doubles (bench's: 1 16 1024 65536 1048576)
#   COLL_T=0.5      target seconds per test (bench's target_s)
#   OUT=DIR         binaries, logs, raw outputs, summary.md (default: a new temp dir)
#   PROFILE=1       CPU profile of every rank: $OUT/prof.MODE.ROUND.rankN
set -u

cd "$(dirname "$(readlink -f "$0")")" || exit 1
ROOT=$(git rev-parse --show-toplevel) || { echo "hier.sh: not in a git checkout" >&2; exit 1; }
RUNS=${RUNS:-3}
SIZES=${SIZES:-1048576}
COLL_T=${COLL_T:-0.5}
PROFILE=${PROFILE:-}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gorun-hier.XXXXXX")}
HOSTS=3
SLOTS=4
RANKS=$((HOSTS * SLOTS))
NET=10.78.0

[ "$(id -u)" = 0 ] || { echo "hier.sh: needs root to create network namespaces" >&2; exit 2; }
for tool in ip unshare mount timeout go; do
    command -v "$tool" >/dev/null 2>&1 || { echo "hier.sh: $tool is missing" >&2; exit 2; }
done
mkdir -p "$OUT"

id=gh$(($$ % 100000))
sw=${id}sw
made=()
daemons=()
cleanup() {
    for p in "${daemons[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${daemons[@]}"; do wait "$p" 2>/dev/null; done
    for ns in "${made[@]}"; do ip netns del "$ns" || echo "hier.sh: could not delete namespace $ns" >&2; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "hier.sh: building into $OUT" >&2
(cd "$ROOT" && go build -o "$OUT/gorun" ./cmd/gorun && go build -o "$OUT/bench" ./examples/bench) || exit 1
rm -f "$OUT/secret"
"$OUT/gorun" secret --out "$OUT/secret" || exit 1

# ------------------------------------------------------------------ cluster
ip netns add "$sw" || exit 1
made+=("$sw")
ip -n "$sw" link add br0 type bridge && ip -n "$sw" link set br0 up || exit 1
: >"$OUT/hosts"
for i in $(seq 1 $HOSTS); do
    h=${id}h$i
    ip netns add "$h" || exit 1
    made+=("$h")
    # Both ends are made inside namespaces: nothing touches the machine's network.
    ip -n "$h" link add eth0 type veth peer name "p$i" netns "$sw" &&
        ip -n "$sw" link set "p$i" master br0 &&
        ip -n "$sw" link set "p$i" up &&
        ip -n "$h" addr add "$NET.$i/24" dev eth0 &&
        ip -n "$h" link set eth0 up &&
        ip -n "$h" link set lo up || exit 1
    echo "$NET.$i slots=$SLOTS" >>"$OUT/hosts"
    # ip netns exec, unshare and sh all exec: $! is the daemon.
    ip netns exec "$h" unshare --uts --mount --propagation private \
        sh -c 'hostname "$0" && mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$@"' "$h" \
        "$OUT/gorun" daemon --listen "$NET.$i:7070" --secret-file "$OUT/secret" --cache-dir "$OUT/cache$i" \
        >"$OUT/daemon$i.log" 2>&1 &
    daemons+=($!)
done
for i in $(seq 1 $HOSTS); do
    for _ in $(seq 200); do # up to 20 s
        grep -q "daemon: serving" "$OUT/daemon$i.log" && break
        sleep 0.1 # polling its log; there is no other signal
    done
    grep -q "daemon: serving" "$OUT/daemon$i.log" || { echo "hier.sh: daemon $i does not serve:" >&2; cat "$OUT/daemon$i.log" >&2; exit 1; }
done

# ------------------------------------------------------------------ rounds
# run MODE ROUND: one job, its output in $OUT/MODE.ROUND.txt
run() {
    local prof=()
    [ -n "$PROFILE" ] && prof=(-x "BENCH_CPUPROFILE=$OUT/prof.$1.$2")
    timeout 600 ip netns exec "${id}h1" "$OUT/gorun" --hostfile "$OUT/hosts" --secret-file "$OUT/secret" \
        --net "$NET.0/24" -n $RANKS -x "GORUN_COLL_HIERARCHY=$1" -x "BENCH_SIZES=$SIZES" "${prof[@]}" \
        "$OUT/bench" allreduce "$COLL_T" >"$OUT/$1.$2.txt" 2>"$OUT/$1.$2.err"
    local rc=$?
    if [ $rc -ne 0 ] || grep -q WARNING "$OUT/$1.$2.txt"; then
        echo "hier.sh: round $2, GORUN_COLL_HIERARCHY=$1 failed (exit $rc):" >&2
        cat "$OUT/$1.$2.txt" "$OUT/$1.$2.err" >&2
        exit 1
    fi
}
for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) = 1 ]; then order="on off"; else order="off on"; fi
    for mode in $order; do
        echo "hier.sh: round $r/$RUNS, GORUN_COLL_HIERARCHY=$mode" >&2
        run "$mode" "$r"
    done
done

# ------------------------------------------------------------------ table
# values MODE COUNT: max_us of every round, one per line
values() {
    for r in $(seq 1 "$RUNS"); do
        awk -v n="$2" '$1 == "allreduce" && $2 == n { print $4 }' "$OUT/$1.$r.txt"
    done
}
list() { awk '{ if (NR > 1) printf ", "; printf "%.0f", $1 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
name() {
    case $1 in
    1048576) echo "1M dbl (8 MB)" ;;
    65536) echo "64K dbl (512 KB)" ;;
    1024) echo "1K dbl (8 KB)" ;;
    *) echo "$1 dbl ($(($1 * 8)) B)" ;;
    esac
}
{
    echo "Allreduce (Sum), $RANKS ranks on $HOSTS namespace hosts × $SLOTS, µs per call (max over ranks), median of $RUNS interleaved rounds; lower is better"
    echo
    echo "| size | host-aware | flat | flat / host-aware | median of round ratios | host-aware, every round | flat, every round |"
    echo "|---|---|---|---|---|---|---|"
    for n in ${SIZES//,/ }; do
        on=$(values on "$n" | median)
        off=$(values off "$n" | median)
        ron=$(values on "$n" | list)
        roff=$(values off "$n" | list)
        ratio=$(awk -v a="$off" -v b="$on" 'BEGIN { printf "%.2f", a / b }')
        rratio=$(paste <(values off "$n") <(values on "$n") | awk '{ print $1 / $2 }' | median)
        printf '| %s | %.0f | %.0f | %s× | %.2f× | %s | %s |\n' "$(name "$n")" "$on" "$off" "$ratio" "$rratio" "$ron" "$roff"
    done
} | tee "$OUT/summary.md"
