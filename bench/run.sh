#!/usr/bin/env bash
# bench/run.sh: throughput, latency and CPU cost of Portcullis next to nginx proxy_pass, on
# loopback, with the proxy under test alone on its own core.
#
# A benchmark, not a test: it never fails on a number, it measures and prints. It fails only
# when something cannot be set up (a package, the build, a server that does not start).
#
# Layout: the proxy under test (nginx proxy_pass or a Portcullis instance) runs alone on
# PROXY_CPU; the load generator (wrk, h2load), the upstream nginx, redis-server, the stand-in
# Entra ID and the sign-in client run on LOAD_CPU. Both proxies then have exactly one core, and
# the comparison measures what a request costs each of them, not how they share a core with wrk.
#
# Targets, each run in turn in every round so that drift on the machine hits all of them alike,
# at every connection level of CONNS:
#   upstream    nginx answering `200 ok` over plain HTTP, hit directly: the ceiling, no proxy
#   nginx       nginx terminating TLS and proxy_pass-ing to the upstream: the reference
#   portcullis  Portcullis terminating TLS and proxying to the same upstream (public route)
#   portcullis-log  (BENCH_ACCESS_LOG=1 only) the same with the per-request access log on
#   floor       (BENCH_FLOOR=1, the default) bench/floor.rs: TLS, hyper server and hyper client
#               and nothing else, on Portcullis's stack: what that stack allows at best, so the
#               ratio portcullis/floor is Portcullis's own cost and floor/nginx the stack's
#   public-lua / auth-memory / auth-redis / auth-redis-nocache  (BENCH_SIGNIN=1, the default)
#               signed-in requests: SESSIONS sessions are created up front through the stand-in
#               Entra ID, and a wrk Lua script rotates their cookies over the requests; the
#               public-lua row sends the same script to a public route, for a like-for-like
#               ratio. Stores: memory, Redis (default per-instance cache), Redis with the
#               cache off (every request reads Redis). auth-memory-one: the memory instance
#               with one session's cookie on every request (the per-session memory kept hot);
#               auth-memory-bare: the same on a route without identity headers.
#   nginx-identity  (BENCH_SIGNIN=1) nginx proxy_pass plus the same identity headers as fixed
#               proxy_set_header values: what those header bytes cost nginx.
# HTTP/2 (BENCH_H2=1, the default): h2load against nginx, Portcullis public, the floor and
# Portcullis signed-in (memory, redis), at every level of H2_CONNS.
#
# Usage: bench/run.sh [--conns "64 256"] [--duration 8s] [--rounds 3] [--rss-sessions N] ...
# Every option has an environment twin; see bench/README.md or --help.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

CONNS=${CONNS:-64 256}
H2_CONNS=${H2_CONNS:-}          # empty: the same levels as CONNS
H2_STREAMS=${H2_STREAMS:-10}
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2s}
BENCH_ACCESS_LOG=${BENCH_ACCESS_LOG:-0}
BENCH_SIGNIN=${BENCH_SIGNIN:-1}
BENCH_H2=${BENCH_H2:-1}
BENCH_FLOOR=${BENCH_FLOOR:-1}
SESSIONS=${SESSIONS:-1000}
RSS_SESSIONS=${RSS_SESSIONS:-0}
ONLY=${ONLY:-}                  # empty: every target
BENCH_LOCK=${BENCH_LOCK:-/tmp/bench.lock}
# The proxy under test gets the last CPU this script may use; everything else CPU 0.
PROXY_CPU=${PROXY_CPU:-}
LOAD_CPU=${LOAD_CPU:-0}
HOST_HEADER=bench.local
# How long a server may take to start: steps of 0.1 s (bench/instructions.sh raises it for
# valgrind).
START_STEPS=${START_STEPS:-100}
STATUS_PATH=/__bench_status  # upstream nginx stub_status
IDENTITY_PATH=/auth/__bench_identity  # upstream nginx: echoes the identity headers it received
# The identity headers of Portcullis's default preset (oauth2-proxy), in the order it sends them.
IDENTITY_HEADERS="x-auth-request-user x-auth-request-email x-auth-request-preferred-username
x-auth-request-oid x-auth-request-tid x-auth-request-name x-auth-request-groups x-auth-request-roles"
COOKIE_NAME=__Host-portcullis

usage() {
    cat <<EOF
Usage: $0 [options]

  --conns LIST        connection levels, e.g. "64 256" or 64,256  (env CONNS, default "64 256")
  --h2-conns LIST     HTTP/2 connection levels       (env H2_CONNS, default: the CONNS levels)
  --streams N         h2load streams per connection  (env H2_STREAMS, default 10)
  --duration D        length of one measured run     (env DURATION, default 8s)
  --rounds N          interleaved rounds per level   (env ROUNDS, default 3)
  --threads N         wrk and h2load threads         (env THREADS, default 1)
  --warmup D          warm-up per target and level   (env WARMUP, default 2s)
  --proxy-cpu LIST    CPU(s) of the proxy under test (env PROXY_CPU, default: the last CPU)
  --load-cpu LIST     CPU(s) of everything else      (env LOAD_CPU, default 0)
  --sessions N        sign-ins per signed-in instance (env SESSIONS, default 1000)
  --rss-sessions N    memory-store RSS with N sessions (env RSS_SESSIONS, default 0: skipped)
  --access-log        also bench Portcullis with its access log on (env BENCH_ACCESS_LOG=1)
  --only LIST         measure only these targets, plus nginx  (env ONLY, default: all)
  -h, --help          this text

Environment only: BENCH_SIGNIN=0 (no signed-in rows), BENCH_H2=0 (no HTTP/2 rows),
BENCH_FLOOR=0 (no floor row), BENCH_LOCK (default /tmp/bench.lock), PORTCULLIS_BIN + SIGNIN_BIN
(+ FLOOR_BIN with BENCH_FLOOR=1) (prebuilt binaries: no cargo).
Raw output goes to bench/out/<timestamp>/. See bench/README.md.
EOF
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --conns) CONNS=${2:?--conns needs a value}; shift 2 ;;
            --conns=*) CONNS=${1#*=}; shift ;;
            --h2-conns) H2_CONNS=${2:?--h2-conns needs a value}; shift 2 ;;
            --h2-conns=*) H2_CONNS=${1#*=}; shift ;;
            --streams) H2_STREAMS=${2:?--streams needs a value}; shift 2 ;;
            --streams=*) H2_STREAMS=${1#*=}; shift ;;
            --duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
            --duration=*) DURATION=${1#*=}; shift ;;
            --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
            --rounds=*) ROUNDS=${1#*=}; shift ;;
            --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
            --threads=*) THREADS=${1#*=}; shift ;;
            --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
            --warmup=*) WARMUP=${1#*=}; shift ;;
            --proxy-cpu) PROXY_CPU=${2:?--proxy-cpu needs a value}; shift 2 ;;
            --proxy-cpu=*) PROXY_CPU=${1#*=}; shift ;;
            --load-cpu) LOAD_CPU=${2:?--load-cpu needs a value}; shift 2 ;;
            --load-cpu=*) LOAD_CPU=${1#*=}; shift ;;
            --sessions) SESSIONS=${2:?--sessions needs a value}; shift 2 ;;
            --sessions=*) SESSIONS=${1#*=}; shift ;;
            --rss-sessions) RSS_SESSIONS=${2:?--rss-sessions needs a value}; shift 2 ;;
            --rss-sessions=*) RSS_SESSIONS=${1#*=}; shift ;;
            --access-log) BENCH_ACCESS_LOG=1; shift ;;
            --only) ONLY=${2:?--only needs a value}; shift 2 ;;
            --only=*) ONLY=${1#*=}; shift ;;
            -h|--help) usage; exit 0 ;;
            *) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
        esac
    done
    CONNS=$(normalize_list "$CONNS")
    ONLY=$(normalize_list "$ONLY")
    H2_CONNS=$(normalize_list "${H2_CONNS:-$CONNS}")
    [[ -n $CONNS ]] || die "CONNS needs at least one connection level"
    local n c
    for n in ROUNDS THREADS H2_STREAMS SESSIONS; do
        [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer, got '${!n}'"
    done
    [[ $RSS_SESSIONS =~ ^[0-9]+$ ]] || die "RSS_SESSIONS must be 0 or a positive integer, got '$RSS_SESSIONS'"
    for c in $CONNS $H2_CONNS; do
        [[ $c =~ ^[1-9][0-9]*$ ]] || die "connection levels must be positive integers, got '$c'"
        (( c >= THREADS )) || die "a connection level ($c) must be at least THREADS ($THREADS)"
    done
    seconds_of "$DURATION" >/dev/null || die "DURATION must look like 8s, 2m or 30, got '$DURATION'"
    seconds_of "$WARMUP" >/dev/null || die "WARMUP must look like 2s, got '$WARMUP'"
    (( $(seconds_of "$DURATION") > 0 )) || die "DURATION must be at least 1s"
    for n in BENCH_ACCESS_LOG BENCH_SIGNIN BENCH_H2 BENCH_FLOOR; do
        [[ ${!n} == 0 || ${!n} == 1 ]] || die "$n must be 0 or 1, got '${!n}'"
    done
}

