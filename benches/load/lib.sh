# Helpers shared by the scripts in benches/load (sourced, not run): stopping what a script
# started, ports, the load shapes and tools (wrk, h2load) and the proxy's CPU reading.
#
# PIDS: processes a script started; stop_started signals them (TERM), waits up to 5 s
# each, then kills what is left. Scripts call it from their EXIT trap.
PIDS=()
stop_started() {
    local pid _
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# Waits until something accepts on 127.0.0.1:PORT: TRIES tries 0.1 s apart (default 100).
wait_port() { # PORT [TRIES]
    local _
    for _ in $(seq "${2:-100}"); do
        if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# COUNT free loopback ports, picked by the kernel, on one line.
free_ports() { # COUNT
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Connections per load (compare.sh and ab.sh): enough to keep 2 workers busy, few enough
# for 2 shared cores.
H1_CONNS=32          # wrk, keep-alive HTTP/1.1
H2_CONNS=8           # h2load, HTTP/2 ...
H2_STREAMS=10        # ... with this many concurrent streams per connection
HS_CONNS=16          # wrk with "Connection: close": one handshake per request
BIG_CONNS=4          # wrk, 1 MiB responses
LAT_CLIENTS=20       # h2load --h1 --rps: fixed rate = LAT_CLIENTS x LAT_RPS req/s
LAT_RPS=250

# The process and its children (nginx: master and workers).
# shellcheck disable=SC2046 # one pid per word
tree_pids() { echo "$1" $(pgrep -P "$1" || true); }

# "utime stime" in clock ticks, summed over the tree (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
    local user=0 sys=0 pid line u s
    for pid in $(tree_pids "$1"); do
        line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        line=${line##*) }
        read -r u s < <(echo "$line" | awk '{print $12, $13}')
        user=$(( user + u )); sys=$(( sys + s ))
    done
    echo "$user $sys"
}
TICK=$(getconf CLK_TCK)

# The load tools, run for DUR seconds against URL; WORK holds loopback.lua and tools.log.
# Each run_* prints "RATE OPS ERRORS": the tool's rate, the operations done, the failures.
run_wrk() { # URL CONNS [extra wrk args...]
    local url=$1 conns=$2 out
    shift 2
    out=$(timeout $(( DUR + 15 )) wrk -t1 -c"$conns" -d"${DUR}s" --timeout 5s \
        -s "$WORK/loopback.lua" "$@" "$url" 2>&1) || { echo "0 0 1"; return; }
    echo "$out" >>"$WORK/tools.log"
    awk '
        / requests in / { ops = $1 }
        /^Requests\/sec:/ { rate = $2 }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { err += $5 }
        END { printf "%s %s %d\n", rate + 0, ops + 0, err }' <<<"$out"
}

run_h2load() { # URL [extra h2load args...]
    local url=$1 out port
    shift
    port=${url##*:}; port=${port%%/*}
    out=$(timeout $(( DUR + 15 )) h2load -t1 -D "$DUR" --connect-to="127.0.0.1:$port" \
        "$@" "$url" 2>&1) || { echo "0 0 1"; return; }
    echo "$out" >>"$WORK/tools.log"
    awk '
        /^finished in/ { rate = $4 }
        /^requests:/ { ops = $8; err = $10 + $12 }
        END { printf "%s %s %d\n", rate + 0, ops + 0, err }' <<<"$out"
}

# p99 at a fixed rate: h2load --h1 with --rps per client and a per-request log.
run_latency() { # URL
    local url=$1 port out logf=$WORK/latency.log
    port=${url##*:}; port=${port%%/*}
    rm -f "$logf"
    out=$(timeout $(( DUR + 15 )) h2load --h1 -t1 -c"$LAT_CLIENTS" --rps="$LAT_RPS" -D "$DUR" \
        --connect-to="127.0.0.1:$port" --log-file="$logf" "$url" 2>&1) || { echo "0 0 1"; return; }
    echo "$out" >>"$WORK/tools.log"
    local ops err
    ops=$(awk '/^requests:/ { print $8 }' <<<"$out")
    err=$(awk '/^requests:/ { print $10 + $12 }' <<<"$out")
    # Third column: microseconds from request start to end of response.
    local p99
    p99=$(cut -f3 "$logf" | sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f", v[i] / 1000 }')
    echo "$p99 ${ops:-0} ${err:-1}"
}
