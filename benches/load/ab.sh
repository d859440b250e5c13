#!/usr/bin/env bash
# A/B of two Gatehouse binaries: the proxy's CPU per operation, in pairs run back to back
# (A B, B A, A B, ...) so that a change is judged against the machine's drift, not against
# a number from another hour, and neither binary always runs second. Uses the PKI, upstream and configs a `compare.sh --keep` run left.
#
# Usage: benches/load/ab.sh WORKDIR MODE PAIRS BIN_A BIN_B
#   WORKDIR  the work dir `benches/load/compare.sh --keep` printed
#   MODE     h1 (keep-alive HTTP/1.1), h2, ecdsa or rsa (full handshakes, session
#            resumption off), 1m (1 MiB responses; an operation is one MiB): the loads
#            of compare.sh, with its connection counts; p99: compare.sh's fixed rate,
#            judged by the p99 latency (ms) instead of the CPU per operation
#   PAIRS    how many A/B pairs: 5 at least on a shared 2-core VM, where one binary against
#            itself scatters by up to ±8% per pair
# Environment: DUR (seconds per run, default 4).
# Prints one line per pair (µs per operation, or p99 ms, and operations/s for A and B) and
# the median of the B/A ratios of that first figure. Everything listens on 127.0.0.1; every
# command is bounded by `timeout`; every process started here is stopped on exit.
set -euo pipefail

[ $# -eq 5 ] || { sed -n '2,17p' "$0"; exit 2; }
WORK=$(cd "$1" && pwd)
MODE=$2 PAIRS=$3 BIN_A=$4 BIN_B=$5
DUR=${DUR:-4}
case "$MODE" in h1|h2|ecdsa|rsa|1m|p99) ;; *) echo "MODE must be h1, h2, ecdsa, rsa, 1m or p99" >&2; exit 2 ;; esac
for b in "$BIN_A" "$BIN_B"; do [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }; done
for t in nginx wrk h2load python3; do
    command -v "$t" >/dev/null 2>&1 || { echo "$t is missing: run compare.sh first" >&2; exit 2; }
done

OUT=$WORK/ab
rm -rf "$OUT"
mkdir -p "$OUT/state"
# shellcheck source=benches/load/lib.sh
. "$(dirname "$0")/lib.sh"
trap stop_started EXIT

nginx -e "$OUT/upstream.log" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)
up_port=$(grep -o 'listen 127.0.0.1:[0-9]*' "$WORK/upstream/nginx.conf" | head -1 | cut -d: -f2)
wait_port "$up_port" || { echo "the upstream did not start: $(tail -3 "$OUT/upstream.log")" >&2; exit 1; }

# Handshake modes use the resumption-off instance's config, the others the default one.
case "$MODE" in
    ecdsa|rsa) config=$WORK/gatehouse-off/gatehouse.toml ;;
    *) config=$WORK/gatehouse/gatehouse.toml ;;
esac
port=$(free_ports 1)
sed -e "s|^bind = .*|bind = \"127.0.0.1:$port\"|" -e "s|^state_dir = .*|state_dir = \"$OUT/state\"|" \
    "$config" >"$OUT/gatehouse.toml"

name=ecdsa
if [ "$MODE" = rsa ]; then name=rsa; fi
url="https://$name.bench.test:$port/"

# Starts BIN, warms it up, runs the load, stops it; prints "µs/op ops/s" (p99: "ms ops/s").
# Runs in this shell (not a subshell), so that an exit here still stops what it started.
run() { # BIN
    local pid before after ops p99
    GATEHOUSE_LOG=warn "$1" run --config "$OUT/gatehouse.toml" 2>>"$OUT/gatehouse.log" &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" || { echo "gatehouse did not start: $(tail -3 "$OUT/gatehouse.log")" >&2; exit 1; }
    timeout 10 curl -sk --resolve "$name.bench.test:$port:127.0.0.1" "$url" >/dev/null
    before=$(cpu_ticks "$pid")
    case "$MODE" in
        h1) read -r _ ops _ < <(run_wrk "$url" "$H1_CONNS") ;;
        h2) read -r _ ops _ < <(run_h2load "$url" -c"$H2_CONNS" -m"$H2_STREAMS") ;;
        1m) read -r _ ops _ < <(run_wrk "${url}1m" "$BIG_CONNS") ;;
        p99) read -r p99 ops _ < <(run_latency "$url") ;;
        *) read -r _ ops _ < <(run_wrk "$url" "$HS_CONNS" -H "Connection: close") ;;
    esac
    after=$(cpu_ticks "$pid")
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    [ "${ops:-0}" -gt 0 ] || { echo "no operations completed: see $WORK/tools.log" >&2; exit 1; }
    if [ "$MODE" = p99 ]; then
        echo "$p99 $(( ops / DUR ))"
        return
    fi
    awk -v b="$before" -v a="$after" -v o="$ops" -v t="$TICK" -v d="$DUR" 'BEGIN {
        split(b, x, " "); split(a, y, " ")
        printf "%.2f %.0f\n", (y[1] + y[2] - x[1] - x[2]) / t / o * 1e6, o / d }'
}

UNIT="µs/op" WHAT="CPU per operation"
if [ "$MODE" = p99 ]; then UNIT="ms p99" WHAT="p99 latency"; fi
: >"$OUT/pairs.txt"
for i in $(seq "$PAIRS"); do
    # Which goes first alternates: the second run of a pair tends to come out faster (one
    # binary against itself: 6 of 6 pairs, median 0.92), which would favour B.
    if [ $((i % 2)) = 1 ]; then
        run "$BIN_A" >"$OUT/a.txt"
        run "$BIN_B" >"$OUT/b.txt"
    else
        run "$BIN_B" >"$OUT/b.txt"
        run "$BIN_A" >"$OUT/a.txt"
    fi
    read -r a_cpu a_rate <"$OUT/a.txt"
    read -r b_cpu b_rate <"$OUT/b.txt"
    echo "$a_cpu $b_cpu" >>"$OUT/pairs.txt"
    printf 'pair %d: A %s %s %s op/s   B %s %s %s op/s\n' "$i" "$a_cpu" "$UNIT" "$a_rate" "$b_cpu" "$UNIT" "$b_rate"
done
awk '{ print $2 / $1 }' "$OUT/pairs.txt" | sort -g |
    awk '{ r[NR] = $1 } END {
        m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
        printf "B/A %s: median %.3f (pairs from %.3f to %.3f)\n", what, m, r[1], r[NR] }' what="$WHAT"
