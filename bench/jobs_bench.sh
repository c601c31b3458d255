#!/usr/bin/env bash
# Job-queue read benchmark: `get_printer_jobs` and `get_job_info` with 1,000 printers and
# 1,000,000 jobs, on Postgres and on SQLite.
#
#   bench/jobs_bench.sh                   # Postgres, then SQLite
#   bench/jobs_bench.sh sqlite            # one backend (sqlite | postgres)
#
# Per backend: a fresh database and server (migrations run, the first admin is bootstrapped), a
# bench user (`printfarm admin create-user`, organization admin of organization 1) and one
# G-code upload through the API (fixtures/cube_20mm.gcode: a real file row). The server is
# stopped and the database seeded with SQL (Postgres: INSERT … SELECT … FROM generate_series;
# SQLite: the sqlite3 CLI with a recursive CTE): BENCH_PRINTERS printers owned by the bench
# user, BENCH_JOBS jobs spread round-robin over them (id = change_seq = 1…N, created 2 s apart,
# ending in the present; 96 % finished, 2 % aborted, 1 % failed, 1 % queued), the sequence and
# the `job_changes` counter set to the maximum. Postgres gets VACUUM ANALYZE (what autovacuum
# would do after such a load); SQLite is left as the server leaves it (no ANALYZE) unless
# BENCH_SQLITE_ANALYZE=1. The server is restarted on the seeded database, then for each call:
# a warm-up wrk run (BENCH_WARMUP, not reported), a wait for a quiet machine, and
#   wrk -t2 -c32 -d30s --timeout 10s --latency -s bench/{printer_jobs,job_info}.lua
# (a random printer id / job id per request, limit 20). Every run must end with zero non-2xx
# answers and zero socket errors (the script fails otherwise, after printing the table).
#
# Environment (besides bench/lib.sh's PRINTFARM_BIN, BENCH_TARGET_DIR, BENCH_PG_URL,
# BENCH_MAX_LOAD, BENCH_LOAD_WAIT_SECS, BENCH_RESULTS_DIR):
#   BENCH_PRINTERS (1000), BENCH_JOBS (1000000), BENCH_DURATION (30s), BENCH_WARMUP (5s),
#   BENCH_THREADS (2), BENCH_CONNECTIONS (32), BENCH_SQLITE_ANALYZE (unset)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_PRINTERS="${BENCH_PRINTERS:-1000}"
BENCH_JOBS="${BENCH_JOBS:-1000000}"
BENCH_DURATION="${BENCH_DURATION:-30s}"
BENCH_WARMUP="${BENCH_WARMUP:-5s}"
BENCH_THREADS="${BENCH_THREADS:-2}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-32}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/jobs-$(date -u +%Y%m%dT%H%M%SZ)}"

need_tools wrk curl
backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(postgres sqlite)
check_backends
install_traps
FAILURES=0

# --- measuring -----------------------------------------------------------------------------