# "64, 256" / "64,256" / " 64 256 " -> "64 256"
normalize_list() { echo "${1//,/ }" | xargs; }

# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

die() { echo "run.sh: $*" >&2; exit 1; }
say() { echo "==> $*" >&2; }

# wrk's duration syntax (N, Ns, Nm, Nh) to whole seconds, for h2load and the watchdog `timeout`.
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

# cpu_list LIST: the CPUs of a taskset list ("0-2,5") one per line, or nothing if invalid.
cpu_list() {
    local part
    for part in ${1//,/ }; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            seq "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
        elif [[ $part =~ ^[0-9]+$ ]]; then
            echo "$part"
        fi
    done
}

# The CPU layout: the lists must be usable by taskset; they should not overlap.
check_cpus() {
    [[ -n $PROXY_CPU ]] || PROXY_CPU=$(python3 -c 'import os; print(max(os.sched_getaffinity(0)))')
    local v
    for v in PROXY_CPU LOAD_CPU; do
        [[ ${!v} =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]] \
            || die "$v must be a CPU list such as 1 or 0-1, got '${!v}'"
        taskset -c "${!v}" true 2>/dev/null || die "$v=${!v}: taskset cannot use these CPUs"
    done
    # Processes on the proxy's CPUs: nginx gets one worker each, tokio sizes its runtime to them.
    PROXY_NCPU=$(taskset -c "$PROXY_CPU" nproc)
    PROXY_CPU_CANON=$(taskset -c "$PROXY_CPU" cat /proc/self/status | awk '/^Cpus_allowed_list:/ { print $2 }')
    CPU_OVERLAP=$(comm -12 <(cpu_list "$PROXY_CPU" | sort -u) <(cpu_list "$LOAD_CPU" | sort -u) | xargs)
    if [[ -n $CPU_OVERLAP ]]; then
        echo "run.sh: WARNING: PROXY_CPU=$PROXY_CPU and LOAD_CPU=$LOAD_CPU share CPU(s) $CPU_OVERLAP;" \
            "the proxy is not alone on its core" >&2
    fi
}

# Process helpers, all from /proc.
clk_tck() { getconf CLK_TCK; }
# cpu_ticks PID...: utime + stime (fields 14 and 15 of /proc/PID/stat), summed over the pids.
cpu_ticks() {
    local pid stat sum=0
    local -a f
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # Field 2 is "(comm)" and may hold spaces: split after its closing parenthesis, where
        # field 3 (state) is f[0], so utime (14) is f[11] and stime (15) is f[12].
        read -r -a f <<<"${stat##*) }"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}
# rss_kb PID...: VmRSS in kB summed over the pids (the same shared pages may count twice).
rss_kb() {
    local pid sum=0 kb
    for pid in "$@"; do
        kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || kb=0
        sum=$((sum + ${kb:-0}))
    done
    echo "$sum"
}
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cpus_of() { awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
now_ns() { date +%s%N; }
# mib KB: kB as MiB with one decimal.
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# ---------------------------------------------------------------------------------------------
# Set-up: packages, build, work dir, certificate
# ---------------------------------------------------------------------------------------------

ensure_packages() {
    local missing=() cmd
    local -a cmds=(nginx wrk openssl curl python3 taskset flock)
    [[ $BENCH_H2 == 1 ]] && cmds+=(h2load)
    [[ $BENCH_SIGNIN == 1 ]] && cmds+=(redis-server redis-cli)
    for cmd in "${cmds[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    # Package names are the command names, except these.
    missing=("${missing[@]/redis-cli/redis-tools}")
    missing=("${missing[@]/h2load/nghttp2-client}")
    missing=("${missing[@]/taskset/util-linux}")
    missing=("${missing[@]/flock/util-linux}")
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}; install them or run as root"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2046  # one word per package, on purpose
    apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
}

# Builds the release binaries and sets PORTCULLIS_BIN, SIGNIN_BIN and FLOOR_BIN. The target
# directory comes from cargo itself, so CARGO_TARGET_DIR or a .cargo/config `build.target-dir` is
# honoured. When PORTCULLIS_BIN and SIGNIN_BIN (and FLOOR_BIN, with BENCH_FLOOR=1) are set in the
# environment, those binaries are used as they are and nothing is built.
build_portcullis() {
    if [[ -n ${PORTCULLIS_BIN:-} && -n ${SIGNIN_BIN:-} && ( $BENCH_FLOOR == 0 || -n ${FLOOR_BIN:-} ) ]]; then
        [[ -x $PORTCULLIS_BIN ]] || die "PORTCULLIS_BIN=$PORTCULLIS_BIN is not an executable file"
        [[ -x $SIGNIN_BIN ]] || die "SIGNIN_BIN=$SIGNIN_BIN is not an executable file"
        [[ $BENCH_FLOOR == 0 || -x $FLOOR_BIN ]] || die "FLOOR_BIN=$FLOOR_BIN is not an executable file"
        say "using PORTCULLIS_BIN=$PORTCULLIS_BIN and SIGNIN_BIN=$SIGNIN_BIN${FLOOR_BIN:+ and FLOOR_BIN=$FLOOR_BIN} (no cargo build)"
        PREBUILT=1
        return 0
    fi
    PREBUILT=0
    say "cargo build --release (target dir: ${CARGO_TARGET_DIR:-default})"
    (cd "$REPO" && cargo build --release --quiet --bin portcullis --example bench-signin \
        --example bench-floor)
    local target_dir
    target_dir=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    PORTCULLIS_BIN="$target_dir/release/portcullis"
    SIGNIN_BIN="$target_dir/release/examples/bench-signin"
    FLOOR_BIN="$target_dir/release/examples/bench-floor"
    [[ -x $PORTCULLIS_BIN ]] || die "no binary at $PORTCULLIS_BIN after the build"
    [[ -x $SIGNIN_BIN ]] || die "no binary at $SIGNIN_BIN after the build"
}

PIDS=()  # every long-running process this script started; the EXIT trap stops them
LOAD_PID= # the wrk/h2load/sign-in run in progress (its `timeout` wrapper), if any

cleanup() {
    set +e
    local pid children i
    # `timeout` passes the signal on to wrk/h2load.
    [[ -n ${LOAD_PID:-} ]] && kill -TERM "$LOAD_PID" 2>/dev/null && wait "$LOAD_PID" 2>/dev/null
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

# prepare_run: what every benchmark script does before it starts a server: the packages, the
# CPU layout, the binaries, CLK_TCK, this script (and every helper it runs: curl, awk, redis-cli)
# pinned off the proxy's CPU, and the work directory with its clean-up on exit.
prepare_run() {
    ensure_packages
    check_cpus
    build_portcullis
    CLK_TCK=$(clk_tck)
    taskset -cp "$LOAD_CPU" $$ >/dev/null || die "cannot pin this script to LOAD_CPU=$LOAD_CPU"
    make_workdir
}

make_workdir() {
    WORK=$(mktemp -d -t portcullis-bench.XXXXXX)
    # nginx workers may run as an unprivileged user; let them traverse into the work dir.
    chmod 0711 "$WORK"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# One self-signed ECDSA P-256 certificate for bench.local, served by both proxies.
make_certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=$HOST_HEADER" -addext "subjectAltName=DNS:$HOST_HEADER" \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null \
        || die "openssl could not make the ECDSA P-256 certificate"
    chmod 0644 "$WORK/key.pem"  # throwaway key; nginx reads it as root anyway
}

# ---------------------------------------------------------------------------------------------
# Measuring lock
# ---------------------------------------------------------------------------------------------

# Every measuring phase holds an exclusive flock on BENCH_LOCK, so benchmarks that share this
# machine and the same lock file never measure at the same time. Only the measuring parts hold
# it: set-up, reporting and idle waits do not. Servers are started before any lock is taken and
# with fd 9 closed, so none of them can keep the lock alive.
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

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------

# Retries "$@" (a command) every 0.1 s, at most START_STEPS times, while process $pid lives.
wait_until() {
    local what=$1 pid=$2 log=$3 i
    shift 3
    for i in $(seq 1 "$START_STEPS"); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: $what exited during start-up; its output:" >&2
            cat "$log" >&2
            exit 1
        fi
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "run.sh: $what not ready after $((START_STEPS / 10)) s; its output:" >&2
    cat "$log" >&2
    exit 1
}

# The parts of an nginx.conf both nginx instances share. Temp paths point into the instance's
# own directory so nothing outside the work dir is touched.
nginx_common() {
    local dir=$1 workers=$2 connections=$3
    cat <<EOF
worker_processes $workers;
worker_rlimit_nofile $((connections * 2 + 1024));
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $connections; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    # nginx closes a keep-alive connection after 1000 requests by default (HTTP/1.1 and, since
    # 1.19.7, HTTP/2); Portcullis has no such cap. Lift it so nginx is not paying for TLS
    # handshakes the other side never does.
    keepalive_requests 1000000;
    keepalive_timeout 75s;
EOF
}

# start_nginx NAME CPUS: checks and starts $WORK/NAME/nginx.conf in the foreground (daemon off),
# pinned to CPUS, in the background of this script, and records the master's pid.
start_nginx() {
    local name=$1 cpus=$2 dir="$WORK/$1"
    nginx -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
        || { cat "$dir/error.log" >&2; die "nginx ($name) rejected its configuration"; }
    taskset -c "$cpus" nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
        >"$dir/stdout.log" 2>&1 9>&- &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
}

start_upstream() {
    local dir="$WORK/upstream"
    mkdir -p "$dir/tmp"
    {
        # Room for the proxies' idle upstream pools plus the direct runs.
        nginx_common "$dir" 1 16384
        cat <<EOF
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / { return 200 "ok\n"; }
        # Its "accepts" counter tells how many connections each proxy opened to the upstream
        # during a run: a proxy that does not reuse its upstream connections shows up here.
        location = $STATUS_PATH { stub_status; }
        # The identity headers a signed-in request brings (the oauth2-proxy preset), as text:
        # the nginx-identity proxy is configured to send the same ones (identity_headers_conf).
        location = $IDENTITY_PATH {
            default_type text/plain;
            return 200 "$(identity_echo)";
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx upstream "$LOAD_CPU"
    UPSTREAM_MASTER=$NGINX_PID
    wait_until "nginx upstream" "$NGINX_PID" "$dir/error.log" \
        curl -sf "http://127.0.0.1:$UPSTREAM_PORT/"
}

# One "name<TAB>value" line per identity header, from nginx variables (upstream config).
identity_echo() {
    local h
    for h in $IDENTITY_HEADERS; do printf '%s\t$http_%s\\n' "$h" "${h//-/_}"; done
}

# start_nginx_proxy [NAME PORT EXTRA]: the nginx proxy (default: nginx-proxy on NGINX_PORT);
# EXTRA is more location-level directives (the nginx-identity proxy's proxy_set_header lines).
# Sets NGINX_PID to its master.
start_nginx_proxy() {
    local name=${1:-nginx-proxy} port=${2:-$NGINX_PORT} extra=${3:-}
    local dir="$WORK/$name"
    mkdir -p "$dir/tmp"
    {
        # Client plus upstream connections, with room to spare; never below 4096. (nginx
        # allocates its connection table up front, so a needlessly large one inflates its RSS.)
        nginx_common "$dir" "$PROXY_NCPU" "$(proxy_worker_connections)"
        cat <<EOF
    upstream bench_upstream {
        server 127.0.0.1:$UPSTREAM_PORT;
        # Idle upstream connections kept per worker: as many as requests can be in flight at
        # once (the largest connection level, times the streams per connection over HTTP/2),
        # so nginx never closes and reopens upstream connections under load. Portcullis gets
        # the same number as upstream.pool_max_idle_per_host.
        keepalive $(upstream_keepalive);
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        # http2: ALPN offers h2 and http/1.1, as Portcullis does on its one listener; wrk sends
        # no ALPN and gets HTTP/1.1, h2load asks for h2. reuseport: one accept queue per worker
        # when PROXY_CPU has more than one CPU (and so nginx more than one worker).
        listen 127.0.0.1:$port ssl http2 reuseport;
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
$extra
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx "$name" "$PROXY_CPU"
    wait_until "nginx proxy ($name)" "$NGINX_PID" "$dir/error.log" \
        curl -sfk --resolve "$HOST_HEADER:$port:127.0.0.1" "https://$HOST_HEADER:$port/"
}

# identity_headers_conf PORT COOKIE_FILE: proxy_set_header lines for the identity headers the
# first session of COOKIE_FILE brings through the Portcullis instance at PORT (the upstream
# echoes them), so nginx sends the same names and values; fails if a value needs quoting.
identity_headers_conf() {
    local port=$1 cookie name value n=0
    cookie=$(head -n1 "$2")
    while IFS=$'\t' read -r name value; do
        [[ -n $value ]] || continue
        [[ $value =~ [\"\$\\\{\}\;] ]] && die "identity header $name has a value nginx cannot take as it is"
        printf '            proxy_set_header %s "%s";\n' "$name" "$value"
        n=$((n + 1))
    done < <(curl -sSfk --max-time 5 -H "Host: $HOST_HEADER" -H "Cookie: $COOKIE_NAME=$cookie" \
        "https://127.0.0.1:$port$IDENTITY_PATH")
    (( n > 0 )) || die "no identity headers came through the instance on port $port"
}

# The most requests in flight at once over all levels: max(CONNS, H2_CONNS x H2_STREAMS).
upstream_keepalive() {
    local c max=1
    for c in $CONNS; do (( c > max )) && max=$c; done
    if [[ $BENCH_H2 == 1 ]]; then
        for c in $H2_CONNS; do (( c * H2_STREAMS > max )) && max=$((c * H2_STREAMS)); done
    fi
    echo "$max"
}

proxy_worker_connections() {
    local c max=1 n
    for c in $CONNS $H2_CONNS; do (( c > max )) && max=$c; done
    n=$(( 2 * (max + $(upstream_keepalive)) ))
    echo $(( n > 4096 ? n : 4096 ))
}

# The nginx proxy's processes: the master and its workers.
nginx_proxy_pids() { nginx_pids "$NGINX_PROXY_MASTER"; }
nginx_pids() { echo "$1" $(pgrep -P "$1" 2>/dev/null); }

declare -A PC_PID  # Portcullis instance name -> pid

# start_portcullis NAME PORT ADMIN_PORT LEVEL [STORE [REDIS_URL]]: writes a config and a routing
# file under $WORK/NAME, validates them with `portcullis check`, starts `portcullis run` pinned to
# PROXY_CPU with stderr to $WORK/NAME/stderr.log and waits for /readyz.
start_portcullis() {
    local name=$1 port=$2 admin=$3 level=$4 store=${5:-} redis_url=${6:-} dir="$WORK/$1"
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

# The same idle-pool size as the nginx proxy's upstream keepalive (default 256).
[upstream]
pool_max_idle_per_host = $(upstream_keepalive)
EOF
    if [[ -n $store ]]; then signin_config "$store" "$redis_url" >>"$dir/portcullis.toml"; fi
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

# The same check with no identity headers: the gap to /auth is what the headers cost.
[[route]]
name = "bench-bare"
host = "$HOST_HEADER"
path_prefix = "/bare"
upstream = "http://127.0.0.1:$UPSTREAM_PORT"
auth = "login"
allowed_groups = ["0b2c3d4e-1111-4a5b-8c6d-7e8f90a1b2c3"]
headers = "none"
EOF
    fi
    # RUST_LOG would override log.level and PORTCULLIS__* any key of the generated config;
    # TOKIO_WORKER_THREADS would size the runtime past the CPUs it is pinned to.
    local -a clean_env=(env -u RUST_LOG -u TOKIO_WORKER_THREADS)
    local v
    for v in $(compgen -e); do
        [[ $v == PORTCULLIS* ]] && clean_env+=(-u "$v")
    done
    if ! "${clean_env[@]}" "$PORTCULLIS_BIN" check --config "$dir/portcullis.toml" \
        >"$dir/check.log" 2>&1; then
        cat "$dir/check.log" >&2
        die "portcullis check rejected the generated configuration ($name)"
    fi
    # Pinned: tokio sizes its multi-thread runtime to the CPUs the process may use.
    "${clean_env[@]}" taskset -c "$PROXY_CPU" "$PORTCULLIS_BIN" run --config "$dir/portcullis.toml" \
        >"$dir/stdout.log" 2>"$dir/stderr.log" 9>&- &
    local pid=$!
    PIDS+=("$pid")
    PC_PID[$name]=$pid
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
# The floor (BENCH_FLOOR=1): bench/floor.rs on PROXY_CPU, the same certificate and upstream.
start_floor() {
    local dir="$WORK/floor"
    mkdir -p "$dir"
    taskset -c "$PROXY_CPU" "$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" "$WORK/cert.pem" "$WORK/key.pem" \
        "127.0.0.1:$UPSTREAM_PORT" >"$dir/stdout.log" 2>"$dir/stderr.log" 9>&- &
    FLOOR_PID=$!
    PIDS+=("$FLOOR_PID")
    wait_until "floor" "$FLOOR_PID" "$dir/stderr.log" \
        curl -sfk --max-time 5 -H "Host: $HOST_HEADER" "https://127.0.0.1:$FLOOR_PORT/"
}

# ---------------------------------------------------------------------------------------------
# Sign-in set-up (BENCH_SIGNIN=1, or RSS_SESSIONS > 0)
# ---------------------------------------------------------------------------------------------

# The stand-in Entra ID (bench/signin.rs), HTTPS on 127.0.0.1; stops by itself after a while.
# Its app registration holds exactly the callback URIs of the signed-in instances.
start_idp() {
    mkdir -p "$WORK/idp"
    local port callbacks=()
    for port in "$@"; do
        callbacks+=("https://$HOST_HEADER:$port/.auth/callback")
    done
    taskset -c "$LOAD_CPU" "$SIGNIN_BIN" serve "$WORK/idp" 7200 "${callbacks[@]}" \
        >"$WORK/idp/stdout.log" 2>"$WORK/idp/stderr.log" 9>&- &
    local pid=$!
    PIDS+=("$pid")
    IDP_PID=$pid
    wait_until "stand-in Entra ID" "$pid" "$WORK/idp/stderr.log" test -s "$WORK/idp/issuer"
}

start_redis() {
    mkdir -p "$WORK/redis"
    taskset -c "$LOAD_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
        --appendonly no --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" 9>&- &
    local pid=$!
    PIDS+=("$pid")
    REDIS_PID=$pid
    wait_until "redis-server" "$pid" "$WORK/redis/redis.log" redis-cli -p "$REDIS_PORT" ping
}

# signin_config STORE [REDIS_URL]: the [oidc]/[session]/[redis] sections (STORE memory|memory-rss|
# redis|redis-nocache). memory-rss raises the memory store's bound so RSS_SESSIONS sessions fit;
# the Redis stores use REDIS_URL, by default the single redis-server of start_redis.
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
        # A sign-in leaves its session and may leave short-lived entries (pending login,
        # one-time markers) until they expire: room for several entries per session.
        memory-rss) printf 'store = "memory"\nmemory_max_entries = %d\n' \
            $(( RSS_SESSIONS * 4 > 100000 ? RSS_SESSIONS * 4 : 100000 )) ;;
        redis) printf 'store = "redis"\n[redis]\nurl = "%s"\n' "${2:-redis://127.0.0.1:$REDIS_PORT/0}" ;;
        redis-nocache) printf 'store = "redis"\ncache_ttl = "1ms"\n[redis]\nurl = "%s"\nkey_prefix = "nocache:"\n' "${2:-redis://127.0.0.1:$REDIS_PORT/0}" ;;
    esac
}

# make_sessions NAME PORT COUNT: COUNT sign-ins through that instance, the client pinned to
# LOAD_CPU; cookies in $WORK/NAME/cookies. Sets SIGNIN_WALL_NS. The watchdog allows 2 minutes
# plus 50 ms per sign-in (they run at ~200/s on 2 cores).
make_sessions() {
    local name=$1 port=$2 count=$3 limit t0
    limit=$(( 120 + count / 20 ))
    say "signing in $count session(s) through $name"
    t0=$(now_ns)
    timeout --kill-after=5 "$limit" taskset -c "$LOAD_CPU" "$SIGNIN_BIN" sessions \
        "127.0.0.1:$port" "$HOST_HEADER" /auth/ "$count" "$WORK/$name/cookies" \
        2>>"$WORK/$name/signin.log" &
    LOAD_PID=$!
    if ! wait "$LOAD_PID"; then
        LOAD_PID=
        cat "$WORK/$name/signin.log" >&2
        die "sign-ins through $name failed"
    fi
    LOAD_PID=
    SIGNIN_WALL_NS=$(( $(now_ns) - t0 ))
}

# instance -> proxy CPU ms per sign-in, the stand-in's CPU ms per sign-in, sign-ins per second
declare -A SIGNIN_MS SIGNIN_IDP_MS SIGNIN_RATE

# signin_measured NAME PORT: SESSIONS sign-ins under the lock, with the CPU time of the proxy
# (and of the stand-in) read from /proc/PID/stat right before and after.
signin_measured() {
    local name=$1 port=$2 before after idp_before idp_after
    take_lock
    idp_before=$(cpu_ticks "$IDP_PID")
    before=$(cpu_ticks "${PC_PID[$name]}")
    make_sessions "$name" "$port" "$SESSIONS"
    after=$(cpu_ticks "${PC_PID[$name]}")
    idp_after=$(cpu_ticks "$IDP_PID")
    release_lock
    SIGNIN_MS[$name]=$(per_signin_ms $((after - before)) "$SESSIONS")
    SIGNIN_IDP_MS[$name]=$(per_signin_ms $((idp_after - idp_before)) "$SESSIONS")
    SIGNIN_RATE[$name]=$(awk -v ns="$SIGNIN_WALL_NS" -v n="$SESSIONS" \
        'BEGIN { printf "%.0f", n / (ns / 1e9) }')
}

# per_signin_ms TICKS COUNT: clock ticks of CPU time as ms per sign-in.
per_signin_ms() {
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.2f", t / hz * 1000 / n }'
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
        if (n) printf "%d session key(s) sampled: MEMORY USAGE %.0f bytes, value %.0f bytes (sealed)", n, m / n, v / n
        else printf "no session keys found" }'
}

redis_used_memory() {
    redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ { print $2 + 0 }'
}

# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

TARGETS=()      # HTTP/1.1 target names, in run order
H2_TARGETS=()   # HTTP/2 target names (a subset of the same names), in run order
declare -A URL LABEL
declare -A LUA        # target -> "path cookie-file" for bench/rotate.lua (HTTP/1.1)
declare -A H2_PATH    # target -> path for h2load
declare -A H2_COOKIE  # target -> one session cookie value for h2load
declare -A PROXY_OF   # target -> "nginx" or a Portcullis instance name; none for upstream
add_target() { TARGETS+=("$1"); URL[$1]=$2; LABEL[$1]=$3; PROXY_OF[$1]=${4:-}; }

# The processes whose CPU time a run of target NAME is charged with.
proxy_pids() {
    case ${PROXY_OF[$1]:-} in
        "") ;;
        nginx) nginx_proxy_pids ;;
        nginx-identity) nginx_pids "$NGINX_ID_MASTER" ;;
        floor) echo "$FLOOR_PID" ;;
        *) echo "${PC_PID[${PROXY_OF[$1]}]}" ;;
    esac
}

