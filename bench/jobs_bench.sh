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
for b in "${backends[@]}"; do
    case "$b" in
        sqlite) need_tools sqlite3 ;;
        postgres) need_tools psql ;;
        *) die "unknown backend '$b' (sqlite | postgres)" ;;
    esac
done
install_traps
FAILURES=0

# --- seeding -------------------------------------------------------------------------------
PRINTER_COLS="organization_id, owner_user_id, printer_type_id, name, snr, host_num, local_ip, vid, pid, mac,
    agent_version, auth_token_hash, state, percent, temps, target_temps, report, last_error,
    current_job_id, tray_clear, filaments, camera_watched_until, last_seen_at, next_command_number,
    created_at, updated_at"
JOB_COLS="id, organization_id, printer_id, file_id, user_id, share_id, status_id, change_seq, notes,
    percent, print_time, printing_duration, material_type, layer_height, color_numbers, extruders,
    weight, heated_bed, heated_bed_temperature, raft, supports, file_cost, cost, charged,
    cancel_reason, cancel_details, cancelled_by_user_id, started_by_user_id, feedback,
    created_at, started_at, ended_at, updated_at, download_token_hash"

# Status of job g: 1 % queued (11), 1 % failed (43), 2 % aborted (45), the rest finished (77).
status_case() {
    echo "CASE WHEN $1 % 100 = 0 THEN 11 WHEN $1 % 100 = 1 THEN 43 WHEN $1 % 50 = 2 THEN 45 ELSE 77 END"
}

seed_postgres() {
    local uid="$1" fid="$2"
    pg_db <<SQL || return 1
BEGIN;
INSERT INTO printers ($PRINTER_COLS)
SELECT 1, $uid, NULL, 'bench printer ' || g, 'BENCH' || lpad(g::text, 6, '0'), 'bench-host-' || g,
       '10.0.' || (g / 256) || '.' || (g % 256), '2C99', '0002', '', 'bench', NULL, 'ready', 0,
       NULL, NULL, NULL, NULL, NULL, true, NULL, NULL, NULL, 1,
       now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
FROM generate_series(1, $BENCH_PRINTERS) AS g;
CREATE TEMP TABLE bench_printers AS
    SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM printers WHERE snr LIKE 'BENCH%';
INSERT INTO jobs ($JOB_COLS)
SELECT g, 1, p.id, $fid, $uid, NULL, s.status, g, NULL,
       CASE WHEN s.status = 77 THEN 100 ELSE 0 END,
       CASE WHEN s.status = 11 THEN 0 ELSE 956 END, 956, 'PLA', 0.2, 1, '{"L":0,"R":215}', 3.83,
       true, 60, false, false, NULL, NULL, s.status <> 11,
       CASE WHEN s.status = 45 THEN 'CANCELLED_WEB' WHEN s.status = 43 THEN 'PRINTER_ERROR' END,
       NULL, NULL, CASE WHEN s.status = 11 THEN NULL ELSE $uid END, NULL,
       t.ts, CASE WHEN s.status = 11 THEN NULL ELSE t.ts END,
       CASE WHEN s.status = 11 THEN NULL ELSE t.ts + interval '956 seconds' END,
       t.ts + interval '956 seconds', NULL
FROM generate_series(1, $BENCH_JOBS) AS g
JOIN bench_printers p ON p.k = g % $BENCH_PRINTERS
CROSS JOIN LATERAL (SELECT $(status_case g) AS status) s
CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE 'utc') - make_interval(secs => ($BENCH_JOBS - g) * 2 + 1000) AS ts) t;
SELECT setval(pg_get_serial_sequence('jobs', 'id'), (SELECT max(id) FROM jobs));
UPDATE counters SET value = (SELECT max(change_seq) FROM jobs) WHERE name = 'job_changes';
COMMIT;
VACUUM ANALYZE printers;
VACUUM ANALYZE jobs;
SQL
}

seed_sqlite() {
    local uid="$1" fid="$2"
    local now="strftime('%Y-%m-%d %H:%M:%f', 'now')"
    sqlite3 -bail "$DB_URL" <<SQL || return 1
PRAGMA foreign_keys = ON;
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < $BENCH_PRINTERS)
INSERT INTO printers ($PRINTER_COLS)
SELECT 1, $uid, NULL, 'bench printer ' || g, 'BENCH' || printf('%06d', g), 'bench-host-' || g,
       '10.0.' || (g / 256) || '.' || (g % 256), '2C99', '0002', '', 'bench', NULL, 'ready', 0,
       NULL, NULL, NULL, NULL, NULL, 1, NULL, NULL, NULL, 1, $now, $now
FROM seq;
CREATE TEMP TABLE bench_printers AS
    SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM printers WHERE snr LIKE 'BENCH%';