# run_wrk BACKEND CALL SCRIPT -> one table row
run_wrk() {
    local backend="$1" call="$2" script="$3"
    local out="$BENCH_RESULTS_DIR/$backend-$call.txt"
    log "$backend/$call: warm-up wrk -d$BENCH_WARMUP"
    wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$BENCH_WARMUP" --timeout 10s -s "$script" "$BASE" \
        >"$BENCH_RESULTS_DIR/$backend-$call.warmup.txt" 2>&1 || die "warm-up wrk failed"
    wait_for_quiet
    local -a pids
    mapfile -t pids < <(
        echo "$SERVER_PID"
        [[ $backend == postgres ]] && postgres_pids
    )
    local busy0 busy1 own0 own1 srv0 srv1 t0 t1 tf wrk_ticks other srv_cores
    tf="$WORK_DIR/wrk.time"
    busy0="$(cpu_busy_ticks)"
    own0="$(proc_ticks "${pids[@]}")"
    srv0="$(proc_ticks "$SERVER_PID")"
    t0="$(date +%s.%N)"
    log "$backend/$call: wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d$BENCH_DURATION --timeout 10s --latency -s $(basename "$script") $BASE"
    local TIMEFORMAT='%3U %3S'
    { time wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$BENCH_DURATION" --timeout 10s \
        --latency -s "$script" "$BASE" >"$out" 2>&1; } 2>"$tf" || {
        cat "$out" >&2
        die "wrk failed ($backend/$call)"
    }
    t1="$(date +%s.%N)"
    own1="$(proc_ticks "${pids[@]}")"
    srv1="$(proc_ticks "$SERVER_PID")"
    busy1="$(cpu_busy_ticks)"
    wrk_ticks="$(awk '{ printf "%d", ($1 + $2) * 100 }' "$tf")"
    other="$(awk -v b=$((busy1 - busy0)) -v o=$((own1 - own0)) -v w="$wrk_ticks" -v a="$t0" -v z="$t1" \
        'BEGIN { x = (b - o - w) / 100 / (z - a); if (x < 0) x = 0; printf "%.2f", x }')"
    srv_cores="$(awk -v s=$((srv1 - srv0)) -v a="$t0" -v z="$t1" 'BEGIN { printf "%.2f", s / 100 / (z - a) }')"
    {
        echo "# load before: $LOAD_BEFORE; other CPU during run: $other cores; server CPU: $srv_cores cores"
        awk -v o=$((own1 - own0)) -v w="$wrk_ticks" -v a="$t0" -v z="$t1" \
            'BEGIN { printf "# wall %.2fs; CPU: server+postgres %.2fs, wrk %.2fs\n", z - a, o / 100, w / 100 }'
    } >>"$out"
    cat "$out" >&2

    local rps p50 p99 non2xx sockerr requests
    rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
    p50="$(awk '$1 == "50%" { print $2 }' "$out")"
    p99="$(awk '$1 == "99%" { print $2 }' "$out")"
    requests="$(awk '/requests in/ { print $1 }' "$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")"
    non2xx="${non2xx:-0}"
    sockerr="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")"
    sockerr="${sockerr:-0}"
    [[ -n "$rps" && -n "$p50" && -n "$p99" && -n "$requests" ]] || die "could not parse wrk output $out"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$backend" "$call" "$requests" "$rps" "$(to_ms "$p50")" "$(to_ms "$p99")" \
        "$non2xx" "$sockerr" "$srv_cores" "$LOAD_BEFORE" "$other" | tee -a "$TABLE"
    if ((non2xx != 0 || sockerr != 0 || requests == 0)); then
        log "$backend/$call: $non2xx non-2xx answers, $sockerr socket errors (see $out)"
        FAILURES=$((FAILURES + 1))
    fi
}

bench_backend() {
    local backend="$1"
    local answer
    seed_jobs_database "$backend"
    printf '| %s | %s | %s | %s | %s |\n' "$backend" "$BENCH_PRINTERS" "$BENCH_JOBS" "$DB_MIB" "$JOBS_MIB" >>"$SIZES"

    start_server "$backend (seeded)"
    # Sanity: both calls answer on the seeded data (20 jobs for a printer, a job's record).
    answer="$(curl -fsS -X POST "$BASE/apiglobal/get_printer_jobs" -d "session=$BENCH_SESSION" \
        -d "printer_id=$BENCH_PRINTER_MAX" -d limit=20)" || die "get_printer_jobs failed"
    local n
    n="$(grep -o '"status_id"' <<<"$answer" | wc -l)"
    ((n == 20)) || die "get_printer_jobs answered $n jobs, not 20: ${answer:0:300}"
    answer="$(curl -fsS -X POST "$BASE/apiglobal/get_job_info" -d "session=$BENCH_SESSION" \
        -d "job_id=$BENCH_JOB_MAX")" || die "get_job_info failed"
    grep -q '"result":true' <<<"$answer" || die "get_job_info: $answer"
    echo "$answer" >"$BENCH_RESULTS_DIR/$backend-job_info.sample.json"

    run_wrk "$backend" get_printer_jobs "$BENCH_DIR/printer_jobs.lua"
    run_wrk "$backend" get_job_info "$BENCH_DIR/job_info.lua"

    stop_server
    grep -v 'middleware::logger' "$WORK_DIR/server.log" >"$BENCH_RESULTS_DIR/$backend-server.log" || true
    cleanup_backend
}

build_server
mkdir -p "$BENCH_RESULTS_DIR"
TABLE="$BENCH_RESULTS_DIR/results.md"
SIZES="$BENCH_RESULTS_DIR/sizes.md"
log "results in $BENCH_RESULTS_DIR"
{
    echo "| backend | call | requests | requests/s | p50 ms | p99 ms | non-2xx | socket errors | server CPU (cores) | load before | other CPU (cores) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
} | tee "$TABLE"
{
    echo "| backend | printers | jobs | database MiB | jobs table + indexes MiB |"
    echo "|---|---|---|---|---|"
} >"$SIZES"
for b in "${backends[@]}"; do
    bench_backend "$b"
done
echo
cat "$TABLE"
echo
cat "$SIZES"
cat "$SIZES" >>"$TABLE"
((FAILURES == 0)) || die "$FAILURES run(s) had non-2xx answers or socket errors"
log "done; table in $TABLE"
