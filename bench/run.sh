#!/usr/bin/env bash
# bench/run.sh: throughput and latency of Portcullis next to nginx proxy_pass, on loopback.
#
# A benchmark, not a test: it never fails on a number, it measures and prints. It fails only
# when something cannot be set up (a package, the build, a server that does not start).
#
# Targets, each run in turn in every round so that drift on the machine (other builds, CPU
# frequency, a noisy neighbour) hits all of them alike:
#   upstream    nginx answering `200 ok` over plain HTTP, hit directly: the ceiling, no proxy
#   nginx       nginx terminating TLS and proxy_pass-ing to the upstream: the reference
#   portcullis  Portcullis terminating TLS and proxying to the same upstream
#   portcullis+log  (BENCH_ACCESS_LOG=1 only) the same with the per-request access log on
#   public-lua / auth-memory / auth-redis / auth-redis-nocache  (BENCH_SIGNIN=1, the default)
#               signed-in requests: SESSIONS sessions are created up front through the stand-in
#               Entra ID, and a wrk Lua script rotates their cookies over the requests; the
#               public-lua row sends the same script to a public route, for a like-for-like
#               ratio. Stores: memory, Redis (default per-instance cache), Redis with the
#               cache off (every request reads Redis).
#
# Usage: bench/run.sh [--conns N] [--duration 10s] [--rounds N] [--threads N] [--access-log]
# Every option has an environment twin (CONNS, DURATION, ROUNDS, THREADS, BENCH_ACCESS_LOG);
# see bench/README.md.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

CONNS=${CONNS:-64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2s}
BENCH_ACCESS_LOG=${BENCH_ACCESS_LOG:-0}
BENCH_SIGNIN=${BENCH_SIGNIN:-1}
SESSIONS=${SESSIONS:-1000}
BENCH_LOCK=${BENCH_LOCK:-/tmp/bench.lock}
# Portcullis runs a tokio multi-thread runtime with one worker per core; the nginx proxy gets
# the same number of worker processes so both proxies have the same parallelism.
PROXY_WORKERS=${PROXY_WORKERS:-$(nproc)}
# The upstream is shared by both proxies, so its size is the same for both whatever it is. One
# worker keeps it small: on a 2-core box every process (wrk, proxy, upstream) competes for the
# same cores, and answering a fixed `200 ok` is far cheaper than TLS plus a proxy hop.
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
HOST_HEADER=bench.local
STATUS_PATH=/__bench_status  # upstream nginx stub_status

usage() {
    cat <<EOF
Usage: $0 [options]

  --conns N       open connections held by wrk          (env CONNS, default 64)
  --duration D    length of one measured run, wrk units (env DURATION, default 10s)
  --rounds N      interleaved rounds over all targets   (env ROUNDS, default 3)
  --threads N     wrk threads                           (env THREADS, default 2)
  --warmup D      warm-up per target before round 1     (env WARMUP, default 2s)
  --access-log    also bench Portcullis with its access log on (env BENCH_ACCESS_LOG=1)
  -h, --help      this text

Raw wrk output goes to bench/out/<timestamp>/. See bench/README.md.
EOF
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --conns) CONNS=${2:?--conns needs a value}; shift 2 ;;
            --conns=*) CONNS=${1#*=}; shift ;;
            --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
            --duration=*) DURATION=${1#*=}; shift ;;
            --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
            --rounds=*) ROUNDS=${1#*=}; shift ;;
            --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
            --threads=*) THREADS=${1#*=}; shift ;;
            --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
            --warmup=*) WARMUP=${1#*=}; shift ;;
            --access-log) BENCH_ACCESS_LOG=1; shift ;;
            -h|--help) usage; exit 0 ;;
            *) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
        esac
    done
    local n
    for n in CONNS ROUNDS THREADS PROXY_WORKERS UPSTREAM_WORKERS; do
        [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer, got '${!n}'"
    done
    (( CONNS >= THREADS )) || die "CONNS ($CONNS) must be at least THREADS ($THREADS) for wrk"
    seconds_of "$DURATION" >/dev/null || die "DURATION must look like 10s, 2m or 30, got '$DURATION'"
    seconds_of "$WARMUP" >/dev/null || die "WARMUP must look like 2s, got '$WARMUP'"
    [[ $BENCH_ACCESS_LOG == 0 || $BENCH_ACCESS_LOG == 1 ]] \
        || die "BENCH_ACCESS_LOG must be 0 or 1, got '$BENCH_ACCESS_LOG'"
}

# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

