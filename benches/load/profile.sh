#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: repeatable where the load test's
# CPU figures are noisy. Profiles Gatehouse (and nginx and HAProxy, for scale) on the
# configs a `compare.sh --keep` run left behind.
#
# Usage: benches/load/profile.sh WORKDIR [REQUESTS]
#   WORKDIR   the work dir `benches/load/compare.sh --keep` printed
#   REQUESTS  per protocol, after 400 of warm-up (default 20000)
# Environment: GATEHOUSE_BIN (default target/release/gatehouse).
# Writes callgrind.out.* into WORKDIR/profile and prints instructions per request for
# HTTP/1.1 keep-alive (h2load --h1 -c4) and HTTP/2 (h2load -c4 -m10), then the functions
# with the most inclusive instructions. Under valgrind the proxy runs ~50x slower; the
# whole script takes about 5 minutes. Needs valgrind (installed when missing).
set -euo pipefail

[ $# -ge 1 ] || { sed -n '2,13p' "$0"; exit 2; }
WORK=$(cd "$1" && pwd)
REQUESTS=${2:-20000}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
GH_BIN=${GATEHOUSE_BIN:-$REPO/target/release/gatehouse}
OUT=$WORK/profile
rm -rf "$OUT"
mkdir -p "$OUT"
[ -x "$GH_BIN" ] || { echo "no gatehouse binary at $GH_BIN" >&2; exit 1; }
if ! command -v valgrind >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "need root to install valgrind" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq valgrind >/dev/null
fi

# shellcheck source=benches/load/lib.sh
. "$REPO/benches/load/lib.sh"
trap stop_started EXIT

nginx -e "$OUT/upstream.log" -c "$WORK/upstream/nginx.conf" &
PIDS+=($!)

# Runs one server under callgrind with instrumentation off, warms it up, counts REQUESTS
# requests of each protocol, and prints instructions per request.
profile() { # TAG PORT COMMAND...
    local tag=$1 port=$2 pid wrapper total
    shift 2
    timeout 1200 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT/callgrind.out.$tag.%p" "$@" >"$OUT/$tag.log" 2>&1 &
    wrapper=$!
    PIDS+=("$wrapper")
    wait_port "$port" 300 || { echo "$tag did not start: $(tail -3 "$OUT/$tag.log")" >&2; exit 1; }
    pid=$(pgrep -P "$wrapper")  # valgrind itself, which callgrind_control talks to
    local url="https://ecdsa.bench.test:$port/" to="--connect-to=127.0.0.1:$port"
    timeout 120 h2load --h1 -n 400 -c 4 "$to" "$url" >/dev/null
    for proto in h1 h2; do
        callgrind_control -z "$pid" >/dev/null 2>&1
        callgrind_control -i on "$pid" >/dev/null 2>&1
        if [ "$proto" = h1 ]; then
            timeout 900 h2load --h1 -n "$REQUESTS" -c 4 "$to" "$url" | grep -q "$REQUESTS succeeded"
        else
            timeout 900 h2load -n "$REQUESTS" -c 4 -m 10 "$to" "$url" | grep -q "$REQUESTS succeeded"
        fi
        callgrind_control -i off "$pid" >/dev/null 2>&1
        callgrind_control -d "$tag-$proto" "$pid" >/dev/null 2>&1
        local file="" _attempt
        for _attempt in $(seq 300); do
            file=$(grep -l "Trigger: dump $tag-$proto" "$OUT"/callgrind.out."$tag".* 2>/dev/null | head -1) || true
            [ -n "$file" ] && break
            sleep 0.1
        done
        [ -n "$file" ] || { echo "$tag: callgrind wrote no dump" >&2; exit 1; }
        total=$(awk '/^totals:/ {print $2}' "$file")
        echo "$tag $proto: $(( total / REQUESTS )) instructions per request  ($file)"
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$wrapper" 2>/dev/null || true
}

port=$(free_ports 1)
sed -e "s|^bind = .*|bind = \"127.0.0.1:$port\"|" -e "s|^state_dir = .*|state_dir = \"$OUT/state\"|" \
    "$WORK/gatehouse/gatehouse.toml" >"$OUT/gatehouse.toml"
mkdir -p "$OUT/state"
GATEHOUSE_LOG=warn profile gatehouse "$port" "$GH_BIN" run --config "$OUT/gatehouse.toml"

# nginx in one process (no master), for scale.
port=$(free_ports 1)
sed -e "s|^worker_processes .*|worker_processes 1; master_process off;|" \
    -e "s|127.0.0.1:[0-9]* ssl|127.0.0.1:$port ssl|" -e "s|^pid .*|pid $OUT/nginx.pid;|" \
    "$WORK/nginx/nginx.conf" >"$OUT/nginx.conf"
profile nginx "$port" nginx -e "$OUT/nginx.log" -c "$OUT/nginx.conf"

# HAProxy in one thread, in the foreground, for scale (the better anchor for HTTP/2).
port=$(free_ports 1)
sed -e "s|^    nbthread .*|    nbthread 1|" -e "s|127.0.0.1:[0-9]* ssl|127.0.0.1:$port ssl|" \
    "$WORK/haproxy/haproxy.cfg" >"$OUT/haproxy.cfg"
profile haproxy "$port" haproxy -db -f "$OUT/haproxy.cfg"

for proto in h1 h2; do
    file=$(grep -l "Trigger: dump gatehouse-$proto" "$OUT"/callgrind.out.gatehouse.* | head -1)
    echo
    echo "Gatehouse $proto, most inclusive instructions per request:"
    callgrind_annotate --inclusive=yes "$file" 2>/dev/null |
        awk -v n="$REQUESTS" '/^ *[0-9,]+ \( *[0-9.]+%\)/ {
            x = $1; gsub(/,/, "", x); line = $0
            sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "", line); sub(/ \[.*/, "", line)
            printf "%8d  %s\n", x / n, line }' |
        grep -v -E 'tokio::runtime|PROGRAM TOTALS|std::|core::ops' | head -25
done
