# Shared helpers of bench/upload_bench.sh, bench/jobs_bench.sh, bench/agents_bench.sh and
# bench/floor_bench.sh.
# Source it (`. "$BENCH_DIR/lib.sh"`) after `set -euo pipefail`. Adapted from the helpers of
# bench/login_load.sh (free port, quiet-machine wait, server start/stop, fresh Postgres database).
#
# Environment (all optional):
#   PRINTFARM_BIN        printfarm binary to test (skips the build)
#   BENCH_TARGET_DIR     cargo target dir for the release build (default: <repo>/../bench-target)
#   BENCH_PG_URL         Postgres admin URL, allowed to CREATE DATABASE
#                        (default postgres://postgres@127.0.0.1:5432/postgres)
#   BENCH_MAX_LOAD       wait before each measurement until the 1-minute load average is below
#                        this (default 1.5) ...
#   BENCH_LOAD_WAIT_SECS ... for at most this long, then run anyway and say so (default 600)
#   BENCH_RESULTS_DIR    where raw outputs and the tables are kept
#                        (default bench/results/<script>-<timestamp>)
#   BENCH_KEEP_WORK      set: keep the temp work dir (database file, full server log with
#                        access lines, files) instead of deleting it
#   BENCH_DB_PREFIX      name prefix of the Postgres databases (default pf_bench)

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"

BENCH_PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BENCH_MAX_LOAD="${BENCH_MAX_LOAD:-1.5}"
BENCH_LOAD_WAIT_SECS="${BENCH_LOAD_WAIT_SECS:-600}"
SHUTDOWN_TIMEOUT_SECS="${SHUTDOWN_TIMEOUT_SECS:-30}"

export BENCH_EMAIL="${BENCH_EMAIL:-bench@example.com}"
export BENCH_PASSWORD="${BENCH_PASSWORD:-bench-password-123}"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}

need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is not installed (Debian: apt-get install -y $tool)"
    done
}

# --- arguments -----------------------------------------------------------------------------
# check_backends: every name in the array `backends` is sqlite or postgres, with its CLI.
check_backends() {
    local b
    for b in "${backends[@]}"; do
        case "$b" in
            sqlite) need_tools sqlite3 ;;
            postgres) need_tools psql ;;
            *) die "unknown backend '$b' (sqlite | postgres)" ;;
        esac
    done
}

# to_ms: wrk's latency text ("812.00us", "3.21ms", "1.02s") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf (n < 10 ? "%.2f" : (n < 100 ? "%.1f" : "%.0f")), n
    }'
}

# --- the binary ----------------------------------------------------------------------------
# Sets BIN. Builds the release server into a target dir of its own (never ./target).
build_server() {
    if [[ -n "${PRINTFARM_BIN:-}" ]]; then
        BIN="$PRINTFARM_BIN"
    else
        BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-$(cd "$REPO/.." && pwd)/bench-target}"
        log "building: CARGO_TARGET_DIR=$BENCH_TARGET_DIR nice cargo build --release --bin printfarm"
        (cd "$REPO" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" nice cargo build --release --bin printfarm) >&2 ||
            die "cargo build failed"
        BIN="$BENCH_TARGET_DIR/release/printfarm"
    fi
    [[ -x "$BIN" ]] || die "no printfarm binary at $BIN"
    log "binary: $BIN ($("$BIN" --version 2>/dev/null || echo '?')), $(nproc) cores"
}

# --- per-backend state, cleaned up by the trap ---------------------------------------------
WORK_DIR=""
SERVER_PID=""
PG_DB=""
DB_URL=""
declare -a SERVER_ENV=() # extra VAR=value settings for the server

pg_admin() { psql "$BENCH_PG_URL" -v ON_ERROR_STOP=1 -qAtX "$@"; }
pg_db() { psql "$DB_URL" -v ON_ERROR_STOP=1 -qAtX "$@"; }

kill_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 $((SHUTDOWN_TIMEOUT_SECS + 5))); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

cleanup_backend() {
    kill_server
    if [[ -n "$PG_DB" ]]; then
        pg_admin -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 ||
            pg_admin -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 ||
            log "warning: could not drop database $PG_DB"
        PG_DB=""
    fi
    if [[ -n "$WORK_DIR" && -z "${BENCH_KEEP_WORK:-}" ]]; then
        rm -rf "$WORK_DIR"
    fi
    WORK_DIR=""
}