# timed LOADCMD...: runs a load command in the background (so SIGTERM/SIGINT stop the benchmark
# at once: bash runs a trap only once the foreground command ends) and sets RUN_CPU_PCT, the
# CPU time of the proxy processes PIDS_UNDER_TEST over the wall time of the run, in percent of
# one core ("-" without a proxy).
timed() {
    local before after t0 t1
    # shellcheck disable=SC2086  # a list of pids
    before=$(cpu_ticks $PIDS_UNDER_TEST)
    t0=$(now_ns)
    "$@" &
    LOAD_PID=$!
    wait "$LOAD_PID" || RUN_STATUS=$?
    LOAD_PID=
    t1=$(now_ns)
    # shellcheck disable=SC2086
    after=$(cpu_ticks $PIDS_UNDER_TEST)
    if [[ -z $PIDS_UNDER_TEST ]]; then
        RUN_CPU_PCT=-
    else
        RUN_CPU_PCT=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v ns=$((t1 - t0)) \
            'BEGIN { printf "%.1f", t / hz / (ns / 1e9) * 100 }')
    fi
}

# run_wrk NAME CONNS DURATION OUTFILE: one wrk run. The HTTPS URLs carry 127.0.0.1, so wrk sends
# that as SNI (no certificate matches it: both proxies serve their only/default one) and the
# Host header picks the route.
run_wrk() {
    local name=$1 conns=$2 duration=$3 out=$4 limit
    limit=$(( $(seconds_of "$duration") + 30 ))  # watchdog: wrk must never hang the script
    local -a args=(-t"$THREADS" -c"$conns" -d"$duration" --latency)
    [[ ${URL[$name]} == https://* ]] && args+=(-H "Host: $HOST_HEADER")
    local -a tail=()
    if [[ -n ${LUA[$name]:-} ]]; then
        args+=(-s "$BENCH_DIR/rotate.lua")
        # shellcheck disable=SC2206  # "path cookie-file", split on purpose
        tail=(-- ${LUA[$name]})
    fi
    PIDS_UNDER_TEST=$(proxy_pids "$name")
    RUN_STATUS=0
    timed timeout --kill-after=5 "$limit" taskset -c "$LOAD_CPU" \
        wrk "${args[@]}" "${URL[$name]}" "${tail[@]}" >"$out" 2>&1
    [[ $RUN_STATUS == 0 ]] || echo "run.sh: wrk failed against $name; output in $out" >&2
}

# run_h2load NAME CONNS OUTFILE: one h2load run, -D DURATION after --warm-up-time WARMUP (the
# TLS handshakes and the first requests fall in the warm-up). :authority carries the route's
# host, as the Host header does for wrk.
run_h2load() {
    local name=$1 conns=$2 out=$3 d w limit
    d=$(seconds_of "$DURATION")
    w=$(seconds_of "$WARMUP")
    limit=$(( d + w + 30 ))
    local -a args=(-t"$THREADS" -c"$conns" -m"$H2_STREAMS" -D "$d" -H ":authority: $HOST_HEADER")
    (( w > 0 )) && args+=(--warm-up-time "$w")
    [[ -n ${H2_COOKIE[$name]:-} ]] && args+=(-H "cookie: $COOKIE_NAME=${H2_COOKIE[$name]}")
    PIDS_UNDER_TEST=$(proxy_pids "$name")
    RUN_STATUS=0
    timed timeout --kill-after=5 "$limit" taskset -c "$LOAD_CPU" \
        h2load "${args[@]}" "${URL[$name]%/}${H2_PATH[$name]:-/}" >"$out" 2>&1
    [[ $RUN_STATUS == 0 ]] || echo "run.sh: h2load failed against $name; output in $out" >&2
    grep -q '^Application protocol: h2' "$out" \
        || echo "run.sh: WARNING: h2load did not negotiate h2 with $name (see $out)" >&2
}

# Connections the upstream has accepted so far (nginx stub_status "accepts"), "-" if unknown.
upstream_accepts() {
    curl -sf --max-time 5 "http://127.0.0.1:$UPSTREAM_PORT$STATUS_PATH" \
        | awk 'NR == 3 { print $1; found = 1 } END { if (!found) print "-" }' || echo -
}

# Shared by both parsers: a duration with its unit ("1.23ms", "480us", "1.2s") in ms.
AWK_MS='
    function ms(v,   n, u) {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") return n / 1000
        if (u == "ms") return n
        if (u == "s")  return n * 1000
        if (u == "m")  return n * 60000
        if (u == "h")  return n * 3600000
        return -1
    }
    function f3(v) { return (v == "" ? "-" : sprintf("%.3f", v)) }
'

# parse_wrk FILE: prints "rps p50_ms p99_ms mean_ms max_ms non2xx socket_errors requests min_ms
# sd_ms" ("-" if missing; wrk gives no minimum).
parse_wrk() {
    awk "$AWK_MS"'
        /^Requests\/sec:/                 { rps = $2 }
        /^[ \t]+Latency[ \t]+[0-9]/       { mean = ms($2); sd = ms($3); max = ms($4) }
        /^[ \t]+50%[ \t]/                 { p50 = ms($2) }
        /^[ \t]+99%[ \t]/                 { p99 = ms($2) }
        /Non-2xx or 3xx responses:/       { non2xx = $NF }
        /Socket errors:/ {
            # "Socket errors: connect 0, read 0, write 0, timeout 0"
            for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { v = $i; sub(/,/, "", v); sock += v }
        }
        / requests in /                   { reqs = $1 }
        END {
            printf "%s %s %s %s %s %d %d %s - %s\n", (rps == "" ? "-" : rps), f3(p50), f3(p99),
                f3(mean), f3(max), non2xx, sock, (reqs == "" ? "-" : reqs), f3(sd)
        }
    ' "$1"
}

# parse_h2load FILE: the same columns. h2load prints no percentiles, so p50 and p99 are "-";
# min, max, mean and sd are its "time for request". non-2xx counts 4xx and 5xx (as wrk does),
# errors are h2load's "errored" and "timeout" requests.
parse_h2load() {
    awk "$AWK_MS"'
        /^finished in /     { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^req\/s/) rps = $i + 0 }
        /^requests: /       { for (i = 1; i <= NF; i++) {
                                  if ($(i + 1) ~ /^done/) reqs = $i
                                  if ($(i + 1) ~ /^errored/ || $(i + 1) ~ /^timeout/) err += $i } }
        /^status codes: /   { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^[45]xx/) non2xx += $i }
        /^time for request:/ { min = ms($4); max = ms($5); mean = ms($6); sd = ms($7) }
        END {
            printf "%s - - %s %s %d %d %s %s %s\n", (rps == "" ? "-" : rps), f3(mean), f3(max),
                non2xx, err, (reqs == "" ? "-" : reqs), f3(min), f3(sd)
        }
    ' "$1"
}

