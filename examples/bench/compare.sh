#!/usr/bin/env bash
# compare.sh - gorun vs OpenMPI (and MPICH) on this machine, in the same run.
#
# Builds the C baseline programs (pingpong.c, ring.c, idle.c, coll.c from
# $BASELINE_DIR/c, and c/alltoall.c next to this script, since coll.c has no
# alltoall), gorun and examples/bench, then runs RUNS interleaved
# rounds. Each round runs every measure under every configuration, one after
# the other, so slow drifts of a noisy machine hit all configurations alike:
#
#   ompi_shm   OpenMPI, default transport (shared memory, vader)
#   mpich_shm  MPICH, default (shared memory)
#   gorun      gorun, default transport (the best available)
#   ompi_tcp   OpenMPI, --mca btl tcp,self (TCP loopback)
#   gorun_tcp  gorun, GORUN_TRANSPORT=tcp
#
#   pp      n=2: latency (half round trip) and bandwidth (window 64), 9 sizes
#   ring2   n=2: token ring, µs per hop
#   ring8   n=8: token ring, µs per hop (oversubscribed on small machines)
#   idle    n=2: rank 1 blocked in Recv for IDLE_S s: wall and CPU seconds
#   coll2   n=2: allreduce, bcast, barrier (coll.c) and alltoall (alltoall.c),
#           µs per call, max over ranks; gorun: `bench coll`, the same tests
#   coll8   the same with n=8 (oversubscribed on small machines: OpenMPI gets
#           --oversubscribe, MPICH spins out time slices, ~25 ms per small
#           collective, so it runs with COLL_T_MPICH8)
#   coll    both coll2 and coll8
#
# It then prints one markdown table per measure: the median over rounds per
# configuration, and paired ratios: the median over rounds of gorun's value
# / OpenMPI's in the same round, with the number of rounds in which gorun
# did better, e.g. "0.93× (4/5)". The machine's slow periods last minutes
# and hit both sides of a round; a ratio of medians can pair a fast round
# of one with a slow round of the other.
#
# Installs nothing unless INSTALL=1. Needs OpenMPI (mpicc.openmpi,
# mpirun.openmpi); MPICH is optional. Every command is bounded by `timeout`.
#
# Knobs (environment):
#   RUNS=3             rounds
#   SCALE=1            iteration scale of pingpong (C) / bench pingpong (Go)
#   RING_LAPS2=500000  laps of ring n=2 (a hop takes ~0.1 µs: 20000 laps
#                      were 4 ms, within the first runs' warm-up, and put
#                      gorun at 1.29× where 1M laps show it on par)
#   RING_LAPS8=20000   laps of ring n=8 (MPICH: RING_LAPS8_MPICH=200, it spins
#                      out whole time slices when oversubscribed)
#   IDLE_S=3           seconds of idle
#   COLL_T=0.5         target seconds per collective test (coll.c's argument)
#   COLL_T_MPICH8=0.1  the same for MPICH at n=8 (every test runs >= 9 calls)
#   MEASURES="pp ring2 ring8 idle coll"   any subset, in any order
#   CONFIGS="ompi_shm mpich_shm gorun ompi_tcp gorun_tcp"
#   BASELINE_DIR=<repo>/../shared/bench   where c/*.c are
#   OUT=DIR            binaries, raw outputs, summary.md (default: a new temp dir)
#   INSTALL=1          apt-get install the MPI packages if missing
#   SUMMARY_ONLY=1     run nothing: summarise the raw outputs in OUT again
set -u

cd "$(dirname "$(readlink -f "$0")")" || exit 1
ROOT=$(git rev-parse --show-toplevel) || { echo "compare.sh: not in a git checkout" >&2; exit 1; }
BASELINE_DIR=${BASELINE_DIR:-$ROOT/../shared/bench}
RUNS=${RUNS:-3}
SCALE=${SCALE:-1}
RING_LAPS2=${RING_LAPS2:-500000}
RING_LAPS8=${RING_LAPS8:-20000}
RING_LAPS8_MPICH=${RING_LAPS8_MPICH:-200}
IDLE_S=${IDLE_S:-3}
COLL_T=${COLL_T:-0.5}
COLL_T_MPICH8=${COLL_T_MPICH8:-0.1}
MEASURES=${MEASURES:-"pp ring2 ring8 idle coll"}
CONFIGS=${CONFIGS:-"ompi_shm mpich_shm gorun ompi_tcp gorun_tcp"}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gorun-compare.XXXXXX")}
PKGS="openmpi-bin libopenmpi-dev mpich hyperfine"