# Scripts may chain their own cleanup in front: `trap 'my_cleanup; cleanup_backend' EXIT`.
install_traps() {
    trap cleanup_backend EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# --- machine load --------------------------------------------------------------------------
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

load1() { cut -d' ' -f1 /proc/loadavg; }

# Waits until the 1-minute load average is below BENCH_MAX_LOAD, for at most
# BENCH_LOAD_WAIT_SECS (polling every 10 s). Sets LOAD_BEFORE (the load measured under, with a
# "!" suffix when the wait timed out).
wait_for_quiet() {
    local waited=0 load
    load="$(load1)"
    LOAD_BEFORE=""
    while awk -v l="$load" -v m="$BENCH_MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
        if ((waited >= BENCH_LOAD_WAIT_SECS)); then
            log "warning: load average still $load after ${waited}s; measuring anyway"
            LOAD_BEFORE="$load!"
            break
        fi
        ((waited % 60 == 0)) && log "load average $load >= $BENCH_MAX_LOAD, waiting ($(uptime | sed 's/.*load average/load average/'))"
        sleep 10
        waited=$((waited + 10))
        load="$(load1)"
    done
    LOAD_BEFORE="${LOAD_BEFORE:-$load}"
    log "load before measuring: $(uptime | sed 's/.*load average/load average/')"
}

# --- process accounting --------------------------------------------------------------------
clk_tck() { getconf CLK_TCK; }
proc_ticks() { # utime + stime of the given pids (all threads)
    local total=0 s p
    local -a f
    for p in "$@"; do
        s="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
        s="${s##*) }"
        read -ra f <<<"$s"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
cpu_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
proc_status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; } # PID FIELD
postgres_pids() { pgrep -x postgres 2>/dev/null || true; }

# --- databases -----------------------------------------------------------------------------
# new_database BACKEND: fresh WORK_DIR and database; sets DB_URL (and PG_DB for postgres).
new_database() {
    local backend="$1"
    WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pf-bench-$backend.XXXXXX")"
    case "$backend" in
        sqlite)
            DB_URL="$WORK_DIR/printfarm.db"
            ;;
        postgres)
            local uuid base query=""
            uuid="$(cat /proc/sys/kernel/random/uuid)"
            PG_DB="${BENCH_DB_PREFIX:-pf_bench}_${uuid//-/}"
            pg_admin -c "CREATE DATABASE $PG_DB" >/dev/null || die "cannot CREATE DATABASE through $BENCH_PG_URL"
            base="${BENCH_PG_URL%%\?*}"
            [[ "$BENCH_PG_URL" == *\?* ]] && query="?${BENCH_PG_URL#*\?}"
            DB_URL="${base%/*}/$PG_DB$query"
            ;;
        *) die "unknown backend '$backend' (sqlite | postgres)" ;;
    esac
    log "$backend: database $DB_URL, work dir $WORK_DIR"
}

# Size of the database: the SQLite file (+ WAL) or pg_database_size, in MiB.
database_size_mib() {
    local backend="$1" bytes
    if [[ $backend == sqlite ]]; then
        bytes="$(du -cb "$DB_URL"* 2>/dev/null | tail -n1 | cut -f1)"
    else
        bytes="$(pg_db -c "SELECT pg_database_size(current_database())")"
    fi
    awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1048576 }'
}

# --- the server ----------------------------------------------------------------------------
# start_server LABEL: runs `printfarm serve` on a free port with DB_URL and SERVER_ENV; sets
# SERVER_PID, PORT, BASE. Files and upload staging live in WORK_DIR.
start_server() {
    PORT="$(free_port)"
    BASE="http://127.0.0.1:$PORT"
    log "starting $BIN serve on $BASE ($1)"
    env DATABASE_URL="$DB_URL" \
        PRINTFARM_SERVER__BIND="127.0.0.1:$PORT" \
        PRINTFARM_SERVER__SHUTDOWN_TIMEOUT_SECS="$SHUTDOWN_TIMEOUT_SECS" \
        PRINTFARM_STORAGE__FILES_DIR="$WORK_DIR/files" \
        PRINTFARM_STORAGE__STAGING_DIR="$WORK_DIR/staging" \
        PRINTFARM_AUTH__THROTTLE_MAX_PER_ADDRESS=1000000000 \
        PRINTFARM_AUTH__THROTTLE_MAX_PER_ACCOUNT=1000000000 \
        "${SERVER_ENV[@]}" \
        "$BIN" serve >>"$WORK_DIR/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 30 "$WORK_DIR/server.log" >&2
            die "server exited during start-up"
        fi
        if curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; then
            log "ready (pid $SERVER_PID): $(curl -fsS "$BASE/readyz")"
            return
        fi
        sleep 0.1
    done
    tail -n 30 "$WORK_DIR/server.log" >&2
    die "GET /readyz did not answer 200 within 60s"
}