die() { echo "run.sh: $*" >&2; exit 1; }
say() { echo "==> $*" >&2; }

# wrk's duration syntax (N, Ns, Nm, Nh) to whole seconds, for the watchdog `timeout`.
seconds_of() {
    [[ $1 =~ ^([0-9]+)([smh]?)$ ]] || return 1
    local n=${BASH_REMATCH[1]}
    case "${BASH_REMATCH[2]}" in
        m) echo $((n * 60)) ;;
        h) echo $((n * 3600)) ;;
        *) echo "$n" ;;
    esac
}

# Prints N distinct free loopback ports. All sockets are held open until every port is chosen,
# so the kernel cannot hand out the same port twice.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# ---------------------------------------------------------------------------------------------
# Set-up: packages, build, work dir, certificate
# ---------------------------------------------------------------------------------------------

ensure_packages() {
    local missing=() cmd
    local -a cmds=(nginx wrk openssl curl python3)
    [[ $BENCH_SIGNIN == 1 ]] && cmds+=(redis-server redis-cli)
    for cmd in "${cmds[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    # Package names are the command names, except redis-cli, which comes with redis-tools.
    missing=("${missing[@]/redis-cli/redis-tools}")
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}; install them or run as root"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Builds the release binaries and sets PORTCULLIS_BIN and SIGNIN_BIN. The target directory comes
# from cargo itself, so CARGO_TARGET_DIR or a .cargo/config `build.target-dir` is honoured. When
# both PORTCULLIS_BIN and SIGNIN_BIN are set in the environment, those binaries are used as they
# are and nothing is built.
build_portcullis() {
    if [[ -n ${PORTCULLIS_BIN:-} && -n ${SIGNIN_BIN:-} ]]; then
        [[ -x $PORTCULLIS_BIN ]] || die "PORTCULLIS_BIN=$PORTCULLIS_BIN is not an executable file"
        [[ -x $SIGNIN_BIN ]] || die "SIGNIN_BIN=$SIGNIN_BIN is not an executable file"
        say "using PORTCULLIS_BIN=$PORTCULLIS_BIN and SIGNIN_BIN=$SIGNIN_BIN (no cargo build)"
        return 0
    fi
    say "cargo build --release (target dir: ${CARGO_TARGET_DIR:-default})"
    (cd "$REPO" && cargo build --release --quiet --bin portcullis --example bench-signin)
    local target_dir
    target_dir=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    PORTCULLIS_BIN="$target_dir/release/portcullis"
    SIGNIN_BIN="$target_dir/release/examples/bench-signin"
    [[ -x $PORTCULLIS_BIN ]] || die "no binary at $PORTCULLIS_BIN after the build"
    [[ -x $SIGNIN_BIN ]] || die "no binary at $SIGNIN_BIN after the build"
}

PIDS=()  # every long-running process this script started; the EXIT trap stops them
WRK_PID= # the wrk run in progress (its `timeout` wrapper), if any

cleanup() {
    set +e
    local pid children i
    # `timeout` passes the signal on to wrk.
    [[ -n ${WRK_PID:-} ]] && kill -TERM "$WRK_PID" 2>/dev/null && wait "$WRK_PID" 2>/dev/null
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        # nginx workers do not notice their master dying, so note them before the master goes.
        children=$(pgrep -P "$pid" 2>/dev/null)
        kill -TERM "$pid" 2>/dev/null
        for i in $(seq 1 50); do  # up to 5 s: nginx fast shutdown, Portcullis shutdown_grace 1s
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        for i in $children; do kill -KILL "$i" 2>/dev/null; done
        wait "$pid" 2>/dev/null
    done
    [[ -n ${WORK:-} && -d $WORK ]] && rm -rf "$WORK"
}

make_workdir() {
    WORK=$(mktemp -d -t portcullis-bench.XXXXXX)
    # nginx workers may run as an unprivileged user; let them traverse into the work dir.
    chmod 0711 "$WORK"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# One self-signed RSA-2048 certificate for bench.local, served by both proxies.
make_certificate() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$HOST_HEADER" \
        -addext "subjectAltName=DNS:$HOST_HEADER" \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
    chmod 0644 "$WORK/key.pem"  # throwaway key; nginx reads it as root anyway
}

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------

# Retries "$@" (a command) every 0.1 s, at most 100 times, while process $pid lives.
wait_until() {
    local what=$1 pid=$2 log=$3 i
    shift 3
    for i in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: $what exited during start-up; its output:" >&2
            cat "$log" >&2
            exit 1
        fi
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "run.sh: $what not ready after 10 s; its output:" >&2
    cat "$log" >&2
    exit 1
}