# record PROTO CONNS ROUND NAME FILE BEFORE AFTER: one line of results.tsv.
# Columns: proto conns round target rps p50_ms p99_ms mean_ms max_ms non2xx errors requests
#          upstream_conns proxy_cpu_pct proxy_cpu_us_per_req min_ms sd_ms
record() {
    local proto=$1 conns=$2 round=$3 name=$4 file=$5 before=$6 after=$7 up=- us=-
    local rps p50 p99 mean max non2xx err reqs min sd
    if [[ $proto == h1 ]]; then
        read -r rps p50 p99 mean max non2xx err reqs min sd < <(parse_wrk "$file")
    else
        read -r rps p50 p99 mean max non2xx err reqs min sd < <(parse_h2load "$file")
    fi
    # The status request that read "after" is itself one accepted connection.
    [[ $before != - && $after != - ]] && up=$((after - before - 1))
    if [[ $RUN_CPU_PCT != - && $rps != - ]]; then
        us=$(awk -v c="$RUN_CPU_PCT" -v r="$rps" 'BEGIN { if (r > 0) printf "%.1f", c / 100 * 1e6 / r; else print "-" }')
    fi
    printf '%s\t' "$proto" "$conns" "$round" "$name" "$rps" "$p50" "$p99" "$mean" "$max" \
        "$non2xx" "$err" "$reqs" "$up" "$RUN_CPU_PCT" "$us" "$min" >>"$OUT/results.tsv"
    printf '%s\n' "$sd" >>"$OUT/results.tsv"
}

