#!/usr/bin/env bash
# Head-to-head: nginx (map + split_clients + keepalive upstreams) against examples/gateway
# doing the same routing, one worker each, same backends, same wrk load, loopback only.
#
#   benches/load/run.sh              # DURATION=10 CONNECTIONS=64 by default
#   MODE=instructions benches/load/run.sh   # user-space instructions per request instead
#   MODE=h2 benches/load/run.sh      # HTTP/2 clients (h2c, h2load) instead of HTTP/1.1 ones
#   BASELINE=/path/to/gray-gateway benches/load/run.sh  # another build, in the same rounds
#
# BASELINE adds a third front, `base`, run alternately with the two others: a build of
# another commit, compared with this one in the same run (a noisy machine's figures from
# two runs do not compare). MODE=h2 drives each front with h2load (nghttp2-client):
# HTTP/2 with prior knowledge to the front, HTTP/1.1 keep-alive to the backends, nginx
# listening with `http2`.
#
# MODE=instructions runs each front under valgrind's callgrind for N and 2N requests
# (N=2000; benches/load/requests.py, keep-alive, the same headers as load.lua) and prints
# the difference over N: the instructions each front executes per proxied request, start-up
# excluded. Deterministic where the load test's CPU times swing by ±15% on a shared machine;
# kernel time (most of the total, and about the same for both) is not counted.
#
# Installs nginx and wrk with apt-get when missing. The front (nginx or the gateway) is
# pinned to CPU 0; wrk and the backends share CPU 1 (set FRONT_CPU / LOAD_CPU to change).
# Every process is stopped by the pid this script started, never by name.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/benches/load
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
FRONT_CPU=${FRONT_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_STABLE=${PORT_STABLE:-18101}
PORT_CANARY=${PORT_CANARY:-18102}
PORT_NGINX=${PORT_NGINX:-18100}
PORT_GRAY=${PORT_GRAY:-18103}
PORT_BASE=${PORT_BASE:-18104}
PORT_NGINX_H2=${PORT_NGINX_H2:-18105}

need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! need nginx || ! need wrk || ! need curl; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nginx wrk curl
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# The gateway as one would ship it (the workspace's `release-lto` profile); PROFILE=release
# for the plain release build.
PROFILE=${PROFILE:-release-lto}
echo "== building gray-gateway (--profile $PROFILE)"
cargo build --profile "$PROFILE" -q -p gray-gateway
GATEWAY=$ROOT/target/$PROFILE/gray-gateway

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
        sleep 0.1
    done
    echo "nothing answers on port $1" >&2
    return 1
}

# --- backends: one nginx, two servers that say who answered and log every request ----
mkdir -p "$WORK/backends/logs"
cat > "$WORK/backends/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/backends/nginx.pid;
error_log $WORK/backends/error.log;
events { worker_connections 4096; }
http {
    client_body_temp_path $WORK/backends;
    server {
        listen 127.0.0.1:$PORT_STABLE reuseport backlog=4096;
        access_log $WORK/backends/logs/stable.log combined buffer=256k flush=1s;
        keepalive_requests 1000000;
        location / { return 200 "stable\n"; }
    }
    server {
        listen 127.0.0.1:$PORT_CANARY reuseport backlog=4096;
        access_log $WORK/backends/logs/canary.log combined buffer=256k flush=1s;
        keepalive_requests 1000000;
        location / { return 200 "canary\n"; }
    }
}
EOF
taskset -c "$LOAD_CPU" "$NGINX" -p "$WORK/backends" -c "$WORK/backends/nginx.conf" -g 'daemon off;' &
BACKENDS=$!
PIDS+=("$BACKENDS")
wait_port "$PORT_STABLE"
wait_port "$PORT_CANARY"

