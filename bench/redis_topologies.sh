#!/usr/bin/env bash
# bench/redis_topologies.sh: the same signed-in load against Portcullis on three Redis
# topologies, a single redis-server, a Sentinel set (one primary, one replica, three
# sentinels) and a three-primary Cluster, with the instance session cache off (every request
# reads its session from Redis). Prints requests/second, the ratio to the single node, and p99.
#
# A benchmark, not a test: it never fails on a number. It reuses bench/run.sh's helpers (the
# CPU layout, the stand-in Entra ID, sign-ins, wrk with rotated session cookies, the lock) and
# its environment settings (PROXY_CPU, LOAD_CPU, THREADS, WARMUP, BENCH_LOCK, PORTCULLIS_BIN and
# SIGNIN_BIN, CARGO_TARGET_DIR); see bench/README.md.
#
# Usage: bench/redis_topologies.sh            (ROUNDS=3, CONNS=64, DURATION=8s, SESSIONS=200)
#        ROUNDS=5 DURATION=10s bench/redis_topologies.sh

set -euo pipefail

# One connection level (run.sh's default is two) and fewer sessions than run.sh's default.
TOPOLOGY_CONNS=${CONNS:-64}
TOPOLOGY_SESSIONS=${SESSIONS:-200}
# shellcheck source=bench/run.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run.sh"
CONNS=$TOPOLOGY_CONNS
SESSIONS=$TOPOLOGY_SESSIONS
BENCH_H2=0
BENCH_SIGNIN=1
TOPOLOGIES=(single sentinel cluster)
SERVICE=portcullis
# Bounded waits for the Redis set-ups: 0.1 s steps.
SETUP_STEPS=200

# redis_node NAME PORT [LINES...]: a redis-server on 127.0.0.1:PORT pinned to LOAD_CPU, its
# configuration file (sentinels rewrite theirs) and log under $WORK/redis-NAME.
redis_node() {
    local name=$1 port=$2 dir="$WORK/redis-$1" sentinel=()
    shift 2
    mkdir -p "$dir"
    {
        printf 'port %s\nbind 127.0.0.1\nsave ""\nappendonly no\ndir %s\nlogfile %s/redis.log\n' \
            "$port" "$dir" "$dir"
        printf '%s\n' "$@"
    } >"$dir/redis.conf"
    [[ $name == sentinel[0-9] ]] && sentinel=(--sentinel)
    taskset -c "$LOAD_CPU" redis-server "$dir/redis.conf" "${sentinel[@]}" 9>&- &
    local pid=$!
    PIDS+=("$pid")
    wait_until "redis-server ($name)" "$pid" "$dir/redis.log" redis-cli -p "$port" ping
}

