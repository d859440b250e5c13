#!/usr/bin/env bash
# The long soak of issue 24: tests/soak.rs with 1,000 reloads (SIGHUP and POST /reload
# alternating, good renewals cycled with broken ones, under keep-alive and new-connection
# load), on the release build. Prints the test's figures: requests answered and failed,
# and the proxy's resident memory before and after. The results go in docs/reliability.md.
#
# Usage: benches/soak.sh [RELOADS]     (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
reloads=${1:-1000}
case $reloads in
    ''|*[!0-9]*) echo "RELOADS must be a number, not '$reloads'" >&2; exit 2 ;;
esac
started=$(date +%s)
SOAK_RELOADS=$reloads cargo test --release -p proxy --test soak -- --nocapture 2>&1 |
    grep -E '^soak:|^test result|panicked|FAILED'
echo "took $(( $(date +%s) - started )) s (build included)"
