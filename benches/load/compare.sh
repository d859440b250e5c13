#!/usr/bin/env bash
# Load comparison: Gatehouse against nginx and HAProxy as the same TLS terminator, on
# loopback, on this machine, in one run (issue 7). See benches/RESULTS.md for what each
# measure means and the last results.
#
# Usage: benches/load/compare.sh [--quick | --only MEASURES] [--out FILE] [--keep]
#   --quick   one run each of a subset (keep-alive HTTP/1.1 and HTTP/2, full ECDSA and
#             resumed handshakes, 2,000 idle connections, 2 metrics on/off pairs): about
#             a minute and a half
#   --only    only these measures, comma-separated, from h1_keepalive h1_metrics h2 full_ecdsa
#             full_rsa resumed mib1 p99 idle_memory idle_memory_used; with RUNS=9, to settle a
#             target that lands on either side of its line from run to run (3 measures
#             of 9 rounds: about 7 minutes)
#   --out     also write the summary (markdown) to FILE
#   --keep    keep the work dir (configs, raw results, logs; test keys are in it)
# Environment: GATEHOUSE_BIN (skip `cargo build --release`), RUNS, DUR (seconds per run).
#
# Needs root for apt-get only when something is missing (nginx, haproxy, wrk,
# nghttp2-client, openssl, python3, curl). Everything listens on 127.0.0.1; every command
# is bounded by `timeout`; every process started here is stopped on exit.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
# shellcheck source=benches/load/lib.sh
. "$SCRIPT_DIR/lib.sh"

QUICK=0
ONLY=""
OUT=""
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --only|--out)
            [ $# -ge 2 ] && [ -n "$2" ] || { echo "$1 needs a value (see --help)" >&2; exit 2; }
            if [ "$1" = --only ]; then ONLY=$2; else OUT=$2; fi
            shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
# Every measure, in the order they run; --quick runs QUICK_MEASURES, --only the ones named.
ALL_MEASURES="h1_keepalive h1_metrics h2 full_ecdsa full_rsa resumed mib1 p99 idle_memory idle_memory_used"
QUICK_MEASURES="h1_keepalive h1_metrics h2 full_ecdsa resumed idle_memory idle_memory_used"
MEASURES=$ALL_MEASURES
[ "$QUICK" = 1 ] && MEASURES=$QUICK_MEASURES
if [ -n "$ONLY" ]; then
    [ "$QUICK" = 1 ] && { echo "--quick and --only exclude each other (see --help)" >&2; exit 2; }
    for m in ${ONLY//,/ }; do
        case " $ALL_MEASURES " in
            *" $m "*) ;;
            *) echo "--only: unknown measure \"$m\"; the measures are: $ALL_MEASURES" >&2; exit 2 ;;
        esac
    done
    # Kept in the order of ALL_MEASURES, whatever the order given.
    MEASURES=$(for m in $ALL_MEASURES; do case ",$ONLY," in *",$m,"*) printf '%s ' "$m" ;; esac; done)
fi

# --- parameters -------------------------------------------------------------------------
# Gatehouse runs one worker thread per core (its `workers` setting, written into its config
# below). The anchors get the same number of workers (nginx worker_processes, HAProxy
# nbthread).
WORKERS=$(nproc)
if [ "$QUICK" = 1 ]; then
    RUNS=${RUNS:-1}; DUR=${DUR:-3}; IDLE_CONNS=2000; METRICS_RUNS=2
else
    RUNS=${RUNS:-3}; DUR=${DUR:-4}; IDLE_CONNS=10000; METRICS_RUNS=6
fi
# Gatehouse picks TLS 1.3 suites in its own order, AES-128-GCM first (its SHA-256 key
# schedule is cheaper than AES-256-GCM-SHA384's); the anchors are given the same order so
# that handshakes compare like for like.
TLS13_SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
# Connections per load (H1_CONNS, H2_CONNS, H2_STREAMS, HS_CONNS, BIG_CONNS and the fixed
# rate, LAT_CLIENTS x LAT_RPS, are in lib.sh).
BUDGET=600           # seconds for the whole measuring part; later runs are skipped
T0=$(date +%s)