# until_true WHAT COMMAND...: retries COMMAND every 0.1 s, at most SETUP_STEPS times.
until_true() {
    local what=$1 i
    shift
    for i in $(seq 1 "$SETUP_STEPS"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$what not ready after $((SETUP_STEPS / 10)) s"
}

start_single() {
    redis_node single "$SINGLE_PORT"
    REDIS_URL[single]="redis://127.0.0.1:$SINGLE_PORT/0"
}

sentinel_settled() {
    local s
    redis-cli -p "$SENT_REPLICA" info replication | grep -q 'master_link_status:up' || return 1
    for s in "${SENT_PORTS[@]}"; do
        redis-cli -p "$s" sentinel master "$SERVICE" | grep -A1 -x 'num-other-sentinels' \
            | grep -qx 2 || return 1
        redis-cli -p "$s" sentinel master "$SERVICE" | grep -A1 -x 'num-slaves' \
            | grep -qx 1 || return 1
    done
}

start_sentinel() {
    local s i
    SENT_PORTS=("$S1" "$S2" "$S3")
    redis_node sentinel-primary "$SENT_PRIMARY"
    redis_node sentinel-replica "$SENT_REPLICA" "replicaof 127.0.0.1 $SENT_PRIMARY"
    i=0
    for s in "${SENT_PORTS[@]}"; do
        i=$((i + 1))
        redis_node "sentinel$i" "$s" \
            "sentinel monitor $SERVICE 127.0.0.1 $SENT_PRIMARY 2" \
            "sentinel down-after-milliseconds $SERVICE 5000" \
            "sentinel failover-timeout $SERVICE 60000"
    done
    until_true "the Sentinel set" sentinel_settled
    REDIS_URL[sentinel]="redis-sentinel://127.0.0.1:$S1/0?sentinelServiceName=$SERVICE&node=127.0.0.1:$S2&node=127.0.0.1:$S3"
}

cluster_ok() {
    local p
    for p in "${CLUSTER_PORTS[@]}"; do
        redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || return 1
    done
}

start_cluster() {
    local p i=0
    for p in "${CLUSTER_PORTS[@]}"; do
        # The bus port has its own free port (the default, port + 10000, may not exist).
        redis_node "cluster$((i + 1))" "$p" "cluster-enabled yes" "cluster-node-timeout 5000" \
            "cluster-port ${CLUSTER_BUS_PORTS[$i]}" \
            "cluster-config-file $WORK/redis-cluster$((i + 1))/nodes.conf"
        i=$((i + 1))
    done
    taskset -c "$LOAD_CPU" redis-cli --cluster create \
        "${CLUSTER_PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
        >"$WORK/cluster-create.log" 2>&1 \
        || { cat "$WORK/cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
    until_true "the cluster" cluster_ok
    REDIS_URL[cluster]="redis-cluster://127.0.0.1:${CLUSTER_PORTS[0]}?node=127.0.0.1:${CLUSTER_PORTS[1]}&node=127.0.0.1:${CLUSTER_PORTS[2]}"
}

# median: the median of the numbers on stdin ("-" if none).
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) print "-"
        else if (NR % 2) print v[(NR + 1) / 2]
        else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

print_topology_table() {
    local t rps p99 single bad
    single=$(awk -F'\t' '$1 == "single" { print $3 }' "$OUT/topologies.tsv" | median)
    # "×" is two bytes: its column is one wider in the format.
    printf '\n%-10s %10s %11s %10s %8s\n' topology rps "× single" "p99 ms" non-2xx
    for t in "${TOPOLOGIES[@]}"; do
        rps=$(awk -F'\t' -v t="$t" '$1 == t { print $3 }' "$OUT/topologies.tsv" | median)
        p99=$(awk -F'\t' -v t="$t" '$1 == t { print $4 }' "$OUT/topologies.tsv" | median)
        bad=$(awk -F'\t' -v t="$t" '$1 == t { n += $5 + $6 } END { print n + 0 }' "$OUT/topologies.tsv")
        printf '%-10s %10.0f %10s %10s %8s\n' "$t" "$rps" \
            "$(awk -v r="$rps" -v s="$single" 'BEGIN { if (s > 0) printf "%.2f", r / s; else print "-" }')" \
            "$p99" "$bad"
    done
    echo
    echo "medians of $ROUNDS interleaved round(s); wrk -t$THREADS -c$CONNS -d$DURATION," \
        "$SESSIONS sessions rotated, session cache off (cache_ttl = 1ms)"
    echo "non-2xx: non-2xx responses and socket errors over all rounds; proxy on CPU $PROXY_CPU," \
        "Redis and wrk on CPU $LOAD_CPU"
    echo "load avg: $(cut -d' ' -f1 /proc/loadavg) (1 min, after the runs)"
}

topologies_main() {
    case ${1:-} in
        -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        "") ;;
        *) die "no arguments; settings come from the environment (see --help)" ;;
    esac
    local n t round file rps p99 non2xx err
    for n in ROUNDS THREADS SESSIONS CONNS; do
        [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer, got '${!n}'"
    done
    seconds_of "$DURATION" >/dev/null || die "DURATION must look like 8s, got '$DURATION'"
    prepare_run
    make_certificate
    declare -gA REDIS_URL PC_PORT
    # Every port at once, so that none is handed out twice.
    local ports
    read -r -a ports < <(free_ports 19)
    UPSTREAM_PORT=${ports[0]}
    SINGLE_PORT=${ports[7]}
    read -r SENT_PRIMARY SENT_REPLICA S1 S2 S3 <<<"${ports[*]:8:5}"
    CLUSTER_PORTS=("${ports[@]:13:3}")
    CLUSTER_BUS_PORTS=("${ports[@]:16:3}")
    say "starting nginx upstream on 127.0.0.1:$UPSTREAM_PORT (CPU $LOAD_CPU)"
    start_upstream
    say "starting Redis: single, Sentinel (1 primary, 1 replica, 3 sentinels), Cluster (3 primaries)"
    start_single
    start_sentinel
    start_cluster
    say "starting the stand-in Entra ID (CPU $LOAD_CPU)"
    start_idp "${ports[1]}" "${ports[3]}" "${ports[5]}"
    local i=1
    for t in "${TOPOLOGIES[@]}"; do
        PC_PORT[$t]=${ports[$i]}
        say "starting portcullis ($t) on 127.0.0.1:${ports[$i]} (CPU $PROXY_CPU): ${REDIS_URL[$t]}"
        start_portcullis "$t" "${ports[$i]}" "${ports[$((i + 1))]}" warn redis-nocache "${REDIS_URL[$t]}"
        i=$((i + 2))
    done
    for t in "${TOPOLOGIES[@]}"; do
        make_sessions "$t" "${PC_PORT[$t]}" "$SESSIONS"
        add_target "$t" "https://127.0.0.1:${PC_PORT[$t]}/auth/" "signed-in, redis $t, no cache" "$t"
        LUA[$t]="/auth/ $WORK/$t/cookies"
    done

    OUT="$BENCH_DIR/out/topologies-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$OUT"
    : >"$OUT/topologies.tsv"
    take_lock
    if (( $(seconds_of "$WARMUP") > 0 )); then
        for t in "${TOPOLOGIES[@]}"; do
            run_wrk "$t" "$CONNS" "$WARMUP" "$OUT/warmup-$t.txt"
        done
    fi
    for round in $(seq 1 "$ROUNDS"); do
        for t in "${TOPOLOGIES[@]}"; do
            file="$OUT/$t-round$round.txt"
            run_wrk "$t" "$CONNS" "$DURATION" "$file"
            read -r rps _ p99 _ _ non2xx err _ < <(parse_wrk "$file")
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$round" "$rps" "$p99" "$non2xx" "$err" \
                >>"$OUT/topologies.tsv"
            say "round $round/$ROUNDS $t: $rps rps, p99 $p99 ms, non-2xx $non2xx, socket errors $err"
        done
    done
    release_lock
    print_topology_table | tee "$OUT/summary.txt"
    echo "raw output: $OUT"
}

topologies_main "$@"