stop_server() {
    local rc=0 t0
    t0="$(date +%s.%N)"
    log "stopping the server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID"
    for _ in $(seq 1 $(((SHUTDOWN_TIMEOUT_SECS + 5) * 10))); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$SERVER_PID" 2>/dev/null && die "server still running $((SHUTDOWN_TIMEOUT_SECS + 5))s after SIGTERM"
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    [[ $rc -eq 0 ]] || {
        tail -n 20 "$WORK_DIR/server.log" >&2
        die "server exited with status $rc after SIGTERM"
    }
    log "server stopped in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s"
}

# create_bench_user: the bench user (organization 1, role 1 = organization admin unless
# BENCH_ROLE is set) through the admin CLI, then logs in; sets BENCH_SESSION and BENCH_USER_ID.
create_bench_user() {
    DATABASE_URL="$DB_URL" "$BIN" admin create-user --org 1 --email "$BENCH_EMAIL" \
        --role "${BENCH_ROLE:-1}" --password "$BENCH_PASSWORD" >"$WORK_DIR/create-user.log" 2>&1 || {
        cat "$WORK_DIR/create-user.log" >&2
        die "admin create-user failed"
    }
    local answer
    answer="$(curl -fsS -X POST "$BASE/apiglobal/login" \
        --data-urlencode "username=$BENCH_EMAIL" --data-urlencode "password=$BENCH_PASSWORD")" ||
        die "login with curl failed"
    BENCH_SESSION="$(sed -n 's/.*"session"[[:space:]]*:[[:space:]]*"\([0-9a-fA-F]*\)".*/\1/p' <<<"$answer")"
    [[ -n "$BENCH_SESSION" ]] || die "no session in the login answer: $answer"
    export BENCH_SESSION
}

# upload_file PATH: uploads through the Global API with BENCH_SESSION; prints the answer.
upload_file() {
    curl -fsS -X POST "$BASE/apiglobal/upload" -F "session=$BENCH_SESSION" -F "file=@$1"
}

json_field() { # json_field KEY <<<json  (numbers or strings, first match)
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\{0,1\}\([^\",}]*\).*/\1/p" | head -n1
}

# --- the job-queue data set (jobs_bench.sh, floor_bench.sh) ---------------------------------
# BENCH_PRINTERS printers owned by the bench user and BENCH_JOBS jobs spread round-robin over
# them; the scripts set both before calling seed_jobs_database (see jobs_bench.sh's header).
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

# seed_jobs_database BACKEND: fresh database and server (migrations, first admin), the bench
# user (BENCH_SESSION) and one G-code upload through the API, server stopped, then the
# printers and jobs seeded with SQL. Leaves the server stopped and sets SEED_SECS, DB_MIB,
# JOBS_MIB and the exported BENCH_PRINTER_MIN/MAX and BENCH_JOB_MIN/MAX.
seed_jobs_database() {
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
    SEED_SECS="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')"
    DB_MIB="$(database_size_mib "$backend")"
    if [[ $backend == postgres ]]; then
        JOBS_MIB="$(pg_db -c "SELECT round(pg_total_relation_size('jobs') / 1048576.0)")"
        export BENCH_PRINTER_MIN BENCH_PRINTER_MAX BENCH_JOB_MIN BENCH_JOB_MAX
        read -r BENCH_PRINTER_MIN BENCH_PRINTER_MAX < <(pg_db -F ' ' -c "SELECT min(id), max(id) FROM printers WHERE snr LIKE 'BENCH%'")
        read -r BENCH_JOB_MIN BENCH_JOB_MAX < <(pg_db -F ' ' -c "SELECT min(id), max(id) FROM jobs")
    else
        # dbstat may be missing from the CLI build: then "?".
        JOBS_MIB="$(sqlite3 "$DB_URL" "SELECT round(sum(pgsize) / 1048576.0) FROM dbstat WHERE name = 'jobs' OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'jobs')" 2>/dev/null || echo '?')"
        export BENCH_PRINTER_MIN BENCH_PRINTER_MAX BENCH_JOB_MIN BENCH_JOB_MAX
        read -r BENCH_PRINTER_MIN BENCH_PRINTER_MAX < <(sqlite3 -separator ' ' "$DB_URL" "SELECT min(id), max(id) FROM printers WHERE snr LIKE 'BENCH%'")
        read -r BENCH_JOB_MIN BENCH_JOB_MAX < <(sqlite3 -separator ' ' "$DB_URL" "SELECT min(id), max(id) FROM jobs")
    fi
    [[ -n "$BENCH_PRINTER_MIN" && -n "$BENCH_JOB_MIN" ]] || die "seeding left no printers or jobs"
    log "$backend: seeded in ${SEED_SECS}s; database $DB_MIB MiB (jobs table + indexes $JOBS_MIB MiB); printers $BENCH_PRINTER_MIN..$BENCH_PRINTER_MAX, jobs $BENCH_JOB_MIN..$BENCH_JOB_MAX"
}