# only_targets: with ONLY set, TARGETS and H2_TARGETS keep just the names it lists, plus nginx
# (every ratio is to nginx). A name that is no target of this run is an error, not a silent
# skip. Every server still starts, so the excluded targets cost start-up time only.
only_targets() {
    [[ -n $ONLY ]] || return 0
    local name keep=" nginx $ONLY " all=" ${TARGETS[*]} ${H2_TARGETS[*]} "
    for name in $ONLY; do
        [[ $all == *" $name "* ]] || die "--only: no target named '$name' in this run (targets:${all% })"
    done
    local -a h1=() h2=()
    for name in "${TARGETS[@]}"; do
        if [[ $keep == *" $name "* ]]; then h1+=("$name"); fi
    done
    for name in "${H2_TARGETS[@]}"; do
        if [[ $keep == *" $name "* ]]; then h2+=("$name"); fi
    done
    TARGETS=("${h1[@]}")
    H2_TARGETS=("${h2[@]}")
}

# measure_h1 CONNS: warm-up of every target, then ROUNDS interleaved rounds, under the lock.
measure_h1() {
    local conns=$1 round name file before after rps non2xx sock
    take_lock
    for name in "${TARGETS[@]}"; do
        (( $(seconds_of "$WARMUP") > 0 )) || break
        say "c=$conns warm-up $WARMUP: $name"
        file="$OUT/h1-c$conns-warmup-$name.txt"
        run_wrk "$name" "$conns" "$WARMUP" "$file"
        read -r rps _ _ _ _ non2xx sock _ < <(parse_wrk "$file")
        if [[ $rps == - || $non2xx -gt 0 || $sock -gt 0 ]]; then
            echo "run.sh: WARNING: warm-up of $name: rps=$rps non-2xx=$non2xx socket errors=$sock" \
                "(see $file)" >&2
        fi
    done
    for round in $(seq 1 "$ROUNDS"); do
        for name in "${TARGETS[@]}"; do
            say "c=$conns round $round/$ROUNDS: $name ($DURATION)"
            file="$OUT/h1-c$conns-round$round-$name.txt"
            before=$(upstream_accepts)
            run_wrk "$name" "$conns" "$DURATION" "$file"
            after=$(upstream_accepts)
            record h1 "$conns" "$round" "$name" "$file" "$before" "$after"
        done
    done
    release_lock
}

# measure_h2 CONNS: ROUNDS interleaved rounds of h2load (each with its own warm-up), under the lock.
measure_h2() {
    local conns=$1 round name file before after
    take_lock
    for round in $(seq 1 "$ROUNDS"); do
        for name in "${H2_TARGETS[@]}"; do
            say "h2 c=$conns m=$H2_STREAMS round $round/$ROUNDS: $name ($WARMUP warm-up + $DURATION)"
            file="$OUT/h2-c$conns-round$round-$name.txt"
            before=$(upstream_accepts)
            run_h2load "$name" "$conns" "$file"
            after=$(upstream_accepts)
            record h2 "$conns" "$round" "$name" "$file" "$before" "$after"
        done
    done
    release_lock
}

# --rss-sessions: one more memory-store instance; its VmRSS before and after RSS_SESSIONS
# sign-ins. A first batch of 32 sign-ins goes before the "before" reading, so the one-off
# allocations of the sign-in path (TLS client to the stand-in, its metadata and keys, buffers)
# are not charged to the sessions.
measure_rss_sessions() {
    take_lock
    make_sessions rss-memory "$RSS_PORT" 32
    sleep 1
    RSS_BEFORE_KB=$(rss_kb "${PC_PID[rss-memory]}")
    make_sessions rss-memory "$RSS_PORT" "$RSS_SESSIONS"
    release_lock
    RSS_SIGNIN_WALL_NS=$SIGNIN_WALL_NS
    sleep 1
    RSS_AFTER_KB=$(rss_kb "${PC_PID[rss-memory]}")
    RSS_COOKIES=$(grep -c . "$WORK/rss-memory/cookies" || true)
}

# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