# The parts of an nginx.conf both nginx instances share. Temp paths point into the instance's
# own directory so nothing outside the work dir is touched.
nginx_common() {
    local dir=$1 workers=$2
    cat <<EOF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    # nginx closes a keep-alive connection after 1000 requests by default; Portcullis has no
    # such cap. Lift it so nginx is not paying for TLS handshakes the other side never does.
    keepalive_requests 1000000;
    keepalive_timeout 75s;
EOF
}

# start_nginx NAME: checks and starts $WORK/NAME/nginx.conf in the foreground (daemon off),
# in the background of this script, and records the master's pid.
start_nginx() {
    local name=$1 dir="$WORK/$1"
    nginx -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
        || { cat "$dir/error.log" >&2; die "nginx ($name) rejected its configuration"; }
    nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
        >"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
}

start_upstream() {
    local dir="$WORK/upstream"
    mkdir -p "$dir/tmp"
    {
        nginx_common "$dir" "$UPSTREAM_WORKERS"
        cat <<EOF
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / { return 200 "ok\n"; }
        # Its "accepts" counter tells how many connections each proxy opened to the upstream
        # during a run: a proxy that does not reuse its upstream connections shows up here.
        location = $STATUS_PATH { stub_status; }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx upstream
    wait_until "nginx upstream" "$NGINX_PID" "$dir/error.log" \
        curl -sf "http://127.0.0.1:$UPSTREAM_PORT/"
}

start_nginx_proxy() {
    local dir="$WORK/nginx-proxy"
    mkdir -p "$dir/tmp"
    {
        nginx_common "$dir" "$PROXY_WORKERS"
        cat <<EOF
    upstream bench_upstream {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        # reuseport: one accept queue per worker, so the kernel spreads wrk's connections over
        # both workers (Portcullis's runtime balances its tasks over both threads itself).
        listen 127.0.0.1:$NGINX_PORT ssl reuseport;
        server_name $HOST_HEADER;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        # nginx 1.22 leaves TLS 1.3 off by default; Portcullis (rustls) offers 1.2 and 1.3.
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The headers Portcullis sets on every forwarded request, so both do the same work.
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Request-Id \$request_id;
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx nginx-proxy
    wait_until "nginx proxy" "$NGINX_PID" "$dir/error.log" \
        curl -sfk --resolve "$HOST_HEADER:$NGINX_PORT:127.0.0.1" "https://$HOST_HEADER:$NGINX_PORT/"
}

# start_portcullis NAME PORT ADMIN_PORT LEVEL: writes a config and a routing file under
# $WORK/NAME, validates them with `portcullis check`, starts `portcullis run` with stderr to
# $WORK/NAME/stderr.log and waits for /readyz.
start_portcullis() {
    local name=$1 port=$2 admin=$3 level=$4 store=${5:-} dir="$WORK/$1"
    mkdir -p "$dir"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$dir/"
    cat >"$dir/portcullis.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
shutdown_grace = "1s"   # so the EXIT trap is not kept waiting

[tls]
cert_file = "cert.pem"  # the only certificate, so also the default one served to any SNI
key_file = "key.pem"

[routes]
file = "routes.toml"

[log]
level = "$level"
EOF
    if [[ -n $store ]]; then signin_config "$store" >>"$dir/portcullis.toml"; fi
    cat >"$dir/routes.toml" <<EOF
[[route]]
name = "bench"
host = "$HOST_HEADER"
path_prefix = "/"
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
auth = "public"
EOF
    if [[ -n $store ]]; then cat >>"$dir/routes.toml" <<EOF

[[route]]
name = "bench-auth"
host = "$HOST_HEADER"
path_prefix = "/auth"
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
auth = "login"
allowed_groups = ["0b2c3d4e-1111-4a5b-8c6d-7e8f90a1b2c3"]
EOF
    fi
    # RUST_LOG would override log.level and PORTCULLIS__* any key of the generated config.
    local -a clean_env=(env -u RUST_LOG)
    local v
    for v in $(compgen -e); do
        [[ $v == PORTCULLIS* ]] && clean_env+=(-u "$v")
    done
    if ! "${clean_env[@]}" "$PORTCULLIS_BIN" check --config "$dir/portcullis.toml" \
        >"$dir/check.log" 2>&1; then
        cat "$dir/check.log" >&2
        die "portcullis check rejected the generated configuration ($name)"
    fi
    "${clean_env[@]}" "$PORTCULLIS_BIN" run --config "$dir/portcullis.toml" \
        >"$dir/stdout.log" 2>"$dir/stderr.log" &
    local pid=$!
    PIDS+=("$pid")
    wait_until "portcullis ($name)" "$pid" "$dir/stderr.log" \
        curl -sf "http://127.0.0.1:$admin/readyz"
    # Routing check: the way wrk will ask (IP in the URL, Host header) must reach the upstream.
    local body
    if ! body=$(curl -sSk --max-time 5 -H "Host: $HOST_HEADER" "https://127.0.0.1:$port/" 2>&1) \
        || [[ $body != ok ]]; then
        echo "run.sh: portcullis ($name) did not route Host: $HOST_HEADER to the upstream." >&2
        echo "--- response ---" >&2
        curl -sk -i --max-time 5 -H "Host: $HOST_HEADER" "https://127.0.0.1:$port/" >&2 || true
        echo "--- stderr ---" >&2
        cat "$dir/stderr.log" >&2
        exit 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Sign-in set-up (BENCH_SIGNIN=1)
# ---------------------------------------------------------------------------------------------

# The stand-in Entra ID (bench/signin.rs), HTTPS on 127.0.0.1; stops by itself after an hour.
# Its app registration holds exactly the callback URIs of the three signed-in instances.
start_idp() {
    mkdir -p "$WORK/idp"
    local port callbacks=()
    for port in "$MEM_PORT" "$RED_PORT" "$NOC_PORT"; do
        callbacks+=("https://$HOST_HEADER:$port/.auth/callback")
    done
    "$SIGNIN_BIN" serve "$WORK/idp" 3600 "${callbacks[@]}" \
        >"$WORK/idp/stdout.log" 2>"$WORK/idp/stderr.log" &
    local pid=$!
    PIDS+=("$pid")
    wait_until "stand-in Entra ID" "$pid" "$WORK/idp/stderr.log" test -s "$WORK/idp/issuer"
}

start_redis() {
    mkdir -p "$WORK/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" &
    local pid=$!
    PIDS+=("$pid")
    wait_until "redis-server" "$pid" "$WORK/redis/redis.log" redis-cli -p "$REDIS_PORT" ping
}

# signin_config STORE: the [oidc]/[session]/[redis] sections (STORE memory|redis|redis-nocache).
signin_config() {
    cat <<EOF

[oidc]
issuer = "$(cat "$WORK/idp/issuer")"
client_id = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
client_secret = "bench-client-secret"
ca_file = "$WORK/idp/idp-ca.pem"

# Every benchmark sign-in comes from 127.0.0.1.
[sign_in]
rate_limit = "off"

[session]
secret = "a-benchmark-session-secret-of-more-than-32-bytes"
EOF
    case $1 in
        memory) echo 'store = "memory"' ;;
        redis) printf 'store = "redis"\n[redis]\nurl = "redis://127.0.0.1:%s/0"\n' "$REDIS_PORT" ;;
        redis-nocache) printf 'store = "redis"\ncache_ttl = "1ms"\n[redis]\nurl = "redis://127.0.0.1:%s/0"\nkey_prefix = "nocache:"\n' "$REDIS_PORT" ;;
    esac
}

# make_sessions NAME PORT: SESSIONS sign-ins through that instance; cookies in $WORK/NAME/cookies.
make_sessions() {
    local name=$1 port=$2
    say "signing in $SESSIONS session(s) through $name"
    timeout 300 "$SIGNIN_BIN" sessions "127.0.0.1:$port" "$HOST_HEADER" /auth/ "$SESSIONS" \
        "$WORK/$name/cookies" 2>>"$WORK/$name/signin.log" \
        || { cat "$WORK/$name/signin.log" >&2; die "sign-ins through $name failed"; }
}

# Cookies of the same length that name no session, for the public-route Lua row.
make_dummy_cookies() {
    python3 -c 'import secrets, sys
for _ in range(int(sys.argv[1])): print(secrets.token_urlsafe(32))' "$SESSIONS" >"$WORK/dummy-cookies"
}

# Bytes Redis holds per session: MEMORY USAGE and value size, averaged over session keys.
redis_bytes() {
    local prefix=$1
    redis-cli -p "$REDIS_PORT" --scan --pattern "${prefix}session:*" | head -n 200 | while read -r k; do
        echo "$(redis-cli -p "$REDIS_PORT" memory usage "$k") $(redis-cli -p "$REDIS_PORT" strlen "$k")"
    done | awk '{ m += $1; v += $2; n++ } END {
        if (n) printf "%d session key(s) sampled: MEMORY USAGE %.0f bytes, value %.0f bytes (sealed JSON)", n, m / n, v / n
        else printf "no session keys found" }'
}

# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

TARGETS=()      # names, in run order
declare -A URL  # name -> URL
declare -A LABEL

declare -A LUA  # target -> "path cookie-file" for bench/rotate.lua
add_target() { TARGETS+=("$1"); URL[$1]=$2; LABEL[$1]=$3; }

# run_wrk NAME DURATION OUTFILE: one wrk run. The HTTPS URLs carry 127.0.0.1, so wrk sends
# that as SNI (no certificate matches it: both proxies serve their only/default one) and the
# Host header picks the route.
run_wrk() {
    local name=$1 duration=$2 out=$3 limit
    limit=$(( $(seconds_of "$duration") + 30 ))  # watchdog: wrk must never hang the script
    local -a args=(-t"$THREADS" -c"$CONNS" -d"$duration" --latency)
    [[ ${URL[$name]} == https://* ]] && args+=(-H "Host: $HOST_HEADER")
    local -a tail=()
    if [[ -n ${LUA[$name]:-} ]]; then
        args+=(-s "$BENCH_DIR/rotate.lua")
        # shellcheck disable=SC2206  # "path cookie-file", split on purpose
        tail=(-- ${LUA[$name]})
    fi
    # In the background plus `wait`, because bash runs a trap only once the foreground command
    # ends: this way SIGTERM/SIGINT stop the benchmark at once, not after the current run.
    timeout --kill-after=5 "$limit" wrk "${args[@]}" "${URL[$name]}" "${tail[@]}" >"$out" 2>&1 &
    WRK_PID=$!
    if ! wait "$WRK_PID"; then
        echo "run.sh: wrk failed against $name; output in $out" >&2
    fi
    WRK_PID=
}

# Connections the upstream has accepted so far (nginx stub_status "accepts"), "-" if unknown.
upstream_accepts() {
    curl -sf --max-time 5 "http://127.0.0.1:$UPSTREAM_PORT$STATUS_PATH" \
        | awk 'NR == 3 { print $1; found = 1 } END { if (!found) print "-" }' || echo -
}

# parse_wrk FILE: prints "rps p50_ms p99_ms non2xx socket_errors requests" ("-" if missing).
parse_wrk() {
    awk '
        function ms(v,   n, u) {
            n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") return n / 1000
            if (u == "ms") return n
            if (u == "s")  return n * 1000
            if (u == "m")  return n * 60000
            if (u == "h")  return n * 3600000
            return -1
        }
        /^Requests\/sec:/                 { rps = $2 }
        /^[ \t]+50%[ \t]/                 { p50 = ms($2) }
        /^[ \t]+99%[ \t]/                 { p99 = ms($2) }
        /Non-2xx or 3xx responses:/       { non2xx = $NF }
        /Socket errors:/ {
            # "Socket errors: connect 0, read 0, write 0, timeout 0"
            for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { v = $i; sub(/,/, "", v); sock += v }
        }
        / requests in /                   { reqs = $1 }
        END {
            printf "%s %s %s %d %d %s\n", (rps == "" ? "-" : rps),
                (p50 == "" ? "-" : sprintf("%.3f", p50)), (p99 == "" ? "-" : sprintf("%.3f", p99)),
                non2xx, sock, (reqs == "" ? "-" : reqs)
        }
    ' "$1"
}

# Median of the numbers on stdin ("-" entries ignored).
median() {
    grep -v '^-$' | sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2];
              else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# Every measuring phase holds an exclusive flock on BENCH_LOCK, so benchmarks that share this
# machine and the same lock file never measure at the same time. Only the measuring parts hold
# it: set-up, reporting and idle waits do not.
take_lock() {
    exec 9>"$BENCH_LOCK" || die "cannot open the lock file $BENCH_LOCK"
    if ! flock -n 9; then
        say "waiting for $BENCH_LOCK (another benchmark holds it)"
        flock 9
    fi
}

release_lock() {
    flock -u 9
    exec 9>&-
}

warm_up() {
    local name
    for name in "${TARGETS[@]}"; do
        say "warm-up $WARMUP: $name"
        run_wrk "$name" "$WARMUP" "$OUT/warmup-$name.txt"
        read -r rps _ _ non2xx sock _ < <(parse_wrk "$OUT/warmup-$name.txt")
        if [[ $rps == - || $non2xx -gt 0 || $sock -gt 0 ]]; then
            echo "run.sh: WARNING: warm-up of $name: rps=$rps non-2xx=$non2xx socket errors=$sock" \
                "(see $OUT/warmup-$name.txt)" >&2
        fi
    done
}

measure() {
    local round name file before after conns
    # Columns: round target rps p50_ms p99_ms non2xx socket_errors requests upstream_conns
    : >"$OUT/results.tsv"
    for round in $(seq 1 "$ROUNDS"); do
        for name in "${TARGETS[@]}"; do
            say "round $round/$ROUNDS: $name ($DURATION)"
            file="$OUT/round$round-$name.txt"
            before=$(upstream_accepts)
            run_wrk "$name" "$DURATION" "$file"
            after=$(upstream_accepts)
            # The status request that read "after" is itself one accepted connection.
            conns=-
            [[ $before != - && $after != - ]] && conns=$((after - before - 1))
            echo "$round $name $(parse_wrk "$file") $conns" >>"$OUT/results.tsv"
        done
    done
}

# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

print_header() {
    local cpu rev
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    [[ -n $cpu ]] || cpu=$(lscpu 2>/dev/null | awk -F': *' '/Model name/ { print $2; exit }')
    rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]] && rev+=" (working tree modified)"
    echo "Portcullis benchmark  $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
    echo "machine:    $(nproc) CPU(s), ${cpu:-unknown CPU}, kernel $(uname -r)"
    echo "load avg:   $(load_note) (1 min, before the runs)"
    echo "nginx:      $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "wrk:        $(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }')"
    echo "openssl:    $(openssl version)"
    echo "portcullis: $("$PORTCULLIS_BIN" --version) @ $rev ($PORTCULLIS_BIN)"
    echo "load:       wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS interleaved round(s), $WARMUP warm-up per target"
    echo "conns:      $CONNS"
    echo "workers:    nginx proxy $PROXY_WORKERS process(es), Portcullis tokio runtime 1 thread/core = $(nproc), upstream nginx $UPSTREAM_WORKERS"
    echo "logging:    nginx access_log off; Portcullis log.level = \"warn\", so its per-request access log (info) is NOT written"
    if [[ $BENCH_ACCESS_LOG == 1 ]]; then
        echo "            portcullis+log: log.level = \"info\", access log written to stderr redirected to a file"
    else
        echo "            (BENCH_ACCESS_LOG=1 adds a Portcullis run with the access log on)"
    fi
    echo "TLS:        $(tls_params "$NGINX_PORT") (nginx) / $(tls_params "$PORTCULLIS_PORT") (portcullis); HTTP/1.1 (wrk sends no ALPN)"
}

