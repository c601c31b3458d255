#!/usr/bin/env bash
# CSV export of the custom report (`get_custom_report`, all fields + workgroup columns) over
# 1,000,000 jobs on Postgres, over HTTP: rows/s, time to first byte, and the server's peak
# memory during the export (VmHWM of the server process, reset just before each export
# through /proc/<pid>/clear_refs), beside Postgres' own `COPY (…) TO STDOUT WITH CSV` of the
# same rows and columns. Every output is parsed back with a CSV reader and its rows counted.
#
#   bench/reports_csv.sh
#
# Needs: curl, psql, python3, a Postgres reachable through BENCH_PG_URL, and a release build
# of printfarm. Unless PRINTFARM_BIN is set, the script builds one first into a separate
# target directory (never ./target):
#   CARGO_TARGET_DIR=$BENCH_TARGET_DIR nice cargo build --release --bin printfarm
#
# Environment (all optional):
#   PRINTFARM_BIN      printfarm binary to test (skips the build)
#   BENCH_TARGET_DIR   cargo target dir for the build (default: <repo>/../bench-target-reports)
#   BENCH_PG_URL       Postgres admin URL, allowed to CREATE DATABASE
#                      (default postgres://postgres@127.0.0.1:5432/postgres)
#   BENCH_JOBS         jobs to seed (default 1000000)
#   BENCH_FILES        files to seed (default 2000); as many as BENCH_JOBS gives every job its
#                      own file, so the names a report shows never repeat from batch to batch
#   BENCH_RUNS         CSV exports to measure (default 3)
#   BENCH_MAX_LOAD     before each measurement, wait until the 1-minute load average is below
#                      this (default 1.5) for at most BENCH_LOAD_WAIT_SECS (default 600)
#   BENCH_RESULTS_DIR  where the table and the query plan are kept
#                      (default bench/results/reports-<timestamp>)

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
BENCH_PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BENCH_JOBS="${BENCH_JOBS:-1000000}"
BENCH_FILES="${BENCH_FILES:-2000}"
BENCH_RUNS="${BENCH_RUNS:-3}"
BENCH_MAX_LOAD="${BENCH_MAX_LOAD:-1.5}"
BENCH_LOAD_WAIT_SECS="${BENCH_LOAD_WAIT_SECS:-600}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/reports-$(date -u +%Y%m%dT%H%M%SZ)}"
EMAIL="report-admin@bench.example"
PASSWORD="bench-password-123"

log() { printf '[reports-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}

for tool in curl psql python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

if [[ -n "${PRINTFARM_BIN:-}" ]]; then
    BIN="$PRINTFARM_BIN"
else
    BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-$(cd "$REPO/.." && pwd)/bench-target-reports}"
    log "building: CARGO_TARGET_DIR=$BENCH_TARGET_DIR nice cargo build --release --bin printfarm"
    (cd "$REPO" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" nice cargo build --release --bin printfarm) >&2 ||
        die "cargo build failed"
    BIN="$BENCH_TARGET_DIR/release/printfarm"
fi
[[ -x "$BIN" ]] || die "no printfarm binary at $BIN"
mkdir -p "$BENCH_RESULTS_DIR"

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pf-reports-bench.XXXXXX")"
SERVER_PID=""
PG_DB=""
pg_admin() { psql "$BENCH_PG_URL" -v ON_ERROR_STOP=1 -qAtX "$@"; }
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "$PG_DB" ]]; then
        pg_admin -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 ||
            log "warning: could not drop database $PG_DB"
    fi
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- database and server -------------------------------------------------------------------
uuid="$(cat /proc/sys/kernel/random/uuid)"
PG_DB="pf_reports_${uuid//-/}"
pg_admin -c "CREATE DATABASE $PG_DB" >/dev/null || die "cannot CREATE DATABASE through $BENCH_PG_URL"
base="${BENCH_PG_URL%%\?*}"
query=""
[[ "$BENCH_PG_URL" == *\?* ]] && query="?${BENCH_PG_URL#*\?}"
DB_URL="${base%/*}/$PG_DB$query"
pg_db() { psql "$DB_URL" -v ON_ERROR_STOP=1 -qAtX "$@"; }

