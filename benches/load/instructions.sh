#!/usr/bin/env bash
# Instructions per request through an axum router, bare and behind GrayLayer (around the
# router), counted by valgrind's callgrind: deterministic where the clock is noisy. Each
# variant runs N and 2N requests; the difference divided by N is the cost of one request,
# start-up excluded. `gray-internal` is an internal service (`inherit: always`) and a
# request carrying its label (one header more than the others' requests). The yardsticks:
# `floor`, the four parts of GrayLayer's contract and nothing else (benches/src/floor.rs),
# and `tower-http`, tower-http's SetRequestHeader + AddExtension layers (two of the four).
# Installs valgrind with apt-get when missing.
#
#   benches/load/instructions.sh        # N=1000
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-1000}

if ! command -v valgrind >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q valgrind
fi
cargo build --release -q -p benches --example layer_requests
BIN=$PWD/target/release/examples/layer_requests

count() { # variant requests -> instructions of the whole run
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

declare -A per_request
for variant in bare gray gray-metrics gray-internal floor tower-http; do
    one=$(count "$variant" "$N")
    two=$(count "$variant" $((2 * N)))
    per_request[$variant]=$(( (two - one) / N ))
    printf '%-14s %6d instructions per request\n' "$variant" "${per_request[$variant]}"
done
printf 'GrayLayer adds %d instructions per request (%d with metrics)\n' \
    $(( per_request[gray] - per_request[bare] )) $(( per_request[gray-metrics] - per_request[bare] ))
printf 'the floor (the four parts and nothing else) adds %d\n' $(( per_request[floor] - per_request[bare] ))
printf "tower-http's header + extension layers add %d\n" $(( per_request[tower-http] - per_request[bare] ))