# The 1-minute load average, with a warning when other work is competing for the CPUs.
load_note() {
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
        echo "$load (WARNING: other processes are using the CPUs; the numbers are skewed)"
    else
        echo "$load"
    fi
}

# What a default OpenSSL client (as wrk is) negotiates with the server on port $1.
tls_params() {
    timeout 5 openssl s_client -brief -connect "127.0.0.1:$1" </dev/null 2>&1 \
        | awk -F': *' '/^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 }
                       END { print (p == "" ? "?" : p) " " (c == "" ? "?" : c) }'
}

print_table() {
    local name ref_rps ref_p99
    declare -A RPS P50 P99 NON2XX SOCK UPCONN
    for name in "${TARGETS[@]}"; do
        RPS[$name]=$(awk -v n="$name" '$2 == n { print $3 }' "$OUT/results.tsv" | median)
        P50[$name]=$(awk -v n="$name" '$2 == n { print $4 }' "$OUT/results.tsv" | median)
        P99[$name]=$(awk -v n="$name" '$2 == n { print $5 }' "$OUT/results.tsv" | median)
        NON2XX[$name]=$(awk -v n="$name" '$2 == n { s += $6 } END { print s + 0 }' "$OUT/results.tsv")
        SOCK[$name]=$(awk -v n="$name" '$2 == n { s += $7 } END { print s + 0 }' "$OUT/results.tsv")
        UPCONN[$name]=$(awk -v n="$name" '$2 == n { print $9 }' "$OUT/results.tsv" | median)
    done
    ref_rps=${RPS[nginx]}
    ref_p99=${P99[nginx]}

    echo
    echo "Per round (requests/sec | p50 ms | p99 ms | connections opened to the upstream):"
    awk '{ printf "  round %s  %-15s %10s | %8s | %8s | %6s\n", $1, $2, $3, $4, $5, $9 }' \
        "$OUT/results.tsv"
    echo
    echo "Median over $ROUNDS round(s); ratios are against nginx proxy_pass (rps: higher is better, p99: lower is better)."
    echo "non-2xx, sock err: summed over all rounds (wrk's 'Non-2xx or 3xx responses' and 'Socket errors')."
    echo "up conns: connections opened to the upstream per run (median; the direct row is wrk's own)."
    echo
    printf '%-34s %9s %8s %8s %10s %10s %8s %9s %9s\n' \
        target "rps" "p50 ms" "p99 ms" "rps/nginx" "p99/nginx" "non-2xx" "sock err" "up conns"
    for name in "${TARGETS[@]}"; do
        awk -v label="${LABEL[$name]}" -v rps="${RPS[$name]}" -v p50="${P50[$name]}" \
            -v p99="${P99[$name]}" -v rrps="$ref_rps" -v rp99="$ref_p99" \
            -v non2xx="${NON2XX[$name]}" -v sock="${SOCK[$name]}" -v up="${UPCONN[$name]}" 'BEGIN {
            ratio = "-"; lat = "-"
            if (rps != "-" && rrps != "-" && rrps > 0) ratio = sprintf("%.2fx", rps / rrps)
            if (p99 != "-" && rp99 != "-" && rp99 > 0) lat = sprintf("%.2fx", p99 / rp99)
            printf "%-34s %9s %8s %8s %10s %10s %8d %9d %9s\n", label,
                (rps == "-" ? "-" : sprintf("%.0f", rps)),
                (p50 == "-" ? "-" : sprintf("%.2f", p50)),
                (p99 == "-" ? "-" : sprintf("%.2f", p99)), ratio, lat, non2xx, sock,
                (up == "-" ? "-" : sprintf("%.0f", up))
        }'
    done
    echo
    # No warning here: wrk and the servers alone keep 2 cores busy, so this is always high. It
    # is printed so that a value far above the CPU count hints at outside work during the runs.
    echo "load avg:   $(cut -d' ' -f1 /proc/loadavg) (1 min, after the runs; includes the benchmark's own load, ~$(( $(nproc) + 1 )) expected)"
}