. "$BENCH_DIR/ports.sh"
port="$(free_port)"
BASE="http://127.0.0.1:$port"
log "starting $BIN serve on $BASE, database $PG_DB"
env DATABASE_URL="$DB_URL" PRINTFARM_SERVER__BIND="127.0.0.1:$port" \
    PRINTFARM_STORAGE__FILES_DIR="$WORK_DIR/files" PRINTFARM_STORAGE__STAGING_DIR="$WORK_DIR/staging" \
    RUST_LOG=warn "$BIN" serve >"$WORK_DIR/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do
    kill -0 "$SERVER_PID" 2>/dev/null || {
        tail -n 30 "$WORK_DIR/server.log" >&2
        die "server exited during start-up"
    }
    curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "$BASE/readyz" || die "server not ready"

DATABASE_URL="$DB_URL" "$BIN" admin create-user --org 1 --email "$EMAIL" --role 1 \
    --password "$PASSWORD" >"$WORK_DIR/create-user.log" 2>&1 || {
    cat "$WORK_DIR/create-user.log" >&2
    die "admin create-user failed"
}
answer="$(curl -fsS -X POST "$BASE/apiglobal/login" --data-urlencode "username=$EMAIL" \
    --data-urlencode "password=$PASSWORD")"
SESSION="$(sed -n 's/.*"session"[[:space:]]*:[[:space:]]*"\([0-9a-fA-F]*\)".*/\1/p' <<<"$answer")"
[[ -n "$SESSION" ]] || die "no session in the login answer: $answer"

log "seeding $BENCH_JOBS jobs, $BENCH_FILES files (bench/reports_seed.sql)"
t0="$(date +%s.%N)"
pg_db -v org=1 -v jobs="$BENCH_JOBS" -v files="$BENCH_FILES" -f "$BENCH_DIR/reports_seed.sql" >/dev/null
t1="$(date +%s.%N)"
SEED_SECS="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
log "seeded in ${SEED_SECS}s; database $(pg_db -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"

TO="$(date -u +%F)"
FROM="$(date -u -d "$TO - 364 days" +%F)"
IN_RANGE="$(pg_db -c "SELECT count(*) FROM jobs WHERE organization_id = 1
    AND created_at >= '$FROM' AND created_at < date '$TO' + 1")"
log "range $FROM .. $TO holds $IN_RANGE jobs"

