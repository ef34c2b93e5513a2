#!/usr/bin/env bash
# bench/instructions.sh: user-space instructions per request of one Portcullis instance, counted
# by callgrind (valgrind), for the public route and the signed-in route, with a short and a long
# Cookie header. Prints one table.
#
# A benchmark, not a test: it never fails on a number. Unlike bench/run.sh's timings, a count
# of instructions does not move when a neighbour on a shared machine takes the caches or the
# CPU, so it tells whether a change removed work even where rps medians cannot. It does not
# see what only timings see: cache misses, the kernel's share (syscalls, TCP), and code that
# valgrind runs differently (valgrind hides SHA-NI, so SHA-256 takes its software path: about
# 3,400 instructions of the signed-in rows are the session ID's digest, a few hundred on a CPU
# that has SHA-NI).
#
# It reuses bench/run.sh's helpers (the CPU layout, the upstream, the stand-in Entra ID,
# sign-ins, wrk with rotated session cookies) and its environment settings (PROXY_CPU,
# LOAD_CPU, PORTCULLIS_BIN and SIGNIN_BIN, CARGO_TARGET_DIR); see bench/README.md.
#
# A first row counts bench/floor.rs (TLS, hyper server and client, nothing else) the same way:
# the public row minus the floor row is what Portcullis itself does per request
# (COUNT_FLOOR=0 leaves it out). Two last rows count nginx proxy_pass, configured as in
# bench/run.sh, in one process under callgrind: alone, and with the identity headers of the
# signed-in rows as fixed proxy_set_header values (COUNT_NGINX=0 leaves them out).
#
# A second instance keeps its sessions in Redis with its session cache off (bench/run.sh's
# auth-redis-nocache): its row is what reading, touching and opening a session on every request
# costs the proxy (COUNT_REDIS=0 leaves it out). Redis's own work is not counted.
#
# Usage: bench/instructions.sh
#   (DURATION=10s, CONNS=4, SESSIONS=50, COUNT_FLOOR=1, COUNT_REDIS=1, COUNT_NGINX=1)

set -euo pipefail

COUNT_DURATION=${DURATION:-10s}
COUNT_CONNS=${CONNS:-4}
COUNT_SESSIONS=${SESSIONS:-50}
# shellcheck source=bench/run.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run.sh"
DURATION=$COUNT_DURATION
CONNS=$COUNT_CONNS
SESSIONS=$COUNT_SESSIONS
BENCH_H2=0
BENCH_SIGNIN=1
BENCH_FLOOR=${COUNT_FLOOR:-1}
COUNT_NGINX=${COUNT_NGINX:-1}
COUNT_REDIS=${COUNT_REDIS:-1}

# run.sh's start-up wait is 10 s; under valgrind a start takes longer: 2 minutes.
START_STEPS=1200

# under_callgrind REAL WRAPPER DUMP [ONLY]: writes WRAPPER, which runs REAL under callgrind
# (dumps named DUMP.N); with ONLY, just that subcommand is wrapped (`portcullis check` runs as
# it is).
under_callgrind() {
    local real=$1 wrapper=$2 dump=$3 only=${4:-}
    {
        echo '#!/bin/sh'
        [[ -z $only ]] || echo "[ \"\$1\" = $only ] || exec \"$real\" \"\$@\""
        echo "exec valgrind --tool=callgrind --callgrind-out-file=\"$dump\" --dump-instr=no \\"
        echo "    \"$real\" \"\$@\" 2>>\"$WORK/valgrind.log\""
    } >"$wrapper"
    chmod +x "$wrapper"
}