# The sign-in rows against the public route under the same Lua cookie rotation, and Redis size.
print_signin() {
    local pub pub99 name rps p99
    pub=$(awk '$2 == "public-lua" { print $3 }' "$OUT/results.tsv" | median)
    pub99=$(awk '$2 == "public-lua" { print $5 }' "$OUT/results.tsv" | median)
    echo "Signed-in routes ($SESSIONS sessions each, cookie rotated per request) against the public"
    echo "route under the same wrk Lua script (rps: higher is better, p99: lower is better):"
    for name in auth-memory auth-redis auth-redis-nocache; do
        rps=$(awk -v n="$name" '$2 == n { print $3 }' "$OUT/results.tsv" | median)
        p99=$(awk -v n="$name" '$2 == n { print $5 }' "$OUT/results.tsv" | median)
        awk -v n="${LABEL[$name]}" -v r="$rps" -v p="$pub" -v l="$p99" -v q="$pub99" 'BEGIN {
            printf "  %-40s rps/public %s   p99/public %s\n", n,
                (r == "-" || p == "-" || p == 0) ? "-" : sprintf("%.2fx", r / p),
                (l == "-" || q == "-" || q == 0) ? "-" : sprintf("%.2fx", l / q) }'
    done
    echo "Redis per session (key prefix portcullis:): $(redis_bytes portcullis:)"
    echo "Redis used_memory grew by $(( (REDIS_MEM_AFTER - REDIS_MEM_BEFORE) / SESSIONS )) bytes per session over $SESSIONS sign-ins"
    echo
}

