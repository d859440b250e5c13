#!/usr/bin/env bash
# Builds the gatehouse binary to ship: the release build, optimised with the profile of
# the traffic it is made for (profile-guided optimisation). Same code and features as
# `cargo build --release`; about a quarter fewer instructions and 7–10% less CPU per proxied
# request (benches/RESULTS.md).
#
# Usage: deploy/build-pgo.sh [--out FILE]
#   --out FILE  where to put the optimised binary (default target/pgo/gatehouse)
# Steps: (1) a release build that records which code runs (-Cprofile-generate, in
# target/pgo-gen); (2) one round of the load comparison's traffic through it
# (benches/load/compare.sh: keep-alive HTTP/1.1, HTTP/2, full ECDSA and RSA handshakes,
# resumed handshakes, 1 MiB responses, a fixed-rate run); (3) llvm-profdata merges what
# was recorded; (4) the release build again with that profile (-Cprofile-use, in
# target/pgo). Then it checks the optimised binary with compare.sh's own checks and one
# keep-alive run. Takes about 10 minutes (two release builds of ~3 minutes each).
# Needs: cargo; llvm-profdata of the LLVM version rustc was built with (as root it
# installs Debian's llvm-N when missing; rustup's llvm-tools component works too); what
# compare.sh needs (nginx, haproxy, wrk, h2load: installed by it when missing, as root).
set -euo pipefail

help() { sed -n '2,18p' "$0"; }
usage() { help >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$REPO/target/pgo/gatehouse
while [ $# -gt 0 ]; do
    case $1 in
        --out)
            [ $# -ge 2 ] && [ -n "$2" ] || { echo "--out needs a value (a file path)" >&2; exit 2; }
            OUT=$2
            shift 2
            ;;
        -h | --help) help; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

log() { printf '[build-pgo %4ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup.rs) first"
HOST=$(rustc -vV | sed -n 's/^host: //p')
LLVM=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
[ -n "$HOST" ] && [ -n "$LLVM" ] || die "could not read the host and LLVM version from rustc -vV"

# llvm-profdata must read the raw profiles of rustc's LLVM: the same major version.
profdata_major() { "$1" --version 2>/dev/null | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p' | head -1; }
find_profdata() {
    local c
    for c in "$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata" \
        "$(command -v "llvm-profdata-$LLVM" || true)" "$(command -v llvm-profdata || true)"; do
        if [ -n "$c" ] && [ -x "$c" ] && [ "$(profdata_major "$c")" = "$LLVM" ]; then
            echo "$c"
            return
        fi
    done
}
PROFDATA=$(find_profdata)
if [ -z "$PROFDATA" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing llvm-$LLVM for llvm-profdata (rustc is built with LLVM $LLVM)"
        install_llvm() { DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "llvm-$LLVM" >/dev/null 2>&1; }
        install_llvm || { timeout 300 apt-get update -qq >/dev/null 2>&1 && install_llvm; } ||
            log "apt-get could not install llvm-$LLVM"
        PROFDATA=$(find_profdata)
    fi
    [ -n "$PROFDATA" ] || die "no llvm-profdata of LLVM $LLVM (rustc's); install it (Debian: llvm-$LLVM; rustup: rustup component add llvm-tools) and run again"
fi
log "rustc $(rustc -V | cut -d' ' -f2), LLVM $LLVM; $PROFDATA"

WORK=$(mktemp -d /tmp/gatehouse-pgo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# `--target` keeps the flags off build scripts and proc macros, which run on the host.
build() { # TARGET_DIR RUSTFLAGS
    CARGO_TARGET_DIR=$1 RUSTFLAGS="${RUSTFLAGS:-} $2" \
        cargo build --release --locked -p proxy --target "$HOST" --manifest-path "$REPO/Cargo.toml"
}

log "1/4 instrumented release build (target/pgo-gen)"
build "$REPO/target/pgo-gen" "-Cprofile-generate=$WORK/raw"
log "2/4 training: one round of the load comparison through the instrumented binary"
RUNS=1 GATEHOUSE_BIN="$REPO/target/pgo-gen/$HOST/release/gatehouse" \
    "$REPO/benches/load/compare.sh" --only h1_keepalive,h2,full_ecdsa,full_rsa,resumed,mib1,p99 \
    --out "$WORK/training.md" >"$WORK/training.log" 2>&1 ||
    die "the training run failed: $(tail -5 "$WORK/training.log")"
ls "$WORK"/raw/*.profraw >/dev/null 2>&1 || die "the training run recorded no profile (no .profraw in $WORK/raw)"
log "3/4 merging the profile"
"$PROFDATA" merge -o "$WORK/gatehouse.profdata" "$WORK/raw"
log "4/4 release build with the profile (target/pgo)"
build "$REPO/target/pgo" "-Cprofile-use=$WORK/gatehouse.profdata"
mkdir -p "$(dirname "$OUT")"
cp "$REPO/target/pgo/$HOST/release/gatehouse" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"

log "checking $OUT: the load comparison's checks (SNI, chain, ALPN, 200, 1 MiB) and one run"
RUNS=1 GATEHOUSE_BIN=$OUT "$REPO/benches/load/compare.sh" --only h1_keepalive \
    --out "$WORK/check.md" >"$WORK/check.log" 2>&1 ||
    die "the optimised binary failed the check: $(tail -5 "$WORK/check.log")"
log "done: $OUT"
