#!/usr/bin/env bash
# Instructions per proxied request, or per full TLS handshake, counted by callgrind:
# repeatable where the load test's CPU figures are noisy. Profiles Gatehouse (and nginx and
# HAProxy, for scale) on the configs a `compare.sh --keep` run left behind.
#
# Usage: benches/load/profile.sh WORKDIR [REQUESTS]
#        benches/load/profile.sh --handshakes WORKDIR [SECONDS]
#   WORKDIR       the work dir `benches/load/compare.sh --keep` printed
#   REQUESTS      per protocol, after 400 of warm-up (default 20000)
#   --handshakes  full handshakes instead: the resumption-off instances, wrk with
#                 `Connection: close` (a handshake and one request per connection) on the
#                 ECDSA and then the RSA name for SECONDS each (default 20)
# Environment: GATEHOUSE_BIN (default target/release/gatehouse).
# Writes callgrind.out.* into WORKDIR/profile and prints instructions per request for
# HTTP/1.1 keep-alive (h2load --h1 -c4) and HTTP/2 (h2load -c4 -m10), then the functions
# with the most inclusive instructions; with --handshakes, instructions per handshake, of
# them the signature's and the rest. Under valgrind the proxy runs ~50x slower; the
# whole script takes about 5 minutes (2.5 with --handshakes). Needs valgrind (installed
# when missing).
set -euo pipefail

usage() { sed -n '2,19p' "$0" >&2; exit 2; }
MODE=requests
if [ "${1:-}" = --handshakes ]; then
    MODE=handshakes
    shift
fi
[ $# -ge 1 ] && [ $# -le 2 ] || usage
case $1 in -*) echo "unknown option: $1" >&2; usage ;; esac
if ! [ -f "$1/upstream/nginx.conf" ]; then
    echo "not a work dir of compare.sh: $1 (run \`benches/load/compare.sh --keep\` and pass the dir it printed)" >&2
    exit 2