# count FILE NAME PATH COOKIES: instructions per request over one wrk run against the
# instance at $PORT (process $PID, dumps $DUMP.N), counted from a zeroed callgrind counter to a
# dump right after the run; the dump is kept as $OUT/FILE.callgrind (read it with
# callgrind_annotate).
count() {
    local file=$1 name=$2 path=$3 cookies=$4 out dump ir requests non2xx
    local -a wrk=(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -H "Host: $HOST_HEADER"
        -s "$BENCH_DIR/rotate.lua" "https://127.0.0.1:$PORT$path" -- "$path" "$cookies")
    timeout 60 "${wrk[@]:0:4}" -d2s "${wrk[@]:4}" >/dev/null 2>&1 || true
    callgrind_control -z "$PID" >/dev/null 2>&1
    out=$(timeout $(( $(seconds_of "$DURATION") + 60 )) "${wrk[@]:0:4}" -d"$DURATION" "${wrk[@]:4}" 2>&1) \
        || die "wrk failed for $name: $out"
    callgrind_control -d "$PID" >/dev/null 2>&1
    # callgrind writes the dump as the next numbered file; wait for its totals line.
    for _ in $(seq 1 100); do
        dump=$(ls -t "$DUMP".* 2>/dev/null | head -n1 || true)
        [[ -n $dump ]] && grep -Eq '^(totals|summary):' "$dump" 2>/dev/null && break
        sleep 0.1
    done
    ir=$(awk '/^(totals|summary):/ { print $2; exit }' "$dump")
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
    mv "$dump" "$OUT/$file.callgrind"
    printf '%-44s %10s %12s %8s\n' "$name" "$requests" \
        "$(awk -v i="$ir" -v n="$requests" 'BEGIN { printf "%.0f", i / n }')" "${non2xx:-0}"
}

# count_nginx NAME PORT LABEL [EXTRA]: the nginx proxy of bench/run.sh (plus EXTRA directives)
# on PORT, started once as usual to check its configuration and routing, then again as one
# process (no master) under callgrind, and counted like the other rows.
count_nginx() {
    local name=$1 port=$2 label=$3 extra=${4:-} dir pid
    start_nginx_proxy "$name" "$port" "$extra" >/dev/null
    kill -QUIT "$NGINX_PID" 2>/dev/null
    wait "$NGINX_PID" 2>/dev/null || true
    dir="$WORK/$name"
    taskset -c "$PROXY_CPU" valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.out" \
        --dump-instr=no nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
        -g 'daemon off; master_process off;' 2>>"$WORK/valgrind.log" 9>&- &
    pid=$!
    # The rows run in a pipeline's subshell, whose exit the script's cleanup does not see.
    trap 'kill "$pid" 2>/dev/null' EXIT
    wait_until "nginx ($name) under callgrind" "$pid" "$WORK/valgrind.log" \
        curl -sfk --max-time 5 -H "Host: $HOST_HEADER" "https://127.0.0.1:$port/"
    PORT=$port PID=$pid DUMP="$WORK/$name.out" count "$name" "$label" / "$WORK/dummy-cookies"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    trap - EXIT
}