log() { printf '[%4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- install what is missing ------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    log "installing: ${need[*]}"
    [ "$(id -u)" = 0 ] || die "need root to apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq
    timeout 600 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- the Gatehouse binary ---------------------------------------------------------------
if [ -n "${GATEHOUSE_BIN:-}" ]; then
    GH_BIN=$GATEHOUSE_BIN
else
    log "cargo build --release (first time: a few minutes; not counted in the budget)"
    (cd "$REPO" && timeout 1800 cargo build --release -q -p proxy)
    GH_BIN=$REPO/target/release/gatehouse
fi
[ -x "$GH_BIN" ] || die "no gatehouse binary at $GH_BIN"
T0=$(date +%s)

# File descriptors: 10,000 idle connections need that many in the client and the proxy.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if [ "$FD_LIMIT" != unlimited ] && [ "$FD_LIMIT" -lt $(( IDLE_CONNS + 500 )) ]; then
    IDLE_CONNS=$(( FD_LIMIT - 500 ))
    log "file descriptor limit $FD_LIMIT: idle connections lowered to $IDLE_CONNS"
fi

# --- work dir and cleanup ---------------------------------------------------------------
WORK=$(mktemp -d /tmp/gatehouse-compare.XXXXXX)
RESULTS=$WORK/results.tsv
WATCHDOG=""
cleanup() {
    local rc=$?
    set +e
    stop_started
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
    if [ "$KEEP" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A hard stop well past the budget, in case something hangs despite the timeouts.
(
    trap 'kill "$nap" 2>/dev/null; wait "$nap"; exit 0' TERM
    sleep $(( BUDGET + 300 )) & nap=$!
    wait "$nap" && kill -TERM $$
) >/dev/null 2>&1 &
WATCHDOG=$!

# --- test PKI with the openssl CLI ------------------------------------------------------
# Two chains, root -> intermediate -> leaf, one ECDSA P-256 and one RSA-2048. Keys stay in
# the work dir and are never printed.
make_pki() {
    local d=$WORK/pki
    mkdir -p "$d"
    cat >"$d/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[root]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[inter]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:${ENV::LEAF_NAME}
EOF
    local kind keyopt
    for kind in ecdsa rsa; do
        if [ "$kind" = ecdsa ]; then
            keyopt=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)
        else
            keyopt=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048)
        fi
        (
            cd "$d"
            export OPENSSL_CONF=$d/openssl.cnf LEAF_NAME=$kind.bench.test
            for who in root inter leaf; do
                timeout 30 openssl genpkey "${keyopt[@]}" -out "$kind-$who.key" 2>/dev/null
            done
            timeout 30 openssl req -x509 -new -key "$kind-root.key" -sha256 -days 3650 \
                -subj "/CN=Gatehouse bench $kind root" -config openssl.cnf -extensions root \
                -set_serial "0x$(openssl rand -hex 8)" -out "$kind-root.crt"
            timeout 30 openssl req -new -key "$kind-inter.key" -subj "/CN=Gatehouse bench $kind intermediate" \
                -config openssl.cnf -out "$kind-inter.csr"
            timeout 30 openssl x509 -req -in "$kind-inter.csr" -CA "$kind-root.crt" -CAkey "$kind-root.key" \
                -set_serial "0x$(openssl rand -hex 8)" -days 1825 -sha256 \
                -extfile openssl.cnf -extensions inter -out "$kind-inter.crt" 2>/dev/null
            timeout 30 openssl req -new -key "$kind-leaf.key" -subj "/CN=$kind.bench.test" \
                -config openssl.cnf -out "$kind-leaf.csr"
            timeout 30 openssl x509 -req -in "$kind-leaf.csr" -CA "$kind-inter.crt" -CAkey "$kind-inter.key" \
                -set_serial "0x$(openssl rand -hex 8)" -days 90 -sha256 \
                -extfile openssl.cnf -extensions leaf -out "$kind-leaf.crt" 2>/dev/null
            # nginx: leaf + intermediate; HAProxy: leaf + intermediate + key in one file.
            cat "$kind-leaf.crt" "$kind-inter.crt" >"$kind-fullchain.crt"
            cat "$kind-fullchain.crt" "$kind-leaf.key" >"$kind-haproxy.pem"
            chmod 600 "$kind-haproxy.pem"
            timeout 30 openssl verify -CAfile "$kind-root.crt" -untrusted "$kind-inter.crt" \
                "$kind-leaf.crt" >/dev/null
        )
    done
    cat "$d/ecdsa-root.crt" "$d/rsa-root.crt" >"$d/roots.crt"
}

# --- the upstream: one nginx worker answering 200 with a ~100-byte body, and 1 MiB ------
BODY='Gatehouse load comparison upstream: a short plain-text answer of about one hundred bytes.'
start_upstream() {
    local d=$WORK/upstream
    mkdir -p "$d/www"
    head -c 1048576 /dev/zero | tr '\0' 'x' >"$d/www/1m"
    cat >"$d/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
worker_rlimit_nofile 8192;
pid $d/nginx.pid;
error_log $d/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/tmp-body;
    proxy_temp_path $d/tmp-proxy;
    fastcgi_temp_path $d/tmp-fastcgi;
    uwsgi_temp_path $d/tmp-uwsgi;
    scgi_temp_path $d/tmp-scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    sendfile on;
    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location = /1m { root $d/www; default_type application/octet-stream; }
        location / { default_type text/plain; return 200 "$BODY\n"; }
    }
}
EOF
    nginx -e "$d/error.log" -c "$d/nginx.conf" &
    UP_PID=$!
    PIDS+=("$UP_PID")
    wait_port "$UP_PORT" || die "upstream nginx did not start: $(cat "$d/error.log")"
}

