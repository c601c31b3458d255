#!/usr/bin/env bash
# Issue #20, goal 2: bounded concurrency. A read call (get_printer_jobs, 1,000 printers and
# 1,000,000 jobs seeded as for jobs_bench.sh) under 1 … 256 concurrent clients: requests/s,
# latency, and the server's thread count and database connections, sampled every 100 ms during
# each run (their maxima are in the table). Then the 64-client latency on a machine that is not
# saturated: 64 connections that each wait BENCH_THINK_MS after every answer, chosen so that
# they ask for about half of what 64 saturating clients got.
#
#   bench/concurrency_bench.sh                 # Postgres, then SQLite
#   bench/concurrency_bench.sh sqlite          # one backend (sqlite | postgres)
#
# Per backend: seed_jobs_database (lib.sh), one server (production defaults) for all runs, a
# warm-up, then per client count: wait for a quiet machine and
#   wrk -t2 -c<clients> -d$BENCH_DURATION (-t1 for one client) --timeout 10s --latency -s bench/printer_jobs.lua
# Connections: Postgres backends of the bench database (pg_stat_activity); SQLite: the
# server's open descriptors of the database file. Fails on any non-2xx answer or socket error.
#
# Environment (besides bench/lib.sh's PRINTFARM_BIN, BENCH_TARGET_DIR, BENCH_PG_URL,
# BENCH_MAX_LOAD, BENCH_LOAD_WAIT_SECS, BENCH_RESULTS_DIR, BENCH_KEEP_WORK):
#   BENCH_PRINTERS (1000), BENCH_JOBS (1000000), BENCH_CLIENTS ("1 16 64 256"),
#   BENCH_DURATION (20s), BENCH_WARMUP (5s), BENCH_PACED_SHARE (0.5: the paced run's target
#   share of the saturated 64-client rate)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_PRINTERS="${BENCH_PRINTERS:-1000}"
BENCH_JOBS="${BENCH_JOBS:-1000000}"
BENCH_CLIENTS="${BENCH_CLIENTS:-1 16 64 256}"
BENCH_DURATION="${BENCH_DURATION:-20s}"
BENCH_WARMUP="${BENCH_WARMUP:-5s}"
BENCH_PACED_SHARE="${BENCH_PACED_SHARE:-0.5}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/concurrency-$(date -u +%Y%m%dT%H%M%SZ)}"
BENCH_DB_PREFIX="${BENCH_DB_PREFIX:-pf_conc}"

need_tools wrk curl python3
backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(postgres sqlite)
check_backends
install_traps
FAILURES=0
TCK="$(clk_tck)"
SCRIPT="$BENCH_DIR/printer_jobs.lua"


# Connections the server holds to its database right now.
connections() {
    if [[ -n "${PG_DB:-}" ]]; then
        pg_admin -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$PG_DB'"
    else
        local n=0 f
        for f in /proc/"$SERVER_PID"/fd/*; do
            [[ "$(readlink "$f" 2>/dev/null)" == "$DB_URL" ]] && n=$((n + 1))
        done
        echo "$n"
    fi
}

# sample OUT: every 100 ms, "threads connections" of the server, until killed.
sample() {
    while :; do
        echo "$(proc_status_kb "$SERVER_PID" Threads) $(connections)" >>"$1"
        sleep 0.1
    done
}

# run BACKEND LABEL CLIENTS [THINK_MS]: one wrk run; appends a row to the table.
run() {
    local backend="$1" label="$2" clients="$3" think="${4:-}"
    local tag="$backend-$label" out="$BENCH_RESULTS_DIR/$backend-$label.txt" samples="$WORK_DIR/$label.samples"
    wait_for_quiet
    : >"$samples"
    sample "$samples" &
    local sampler=$!
    local busy0 busy1 own0 own1 t0 t1
    busy0="$(cpu_busy_ticks)"
    own0="$(proc_ticks "$SERVER_PID" $(database_pids))"
    t0="$(date +%s.%N)"
    local threads=$((clients < 2 ? clients : 2))
    log "$tag: wrk -t$threads -c$clients -d$BENCH_DURATION --latency${think:+ (think $think ms)}"
    BENCH_THINK_MS="$think" wrk -t"$threads" -c"$clients" -d"$BENCH_DURATION" --timeout 10s --latency \
        -s "$SCRIPT" "$BASE" >"$out" 2>&1 || {
        kill "$sampler"
        cat "$out" >&2
        die "wrk failed ($tag)"
    }
    t1="$(date +%s.%N)"
    own1="$(proc_ticks "$SERVER_PID" $(database_pids))"
    busy1="$(cpu_busy_ticks)"
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    local rps p50 p99 non2xx sockerr threads conns cores server_cpu
    rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
    p50="$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")"
    sockerr="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")"
    threads="$(awk 'NF == 2 { if ($1 > m) m = $1 } END { print m + 0 }' "$samples")"
    conns="$(awk 'NF == 2 { if ($2 > m) m = $2 } END { print m + 0 }' "$samples")"
    cores="$(awk -v b=$((busy1 - busy0)) -v t="$TCK" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.2f", b / t / (z - a) }')"
    server_cpu="$(awk -v o=$((own1 - own0)) -v t="$TCK" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.2f", o / t / (z - a) }')"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$backend" "$clients" "${think:-0}" "$rps" "$p50" "$p99" "$threads" "$conns" "$server_cpu" "$cores" \
        "${non2xx:-0}/${sockerr:-0}" "$LOAD_BEFORE" | tee -a "$TABLE" >&2
    LAST_RPS="$rps"
    if ((${non2xx:-0} != 0 || ${sockerr:-0} != 0)); then
        log "$tag: ${non2xx:-0} non-2xx answers, ${sockerr:-0} socket errors (see $out)"
        FAILURES=$((FAILURES + 1))
    fi
}

database_pids() {
    [[ -n "${PG_DB:-}" ]] || return 0
    pg_admin -c "SELECT pid FROM pg_stat_activity WHERE datname = '$PG_DB'"
}

mkdir -p "$BENCH_RESULTS_DIR"
TABLE="$BENCH_RESULTS_DIR/table.md"
{
    echo "| backend | clients | think ms | requests/s | p50 ms | p99 ms | max server threads | max DB connections | server+DB CPU (cores) | machine busy (cores) | non-2xx/socket errors | load before |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$TABLE"
build_server

for backend in "${backends[@]}"; do
    PG_DB=""
    seed_jobs_database "$backend"
    start_server "$backend"
    log "$backend: idle server: $(proc_status_kb "$SERVER_PID" Threads) threads, $(connections) database connections"
    wrk -t2 -c32 -d"$BENCH_WARMUP" --timeout 10s -s "$SCRIPT" "$BASE" >"$BENCH_RESULTS_DIR/$backend-warmup.txt" 2>&1 ||
        die "warm-up wrk failed"
    saturated_64=""
    for clients in $BENCH_CLIENTS; do
        run "$backend" "c$clients" "$clients"
        [[ $clients == 64 ]] && saturated_64="$LAST_RPS"
    done
    if [[ -n "$saturated_64" ]]; then
        # 64 clients asking for BENCH_PACED_SHARE of the saturated rate: each waits 64 / rate s.
        think="$(awk -v r="$saturated_64" -v s="$BENCH_PACED_SHARE" 'BEGIN { printf "%.0f", 64 * 1000 / (r * s) }')"
        run "$backend" "c64-paced" 64 "$think"
    fi
    stop_server
    cleanup_backend
done
log "results: $TABLE"
cat "$TABLE" >&2
((FAILURES == 0)) || die "$FAILURES runs had errors"
