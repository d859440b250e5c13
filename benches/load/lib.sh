# Helpers shared by the scripts in benches/load (sourced, not run).
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