# Log text without colour codes (the text format colours its output even into a file).
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

# After the runs: what the Portcullis instances wrote. Warnings are grouped by message (the
# timestamp dropped) so a per-connection warning shows as one line with its count.
print_portcullis_logs() {
    local log="$WORK/portcullis/stderr.log" lines
    echo
    strip_ansi <"$log" >"$OUT/portcullis-stderr.log"
    lines=$(wc -l <"$log")
    if [[ $lines -eq 0 ]]; then
        echo "portcullis stderr (level warn): empty"
    else
        echo "portcullis stderr (level warn): $lines line(s); distinct messages (count, message):"
        cut -d' ' -f2- "$OUT/portcullis-stderr.log" | sed 's/^ *//' | sort | uniq -c \
            | sort -rn | head -n 10 | sed 's/^/  /'
    fi
    if [[ $BENCH_ACCESS_LOG == 1 ]]; then
        log="$WORK/portcullis-log/stderr.log"
        echo "portcullis+log stderr (level info): $(wc -l <"$log") line(s), $(du -h "$log" | cut -f1);" \
            "a sample access-log line:"
        strip_ansi <"$log" | grep -m1 'portcullis::access' | sed 's/^/  /' || true
        head -n 100 "$log" | strip_ansi >"$OUT/portcullis-log-stderr.head.log"
    fi
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

main() {
    parse_args "$@"
    ensure_packages
    build_portcullis
    make_workdir
    make_certificate

    read -r UPSTREAM_PORT NGINX_PORT PORTCULLIS_PORT ADMIN_PORT LOG_PORT LOG_ADMIN_PORT \
        MEM_PORT MEM_ADMIN RED_PORT RED_ADMIN NOC_PORT NOC_ADMIN REDIS_PORT < <(free_ports 13)

    say "starting nginx upstream on 127.0.0.1:$UPSTREAM_PORT"
    start_upstream
    say "starting nginx proxy on 127.0.0.1:$NGINX_PORT"
    start_nginx_proxy
    say "starting portcullis on 127.0.0.1:$PORTCULLIS_PORT (admin $ADMIN_PORT)"
    start_portcullis portcullis "$PORTCULLIS_PORT" "$ADMIN_PORT" warn

    add_target upstream "http://127.0.0.1:$UPSTREAM_PORT/" "upstream direct (http, no proxy)"
    add_target nginx "https://127.0.0.1:$NGINX_PORT/" "nginx proxy_pass (https)"
    add_target portcullis "https://127.0.0.1:$PORTCULLIS_PORT/" "portcullis (https, log warn)"
    if [[ $BENCH_ACCESS_LOG == 1 ]]; then
        # A second instance, idle except during its own runs, so both log levels share rounds.
        say "starting portcullis+log on 127.0.0.1:$LOG_PORT (admin $LOG_ADMIN_PORT)"
        start_portcullis portcullis-log "$LOG_PORT" "$LOG_ADMIN_PORT" info
        add_target portcullis-log "https://127.0.0.1:$LOG_PORT/" "portcullis+log (https, log info)"
    fi
    if [[ $BENCH_SIGNIN == 1 ]]; then
        say "starting the stand-in Entra ID and redis-server on 127.0.0.1:$REDIS_PORT"
        start_idp
        start_redis
        start_portcullis auth-memory "$MEM_PORT" "$MEM_ADMIN" warn memory
        start_portcullis auth-redis "$RED_PORT" "$RED_ADMIN" warn redis
        start_portcullis auth-redis-nocache "$NOC_PORT" "$NOC_ADMIN" warn redis-nocache
        REDIS_MEM_BEFORE=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ { print $2 + 0 }')
        make_sessions auth-redis "$RED_PORT"
        REDIS_MEM_AFTER=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ { print $2 + 0 }')
        make_sessions auth-memory "$MEM_PORT"
        make_sessions auth-redis-nocache "$NOC_PORT"
        make_dummy_cookies
        add_target public-lua "https://127.0.0.1:$MEM_PORT/" "portcullis public, cookie rotation"
        LUA[public-lua]="/ $WORK/dummy-cookies"
        add_target auth-memory "https://127.0.0.1:$MEM_PORT/auth/" "portcullis signed-in, memory"
        LUA[auth-memory]="/auth/ $WORK/auth-memory/cookies"
        add_target auth-redis "https://127.0.0.1:$RED_PORT/auth/" "portcullis signed-in, redis"
        LUA[auth-redis]="/auth/ $WORK/auth-redis/cookies"
        add_target auth-redis-nocache "https://127.0.0.1:$NOC_PORT/auth/" "portcullis signed-in, redis, no cache"
        LUA[auth-redis-nocache]="/auth/ $WORK/auth-redis-nocache/cookies"
    fi

    OUT="$BENCH_DIR/out/$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$OUT"
    cp "$WORK/upstream/nginx.conf" "$OUT/nginx-upstream.conf"
    cp "$WORK/nginx-proxy/nginx.conf" "$OUT/nginx-proxy.conf"
    cp "$WORK/portcullis/portcullis.toml" "$WORK/portcullis/routes.toml" "$OUT/"

    print_header | tee "$OUT/summary.txt"
    take_lock
    warm_up
    measure
    release_lock
    {
        print_table
        if [[ $BENCH_SIGNIN == 1 ]]; then print_signin; fi
        print_portcullis_logs
        echo
        echo "raw wrk output: $OUT"
    } | tee -a "$OUT/summary.txt"
}

main "$@"