# --- the three terminators --------------------------------------------------------------
# Each is started in one of two modes: "on" (session resumption on: tickets and a session
# cache; used by every measure but full handshakes) and "off" (every connection is a full
# handshake). Same certificates and full chain, SNI picks ECDSA or RSA, HTTP/1.1 and
# HTTP/2 by ALPN, X-Forwarded-For/-Proto/-Host set, HTTP/1.1 keep-alive to the upstream.
# Sets SERVER_PID (the process whose CPU and memory are measured, with its children).
declare -A PORT
start_gatehouse() { # NAME PORT MODE METRICS
    local port=$2 mode=$3 metrics=$4 d=$WORK/$1
    mkdir -p "$d/state"
    local resumption=true
    [ "$mode" = off ] && resumption=false
    cat >"$d/gatehouse.toml" <<EOF
state_dir = "$d/state"
shutdown_timeout = 1
metrics = $metrics
workers = $WORKERS

[admin]
listen = "127.0.0.1:0"

[[certificate]]
name = "ecdsa"
cert = "$WORK/pki/ecdsa-leaf.crt"
key = "$WORK/pki/ecdsa-leaf.key"
chain = "$WORK/pki/ecdsa-inter.crt"

[[certificate]]
name = "rsa"
cert = "$WORK/pki/rsa-leaf.crt"
key = "$WORK/pki/rsa-leaf.key"
chain = "$WORK/pki/rsa-inter.crt"

[[listener]]
name = "bench"
bind = "127.0.0.1:$port"
certificates = ["ecdsa", "rsa"]
upstream = "http://127.0.0.1:$UP_PORT"
session_resumption = $resumption
max_connections = 20000
EOF
    GATEHOUSE_LOG=warn "$GH_BIN" run --config "$d/gatehouse.toml" 2>>"$d/stderr.log" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$port" || die "gatehouse did not start: $(tail -5 "$d/stderr.log")"
}

start_nginx() { # NAME PORT MODE
    local port=$2 mode=$3 d=$WORK/$1
    mkdir -p "$d"
    local resumption="ssl_session_cache shared:SSL:10m; ssl_session_tickets on;"
    # Off: OpenSSL 3.0 still sends two TLS 1.3 tickets per handshake with the cache and
    # tickets both off, tickets nobody can resume with (openssl/openssl#8077, fixed in
    # OpenSSL's 2026 releases). NumTickets 0 sends none, as Gatehouse does with
    # session_resumption = false. HAProxy 2.6 has no such setting (haproxy/haproxy#1103):
    # the summary says how many tickets each sent.
    [ "$mode" = off ] && resumption="ssl_session_cache off; ssl_session_tickets off; ssl_conf_command NumTickets 0;"
    local servers="" kind options="backlog=4096"
    for kind in ecdsa rsa; do
        servers+="
    server {
        listen 127.0.0.1:$port ssl http2 $options;
        server_name $kind.bench.test;
        ssl_certificate $WORK/pki/$kind-fullchain.crt;
        ssl_certificate_key $WORK/pki/$kind-leaf.key;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host \$http_host;
        }
    }"
        options=""  # socket options go on the first listen of an address only
    done
    cat >"$d/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes $WORKERS;