print_header() {
    local cpu rev wrkcmd
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    [[ -n $cpu ]] || cpu=$(lscpu 2>/dev/null | awk -F': *' '/Model name/ { print $2; exit }')
    rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]] && rev+=" (working tree modified)"
    [[ $PREBUILT == 1 ]] && rev="prebuilt PORTCULLIS_BIN, repository at $rev"
    echo "Portcullis benchmark  $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
    echo "machine:    $(nproc --all) CPU(s), ${cpu:-unknown CPU}, kernel $(uname -r)"
    echo "load avg:   $(load_note) (1 min, before the runs)"
    echo "nginx:      $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "wrk:        $(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }')"
    [[ $BENCH_H2 == 1 ]] && echo "h2load:     $(h2load --version 2>&1 | head -n1)"
    echo "openssl:    $(openssl version)"
    echo "portcullis: $("$PORTCULLIS_BIN" --version) ($rev; $PORTCULLIS_BIN)"
    echo "layout:     proxy under test alone on CPU $PROXY_CPU (taskset -c $PROXY_CPU):"
    echo "              nginx proxy_pass: worker_processes $PROXY_NCPU; Portcullis: tokio runtime sized to the $PROXY_NCPU CPU(s) it may use"
    echo "            everything else on CPU $LOAD_CPU (taskset -c $LOAD_CPU, the script included):"
    echo "              wrk/h2load, upstream nginx (1 worker), redis-server, stand-in Entra ID, sign-in client"
    [[ -n $CPU_OVERLAP ]] && echo "            WARNING: CPU(s) $CPU_OVERLAP are in both lists; the proxy is not alone on its core"
    echo "affinity:   $(affinity_note)"
    echo "            portcullis (public) right after start-up: ${TOKIO_THREADS[portcullis]} thread(s) named tokio-*" \
        "(multi-threaded runtime workers; 0 when one CPU gives the single-threaded runtime on the main thread, server.worker_threads)"
    wrkcmd="wrk -t$THREADS -c<conns> -d$DURATION --latency"
    echo "HTTP/1.1:   $wrkcmd, conns: $CONNS; $ROUNDS interleaved round(s), $WARMUP warm-up per target and level"
    if [[ $BENCH_H2 == 1 ]]; then
        echo "HTTP/2:     h2load -t$THREADS -c<conns> -m$H2_STREAMS -D $(seconds_of "$DURATION") --warm-up-time $(seconds_of "$WARMUP"), conns: $H2_CONNS; $ROUNDS interleaved round(s)"
    else
        echo "HTTP/2:     off (BENCH_H2=0)"
    fi
    echo "measuring:  each level's runs hold an flock on $BENCH_LOCK; expected measuring time ~$(expected_minutes) min"
    echo "upstream:   idle pool $(upstream_keepalive) connections (nginx keepalive, Portcullis upstream.pool_max_idle_per_host)"
    echo "logging:    nginx access_log off; Portcullis log.level = \"warn\", so its per-request access log (info) is NOT written"
    if [[ $BENCH_ACCESS_LOG == 1 ]]; then
        echo "            portcullis+log: log.level = \"info\", access log written to stderr redirected to a file"
    fi
    echo "TLS:        ECDSA P-256 certificate; $(tls_params "$NGINX_PORT") (nginx) / $(tls_params "$PORTCULLIS_PORT") (portcullis)"
    echo "            wrk sends no ALPN, so HTTP/1.1$([[ $BENCH_H2 == 1 ]] && echo "; h2load negotiates h2 by ALPN")"
    if [[ $BENCH_SIGNIN == 1 ]]; then
        echo "sessions:   $SESSIONS per signed-in instance (HTTP/1.1 rows rotate them; HTTP/2 rows send the first one)"
    fi
}