# ------------------------------------------------------------------ measures
# Expand "coll" and reject unknown names before building anything.
ms=""
for m in $MEASURES; do
    case $m in
    coll) ms="$ms coll2 coll8" ;;
    pp | ring2 | ring8 | idle | coll2 | coll8) ms="$ms $m" ;;
    *) echo "compare.sh: unknown measure $m (known: pp ring2 ring8 idle coll2 coll8 coll)" >&2; exit 2 ;;
    esac
done
MEASURES=${ms# }
[ -n "$MEASURES" ] || { echo "compare.sh: MEASURES is empty" >&2; exit 2; }

# ------------------------------------------------------------------ tools
have() { command -v "$1" >/dev/null 2>&1; }
missing=""
for t in mpicc.openmpi mpirun.openmpi mpicc.mpich mpiexec.mpich; do
    have "$t" || missing="$missing $t"
done
if [ -n "$missing" ] && [ "${INSTALL:-0}" = 1 ]; then
    echo "== installing $PKGS (missing:$missing)"
    timeout 900 apt-get update && timeout 900 apt-get install -y $PKGS || exit 1
    missing=""
    for t in mpicc.openmpi mpirun.openmpi mpicc.mpich mpiexec.mpich; do
        have "$t" || missing="$missing $t"
    done
fi
if [ -n "$missing" ]; then
    echo "compare.sh: missing:$missing" >&2
    echo "  install them with: apt-get install -y $PKGS   (or rerun with INSTALL=1)" >&2
fi
if ! have mpicc.openmpi || ! have mpirun.openmpi; then
    echo "compare.sh: OpenMPI is required (the ratios are against it)" >&2
    exit 1
fi
if ! have mpicc.mpich || ! have mpiexec.mpich; then
    echo "compare.sh: MPICH not found; skipping mpich_shm" >&2
    CONFIGS=$(echo "$CONFIGS" | tr ' ' '\n' | grep -vx mpich_shm | tr '\n' ' ')
fi
for t in go gcc timeout awk; do
    have "$t" || { echo "compare.sh: $t not found" >&2; exit 1; }
done
for p in pingpong ring idle coll; do
    [ -f "$BASELINE_DIR/c/$p.c" ] || {
        echo "compare.sh: no $BASELINE_DIR/c/$p.c (set BASELINE_DIR)" >&2
        exit 1
    }
done

# ------------------------------------------------------------------ build
BIN=$OUT/bin
RAW=$OUT/raw
if [ "${SUMMARY_ONLY:-0}" = 1 ]; then
    # Summarise the raw outputs already in $OUT/raw: as many rounds as they hold.
    RUNS=$(find "$RAW" -name '*.run*.txt' 2>/dev/null | sed -n 's/.*\.run\([0-9]*\)\..*/\1/p' | sort -n | tail -1)
    [ -n "$RUNS" ] || { echo "compare.sh: no raw outputs in $RAW" >&2; exit 1; }
else
    mkdir -p "$BIN/ompi" "$BIN/mpich" "$RAW" || exit 1
    rm -f "$RAW"/*.txt
    echo "== build into $BIN"
    for src in "$BASELINE_DIR"/c/{pingpong,ring,idle,coll}.c "$PWD/c/alltoall.c"; do
        p=$(basename "$src" .c)
        timeout 120 mpicc.openmpi -O2 -Wall -o "$BIN/ompi/$p" "$src" || exit 1
        if have mpicc.mpich; then
            # -Wno-stringop-overflow: gcc 12 false positive on MPICH's MPI_STATUSES_IGNORE
            timeout 120 mpicc.mpich -O2 -Wall -Wno-stringop-overflow -o "$BIN/mpich/$p" "$src" || exit 1
        fi
    done
    (cd "$ROOT" && timeout 300 go build -o "$BIN/gorun" ./cmd/gorun && timeout 300 go build -o "$BIN/bench" ./examples/bench) || exit 1
fi

ROOTFLAG=""
[ "$(id -u)" = 0 ] && ROOTFLAG="--allow-run-as-root"

# launch CONFIG N PROG ARGS... : the command line that runs C program PROG
# (pingpong, ring, idle, coll, alltoall) with N ranks under CONFIG, or for
# gorun the bench subcommand of the same name (bench pingpong = latency + bw,
# as pingpong.c; bench coll = coll.c + alltoall.c).
launch() {
    local cfg=$1 n=$2 prog=$3 os=""
    shift 3
    [ "$n" -gt "$(nproc)" ] && os="--oversubscribe"
    case $cfg in
    ompi_shm) echo mpirun.openmpi $ROOTFLAG $os -n "$n" "$BIN/ompi/$prog" "$@" ;;
    ompi_tcp) echo mpirun.openmpi $ROOTFLAG $os --mca btl tcp,self -n "$n" "$BIN/ompi/$prog" "$@" ;;
    mpich_shm) echo mpiexec.mpich -n "$n" "$BIN/mpich/$prog" "$@" ;;
    gorun) echo env -u GORUN_TRANSPORT "$BIN/gorun" -n "$n" "$BIN/bench" "$prog" "$@" ;;
    gorun_tcp) echo env GORUN_TRANSPORT=tcp "$BIN/gorun" -n "$n" "$BIN/bench" "$prog" "$@" ;;
    *) echo "compare.sh: unknown config $cfg" >&2; return 1 ;;
    esac
}

# run MEASURE CONFIG ROUND TIMEOUT_S N PROG ARGS... -> $RAW/MEASURE.CONFIG.runROUND.txt
run() {
    local m=$1 cfg=$2 i=$3 to=$4
    shift 4
    local f="$RAW/$m.$cfg.run$i.txt" cmd
    cmd=$(launch "$cfg" "$@") || return 1
    {
        echo "# cmd: $cmd"
        # shellcheck disable=SC2086 # cmd is a word list we built
        timeout -k 5 "$to" $cmd 2>&1
        echo "# rc=$?"
    } >"$f"
    printf '  %-6s %-10s %s\n' "$m" "$cfg" "$(tail -1 "$f")"
}

# coll MEASURE CONFIG ROUND N TARGET_S TIMEOUT_S: coll.c, then alltoall.c
# into $RAW/MEASURE.CONFIG.runROUND.a2a.txt; gorun's bench coll runs both.
coll() {
    local m=$1 cfg=$2 i=$3 n=$4 t=$5 to=$6
    run "$m" "$cfg" "$i" "$to" "$n" coll "$t"
    case $cfg in
    gorun*) ;;
    *) run "$m" "$cfg" "$i.a2a" "$to" "$n" alltoall "$t" ;;
    esac
}

# ------------------------------------------------------------------ rounds
for i in $(seq 1 "$RUNS"); do
    [ "${SUMMARY_ONLY:-0}" = 1 ] && break
    echo "== round $i / $RUNS"
    for m in $MEASURES; do
        for cfg in $CONFIGS; do
            case $m in
            pp) run pp "$cfg" "$i" 600 2 pingpong "$SCALE" ;;
            ring2) run ring2 "$cfg" "$i" 180 2 ring "$RING_LAPS2" ;;
            ring8)
                laps=$RING_LAPS8
                [ "$cfg" = mpich_shm ] && laps=$RING_LAPS8_MPICH
                run ring8 "$cfg" "$i" 300 8 ring "$laps"
                ;;
            idle) run idle "$cfg" "$i" $((IDLE_S + 60)) 2 idle "$IDLE_S" ;;
            coll2) coll coll2 "$cfg" "$i" 2 "$COLL_T" 180 ;;
            coll8)
                if [ "$cfg" = mpich_shm ]; then
                    coll coll8 "$cfg" "$i" 8 "$COLL_T_MPICH8" 180
                else
                    coll coll8 "$cfg" "$i" 8 "$COLL_T" 300
                fi
                ;;
            esac
        done
    done
done

# ------------------------------------------------------------------ summary
if ! ls "$RAW"/*.txt >/dev/null 2>&1; then
    echo "compare.sh: no outputs in $RAW (RUNS=$RUNS, MEASURES=$MEASURES)" >&2
    exit 1
fi
{
    echo "# gorun vs OpenMPI/MPICH, same run ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    echo "$(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr);" \
        "$(mpirun.openmpi --version 2>&1 | head -1);" \
        "$(have mpichversion && mpichversion | awk -F':[ \t]*' '/Version/ {print "MPICH " $2; exit}');" \
        "$(go version | awk '{print $3}'). RUNS=$RUNS SCALE=$SCALE COLL_T=$COLL_T COLL_T_MPICH8=$COLL_T_MPICH8," \
        "medians over rounds; ratios: the median of per-round ratios (rounds in which gorun did better / rounds)."
    echo
    awk -v configs="$CONFIGS" -v runs="$RUNS" -v idle_s="$IDLE_S" -v coll_t="$COLL_T" -v coll_t8="$COLL_T_MPICH8" '
    # Sort a[1..n] ascending (insertion sort: mawk has no asort).
    function sortn(a, n,    i, j, v) {
        for (i = 2; i <= n; i++) {
            v = a[i]
            for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]
            a[j + 1] = v
        }
    }
    # Median of the space-separated numbers in s ("" if none).
    function median(s,    a, n, k) {
        n = split(s, a, " ")
        if (n == 0) return ""
        for (k = 1; k <= n; k++) a[k] += 0
        sortn(a, n)
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    # x with at most d decimals, fewer as it grows.
    function num(x, d) {
        if (x == "") return "–"
        if (x >= 1000) return sprintf("%.0f", x)
        if (x >= 100 && d > 1) d = 1
        if (x >= 10 && d > 2) d = 2
        return sprintf("%." d "f", x)
    }
    function ratio(a, b) {
        if (a == "" || b == "" || b <= 0) return "–"
        return (a / b >= 100) ? sprintf("%.0f×", a / b) : sprintf("%.2f×", a / b)
    }
    function human(n) {
        if (n >= 1048576 && n % 1048576 == 0) return (n / 1048576) "M"
        if (n >= 1024 && n % 1024 == 0) return (n / 1024) "K"
        return n
    }
    # add(M, C, R, V): value V of measure M, config C, row key R, in the
    # round of this file; val[] keeps the values of every round, one[]
    # the value of each round.
    function add(m, c, r, v,    key) {
        key = m SUBSEP c SUBSEP r
        val[key] = (key in val) ? val[key] " " v : v
        one[key, round] = v
    }
    # pair(M, R, A, B, HB): the median over rounds of the value of A / that of B
    # in the same round, and in how many of those rounds A did better
    # (higher with HB, else lower): "0.93× (4/5)". Rounds run every config
    # back to back, so a slow period hits both sides of a round alike.
    function pair(m, r, a, b, hb,    i, ka, kb, rs, n, better) {
        ka = m SUBSEP a SUBSEP r; kb = m SUBSEP b SUBSEP r
        n = 0; better = 0; rs = ""
        for (i = 1; i <= maxround; i++) {
            if (!(((ka, i) in one) && ((kb, i) in one)) || one[kb, i] <= 0) continue
            rs = rs " " (one[ka, i] / one[kb, i]); n++
            if (hb ? one[ka, i] > one[kb, i] : one[ka, i] < one[kb, i]) better++
        }
        if (n == 0) return "–"
        return ratio(median(rs), 1) " (" better "/" n ")"
    }
    function has(c) { return (" " configs " ") ~ (" " c " ") }
    # Header and separator of a table with one column per config, then ratios.
    function header(first,    h, s, j) {
        h = "| " first " |"; s = "|---|"
        for (j = 1; j <= nc; j++) { h = h " " cf[j] " |"; s = s "---|" }
        if (has("gorun") && has("ompi_shm")) { h = h " gorun / ompi_shm |"; s = s "---|" }
        if (has("gorun_tcp") && has("ompi_tcp")) { h = h " gorun_tcp / ompi_tcp |"; s = s "---|" }
        print h; print s
    }
    # One row: medians of measure m, row key r, for every config (d decimals),
    # then the paired ratios (see pair; HB: higher is better).
    function row(label, m, r, d, hb,    line, j) {
        line = "| " label " |"
        for (j = 1; j <= nc; j++) line = line " " num(median(val[m SUBSEP cf[j] SUBSEP r]), d) " |"
        if (has("gorun") && has("ompi_shm")) line = line " " pair(m, r, "gorun", "ompi_shm", hb) " |"
        if (has("gorun_tcp") && has("ompi_tcp")) line = line " " pair(m, r, "gorun_tcp", "ompi_tcp", hb) " |"
        print line
    }
    BEGIN { opord["allreduce"] = 1; opord["bcast"] = 2; opord["barrier"] = 3; opord["alltoall"] = 4 }
    # collLess: does row key a (op SUBSEP count) sort before b?
    function collLess(a, b,    x, y) {
        split(a, x, SUBSEP); split(b, y, SUBSEP)
        if (opord[x[1]] != opord[y[1]]) return opord[x[1]] < opord[y[1]]
        return x[2] + 0 < y[2] + 0
    }
    function collLabel(k,    x) {
        split(k, x, SUBSEP)
        if (x[1] == "allreduce") return "allreduce " human(x[2]) " dbl (" human(cbytes[k]) ")"
        if (x[1] == "barrier") return "barrier"
        if (x[1] == "alltoall") return "alltoall " human(x[2]) " per rank"
        return x[1] " " human(x[2])
    }
    FNR == 1 {
        # raw/MEASURE.CONFIG.runN.txt
        n = split(FILENAME, p, "/"); split(p[n], q, ".")
        m = q[1]; c = q[2]; file = p[n]; round = substr(q[3], 4) + 0
        if (round > maxround) maxround = round
    }
    /^# rc=/ {
        rc = substr($0, 6) + 0
        if (rc != 0) bad = bad "\n- `" file "`: exit status " rc (rc == 124 || rc == 137 ? " (timeout)" : "")
        next
    }
    /^# WARNING/ { bad = bad "\n- `" file "`: " substr($0, 3); next }
    /^#/ { next }
    # coll.c / alltoall.c / bench coll: op count bytes max_us mean_us iters
    m ~ /^coll[28]$/ && NF == 6 && $1 in opord && $2 ~ /^[0-9]+$/ {
        k = $1 SUBSEP ($2 + 0)
        if (!((m SUBSEP k) in ckey)) { ckey[m SUBSEP k] = 1; nck[m]++; ck[m, nck[m]] = k; cbytes[k] = $3 + 0 }
        add(m, c, k, $4)
        next
    }
    m == "pp" && NF == 5 && $1 ~ /^[0-9]+$/ {
        size[$1 + 0] = 1
        if ($4 > 0) add("pp", c, "lat" SUBSEP ($1 + 0), $2)
        if ($5 > 0) add("pp", c, "bw" SUBSEP ($1 + 0), $3)
        next
    }
    $1 == "ring" {
        for (k = 2; k <= NF; k++) if ($k ~ /^us_per_hop=/) add(m, c, "hop", substr($k, 12))
        next
    }
    $1 == "idle" && $2 == "wait" {
        add("idle", c, "wall", $3); add("idle", c, "cpu", $6)
        next
    }
    END {
        nc = split(configs, cf, " ")
        ns = 0
        for (s in size) sz[++ns] = s + 0
        sortn(sz, ns)
        if (ns > 0) {
            print "## Latency: half round trip (µs), lower is better"
            print ""
            print "Ratio > 1: gorun is slower than OpenMPI by that factor."
            print ""
            header("size")
            for (j = 1; j <= ns; j++) row(human(sz[j]), "pp", "lat" SUBSEP sz[j], 3)
            print ""
            print "## Bandwidth: window of 64 messages (MB/s, 1 MB = 10^6 B), higher is better"
            print ""
            print "Ratio < 1: gorun reaches that fraction of OpenMPI'"'"'s bandwidth."
            print ""
            header("size")
            for (j = 1; j <= ns; j++) if (sz[j] > 0) row(human(sz[j]), "pp", "bw" SUBSEP sz[j], 1, 1)
            print ""
        }
        hdr = 0
        for (j = 2; j <= 8; j += 6) {
            any = 0
            for (k = 1; k <= nc; k++) if (("ring" j SUBSEP cf[k] SUBSEP "hop") in val) any = 1
            if (!any) continue
            if (!hdr) {
                print "## Token ring: µs per hop (one Send/Recv hand-off), lower is better"
                print ""
                header("ranks")
                hdr = 1
            }
            row("n=" j, "ring" j, "hop", 3)
        }
        if (hdr) print ""
        any = 0
        for (k = 1; k <= nc; k++) if (("idle" SUBSEP cf[k] SUBSEP "cpu") in val) any = 1
        if (any) {
            print "## Idle: rank 1 blocked in Recv for " idle_s " s (seconds), CPU: lower is better"
            print ""
            header("seconds")
            row("wall", "idle", "wall", 2)
            row("CPU while waiting", "idle", "cpu", 2)
            print ""
        }
        for (j = 2; j <= 8; j += 6) {
            m = "coll" j
            if (nck[m] == 0) continue
            n = nck[m]
            for (k = 1; k <= n; k++) keys[k] = ck[m, k]
            for (k = 2; k <= n; k++) {  # insertion sort by op, then count
                v = keys[k]
                for (r = k - 1; r >= 1 && collLess(v, keys[r]); r--) keys[r + 1] = keys[r]
                keys[r + 1] = v
            }
            print "## Collectives, n=" j ": time per call (µs), max over ranks, lower is better"
            print ""
            print "Ratio > 1: gorun is slower than OpenMPI by that factor. Target " coll_t " s per test" \
                (j == 8 && has("mpich_shm") ? " (MPICH: " coll_t8 " s)" : "") "."
            print ""
            header("op, size")
            for (k = 1; k <= n; k++) row(collLabel(keys[k]), m, keys[k], 3)
            print ""
        }
        if (bad != "") print "Failed runs:" bad "\n"
    }' "$RAW"/*.txt
    echo "Raw outputs: $RAW"
} | tee "$OUT/summary.md"