worker_rlimit_nofile $FD_LIMIT;
pid $d/nginx.pid;
error_log $d/error.log warn;
daemon off;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $d/tmp-body;
    proxy_temp_path $d/tmp-proxy;
    fastcgi_temp_path $d/tmp-fastcgi;
    uwsgi_temp_path $d/tmp-uwsgi;
    scgi_temp_path $d/tmp-scgi;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    client_header_timeout 60s;
    ssl_protocols TLSv1.2 TLSv1.3;
    # The TLS 1.3 suite order Gatehouse uses (server's choice, AES-128-GCM first).
    ssl_conf_command Ciphersuites $TLS13_SUITES;
    ssl_prefer_server_ciphers on;
    $resumption
    # Stream large answers through memory buffers, never a temp file (as Gatehouse does).
    proxy_buffers 16 64k;
    proxy_busy_buffers_size 128k;
    proxy_max_temp_file_size 0;
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 128;
    }$servers
}
EOF
    nginx -e "$d/error.log" -c "$d/nginx.conf" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$port" || die "nginx did not start: $(tail -5 "$d/error.log")"
}

start_haproxy() { # NAME PORT MODE
    local port=$2 mode=$3 d=$WORK/$1
    mkdir -p "$d"
    local global_resumption="" bind_resumption=""
    if [ "$mode" = off ]; then
        global_resumption="tune.ssl.cachesize 0"
        bind_resumption="no-tls-tickets"
    fi
    cat >"$d/haproxy.cfg" <<EOF
global
    nbthread $WORKERS
    maxconn 12000
    no strict-limits
    ssl-default-bind-options ssl-min-ver TLSv1.2
    # The TLS 1.3 suite order Gatehouse uses; HAProxy picks in its own order by default.
    ssl-default-bind-ciphersuites $TLS13_SUITES
    $global_resumption

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 60s
    timeout http-keep-alive 60s

frontend bench
    bind 127.0.0.1:$port ssl crt $WORK/pki/ecdsa-haproxy.pem crt $WORK/pki/rsa-haproxy.pem alpn h2,http/1.1 $bind_resumption
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend up

backend up
    http-reuse always
    server up 127.0.0.1:$UP_PORT
EOF
    haproxy -f "$d/haproxy.cfg" -db >>"$d/stderr.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_port "$port" || die "haproxy did not start: $(tail -5 "$d/stderr.log")"
}

stop_server() {
    local pid=$1 _ kept=()
    if kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    # Forget it, so that cleanup never signals a pid the system may have reused.
    local other
    for other in "${PIDS[@]}"; do [ "$other" = "$pid" ] || kept+=("$other"); done
    PIDS=("${kept[@]}")
}

# "cpu_seconds sys_seconds" between two cpu_ticks readings.
cpu_delta() { awk -v t="$TICK" -v b="$1" -v a="$2" 'BEGIN { split(b, x, " "); split(a, y, " ");
    printf "%.3f %.3f\n", (y[1] + y[2] - x[1] - x[2]) / t, (y[2] - x[2]) / t }'; }