instructions_main() {
    case ${1:-} in
        -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        "") ;;
        *) die "no arguments; settings come from the environment (see --help)" ;;
    esac
    for n in CONNS SESSIONS; do
        [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer, got '${!n}'"
    done
    seconds_of "$DURATION" >/dev/null || die "DURATION must look like 10s, got '$DURATION'"
    if ! command -v valgrind >/dev/null 2>&1; then
        [[ $(id -u) -eq 0 ]] || die "missing valgrind; install it or run as root"
        say "installing valgrind"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
    fi
    prepare_run
    make_certificate
    local admin nginx_port nginx_id_port identity redis_port redis_admin
    read -r UPSTREAM_PORT PORT admin FLOOR_PORT nginx_port nginx_id_port REDIS_PORT redis_port \
        redis_admin < <(free_ports 9)
    say "starting nginx upstream on 127.0.0.1:$UPSTREAM_PORT (CPU $LOAD_CPU)"
    start_upstream
    say "starting the stand-in Entra ID (CPU $LOAD_CPU)"
    if [[ $COUNT_REDIS == 1 ]]; then start_idp "$PORT" "$redis_port"; else start_idp "$PORT"; fi
    # Under callgrind, counting nothing until the first zeroing (the start-up and sign-ins are
    # not in any row).
    if [[ $BENCH_FLOOR == 1 ]]; then
        under_callgrind "$FLOOR_BIN" "$WORK/floor-under-callgrind" "$WORK/floor.out"
        FLOOR_BIN="$WORK/floor-under-callgrind"
        say "starting the floor under callgrind on 127.0.0.1:$FLOOR_PORT (CPU $PROXY_CPU)"
        start_floor
    fi
    local real_bin=$PORTCULLIS_BIN
    under_callgrind "$real_bin" "$WORK/under-callgrind" "$WORK/callgrind.out" run
    PORTCULLIS_BIN="$WORK/under-callgrind"
    say "starting portcullis under callgrind on 127.0.0.1:$PORT (CPU $PROXY_CPU)"
    start_portcullis counted "$PORT" "$admin" warn memory
    make_sessions counted "$PORT" "$SESSIONS"
    if [[ $COUNT_REDIS == 1 ]]; then
        say "starting redis-server on 127.0.0.1:$REDIS_PORT (CPU $LOAD_CPU)"
        start_redis
        say "starting portcullis (Redis, cache off) under callgrind on 127.0.0.1:$redis_port"
        # Its own dump files: callgrind numbers each process's dumps from 1.
        under_callgrind "$real_bin" "$WORK/under-callgrind-redis" "$WORK/callgrind-redis.out" run
        PORTCULLIS_BIN="$WORK/under-callgrind-redis" \
            start_portcullis counted-redis "$redis_port" "$redis_admin" warn redis-nocache
        make_sessions counted-redis "$redis_port" "$SESSIONS"
    fi
    make_dummy_cookies
    head -n1 "$WORK/counted/cookies" >"$WORK/one-cookie"
    # 36 other cookies of a site (2.4 KB), after the session cookie or a cookie naming none.
    python3 - "$WORK" <<'EOF'
import secrets, sys
work = sys.argv[1]
other = "; ".join(f"app{i}_pref={secrets.token_urlsafe(40)}" for i in range(36))
for src, dst in (("counted/cookies", "long-cookies"), ("dummy-cookies", "long-dummy")):
    lines = [l.strip() for l in open(f"{work}/{src}") if l.strip()]
    with open(f"{work}/{dst}", "w") as f:
        f.writelines(f"{l}; {other}\n" for l in lines)
EOF
    OUT="$BENCH_DIR/out/instructions-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$OUT"
    {
        echo
        echo "Instructions per request (callgrind, user space), wrk -c$CONNS -d$DURATION over HTTP/1.1:"
        printf '%-44s %10s %12s %8s\n' row requests instr/req non-2xx
        if [[ $BENCH_FLOOR == 1 ]]; then
            PORT=$FLOOR_PORT PID=$FLOOR_PID DUMP="$WORK/floor.out" \
                count floor "floor (bench/floor.rs), 62-byte Cookie" / "$WORK/dummy-cookies"
            kill "$FLOOR_PID" 2>/dev/null || true
        fi
        PID=${PC_PID[counted]} DUMP="$WORK/callgrind.out"
        count public "public route, 62-byte Cookie" / "$WORK/dummy-cookies"
        count signed-in-one "signed-in, one session" /auth/ "$WORK/one-cookie"
        count signed-in-bare "signed-in, one session, no identity headers" /bare/ "$WORK/one-cookie"
        count signed-in "signed-in, $SESSIONS sessions rotating" /auth/ "$WORK/counted/cookies"
        count public-long "public route, 2.4 KB Cookie" / "$WORK/long-dummy"
        count signed-in-long "signed-in, $SESSIONS sessions, 2.4 KB Cookie" /auth/ "$WORK/long-cookies"
        if [[ $COUNT_REDIS == 1 ]]; then
            PORT=$redis_port PID=${PC_PID[counted-redis]} DUMP="$WORK/callgrind-redis.out" \
                count signed-in-redis-nocache "signed-in, Redis, cache off, $SESSIONS sessions" \
                /auth/ "$WORK/counted-redis/cookies"
            kill "${PC_PID[counted-redis]}" 2>/dev/null || true
        fi
        if [[ $COUNT_NGINX == 1 ]]; then
            identity=$(identity_headers_conf "$PORT" "$WORK/one-cookie") || exit 1
            kill "$PID" 2>/dev/null || true
            count_nginx nginx "$nginx_port" "nginx proxy_pass, 62-byte Cookie"
            count_nginx nginx-identity "$nginx_id_port" "nginx proxy_pass + identity headers" "$identity"
        fi
        echo "raw output: $OUT (one callgrind dump per row: callgrind_annotate FILE)"
    } | tee "$OUT/summary.txt"
}

instructions_main "$@"