CREATE UNIQUE INDEX temp.bench_printers_k ON bench_printers (k);
WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < $BENCH_JOBS),
rows AS (
    SELECT g, $(status_case g) AS status,
           strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || (($BENCH_JOBS - g) * 2 + 1000) || ' seconds') AS ts,
           strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || (($BENCH_JOBS - g) * 2 + 1000 - 956) || ' seconds') AS te
    FROM seq
)
INSERT INTO jobs ($JOB_COLS)
SELECT g, 1, p.id, $fid, $uid, NULL, status, g, NULL,
       CASE WHEN status = 77 THEN 100 ELSE 0 END,
       CASE WHEN status = 11 THEN 0 ELSE 956 END, 956, 'PLA', 0.2, 1, '{"L":0,"R":215}', 3.83,
       1, 60, 0, 0, NULL, NULL, status <> 11,
       CASE WHEN status = 45 THEN 'CANCELLED_WEB' WHEN status = 43 THEN 'PRINTER_ERROR' END,
       NULL, NULL, CASE WHEN status = 11 THEN NULL ELSE $uid END, NULL,
       ts, CASE WHEN status = 11 THEN NULL ELSE ts END, CASE WHEN status = 11 THEN NULL ELSE te END,
       te, NULL
FROM rows JOIN bench_printers p ON p.k = g % $BENCH_PRINTERS;
UPDATE counters SET value = (SELECT max(change_seq) FROM jobs) WHERE name = 'job_changes';
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
    if [[ -n "${BENCH_SQLITE_ANALYZE:-}" ]]; then
        sqlite3 -bail "$DB_URL" "ANALYZE;" || return 1
    fi
}

# --- measuring -----------------------------------------------------------------------------
to_ms() { # wrk latency ("812.00us", "3.21ms", "1.02s") -> milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf (n < 10 ? "%.2f" : (n < 100 ? "%.1f" : "%.0f")), n
    }'
}

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
    new_database "$backend"
    SERVER_ENV=()
    start_server "$backend"
    create_bench_user
    local uid fid answer t0 t1
    answer="$(upload_file "$REPO/fixtures/cube_20mm.gcode")" || die "upload failed"
    fid="$(json_field file_id <<<"$answer")"
    [[ -n "$fid" ]] || die "no file_id in the upload answer: $answer"
    stop_server
    if [[ $backend == postgres ]]; then
        uid="$(pg_db -c "SELECT id FROM users WHERE email = '$BENCH_EMAIL'")"
    else
        uid="$(sqlite3 "$DB_URL" "SELECT id FROM users WHERE email = '$BENCH_EMAIL'")"
    fi
    [[ -n "$uid" ]] || die "bench user not found"
    log "$backend: seeding $BENCH_PRINTERS printers and $BENCH_JOBS jobs (user $uid, file $fid)"
    t0="$(date +%s.%N)"
    "seed_$backend" "$uid" "$fid" >"$WORK_DIR/seed.log" 2>&1 || {
        cat "$WORK_DIR/seed.log" >&2
        die "seeding failed"
    }
    t1="$(date +%s.%N)"
    local seed_s db_mib jobs_mib
    seed_s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')"
    db_mib="$(database_size_mib "$backend")"
    if [[ $backend == postgres ]]; then
        jobs_mib="$(pg_db -c "SELECT round(pg_total_relation_size('jobs') / 1048576.0)")"
        export BENCH_PRINTER_MIN BENCH_PRINTER_MAX BENCH_JOB_MIN BENCH_JOB_MAX
        read -r BENCH_PRINTER_MIN BENCH_PRINTER_MAX < <(pg_db -F ' ' -c "SELECT min(id), max(id) FROM printers WHERE snr LIKE 'BENCH%'")
        read -r BENCH_JOB_MIN BENCH_JOB_MAX < <(pg_db -F ' ' -c "SELECT min(id), max(id) FROM jobs")
    else
        # dbstat may be missing from the CLI build: then "?".
        jobs_mib="$(sqlite3 "$DB_URL" "SELECT round(sum(pgsize) / 1048576.0) FROM dbstat WHERE name = 'jobs' OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'jobs')" 2>/dev/null || echo '?')"
        export BENCH_PRINTER_MIN BENCH_PRINTER_MAX BENCH_JOB_MIN BENCH_JOB_MAX
        read -r BENCH_PRINTER_MIN BENCH_PRINTER_MAX < <(sqlite3 -separator ' ' "$DB_URL" "SELECT min(id), max(id) FROM printers WHERE snr LIKE 'BENCH%'")
        read -r BENCH_JOB_MIN BENCH_JOB_MAX < <(sqlite3 -separator ' ' "$DB_URL" "SELECT min(id), max(id) FROM jobs")
    fi
    [[ -n "$BENCH_PRINTER_MIN" && -n "$BENCH_JOB_MIN" ]] || die "seeding left no printers or jobs"
    log "$backend: seeded in ${seed_s}s; database $db_mib MiB (jobs table + indexes $jobs_mib MiB); printers $BENCH_PRINTER_MIN..$BENCH_PRINTER_MAX, jobs $BENCH_JOB_MIN..$BENCH_JOB_MAX"
    printf '| %s | %s | %s | %s | %s |\n' "$backend" "$BENCH_PRINTERS" "$BENCH_JOBS" "$db_mib" "$jobs_mib" >>"$SIZES"

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