# --- (a) nginx: map on the version header, split_clients on the user id ----------------
mkdir -p "$WORK/front"
cat > "$WORK/front/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/front/nginx.pid;
error_log $WORK/front/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/front;
    proxy_temp_path $WORK/front;
    upstream stable { server 127.0.0.1:$PORT_STABLE; keepalive 128; }
    upstream canary { server 127.0.0.1:$PORT_CANARY; keepalive 128; }
    split_clients "\${http_x_user_id}" \$by_user { 10% canary; * stable; }
    map \$http_x_gray_version \$pool { v2 canary; default \$by_user; }
    server {
        listen 127.0.0.1:$PORT_NGINX backlog=4096;
        listen 127.0.0.1:$PORT_NGINX_H2 http2 backlog=4096;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://\$pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header x-gray-version \$pool;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF

# CPU time (user + system, in clock ticks) of a process and its children.
ticks() {
    local total=0 pid
    for pid in "$1" $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
        if [ -r "/proc/$pid/stat" ]; then
            total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
        fi
    done
    echo "$total"
}
count_lines() { cat "$WORK/backends/logs/$1.log" 2>/dev/null | wc -l; }

# run NAME PORT PID: warm up, then the measured wrk run; prints one result line.
run() {
    local name=$1 port=$2 pid=$3
    wrk -t1 -c"$CONNECTIONS" -d2s -s "$HERE/load.lua" "http://127.0.0.1:$port/" >/dev/null
    sleep 1.5 # let the backends flush their access logs (flush=1s), then count from zero
    local stable0 canary0 t0 t1
    stable0=$(count_lines stable); canary0=$(count_lines canary)
    t0=$(ticks "$pid")
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$HERE/load.lua" \
        "http://127.0.0.1:$port/" > "$WORK/$name.wrk"
    t1=$(ticks "$pid")
    sleep 1.5
    local stable canary
    stable=$(( $(count_lines stable) - stable0 ))
    canary=$(( $(count_lines canary) - canary0 ))
    local rps p50 p99 reqs errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/$name.wrk")
    reqs=$(awk '/requests in/ {print $1}' "$WORK/$name.wrk")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/$name.wrk" | tr '\n' ' ')
    p50=$(awk '$1 == "50%" {print $2}' "$WORK/$name.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$WORK/$name.wrk")
    local hz cpu_us share
    hz=$(getconf CLK_TCK)
    cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    share=$(awk -v c="$canary" -v s="$stable" 'BEGIN { if (c + s > 0) printf "%.2f", 100 * c / (c + s); else print "n/a" }')
    printf '%-8s %12s %10s %10s %14s %14s %s\n' "$name" "$rps" "$p50" "$p99" "$cpu_us" "$share%" "$errors"
    echo "$name $rps $p50 $p99 $cpu_us $share" >> "$WORK/results"
}

# run_h2 NAME PORT PID: as `run`, with h2load (16 connections, 10 streams each).
run_h2() {
    local name=$1 port=$2 pid=$3 n=$((DURATION * 20000))
    h2load -n 20000 -c 16 -m 10 -H 'x-user-id: 4242' "http://127.0.0.1:$port/" >/dev/null
    local t0 t1
    t0=$(ticks "$pid")
    taskset -c "$LOAD_CPU" h2load -n "$n" -c 16 -m 10 -H 'x-user-id: 4242' \
        "http://127.0.0.1:$port/" > "$WORK/$name.h2load"
    t1=$(ticks "$pid")
    local rps done_ hz cpu_us p50 p99
    rps=$(awk '/^finished in/ {print $4}' "$WORK/$name.h2load")
    done_=$(awk '/^requests:/ {print $8}' "$WORK/$name.h2load")
    hz=$(getconf CLK_TCK)
    cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$done_" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    # h2load gives the mean and spread of request times, not percentiles: mean and max.
    p50=$(awk '/^time for request:/ {print $6}' "$WORK/$name.h2load")
    p99=$(awk '/^time for request:/ {print $5}' "$WORK/$name.h2load")
    printf '%-8s %12s %10s %10s %14s %14s\n' "$name" "$rps" "$p50" "$p99" "$cpu_us" "-"
    echo "$name $rps $p50 $p99 $cpu_us 0" >> "$WORK/results"
}

if [ "${MODE:-load}" = instructions ]; then
    if ! command -v valgrind >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO apt-get update -q
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q valgrind python3
    fi
    N=${N:-2000}
    # count NAME PORT REQUESTS STOP-SIGNAL COMMAND...: instructions of a whole run.
    count() {
        local name=$1 port=$2 requests=$3 signal=$4 pid
        shift 4
        # Run inside $(...): a subshell, so it stops its own front rather than via PIDS.
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" > "$WORK/$name.cg" 2>&1 &
        pid=$!
        for _ in $(seq 1 300); do
            if curl -s -o /dev/null "http://127.0.0.1:$port/"; then break; fi
            sleep 0.1
        done
        python3 "$HERE/requests.py" "$requests" "$port"
        kill "-$signal" "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$WORK/$name.cg"
    }
    nginx_front=("$NGINX" -p "$WORK/front" -c "$WORK/front/nginx.conf" -g 'daemon off; master_process off;')
    gray_front=("$GATEWAY" --threads 1 --listen "127.0.0.1:$PORT_GRAY" --config "$HERE/rules.yaml"
        --upstream "stable=http://127.0.0.1:$PORT_STABLE" --upstream "canary=http://127.0.0.1:$PORT_CANARY")
    echo "== user-space instructions per proxied request (callgrind, $N and $((2 * N)) requests)"
    declare -A per
    for front in nginx gray; do
        # nginx stops gracefully on QUIT; the gateway on TERM.
        if [ "$front" = nginx ]; then
            port=$PORT_NGINX signal=QUIT cmd=("${nginx_front[@]}")
        else
            port=$PORT_GRAY signal=TERM cmd=("${gray_front[@]}")
        fi
        one=$(count "$front" "$port" "$N" "$signal" "${cmd[@]}")
        two=$(count "$front" "$port" $((2 * N)) "$signal" "${cmd[@]}")
        per[$front]=$(( (two - one) / N ))
        printf '%-8s %8d instructions per request\n' "$front" "${per[$front]}"
    done
    awk -v g="${per[gray]}" -v n="${per[nginx]}" 'BEGIN { printf "gray/nginx: %.2fx\n", g / n }'
    exit 0
fi

ROUNDS=${ROUNDS:-3}
echo "== $ROUNDS rounds alternating, front on CPU $FRONT_CPU, load and backends on CPU $LOAD_CPU"

taskset -c "$FRONT_CPU" "$NGINX" -p "$WORK/front" -c "$WORK/front/nginx.conf" -g 'daemon off;' &
FRONT=$!
PIDS+=("$FRONT")
# gateway BINARY PORT: a gateway in the background, as the load test runs it.
gateway() {
    RUST_LOG=warn taskset -c "$FRONT_CPU" "$1" --threads 1 --listen "127.0.0.1:$2" \
        --config "$HERE/rules.yaml" \
        --upstream "stable=http://127.0.0.1:$PORT_STABLE" \
        --upstream "canary=http://127.0.0.1:$PORT_CANARY" > "$WORK/gateway-$2.log" 2>&1 &
}
gateway "$GATEWAY" "$PORT_GRAY"
GRAY=$!
PIDS+=("$GRAY")
wait_port "$PORT_NGINX"
wait_port "$PORT_GRAY"
if [ -n "${BASELINE:-}" ]; then
    gateway "$BASELINE" "$PORT_BASE"
    BASE=$!
    PIDS+=("$BASE")
    wait_port "$PORT_BASE"
fi

runner=run nginx_port=$PORT_NGINX
if [ "${MODE:-load}" = h2 ]; then
    if ! need h2load; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nghttp2-client
    fi
    runner=run_h2 nginx_port=$PORT_NGINX_H2
    echo "== h2c: h2load -c16 -m10, $((DURATION * 20000)) requests a round (p50: mean, p99: max)"
else
    echo "== wrk -t1 -c$CONNECTIONS -d${DURATION}s"
fi
printf '%-8s %12s %10s %10s %14s %14s\n' "front" "req/s" "p50" "p99" "CPU us/req" "canary share"
for _ in $(seq 1 "$ROUNDS"); do
    $runner nginx "$nginx_port" "$FRONT"
    $runner gray "$PORT_GRAY" "$GRAY"
    if [ -n "${BASELINE:-}" ]; then $runner base "$PORT_BASE" "$BASE"; fi
done

# Medians over the rounds, and the verdict.
awk '
    function us(t) {   # wrk prints 1.23ms, 456.00us, 1.2s
        if (t ~ /us$/) return t + 0
        if (t ~ /ms$/) return t * 1000
        if (t ~ /s$/) return t * 1000000
        return t
    }
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { rps[$1] = rps[$1] " " $2; p50[$1] = p50[$1] " " us($3); p99[$1] = p99[$1] " " us($4)
      cpu[$1] = cpu[$1] " " $5; share[$1] = share[$1] " " $6 }
    END {
        printf "\nmedians   %12s %10s %10s %14s %14s\n", "req/s", "p50 us", "p99 us", "CPU us/req", "canary %"
        for (f in rps)
            printf "%-8s  %12.0f %10.0f %10.0f %14.1f %14.2f\n", f, median(rps[f]), median(p50[f]),
                median(p99[f]), median(cpu[f]), median(share[f])
        printf "gray/nginx: %.2fx req/s; p99 %s; CPU per request %.2fx\n",
            median(rps["gray"]) / median(rps["nginx"]),
            (median(p99["gray"]) <= median(p99["nginx"]) ? "no worse" : "worse"),
            median(cpu["gray"]) / median(cpu["nginx"])
        if ("base" in rps)
            printf "gray/base:  %.2fx req/s; CPU per request %.2fx\n",
                median(rps["gray"]) / median(rps["base"]), median(cpu["gray"]) / median(cpu["base"])
    }' "$WORK/results"
if [ "${MODE:-load}" = load ]; then
    echo "expected canary share: 5% forced + 10% of the other 95% = 14.5%"
fi
