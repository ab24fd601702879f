#!/usr/bin/env bash
# The layer's target: an axum hello-world behind GrayLayer serves >= 95% of the bare
# app's requests/s in the same run. Both on one thread pinned to CPU 0, wrk on CPU 1,
# alternating rounds; medians. Installs wrk with apt-get when missing. Processes are
# stopped by the pids this script started.
#
#   benches/load/layer.sh            # DURATION=10 ROUNDS=3 CONNECTIONS=64
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=$PWD/benches/load
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
PORT_BARE=${PORT_BARE:-18200}
PORT_GRAY=${PORT_GRAY:-18201}

if ! command -v wrk >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q wrk curl
fi
cargo build --release -q -p benches --example hello_server
SERVER=$PWD/target/release/examples/hello_server

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
taskset -c 0 "$SERVER" "127.0.0.1:$PORT_BARE" & PIDS+=($!)
taskset -c 0 "$SERVER" "127.0.0.1:$PORT_GRAY" --gray & PIDS+=($!)
for port in "$PORT_BARE" "$PORT_GRAY"; do
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/ping" && break; sleep 0.1; done
done

results=$(mktemp)
for _ in $(seq 1 "$ROUNDS"); do
    for side in bare gray; do
        port=$PORT_BARE; [ "$side" = gray ] && port=$PORT_GRAY
        sed 's|/api/hello|/ping|' "$HERE/load.lua" > "$results.lua"
        rps=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$results.lua" \
            "http://127.0.0.1:$port/" | awk '/^Requests\/sec:/ {print $2}')
        printf '%-5s %12s req/s\n' "$side" "$rps"
        echo "$side $rps" >> "$results"
    done
done
awk '
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { r[$1] = r[$1] " " $2 }
    END { printf "medians: bare %.0f, gray %.0f req/s: gray = %.1f%% of bare (bar: >= 95%%)\n",
          median(r["bare"]), median(r["gray"]), 100 * median(r["gray"]) / median(r["bare"]) }
' "$results"
rm -f "$results" "$results.lua"