# Pss in KiB, summed over the tree.
pss_kib() {
    local total=0 pid
    for pid in $(tree_pids "$1"); do
        total=$(( total + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}

# CPU used during a run by processes that are not this script's (another build, say): it
# makes the figures unfair, so every run records it. "snap" prints every process's pid,
# parent and utime+stime; "diff BEFORE AFTER ROOT" prints the seconds user processes
# outside ROOT's tree spent and the busiest of them, then the seconds kernel threads spent
# (socket teardown by RCU, mostly: the load's own cost, paid outside any process).
cat >"$WORK/others.py" <<'EOF'
import os, sys

def snap():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                line = f.read()
        except OSError:
            continue
        comm = line[line.index("(") + 1:line.rindex(")")].replace("\t", " ")
        rest = line[line.rindex(")") + 2:].split()
        # pid and start time identify a process (kernel workers change their comm).
        print(f"{pid}\t{rest[1]}\t{int(rest[11]) + int(rest[12])}\t{rest[19]}\t{comm}")

def load(path):
    out = {}
    for line in open(path):
        pid, ppid, ticks, start, comm = line.rstrip("\n").split("\t")
        out[int(pid)] = (int(ppid), int(ticks), start, comm)
    return out

def diff(before, after, root):
    parent = {pid: v[0] for pid, v in before.items()}
    parent.update({pid: v[0] for pid, v in after.items()})
    def ours(pid):
        for _ in range(64):
            if pid == root:
                return True
            if pid not in parent or pid <= 1:
                return False
            pid = parent[pid]
        return False
    ticks, kernel, busiest = 0, 0, {}
    for pid, (ppid, t, start, comm) in after.items():
        if ours(pid):
            continue
        prev = before.get(pid)
        d = t - (prev[1] if prev and prev[2] == start else 0)
        if d <= 0:
            continue
        if pid == 2 or ppid == 2:
            kernel += d
        else:
            ticks += d
            busiest[comm] = busiest.get(comm, 0) + d
    top = max(busiest, key=busiest.get) if busiest else "-"
    hz = os.sysconf("SC_CLK_TCK")
    print(f"{ticks / hz:.2f} {top} kernel-threads {kernel / hz:.2f}")

if sys.argv[1] == "snap":
    snap()
else:
    diff(load(sys.argv[2]), load(sys.argv[3]), int(sys.argv[4]))
EOF
others_snap() { python3 "$WORK/others.py" snap >"$WORK/snap.$1"; }
others_diff() { python3 "$WORK/others.py" diff "$WORK/snap.before" "$WORK/snap.after" $$; }

# --- load tools -------------------------------------------------------------------------
# wrk takes the TLS server name from the URL; this makes it connect to 127.0.0.1 whatever
# the name, so no /etc/hosts entry is needed.
cat >"$WORK/loopback.lua" <<'EOF'
function wrk.resolve(host, service)
    wrk.addrs = wrk.lookup("127.0.0.1", service)
end
EOF

# "utime stime" in clock ticks of this script's children that have ended (fields 16 and 17
# of /proc/$$/stat): the load tool's CPU, once a run's command substitution has returned.
children_ticks() {
    local line
    line=$(<"/proc/$$/stat")
    line=${line##*) }
    echo "$line" | awk '{print $14, $15}'
}

# One run of COMMAND (a run_* function) against PROXY, whose process tree is PID. Appends
# "measure proxy run rate ops errors cpu_s others_s sys_s tool_s upstream_s" to the
# results: the proxy's CPU and, to read its rate by, the CPU of the two processes that
# share the cores with it, the load tool and the upstream.
measure() { # MEASURE PROXY RUN PID COMMAND...
    local m=$1 p=$2 r=$3 pid=$4 before after res others tool0 tool1 up0 up1
    shift 4
    others_snap before
    before=$(cpu_ticks "$pid")
    up0=$(cpu_ticks "$UP_PID")
    tool0=$(children_ticks)
    res=$("$@")
    tool1=$(children_ticks)
    up1=$(cpu_ticks "$UP_PID")
    after=$(cpu_ticks "$pid")
    others_snap after
    others=$(others_diff)
    local cpu sys tool up
    read -r cpu sys < <(cpu_delta "$before" "$after")
    read -r tool _ < <(cpu_delta "$tool0" "$tool1")
    read -r up _ < <(cpu_delta "$up0" "$up1")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$p" "$r" "$(tr ' ' '\t' <<<"$res")" "$cpu" "${others%% *}" "$sys" "$tool" "$up" >>"$RESULTS"
    log "$m $p run $r: $res cpu ${cpu}s (sys ${sys}s); load tool ${tool}s, upstream ${up}s; others ${others}"
}

# Session resumption as configured? Two connections with Python's ssl (OpenSSL), the
# second offering the first one's session; prints "resumed" or "full".
resumption_of() { # PORT NAME
    timeout 20 python3 - "$1" "$2" <<'EOF'
import socket, ssl, sys
port, name = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
session = None
for _ in range(2):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname=name, session=session) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            while s.recv(65536):
                pass
            reused, session = s.session_reused, s.session
print("resumed" if reused else "full")
EOF
}

# Opens N TLS connections (TLS handshake done, ALPN http/1.1) and holds them; with a 5th
# argument "request", each first carries one keep-alive request, read to its end (what a
# browser leaves behind), else none.
cat >"$WORK/idle_client.py" <<'EOF'
import asyncio, ssl, sys

port, name, count, hold = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
request = len(sys.argv) > 5 and sys.argv[5] == "request"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])

async def main():
    gate = asyncio.Semaphore(64)
    held = []
    async def one():
        async with gate:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name), 30)
            if request:
                writer.write(f"GET / HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = next(int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")
                              if l.lower().startswith(b"content-length:"))
                await asyncio.wait_for(reader.readexactly(length), 30)
            held.append((reader, writer))
    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    failed = sum(isinstance(r, BaseException) for r in results)
    print(f"ready {len(held)} {failed}", flush=True)
    await asyncio.sleep(hold)

asyncio.run(main())
EOF