# Minutes the measured runs should take (sign-ins excluded).
expected_minutes() {
    local d w n1=${#TARGETS[@]} n2=${#H2_TARGETS[@]} l1 l2 s
    d=$(seconds_of "$DURATION"); w=$(seconds_of "$WARMUP")
    l1=$(wc -w <<<"$CONNS"); l2=0
    [[ $BENCH_H2 == 1 ]] && l2=$(wc -w <<<"$H2_CONNS")
    s=$(( l1 * n1 * (w + ROUNDS * d) + l2 * n2 * ROUNDS * (w + d) ))
    awk -v s="$s" 'BEGIN { printf "%.1f", s / 60 }'
}

# What each started process may run on, read back from /proc.
affinity_note() {
    local parts=() pid name ok=1
    parts+=("nginx proxy $(for pid in $(nginx_proxy_pids); do cpus_of "$pid"; done | sort -u | xargs | tr ' ' ',')")
    for name in "${!PC_PID[@]}"; do
        [[ $(cpus_of "${PC_PID[$name]}") == "$PROXY_CPU_CANON" ]] || ok=0
    done
    parts+=("portcullis x${#PC_PID[@]} $(for name in "${!PC_PID[@]}"; do cpus_of "${PC_PID[$name]}"; done | sort -u | xargs | tr ' ' ',')")
    parts+=("upstream $(for pid in "$UPSTREAM_MASTER" $(pgrep -P "$UPSTREAM_MASTER"); do cpus_of "$pid"; done | sort -u | xargs | tr ' ' ',')")
    [[ -n ${REDIS_PID:-} ]] && parts+=("redis $(cpus_of "$REDIS_PID")")
    [[ -n ${IDP_PID:-} ]] && parts+=("stand-in $(cpus_of "$IDP_PID")")
    parts+=("this script $(cpus_of $$)")
    local IFS=';' joined
    joined="${parts[*]}"
    echo "${joined//;/; }"
    [[ $ok == 1 ]] || echo "            WARNING: a Portcullis instance is not pinned to $PROXY_CPU"
}

# The 1-minute load average, with a warning when other work is competing for the CPUs.
load_note() {
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$load" -v n="$(nproc --all)" 'BEGIN { exit !(l > n / 2) }'; then
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

# The tables, from results.tsv and targets.tsv (name, label, in HTTP/1.1 then HTTP/2 order).
print_tables() {
    python3 - "$OUT/results.tsv" "$OUT/targets.tsv" "$ROUNDS" "$BENCH_SIGNIN" "$H2_STREAMS" <<'EOF'
import sys
from statistics import median

results, targets_file, rounds, signin, streams = sys.argv[1:6]
labels, order = {}, []
for line in open(targets_file):
    name, label = line.rstrip("\n").split("\t")
    if name not in labels:
        order.append(name)
    labels[name] = label

COLS = ["proto", "conns", "round", "target", "rps", "p50", "p99", "mean", "max", "non2xx",
        "errors", "requests", "up", "cpu", "us", "min", "sd"]
rows = []
for line in open(results):
    f = line.rstrip("\n").split("\t")
    if len(f) == len(COLS):
        rows.append(dict(zip(COLS, f)))

def num(v):
    try:
        return float(v)
    except ValueError:
        return None

def med(proto, conns, target, col):
    vals = [num(r[col]) for r in rows
            if r["proto"] == proto and r["conns"] == conns and r["target"] == target]
    vals = [v for v in vals if v is not None]
    return median(vals) if vals else None

def total(proto, conns, target, col):
    return sum(int(num(r[col]) or 0) for r in rows
               if r["proto"] == proto and r["conns"] == conns and r["target"] == target)

def fmt(v, spec, missing="-"):
    return missing if v is None else format(v, spec)

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"

levels = {}
for r in rows:
    levels.setdefault(r["proto"], [])
    if r["conns"] not in levels[r["proto"]]:
        levels[r["proto"]].append(r["conns"])
def targets_of(proto, conns):
    present = {r["target"] for r in rows if r["proto"] == proto and r["conns"] == conns}
    return [t for t in order if t in present]
W = max([len(labels[t]) for t in order] + [20]) + 1

print()
print("Per round (rps | p50 ms | p99 ms | mean ms | connections opened to the upstream | proxy CPU %):")
for r in rows:
    print(f"  {r['proto']} c={r['conns']:<4} round {r['round']}  {r['target']:<19} {r['rps']:>10} | "
          f"{r['p50']:>7} | {r['p99']:>7} | {r['mean']:>7} | {r['up']:>5} | {r['cpu']:>6}")

print()
print(f"Median over {rounds} round(s). Ratios are against nginx proxy_pass at the same level and protocol")
print("(rps: higher is better, latency: lower is better). non-2xx and errors are summed over the rounds:")
print("anything but 0 makes that row's numbers suspect (see the raw output). up conns: connections")
print("opened to the upstream per run. proxy CPU: CPU time of the proxy's processes over the run's wall")
print("time (100% = its whole core); CPU us/req = that CPU time per request.")
if "h2" in levels:
    print("HTTP/2: h2load reports no latency percentiles, so p50/p99 are n/a; mean and max are its")
    print("'time for request'.")
for proto in ("h1", "h2"):
    for conns in levels.get(proto, []):
        title = (f"HTTP/1.1, wrk {conns} connections" if proto == "h1"
                 else f"HTTP/2, h2load {conns} connections x {streams} streams")
        print()
        print(title)
        print(f"{'target':<{W}} {'rps':>8} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>7} {'max ms':>7} "
              f"{'rps/ngx':>7} {'p99/ngx':>7} {'mean/ngx':>8} {'non-2xx':>7} {'errors':>6} "
              f"{'up conns':>8} {'CPU %':>6} {'us/req':>6}")
        ref = {c: med(proto, conns, "nginx", c) for c in ("rps", "p99", "mean")}
        for t in targets_of(proto, conns):
            m = {c: med(proto, conns, t, c) for c in ("rps", "p50", "p99", "mean", "max", "up", "cpu", "us")}
            na = "n/a" if proto == "h2" else "-"
            print(f"{labels[t]:<{W}} {fmt(m['rps'], '.0f'):>8} {fmt(m['p50'], '.2f', na):>7} "
                  f"{fmt(m['p99'], '.2f', na):>7} {fmt(m['mean'], '.2f'):>7} {fmt(m['max'], '.1f'):>7} "
                  f"{ratio(m['rps'], ref['rps']):>7} {(ratio(m['p99'], ref['p99']) if proto == 'h1' else 'n/a'):>7} "
                  f"{ratio(m['mean'], ref['mean']):>8} {total(proto, conns, t, 'non2xx'):>7} "
                  f"{total(proto, conns, t, 'errors'):>6} {fmt(m['up'], '.0f'):>8} "
                  f"{fmt(m['cpu'], '.0f'):>6} {fmt(m['us'], '.1f'):>6}")

# The final table: one row per target, HTTP/1.1 levels then HTTP/2 levels.
h1, h2 = levels.get("h1", []), levels.get("h2", [])
groups = [("h1", c, f"HTTP/1.1 c={c}", ["rps", "rps/ngx", "p99 ms", "p99/ngx"]) for c in h1]
groups += [("h2", c, f"HTTP/2 c={c} m={streams}", ["rps", "rps/ngx", "mean ms", "p99"]) for c in h2]
CW = 8
print()
if h2:
    print("Summary: medians, ratios against nginx proxy_pass (HTTP/2: h2load gives no p99, so it reads n/a;")
    print("mean is h2load's mean time per request).")
else:
    print("Summary: medians, ratios against nginx proxy_pass.")
head1 = f"{'':<{W}}" + "".join(f" | {g[2]:<{len(g[3]) * (CW + 1) - 1}}" for g in groups)
head2 = f"{'target':<{W}}" + "".join(" | " + " ".join(f"{c:>{CW}}" for c in g[3]) for g in groups)
print(head1.rstrip())
print(head2)
print("-" * len(head2))
for t in order:
    line = f"{labels[t]:<{W}}"
    for proto, conns, _, _ in groups:
        if t not in targets_of(proto, conns):
            cells = ["-"] * 4
        else:
            rps, ref = med(proto, conns, t, "rps"), med(proto, conns, "nginx", "rps")
            if proto == "h1":
                p99, ref99 = med(proto, conns, t, "p99"), med(proto, conns, "nginx", "p99")
                cells = [fmt(rps, ".0f"), ratio(rps, ref), fmt(p99, ".2f"), ratio(p99, ref99)]
            else:
                cells = [fmt(rps, ".0f"), ratio(rps, ref), fmt(med(proto, conns, t, "mean"), ".2f"), "n/a"]
        line += " | " + " ".join(f"{c:>{CW}}" for c in cells)
    print(line)

if signin == "1" and h1:
    print()
    print("Signed-in routes (cookie rotated per request) against the public route under the same wrk Lua")
    print("script (public-lua), per HTTP/1.1 level (rps: higher is better, p99: lower is better):")
    print(f"{'':<{W}}" + "".join(f" | {'c=' + c:<{2 * (CW + 1) - 1}}" for c in h1))
    print(f"{'target':<{W}}" + "".join(f" | {'rps/pub':>{CW}} {'p99/pub':>{CW}}" for c in h1))
    for t in ("auth-memory", "auth-memory-one", "auth-memory-bare", "auth-redis", "auth-redis-nocache"):
        if t not in labels:
            continue
        line = f"{labels[t]:<{W}}"
        for c in h1:
            line += (f" | {ratio(med('h1', c, t, 'rps'), med('h1', c, 'public-lua', 'rps')):>{CW}}"
                     f" {ratio(med('h1', c, t, 'p99'), med('h1', c, 'public-lua', 'p99')):>{CW}}")
        print(line)
    if "nginx-identity" in labels and "auth-memory-bare" in labels:
        print("The identity headers' share (rps ratios; the same session, the same header names and values):")
        pairs = [("nginx: with the identity headers / without", "nginx-identity", "nginx"),
                 ("portcullis: signed-in / same, no identity headers", "auth-memory-one", "auth-memory-bare"),
                 ("portcullis: no identity headers / public-lua", "auth-memory-bare", "public-lua")]
        for text, a, b in pairs:
            print(f"  {text:<{W - 2}}" + "".join(
                f" | c={c}: {ratio(med('h1', c, a, 'rps'), med('h1', c, b, 'rps'))}" for c in h1))
    if h2:
        print("HTTP/2 (one fixed session cookie) against Portcullis public over HTTP/2 (no cookie):")
        for t in ("auth-memory", "auth-redis"):
            cells = [f"c={c}: rps/pub {ratio(med('h2', c, t, 'rps'), med('h2', c, 'portcullis', 'rps'))}"
                     f" mean/pub {ratio(med('h2', c, t, 'mean'), med('h2', c, 'portcullis', 'mean'))}"
                     for c in h2 if t in targets_of("h2", c)]
            if cells:
                print(f"  {labels[t]:<{W - 2}} " + "; ".join(cells))
EOF
}

print_signin() {
    local name
    echo
    echo "Sign-in CPU: proxy CPU time (utime+stime from /proc/PID/stat, CLK_TCK=$CLK_TCK) per full sign-in,"
    echo "over $SESSIONS sign-ins per instance (authorization code + PKCE against the stand-in; the client"
    echo "and the stand-in run on CPU $LOAD_CPU and are not in it; the stand-in's own CPU is shown for scale):"
    for name in auth-memory auth-redis auth-redis-nocache; do
        printf '  %-20s %6s ms per sign-in   (stand-in: %s ms; %s sign-ins/s, 16 in flight)\n' "$name" \
            "${SIGNIN_MS[$name]:--}" "${SIGNIN_IDP_MS[$name]:--}" "${SIGNIN_RATE[$name]:--}"
    done
    echo "Redis per session (key prefix portcullis:): $(redis_bytes portcullis:)"
    echo "Redis used_memory grew by $(( (REDIS_MEM_AFTER - REDIS_MEM_BEFORE) / SESSIONS )) bytes per session over $SESSIONS sign-ins"
}

print_rss() {
    local name pid
    echo
    echo "Memory (VmRSS from /proc/PID/status):"
    printf '  %-32s %14s %14s %14s\n' process "after start-up" "after runs" "peak (VmHWM)"
    # shellcheck disable=SC2046  # a list of pids
    printf '  %-32s %14s %14s %14s\n' "nginx proxy (master + workers)" "$(mib "$NGINX_RSS_IDLE")" \
        "$(mib "$(rss_kb $(nginx_proxy_pids))")" "-"
    for name in "${PC_ORDER[@]}"; do
        pid=${PC_PID[$name]}
        printf '  %-32s %14s %14s %14s\n' "portcullis: $name" "$(mib "${RSS_IDLE[$name]}")" \
            "$(mib "$(rss_kb "$pid")")" "$(mib "$(hwm_kb "$pid")")"
    done
    echo "  (after start-up: once ready, with one routing request served, before any sign-in or load;"
    [[ $BENCH_SIGNIN == 1 ]] && echo "  the signed-in instances hold their $SESSIONS sessions \"after runs\";"
    echo "  the nginx figure sums master and workers, whose shared pages count twice)"
    if (( RSS_SESSIONS > 0 )); then
        echo
        echo "Memory store with many sessions (instance rss-memory, $RSS_SESSIONS sign-ins after 32 warm-up ones):"
        echo "  VmRSS before: $(mib "$RSS_BEFORE_KB")   after: $(mib "$RSS_AFTER_KB")   cookies written: $RSS_COOKIES"
        awk -v b="$RSS_BEFORE_KB" -v a="$RSS_AFTER_KB" -v n="$RSS_SESSIONS" -v ns="$RSS_SIGNIN_WALL_NS" 'BEGIN {
            printf "  %.0f bytes per session (RSS growth / sessions; includes allocator slack); %.0f sign-ins/s\n",
                (a - b) * 1024 / n, n / (ns / 1e9) }'
    fi
}

# Log text without colour codes (the text format colours its output even into a file).
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

# After the runs: what the Portcullis instances wrote. Warnings are grouped by message (the
# timestamp dropped) so a per-connection warning shows as one line with its count.
print_portcullis_logs() {
    local name log lines
    echo
    for name in "${PC_ORDER[@]}"; do
        [[ $name == portcullis-log ]] && continue
        log="$WORK/$name/stderr.log"
        strip_ansi <"$log" >"$OUT/$name-stderr.log"
        lines=$(wc -l <"$log")
        if [[ $lines -eq 0 ]]; then
            echo "portcullis $name stderr (level warn): empty"
        else
            echo "portcullis $name stderr (level warn): $lines line(s); distinct messages (count, message):"
            cut -d' ' -f2- "$OUT/$name-stderr.log" | sed 's/^ *//' | sort | uniq -c \
                | sort -rn | head -n 5 | sed 's/^/  /'
        fi
    done
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

PC_ORDER=()              # Portcullis instances in start order
declare -A RSS_IDLE      # instance -> VmRSS kB right after start-up
declare -A TOKIO_THREADS # instance -> threads named tokio-* right after start-up

# start_pc NAME PORT ADMIN LEVEL [STORE]: start_portcullis, then note its idle RSS.
start_pc() {
    start_portcullis "$@"
    PC_ORDER+=("$1")
    RSS_IDLE[$1]=$(rss_kb "${PC_PID[$1]}")
    TOKIO_THREADS[$1]=$(cat /proc/"${PC_PID[$1]}"/task/*/comm 2>/dev/null | grep -c '^tokio' || true)
}

main() {
    parse_args "$@"
    prepare_run
    make_certificate

    read -r UPSTREAM_PORT NGINX_PORT PORTCULLIS_PORT ADMIN_PORT LOG_PORT LOG_ADMIN_PORT \
        MEM_PORT MEM_ADMIN RED_PORT RED_ADMIN NOC_PORT NOC_ADMIN REDIS_PORT RSS_PORT RSS_ADMIN \
        FLOOR_PORT NGINX_ID_PORT < <(free_ports 17)

    say "starting nginx upstream on 127.0.0.1:$UPSTREAM_PORT (CPU $LOAD_CPU)"
    start_upstream
    say "starting nginx proxy on 127.0.0.1:$NGINX_PORT (CPU $PROXY_CPU)"
    start_nginx_proxy
    NGINX_PROXY_MASTER=$NGINX_PID
    # shellcheck disable=SC2046  # a list of pids
    NGINX_RSS_IDLE=$(rss_kb $(nginx_proxy_pids))
    say "starting portcullis on 127.0.0.1:$PORTCULLIS_PORT (admin $ADMIN_PORT, CPU $PROXY_CPU)"
    start_pc portcullis "$PORTCULLIS_PORT" "$ADMIN_PORT" warn

    add_target upstream "http://127.0.0.1:$UPSTREAM_PORT/" "upstream direct (http, no proxy)"
    add_target nginx "https://127.0.0.1:$NGINX_PORT/" "nginx proxy_pass" nginx
    add_target portcullis "https://127.0.0.1:$PORTCULLIS_PORT/" "portcullis public" portcullis
    if [[ $BENCH_FLOOR == 1 ]]; then
        say "starting the floor on 127.0.0.1:$FLOOR_PORT (CPU $PROXY_CPU)"
        start_floor
        add_target floor "https://127.0.0.1:$FLOOR_PORT/" "floor (hyper+rustls only)" floor
    fi
    if [[ $BENCH_ACCESS_LOG == 1 ]]; then
        # A second instance, idle except during its own runs, so both log levels share rounds.
        say "starting portcullis+log on 127.0.0.1:$LOG_PORT (admin $LOG_ADMIN_PORT)"
        start_pc portcullis-log "$LOG_PORT" "$LOG_ADMIN_PORT" info
        add_target portcullis-log "https://127.0.0.1:$LOG_PORT/" "portcullis public, access log" portcullis-log
    fi
    if [[ $BENCH_SIGNIN == 1 || $RSS_SESSIONS -gt 0 ]]; then
        local -a callbacks=()
        [[ $BENCH_SIGNIN == 1 ]] && callbacks+=("$MEM_PORT" "$RED_PORT" "$NOC_PORT")
        (( RSS_SESSIONS > 0 )) && callbacks+=("$RSS_PORT")
        say "starting the stand-in Entra ID (CPU $LOAD_CPU)"
        start_idp "${callbacks[@]}"
    fi
    if [[ $BENCH_SIGNIN == 1 ]]; then
        say "starting redis-server on 127.0.0.1:$REDIS_PORT (CPU $LOAD_CPU)"
        start_redis
        start_pc auth-memory "$MEM_PORT" "$MEM_ADMIN" warn memory
        start_pc auth-redis "$RED_PORT" "$RED_ADMIN" warn redis
        start_pc auth-redis-nocache "$NOC_PORT" "$NOC_ADMIN" warn redis-nocache
    fi
    if (( RSS_SESSIONS > 0 )); then
        start_pc rss-memory "$RSS_PORT" "$RSS_ADMIN" warn memory-rss
    fi
    if [[ $BENCH_SIGNIN == 1 ]]; then
        REDIS_MEM_BEFORE=$(redis_used_memory)
        signin_measured auth-redis "$RED_PORT"
        REDIS_MEM_AFTER=$(redis_used_memory)
        signin_measured auth-memory "$MEM_PORT"
        signin_measured auth-redis-nocache "$NOC_PORT"
        make_dummy_cookies
        add_target public-lua "https://127.0.0.1:$MEM_PORT/" "portcullis public, Lua cookies" auth-memory
        LUA[public-lua]="/ $WORK/dummy-cookies"
        add_target auth-memory "https://127.0.0.1:$MEM_PORT/auth/" "portcullis signed-in, memory" auth-memory
        LUA[auth-memory]="/auth/ $WORK/auth-memory/cookies"
        # The same requests naming one session: its cache entry, memo and headers stay in the
        # CPU caches, so the gap to auth-memory is what SESSIONS sessions' memory costs.
        head -n1 "$WORK/auth-memory/cookies" >"$WORK/auth-memory/one-cookie"
        add_target auth-memory-one "https://127.0.0.1:$MEM_PORT/auth/" "portcullis signed-in, memory, 1 session" auth-memory
        LUA[auth-memory-one]="/auth/ $WORK/auth-memory/one-cookie"
        # The same session on a route that sends no identity headers: the check alone.
        add_target auth-memory-bare "https://127.0.0.1:$MEM_PORT/bare/" "portcullis signed-in, memory, 1 session, no identity headers" auth-memory
        LUA[auth-memory-bare]="/bare/ $WORK/auth-memory/one-cookie"
        # nginx sending the same identity headers (fixed values): what the headers cost nginx.
        say "starting nginx proxy + identity headers on 127.0.0.1:$NGINX_ID_PORT (CPU $PROXY_CPU)"
        ID_HEADERS_CONF=$(identity_headers_conf "$MEM_PORT" "$WORK/auth-memory/one-cookie") || exit 1
        start_nginx_proxy nginx-identity "$NGINX_ID_PORT" "$ID_HEADERS_CONF"
        NGINX_ID_MASTER=$NGINX_PID
        add_target nginx-identity "https://127.0.0.1:$NGINX_ID_PORT/" "nginx proxy_pass + identity headers" nginx-identity
        add_target auth-redis "https://127.0.0.1:$RED_PORT/auth/" "portcullis signed-in, redis" auth-redis
        LUA[auth-redis]="/auth/ $WORK/auth-redis/cookies"
        add_target auth-redis-nocache "https://127.0.0.1:$NOC_PORT/auth/" "portcullis signed-in, redis, no cache" auth-redis-nocache
        LUA[auth-redis-nocache]="/auth/ $WORK/auth-redis-nocache/cookies"
    fi
    if [[ $BENCH_H2 == 1 ]]; then
        H2_TARGETS=(nginx portcullis)
        [[ $BENCH_FLOOR == 1 ]] && H2_TARGETS+=(floor)
        if [[ $BENCH_SIGNIN == 1 ]]; then
            H2_TARGETS+=(auth-memory auth-redis)
            H2_COOKIE[auth-memory]=$(head -n1 "$WORK/auth-memory/cookies")
            H2_COOKIE[auth-redis]=$(head -n1 "$WORK/auth-redis/cookies")
            H2_PATH[auth-memory]=/auth/
            H2_PATH[auth-redis]=/auth/
        fi
    fi

    only_targets

    OUT="$BENCH_DIR/out/$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$OUT"
    cp "$WORK/upstream/nginx.conf" "$OUT/nginx-upstream.conf"
    cp "$WORK/nginx-proxy/nginx.conf" "$OUT/nginx-proxy.conf"
    cp "$WORK/portcullis/portcullis.toml" "$WORK/portcullis/routes.toml" "$OUT/"
    if [[ $BENCH_SIGNIN == 1 ]]; then
        cp "$WORK/auth-redis/portcullis.toml" "$OUT/portcullis-auth-redis.toml"
        cp "$WORK/auth-memory/routes.toml" "$OUT/routes-signed-in.toml"
        cp "$WORK/nginx-identity/nginx.conf" "$OUT/nginx-identity.conf"
    fi
    : >"$OUT/results.tsv"
    local name conns
    for name in "${TARGETS[@]}"; do printf '%s\t%s\n' "$name" "${LABEL[$name]}"; done >"$OUT/targets.tsv"

    print_header | tee "$OUT/summary.txt"
    for conns in $CONNS; do measure_h1 "$conns"; done
    if [[ $BENCH_H2 == 1 ]]; then
        for conns in $H2_CONNS; do measure_h2 "$conns"; done
    fi
    if (( RSS_SESSIONS > 0 )); then measure_rss_sessions; fi
    {
        print_tables
        if [[ $BENCH_SIGNIN == 1 ]]; then print_signin; fi
        print_rss
        print_portcullis_logs
        echo
        # No warning here: the benchmark itself keeps both CPUs busy. A value far above the CPU
        # count hints at outside work during the runs.
        echo "load avg:   $(cut -d' ' -f1 /proc/loadavg) (1 min, after the runs; includes the benchmark's own load)"
        echo "raw output: $OUT (results.tsv columns: proto conns round target rps p50_ms p99_ms mean_ms max_ms non2xx errors requests upstream_conns proxy_cpu_pct proxy_cpu_us_per_req min_ms sd_ms)"
    } | tee -a "$OUT/summary.txt"
}

# Sourced (bench/redis_topologies.sh uses the helpers above), it defines and runs nothing more.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