fi
if [ $# -eq 2 ] && ! [[ $2 =~ ^[1-9][0-9]{0,6}$ ]]; then
    echo "not a count: $2 (a whole number from 1)" >&2
    exit 2
fi
WORK=$(cd "$1" && pwd)
if [ "$MODE" = requests ]; then
    REQUESTS=${2:-20000}
    SUFFIX=""
else
    SECONDS_EACH=${2:-20}
    SUFFIX="-off"
fi
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

# Waits for callgrind's dump named TRIGGER of TAG's process; prints the file.
dump_file() { # TAG TRIGGER
    local file="" _attempt
    for _attempt in $(seq 300); do
        file=$(grep -l "Trigger: dump $2\$" "$OUT"/callgrind.out."$1".* 2>/dev/null | head -1) || true
        [ -n "$file" ] && { echo "$file"; return; }
        sleep 0.1
    done
    echo "$1: callgrind wrote no dump $2" >&2
    exit 1
}

# Inclusive instructions of the TLS signature in a dump: `EVP_DigestSign`, through which
# aws-lc-rs (under its prefixed name) and OpenSSL's TLS both sign CertificateVerify.
signature_instructions() { # FILE
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        awk '/[:_]EVP_DigestSign \[/ { x = $1; gsub(/,/, "", x); s += x } END { printf "%.0f\n", s }'
}

# Full handshakes on the resumption-off instance at PORT for SECONDS_EACH, per key type;
# prints instructions per handshake, the signature's and the rest.
count_handshakes() { # TAG PORT PID
    local tag=$1 port=$2 pid=$3 kind url done_ errors file total sign
    for kind in ecdsa rsa; do
        url="https://$kind.bench.test:$port/"
        DUR=2 run_wrk "$url" 4 -H "Connection: close" >/dev/null
        callgrind_control -z "$pid" >/dev/null 2>&1
        callgrind_control -i on "$pid" >/dev/null 2>&1
        read -r _ done_ errors < <(DUR=$SECONDS_EACH run_wrk "$url" 4 -H "Connection: close")
        callgrind_control -i off "$pid" >/dev/null 2>&1
        callgrind_control -d "$tag-$kind" "$pid" >/dev/null 2>&1
        if [ "$done_" -eq 0 ] || [ "$errors" -ne 0 ]; then
            echo "$tag $kind: wrk did not complete clean handshakes ($done_ done, $errors failed; $WORK/tools.log)" >&2
            exit 1
        fi
        file=$(dump_file "$tag" "$tag-$kind")
        total=$(awk '/^totals:/ {print $2}' "$file")
        sign=$(signature_instructions "$file")
        echo "$tag $kind: $(( total / done_ )) instructions per handshake, signature $(( sign / done_ )), the rest $(( (total - sign) / done_ ))  ($done_ handshakes, $file)"
    done
}

# Counts REQUESTS requests of each protocol and prints instructions per request.
count_requests() { # TAG PORT PID
    local tag=$1 port=$2 pid=$3 proto file total
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
        file=$(dump_file "$tag" "$tag-$proto")
        total=$(awk '/^totals:/ {print $2}' "$file")
        echo "$tag $proto: $(( total / REQUESTS )) instructions per request  ($file)"
    done
}

# Runs one server under callgrind with instrumentation off and counts what MODE asks for.
profile() { # TAG PORT COMMAND...
    local tag=$1 port=$2 pid wrapper
    shift 2
    timeout 1200 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT/callgrind.out.$tag.%p" "$@" >"$OUT/$tag.log" 2>&1 &
    wrapper=$!
    PIDS+=("$wrapper")
    wait_port "$port" 300 || { echo "$tag did not start: $(tail -3 "$OUT/$tag.log")" >&2; exit 1; }
    pid=$(pgrep -P "$wrapper")  # valgrind itself, which callgrind_control talks to
    if [ "$MODE" = requests ]; then
        count_requests "$tag" "$port" "$pid"
    else
        count_handshakes "$tag" "$port" "$pid"
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$wrapper" 2>/dev/null || true
}

port=$(free_ports 1)
sed -e "s|^bind = .*|bind = \"127.0.0.1:$port\"|" -e "s|^state_dir = .*|state_dir = \"$OUT/state\"|" \
    "$WORK/gatehouse$SUFFIX/gatehouse.toml" >"$OUT/gatehouse.toml"
mkdir -p "$OUT/state"
GATEHOUSE_LOG=warn profile gatehouse "$port" "$GH_BIN" run --config "$OUT/gatehouse.toml"

# nginx in one process (no master), for scale.
port=$(free_ports 1)
sed -e "s|^worker_processes .*|worker_processes 1; master_process off;|" \
    -e "s|127.0.0.1:[0-9]* ssl|127.0.0.1:$port ssl|" -e "s|^pid .*|pid $OUT/nginx.pid;|" \
    "$WORK/nginx$SUFFIX/nginx.conf" >"$OUT/nginx.conf"
profile nginx "$port" nginx -e "$OUT/nginx.log" -c "$OUT/nginx.conf"

# HAProxy in one thread, in the foreground, for scale (the better anchor for HTTP/2).
port=$(free_ports 1)
sed -e "s|^    nbthread .*|    nbthread 1|" -e "s|127.0.0.1:[0-9]* ssl|127.0.0.1:$port ssl|" \
    "$WORK/haproxy$SUFFIX/haproxy.cfg" >"$OUT/haproxy.cfg"
profile haproxy "$port" haproxy -db -f "$OUT/haproxy.cfg"

[ "$MODE" = requests ] || exit 0
for proto in h1 h2; do
    file=$(dump_file gatehouse "gatehouse-$proto")
    echo
    echo "Gatehouse $proto, most inclusive instructions per request:"
    callgrind_annotate --inclusive=yes "$file" 2>/dev/null |
        awk -v n="$REQUESTS" '/^ *[0-9,]+ \( *[0-9.]+%\)/ {
            x = $1; gsub(/,/, "", x); line = $0
            sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "", line); sub(/ \[.*/, "", line)
            printf "%8d  %s\n", x / n, line }' |
        grep -v -E 'tokio::runtime|PROGRAM TOTALS|std::|core::ops' | head -25
done