# Memory of idle connections, fresh process: one request, Pss, N connections, Pss. With
# MODE "request", each connection has carried one keep-alive request before it idles.
measure_idle() { # PROXY RUN [MODE]
    local p=$1 r=$2 mode=${3:-} port pid
    port=$(free_ports 1)
    case $p in
        gatehouse) start_gatehouse "mem-$p-$r" "$port" on true ;;
        nginx) start_nginx "mem-$p-$r" "$port" on ;;
        haproxy) start_haproxy "mem-$p-$r" "$port" on ;;
    esac
    pid=$SERVER_PID
    timeout 10 curl -sS -o /dev/null -k --resolve "ecdsa.bench.test:$port:127.0.0.1" \
        "https://ecdsa.bench.test:$port/" || log "warning: warm-up request to $p failed"
    sleep 1
    local before after cpu0 cpu1 out=$WORK/idle$mode-$p-$r.out measure=idle_memory
    [ -n "$mode" ] && measure=idle_memory_used
    before=$(pss_kib "$pid")
    others_snap before
    cpu0=$(cpu_ticks "$pid")
    timeout 300 python3 "$WORK/idle_client.py" "$port" ecdsa.bench.test "$IDLE_CONNS" 120 $mode >"$out" 2>&1 &
    local client=$!
    PIDS+=("$client")
    local _
    for _ in $(seq 1200); do
        grep -q '^ready' "$out" 2>/dev/null && break
        kill -0 "$client" 2>/dev/null || break
        sleep 0.1
    done
    sleep 2
    after=$(pss_kib "$pid")
    cpu1=$(cpu_ticks "$pid")
    others_snap after
    local others
    others=$(others_diff)
    local held failed established
    read -r _ held failed < <(grep '^ready' "$out" || echo "x 0 $IDLE_CONNS")
    established=$( (ss -Htn state established "( sport = :$port )" 2>/dev/null || true) | wc -l)
    stop_server "$client"
    stop_server "$pid"
    local per_conn cpu sys
    per_conn=$(awk -v a="$after" -v b="$before" -v n="$held" 'BEGIN { printf "%.2f", n ? (a - b) / n : 0 }')
    read -r cpu sys < <(cpu_delta "$cpu0" "$cpu1")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$measure" "$p" "$r" "$per_conn" "$held" "$failed" "$cpu" "${others%% *}" "$sys" >>"$RESULTS"
    log "$measure $p run $r: Pss $before -> $after KiB, $held held ($established established at the proxy, $failed failed): $per_conn KiB/conn; handshake cpu ${cpu}s; others ${others}"
}

over_budget() { [ $(( $(date +%s) - T0 )) -ge "$BUDGET" ]; }

