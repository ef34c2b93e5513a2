#!/usr/bin/env bash
# bench/handshakes.sh: what a new TLS connection costs the proxy, with a full handshake and
# resumed, with an ECDSA P-256 and an RSA-2048 certificate, for Portcullis and for nginx
# proxy_pass side by side. Prints one table.
#
# A benchmark, not a test: it never fails on a number. Each connection sends one GET
# (Connection: close) to the public route, so a row is the handshake plus one proxied request.
# The client (bench/handshake_client.py, Python's ssl, TLS 1.3) connects one connection at a
# time, so the proxy also pays for waking up for each one: read the rows against each other.
# "resumed": RETURNING (1000) clients come back in turn, each offering the session its last
# connection received. More returning clients than a server's session cache holds show
# whether resumption survives many clients: Portcullis's tickets (tls.session_tickets) and
# nginx's (ssl_session_tickets, on by default) do, a 256-entry cache would not.
#
# It reuses bench/run.sh's helpers (the CPU layout, the upstream, both proxies configured as
# there) and its settings PROXY_CPU, LOAD_CPU, PORTCULLIS_BIN, CARGO_TARGET_DIR.
#
# Usage: bench/handshakes.sh   (COUNT=2000 connections per run, RETURNING=1000, ROUNDS=3)

set -euo pipefail

HS_COUNT=${COUNT:-2000}
HS_RETURNING=${RETURNING:-1000}
HS_ROUNDS=${ROUNDS:-3}
# shellcheck source=bench/run.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run.sh"
BENCH_H2=0
BENCH_SIGNIN=0
BENCH_FLOOR=0
# Only the portcullis binary is needed; build_portcullis wants SIGNIN_BIN set to skip a build.
[[ -n ${PORTCULLIS_BIN:-} ]] && SIGNIN_BIN=${SIGNIN_BIN:-$PORTCULLIS_BIN}

# make_rsa_certificate: $WORK/cert.pem and key.pem become an RSA-2048 pair for HOST_HEADER.
make_rsa_certificate() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
        -subj "/CN=$HOST_HEADER" -addext "subjectAltName=DNS:$HOST_HEADER" \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null \
        || die "openssl could not make the RSA-2048 certificate"
    chmod 0644 "$WORK/key.pem"
}

declare -A PORT_OF PIDS_OF  # "proxy-cert" -> its HTTPS port, the pids its CPU time is read from
declare -A US RATE RESUMED  # "proxy-cert-mode-round" -> µs per connection, connections/s, resumed

# measure KEY MODE ROUND: one client run against KEY's port; the client reads the proxy's CPU
# time around the counted connections (a resumed run's first pass, which hands each returning
# client its session, is not in it).
measure() {
    local key=$1 mode=$2 round=$3 out ticks seconds
    out=$(timeout 600 taskset -c "$LOAD_CPU" python3 "$BENCH_DIR/handshake_client.py" \
        "${PORT_OF[$key]}" "$HOST_HEADER" "$HS_COUNT" "$mode" "$HS_RETURNING" \
        "$(echo ${PIDS_OF[$key]} | tr ' ' ,)") \
        || die "the handshake client failed against $key ($mode)"
    [[ $out == *" ok=$HS_COUNT "* ]] || echo "handshakes.sh: WARNING: $key $mode: $out" >&2
    ticks=${out##*ticks=}
    ticks=${ticks%% *}
    seconds=${out##*seconds=}
    local id="$key-$mode-$round"
    US[$id]=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$HS_COUNT" \
        'BEGIN { printf "%.0f", t / hz * 1e6 / n }')
    RATE[$id]=$(awk -v s="$seconds" -v n="$HS_COUNT" 'BEGIN { printf "%.0f", n / s }')
    RESUMED[$id]=$(sed -E 's/.* resumed=([0-9]+).*/\1/' <<<"$out")
}

# median VALUES...: the middle value (the lower middle for an even count).
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

handshakes_main() {
    case ${1:-} in
        -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        "") ;;
        *) die "no arguments; settings come from the environment (see --help)" ;;
    esac
    for n in HS_COUNT HS_RETURNING HS_ROUNDS; do
        [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "${n#HS_} must be a positive integer, got '${!n}'"
    done
    prepare_run
    local ports cert admin
    read -r -a ports < <(free_ports 7)
    UPSTREAM_PORT=${ports[0]}
    say "starting nginx upstream on 127.0.0.1:$UPSTREAM_PORT (CPU $LOAD_CPU)"
    start_upstream
    local i=1
    for cert in ecdsa rsa; do
        if [[ $cert == ecdsa ]]; then make_certificate; else make_rsa_certificate; fi
        # Both proxies read the pair now; the next one overwrites the files only after.
        PORT_OF[nginx-$cert]=${ports[i]}
        start_nginx_proxy "nginx-$cert" "${ports[i]}"
        PIDS_OF[nginx-$cert]=$(nginx_pids "$NGINX_PID")
        PORT_OF[portcullis-$cert]=${ports[i + 1]}
        admin=${ports[i + 2]}
        start_portcullis "portcullis-$cert" "${ports[i + 1]}" "$admin" warn
        PIDS_OF[portcullis-$cert]=${PC_PID[portcullis-$cert]}
        i=$((i + 3))
    done
    local keys="nginx-ecdsa portcullis-ecdsa nginx-rsa portcullis-rsa" key mode round
    take_lock
    for round in $(seq 1 "$HS_ROUNDS"); do
        for key in $keys; do
            for mode in full resumed; do
                say "round $round/$HS_ROUNDS: $key, $mode, $HS_COUNT connections"
                measure "$key" "$mode" "$round"
            done
        done
    done
    release_lock
    OUT="$BENCH_DIR/out/handshakes-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$OUT"
    {
        echo
        echo "New TLS connections, one GET each (Connection: close), $HS_COUNT per run, one at a"
        echo "time; medians of $HS_ROUNDS rounds. Proxy CPU time per connection (utime + stime):"
        printf '%-20s %-8s %13s %15s %22s\n' proxy cert "full µs" "resumed µs" "resumed (of runs)"
        local ids id full resumed counts
        for key in $keys; do
            for mode in full resumed; do
                ids=()
                for round in $(seq 1 "$HS_ROUNDS"); do ids+=("${US[$key-$mode-$round]}"); done
                if [[ $mode == full ]]; then full=$(median "${ids[@]}"); else resumed=$(median "${ids[@]}"); fi
            done
            counts=""
            for round in $(seq 1 "$HS_ROUNDS"); do counts+="${RESUMED[$key-resumed-$round]}/$HS_COUNT "; done
            printf '%-20s %-8s %12s %14s %22s\n' "${key%-*}" "${key##*-}" "$full" "$resumed" "${counts% }"
        done
        echo "resumed: $HS_RETURNING returning clients in turn, each offering its last session."
        echo "raw: $OUT (runs.txt, one line per run: proxy-cert-mode-round us_per_conn conns_per_s resumed)"
    } | tee "$OUT/summary.txt"
    for id in "${!US[@]}"; do
        printf '%s %s %s %s\n' "$id" "${US[$id]}" "${RATE[$id]}" "${RESUMED[$id]}"
    done | sort >"$OUT/runs.txt"
}

handshakes_main "$@"