# --- helpers -------------------------------------------------------------------------------
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SERVER_PID/status"; }
ticks() {
    local s
    s="$(cat "/proc/$SERVER_PID/stat")"
    s="${s##*) }"
    read -ra f <<<"$s"
    echo $((f[11] + f[12]))
}
CLK="$(getconf CLK_TCK)"
pid_ticks() { # utime + stime of one pid (all threads), 0 when gone
    local s
    s="$(cat "/proc/$1/stat" 2>/dev/null)" || {
        echo 0
        return
    }
    s="${s##*) }"
    read -ra f <<<"$s"
    echo $((f[11] + f[12]))
}
# Postgres backends of the bench database: the server's pool connections and their CPU.
declare -A DB_TICKS0
db_backends() { pg_admin -c "SELECT pid FROM pg_stat_activity WHERE datname = '$PG_DB' AND pid <> pg_backend_pid()"; }
db_ticks_start() {
    DB_TICKS0=()
    local p
    for p in $(db_backends); do DB_TICKS0[$p]="$(pid_ticks "$p")"; done
}
db_ticks_since() { # ticks the backends spent since db_ticks_start (backends opened since count whole)
    local p total=0
    for p in $(db_backends); do total=$((total + $(pid_ticks "$p") - ${DB_TICKS0[$p]:-0})); done
    echo "$total"
}
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
csv_rows() { # records in a CSV file, BOM skipped, header included
    python3 -c '
import csv, sys
with open(sys.argv[1], newline="", encoding="utf-8-sig") as f:
    n = sum(1 for _ in csv.reader(f))
print(n)' "$1"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# Waits for a quiet machine (other builds, the previous run); sets LOAD.
wait_for_quiet() {
    local waited=0
    LOAD="$(cut -d' ' -f1 /proc/loadavg)"
    while awk -v l="$LOAD" -v m="$BENCH_MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
        if ((waited >= BENCH_LOAD_WAIT_SECS)); then
            log "warning: load average still $LOAD after ${waited}s; measuring anyway"
            LOAD="$LOAD!"
            return
        fi
        sleep 10
        waited=$((waited + 10))
        LOAD="$(cut -d' ' -f1 /proc/loadavg)"
    done
}

TABLE="$BENCH_RESULTS_DIR/results.md"
{
    echo "# get_custom_report CSV export, $IN_RANGE jobs on Postgres ($(date -u +%FT%TZ))"
    echo
    echo "$(nproc) cores; $(psql "$DB_URL" -qAtX -c 'SHOW server_version'); binary $BIN;"
    echo "seed: ${SEED_SECS}s, $BENCH_FILES files; range $FROM .. $TO; all 19 fields + 3 workgroup columns."
    echo
    echo "| run | rows | bytes | first byte s | total s | rows/s | MiB/s | server CPU s | database CPU s | machine CPU s | server RSS before MiB | server peak RSS during export MiB | load before |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$TABLE"

export_once() { # export_once LABEL TYPE OUTFILE
    local label="$1" type="$2" out="$3" rss hwm c0 c1 b0 b1 db w code ttfb total size rows
    wait_for_quiet
    rss="$(status_kb VmRSS)"
    # Reset the peak-RSS counter (VmHWM) to the current RSS.
    echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || log "warning: cannot reset VmHWM (not root?)"
    db_ticks_start
    b0="$(busy_ticks)"
    c0="$(ticks)"
    w="$(curl -sS -o "$out" -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}' \
        -X POST "$BASE/apiglobal/get_custom_report" --data-urlencode "session=$SESSION" \
        -d "from=$FROM" -d "to=$TO" -d all_fields=1 -d workgroups=1 -d "type=$type")"
    c1="$(ticks)"
    b1="$(busy_ticks)"
    db="$(db_ticks_since)"
    hwm="$(status_kb VmHWM)"
    read -r code ttfb total size <<<"$w"
    [[ $code == 200 ]] || die "$label: HTTP $code: $(head -c 300 "$out")"
    if [[ $type == csv ]]; then
        rows="$(($(csv_rows "$out") - 1))"
    else
        rows="$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["message"]) - 2)' "$out")"
    fi
    [[ $rows == "$IN_RANGE" ]] || die "$label: $rows rows, expected $IN_RANGE"
    printf '| %s | %s | %s | %.3f | %.2f | %.0f | %.1f | %.2f | %.2f | %.2f | %s | %s | %s |\n' \
        "$label" "$rows" "$size" "$ttfb" "$total" "$(awk -v r="$rows" -v t="$total" 'BEGIN { print r / t }')" \
        "$(awk -v b="$size" -v t="$total" 'BEGIN { print b / 1048576 / t }')" \
        "$(awk -v a="$c0" -v b="$c1" -v k="$CLK" 'BEGIN { print (b - a) / k }')" \
        "$(awk -v d="$db" -v k="$CLK" 'BEGIN { print d / k }')" \
        "$(awk -v a="$b0" -v b="$b1" -v k="$CLK" 'BEGIN { print (b - a) / k }')" \
        "$(mib "$rss")" "$(mib "$hwm")" "$LOAD" | tee -a "$TABLE"
}

# --- measurements --------------------------------------------------------------------------
sync
for r in $(seq 1 "$BENCH_RUNS"); do
    export_once "HTTP CSV #$r" csv "$WORK_DIR/report.csv"
done
head -c 3 "$WORK_DIR/report.csv" | cmp -s - <(printf '\xEF\xBB\xBF') || die "no UTF-8 BOM"
export_once "HTTP JSON" json "$WORK_DIR/report.json"
rm -f "$WORK_DIR/report.json"

# Postgres alone: the same rows and columns, formatted in SQL, streamed by COPY.
COPY_SQL="COPY (
SELECT j.id AS \"Job ID\", j.printer_id AS \"Printer ID\", p.name AS \"Printer Name\",
  pt.description AS \"Printer Type\", j.file_id AS \"File ID\", f.filename AS \"File Name\",
  to_char(coalesce(j.started_at, j.created_at), 'YYYY-MM-DD HH24:MI:SS') AS \"Started Date/Time\",
  u.email AS \"Account Email\", u.firstname AS \"First Name\", u.lastname AS \"Last Name\",
  j.weight AS \"Filament\", coalesce(j.cost, j.file_cost) AS \"Material Cost\",
  CASE j.status_id WHEN 77 THEN 'DONE'
    WHEN 45 THEN CASE WHEN j.cancel_reason = 'CANCELLED_WEB' THEN 'CANCELLED_WEB' ELSE 'CANCELLED' END
    WHEN 43 THEN 'FAILED' WHEN 21 THEN 'IN_PROGRESS' WHEN 11 THEN 'QUEUED' END AS \"Status\",
  (j.printing_duration / 3600) || ':' || to_char(j.printing_duration / 60 % 60, 'FM00') || ':'
    || to_char(j.printing_duration % 60, 'FM00') AS \"Estimated Print Time\",
  CASE WHEN j.started_at IS NOT NULL THEN (j.print_time / 3600) || ':'
    || to_char(j.print_time / 60 % 60, 'FM00') || ':' || to_char(j.print_time % 60, 'FM00') END
    AS \"Real Print Time\",
  j.cancel_reason AS \"Cancel Reason\", j.cancel_details AS \"Cancel Details\",
  su.email AS \"Started By\", j.feedback AS \"Feedback\",
  coalesce(wg.ids, '') AS \"Workgroup IDs\", coalesce(wg.names, '') AS \"Workgroup Names\",
  coalesce(wg.passwords, '') AS \"Workgroup Passwords\"
FROM jobs j
JOIN printers p ON p.id = j.printer_id
LEFT JOIN printer_types pt ON pt.id = p.printer_type_id
JOIN files f ON f.id = j.file_id
JOIN users u ON u.id = j.user_id
LEFT JOIN users su ON su.id = j.started_by_user_id
LEFT JOIN (SELECT pw.printer_id, string_agg(w.id::text, ',' ORDER BY w.id) AS ids,
                  string_agg(w.name, ',' ORDER BY w.id) AS names,
                  string_agg(w.join_password, ',' ORDER BY w.id) AS passwords
           FROM printer_workgroups pw JOIN workgroups w ON w.id = pw.workgroup_id
           WHERE w.organization_id = 1 GROUP BY pw.printer_id) wg ON wg.printer_id = j.printer_id
WHERE j.organization_id = 1 AND j.created_at >= '$FROM' AND j.created_at < date '$TO' + 1
ORDER BY j.id
) TO STDOUT WITH (FORMAT csv, HEADER)"
for r in 1 2; do
    wait_for_quiet
    b0="$(busy_ticks)"
    t0="$(date +%s.%N)"
    psql "$DB_URL" -v ON_ERROR_STOP=1 -qAtX -c "$COPY_SQL" >"$WORK_DIR/copy.csv"
    t1="$(date +%s.%N)"
    b1="$(busy_ticks)"
    rows="$(($(csv_rows "$WORK_DIR/copy.csv") - 1))"
    [[ $rows == "$IN_RANGE" ]] || die "COPY: $rows rows, expected $IN_RANGE"
    size="$(stat -c %s "$WORK_DIR/copy.csv")"
    total="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
    printf '| psql COPY … TO STDOUT WITH CSV #%s | %s | %s | – | %.2f | %.0f | %.1f | – | – | %.2f | – | – | %s |\n' \
        "$r" "$rows" "$size" "$total" "$(awk -v r="$rows" -v t="$total" 'BEGIN { print r / t }')" \
        "$(awk -v b="$size" -v t="$total" 'BEGIN { print b / 1048576 / t }')" \
        "$(awk -v a="$b0" -v b="$b1" -v k="$CLK" 'BEGIN { print (b - a) / k }')" "$LOAD" | tee -a "$TABLE"
done

# One keyset batch from the middle of the range, as the server runs it (shape of the query).
MID="$(pg_db -c "SELECT id FROM jobs WHERE organization_id = 1 ORDER BY id OFFSET $((IN_RANGE / 2)) LIMIT 1")"
pg_db -c "EXPLAIN (ANALYZE, BUFFERS)
SELECT j.id, j.user_id, j.printer_id, j.file_id, j.created_at, j.started_at, j.weight, j.cost,
  j.file_cost, j.status_id, j.printing_duration, j.print_time, j.cancel_reason, j.cancel_details,
  j.started_by_user_id, j.feedback, j.cancel_source
FROM jobs j
WHERE j.organization_id = 1 AND j.created_at >= '$FROM' AND j.created_at < date '$TO' + 1
  AND j.id > $MID
ORDER BY j.id LIMIT 5000" >"$BENCH_RESULTS_DIR/batch-plan.txt"
{
    echo
    echo "Plan of one 5,000-row keyset batch from the middle (batch-plan.txt):"
    echo
    echo '```'
    grep -E 'Limit|Execution Time|Index|Nested|Hash|Sort' "$BENCH_RESULTS_DIR/batch-plan.txt" | head -n 12
    echo '```'
} >>"$TABLE"

grep -iE 'error|panic' "$WORK_DIR/server.log" | head -n 5 >&2 || true
log "done; table in $TABLE"
cat "$TABLE"