# Runs a measure RUNS (or COUNT) times over the given proxies, rotating the order each run.
# A run during which other processes used the CPU (FOREIGN_MAX seconds or more) is done
# again, up to twice, after a pause; the last attempt is kept either way.
FOREIGN_MAX=0.5
rounds() { # MEASURE "PROXIES..." FUNCTION [COUNT]
    local m=$1 fn=$3 count=${4:-$RUNS} proxies r i n attempt foreign
    read -r -a proxies <<<"$2"
    n=${#proxies[@]}
    for r in $(seq "$count"); do
        for i in $(seq 0 $(( n - 1 ))); do
            local p=${proxies[$(( (i + r - 1) % n ))]}
            for attempt in 1 2 3; do
                if over_budget; then log "budget of ${BUDGET}s spent: $m $p run $r skipped"; break; fi
                "$fn" "$m" "$p" "$r"
                sleep 0.5
                foreign=$(tail -n 1 "$RESULTS" | cut -f8)
                if [ "$attempt" = 3 ] || awk -v f="$foreign" -v max="$FOREIGN_MAX" 'BEGIN { exit !(f < max) }'; then
                    break
                fi
                log "$m $p run $r shared the machine (${foreign}s CPU outside this script): again in 10 s"
                sed -i '$d' "$RESULTS"
                sleep 10
            done
        done
    done
}

# --- the measures -----------------------------------------------------------------------
url() { echo "https://$2.bench.test:${PORT[$1]}${3:-/}"; }
url_off() { echo "https://$2.bench.test:${PORT[$1-off]}${3:-/}"; }

m_h1() { measure "$1" "$2" "$3" "${PID[$2]}" run_wrk "$(url "$2" ecdsa)" "$H1_CONNS"; }
m_h2() { measure "$1" "$2" "$3" "${PID[$2]}" run_h2load "$(url "$2" ecdsa)" -c"$H2_CONNS" -m"$H2_STREAMS"; }
m_full_ecdsa() { measure "$1" "$2" "$3" "${PID[$2-off]}" run_wrk "$(url_off "$2" ecdsa)" "$HS_CONNS" -H "Connection: close"; }
m_full_rsa() { measure "$1" "$2" "$3" "${PID[$2-off]}" run_wrk "$(url_off "$2" rsa)" "$HS_CONNS" -H "Connection: close"; }
m_resumed() { measure "$1" "$2" "$3" "${PID[$2]}" run_wrk "$(url "$2" ecdsa)" "$HS_CONNS" -H "Connection: close"; }
m_1mib() { measure "$1" "$2" "$3" "${PID[$2]}" run_wrk "$(url "$2" ecdsa /1m)" "$BIG_CONNS"; }
m_p99() { measure "$1" "$2" "$3" "${PID[$2]}" run_latency "$(url "$2" ecdsa)"; }
m_idle() { measure_idle "$2" "$3"; }
m_idle_used() { measure_idle "$2" "$3" request; }

# --- go ---------------------------------------------------------------------------------
log "work dir $WORK; $RUNS run(s) of ${DUR}s; $WORKERS workers"
make_pki
: >"$RESULTS"
read -r UP_PORT P1 P2 P3 P4 P5 P6 P7 < <(free_ports 8)
start_upstream
declare -A PID
start_gatehouse gatehouse "$P1" on true;          PID[gatehouse]=$SERVER_PID;         PORT[gatehouse]=$P1
start_gatehouse gatehouse-nometrics "$P2" on false; PID[gatehouse-nometrics]=$SERVER_PID; PORT[gatehouse-nometrics]=$P2
start_nginx nginx "$P3" on;                       PID[nginx]=$SERVER_PID;             PORT[nginx]=$P3
start_haproxy haproxy "$P4" on;                   PID[haproxy]=$SERVER_PID;           PORT[haproxy]=$P4
start_gatehouse gatehouse-off "$P5" off true;     PID[gatehouse-off]=$SERVER_PID;     PORT[gatehouse-off]=$P5
start_nginx nginx-off "$P6" off;                  PID[nginx-off]=$SERVER_PID;         PORT[nginx-off]=$P6
start_haproxy haproxy-off "$P7" off;              PID[haproxy-off]=$SERVER_PID;       PORT[haproxy-off]=$P7

declare -A NEGOTIATED
# Every terminator answers both names with the right key and the full chain, HTTP/2 by
# ALPN, and resumes sessions exactly when it should.
for t in gatehouse gatehouse-nometrics nginx haproxy gatehouse-off nginx-off haproxy-off; do
    port=${PORT[$t]}
    for kind in ecdsa rsa; do
        chain=$(timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername "$kind.bench.test" \
            -alpn h2 -showcerts </dev/null 2>/dev/null | tr -d '\0') || die "$t: TLS to $kind.bench.test failed"
        served=$(grep -c 'BEGIN CERTIFICATE' <<<"$chain" || true)
        grep -q "ALPN protocol: h2" <<<"$chain" || die "$t: no HTTP/2 by ALPN"
        leaf_key=$(sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' <<<"$chain" | openssl x509 -noout -text | grep -m1 'Public Key Algorithm' || true)
        case "$kind:$leaf_key" in
            ecdsa:*id-ecPublicKey*|rsa:*rsaEncryption*) ;;
            *) die "$t: $kind.bench.test served $leaf_key" ;;
        esac
        [ "$served" = 2 ] || die "$t: $kind.bench.test served $served certificates, expected leaf + intermediate"
        [ "$kind" = ecdsa ] && NEGOTIATED[$t]="$(grep -m1 -o 'Cipher is [A-Z0-9_]*' <<<"$chain" | cut -d' ' -f3), $(grep -m1 -o 'Temp Key: [A-Za-z0-9]*' <<<"$chain" | cut -d' ' -f3)"
        # The RSA signature's scheme and hash (its hash is part of the handshake's cost).
        [ "$kind" = rsa ] && NEGOTIATED[$t]+=", RSA signed with $(grep -m1 -o 'Peer signature type: [A-Za-z0-9-]*' <<<"$chain" | cut -d' ' -f4) $(grep -m1 -o 'Peer signing digest: [A-Za-z0-9-]*' <<<"$chain" | cut -d' ' -f4)"
        code=$(timeout 10 curl -sS -o /dev/null -w '%{http_code}' --cacert "$WORK/pki/roots.crt" \
            --resolve "$kind.bench.test:$port:127.0.0.1" "https://$kind.bench.test:$port/") || code=000
        [ "$code" = 200 ] || die "$t: GET https://$kind.bench.test/ answered $code"
    done
    size=$(timeout 10 curl -sS -o /dev/null -w '%{size_download}' --http2 --cacert "$WORK/pki/roots.crt" \
        --resolve "ecdsa.bench.test:$port:127.0.0.1" "https://ecdsa.bench.test:$port/1m") || size=0
    [ "$size" = 1048576 ] || die "$t: /1m was $size bytes"
    want=resumed
    case $t in *-off) want=full ;; esac
    got=$(resumption_of "$port" ecdsa.bench.test) || got="error"
    [ "$got" = "$want" ] || die "$t: second connection was $got, expected $want"
done
# TLS 1.3 tickets sent per full handshake with resumption off: work the full-handshake
# measures include for whoever sends them.
declare -A TICKETS
for t in gatehouse nginx haproxy; do
    TICKETS[$t]=$(printf 'GET / HTTP/1.1\r\nHost: ecdsa.bench.test\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client -connect "127.0.0.1:${PORT[$t-off]}" -servername ecdsa.bench.test \
            -msg -ign_eof 2>/dev/null | grep -c 'NewSessionTicket' || true)
done
log "checks passed: SNI, full chain, ALPN h2, 200 and 1 MiB through every terminator; resumption on/off as configured"
log "TLS 1.3 tickets per full handshake with resumption off: gatehouse ${TICKETS[gatehouse]}, nginx ${TICKETS[nginx]}, haproxy ${TICKETS[haproxy]}"
log "negotiated with the openssl CLI: gatehouse ${NEGOTIATED[gatehouse]}; nginx ${NEGOTIATED[nginx]}; haproxy ${NEGOTIATED[haproxy]}"

PROXIES="gatehouse nginx haproxy"
for m in $MEASURES; do
    case $m in
        h1_keepalive) rounds h1_keepalive "$PROXIES" m_h1 ;;
        h1_metrics) rounds h1_metrics "gatehouse gatehouse-nometrics" m_h1 "$METRICS_RUNS" ;;
        h2) rounds h2 "$PROXIES" m_h2 ;;
        full_ecdsa) rounds full_ecdsa "$PROXIES" m_full_ecdsa ;;
        full_rsa) rounds full_rsa "$PROXIES" m_full_rsa ;;
        resumed) rounds resumed "$PROXIES" m_resumed ;;
        mib1) rounds mib1 "$PROXIES" m_1mib ;;
        p99) rounds p99 "$PROXIES" m_p99 ;;
        idle_memory) rounds idle_memory "$PROXIES" m_idle ;;
        idle_memory_used) rounds idle_memory_used "$PROXIES" m_idle_used ;;
    esac
done
log "measuring done in $(( $(date +%s) - T0 ))s"

# --- summary ----------------------------------------------------------------------------
summary() {
    python3 "$SCRIPT_DIR/summary.py" "$RESULTS" "$RUNS" "$DUR" "$IDLE_CONNS" "$(( LAT_CLIENTS * LAT_RPS ))" "$FOREIGN_MAX"
}
versions() {
    local cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
    echo "Machine: $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r)."
    echo "Gatehouse $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') (${GH_BIN#"$REPO"/}, $WORKERS workers);" \
        "$(nginx -v 2>&1 | sed 's/.*version: //') ($WORKERS workers);" \
        "HAProxy $(haproxy -v | awk 'NR == 1 {print $3}') (nbthread $WORKERS);" \
        "$(openssl version | awk '{print $1, $2}');" \
        "wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}'); $(h2load --version | head -1); Python $(python3 -c 'import platform; print(platform.python_version())')."
    if [ "${NEGOTIATED[gatehouse]}" = "${NEGOTIATED[nginx]}" ] && [ "${NEGOTIATED[gatehouse]}" = "${NEGOTIATED[haproxy]}" ]; then
        echo "TLS with OpenSSL clients (all three): ${NEGOTIATED[gatehouse]}."
    else
        echo "TLS with OpenSSL clients, NOT the same for the three: gatehouse ${NEGOTIATED[gatehouse]}; nginx ${NEGOTIATED[nginx]}; haproxy ${NEGOTIATED[haproxy]}."
    fi
    echo "TLS 1.3 tickets per full handshake with resumption off (none can be used; sending them is part of the full-handshake measures): gatehouse ${TICKETS[gatehouse]}, nginx ${TICKETS[nginx]}, haproxy ${TICKETS[haproxy]}."
    echo
}
SUMMARY="$(versions)
$(summary)"
echo "$SUMMARY"
if [ -n "$OUT" ]; then echo "$SUMMARY" >"$OUT"; log "summary written to $OUT"; fi
log "raw results: $RESULTS$( [ "$KEEP" = 1 ] || echo ' (removed on exit; --keep keeps it)')"
