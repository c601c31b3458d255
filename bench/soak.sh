#!/usr/bin/env bash
# Soak bench (issue #15): DURATION seconds of mixed traffic on one release server per backend,
# watching for errors, slow calls and growth (memory, file descriptors, database, staging).
#
#   bench/soak.sh                       # DURATION=1800, SQLite then Postgres
#   DURATION=300 bench/soak.sh sqlite   # one backend (sqlite | postgres), 5 minutes
#
# Per backend: a fresh database and `printfarm serve` (bench/lib.sh: production defaults,
# request logging at info into a file, login throttle raised), a bench user (organization
# admin), one G-code upload (fixtures/cube_20mm.gcode) and an API token; then, concurrently for
# DURATION s:
#   - AGENTS simulated printer agents (bench/agents_bench.py, mode plain: a poll every 2 s,
#     print_file on SOAK_JOBS printers, then job_pause on each, spread over the run);
#   - API clients: wrk -t1 -c$SOAK_WRK_CONNECTIONS -R-less (closed loop) with bench/soak.lua
#     (check_session, get_printers_list, get_printer_jobs, get_job_info, get_projects);
#   - an upload (Global API, fixtures/cube_20mm.gcode) every SOAK_UPLOAD_EVERY s (5);
#   - one slicing client (bench/slicing_clients.py load ... 1 DURATION SOAK_SLICE_PAUSE):
#     a /v1 upload of sphere20k.stl (PrusaSlicer) every second quote, a quote, a pause (10 s);
#   - every SOAK_SAMPLE_SECS (10) the server's VmRSS and open FDs (/proc/PID/status, fd/) and
#     the staging folder's size.
# The database size is read at the start and the end (SQLite: file + WAL + SHM; Postgres:
# pg_database_size). bench/soak_report.py then reads the access log for each call family's
# requests, non-2xx, 5xx, p50 and p99 (server-side time) and applies the growth check (see its
# docstring). Exit status 1 when any 5xx was answered, a client failed, or RSS/FDs grew
# without bound.
#
# Environment (besides bench/lib.sh's PRINTFARM_BIN, BENCH_TARGET_DIR, BENCH_PG_URL,
# BENCH_RESULTS_DIR, BENCH_KEEP_WORK): DURATION (1800), BACKENDS ("sqlite postgres"; or as
# arguments), AGENTS (500), SOAK_JOBS (20), SOAK_WRK_CONNECTIONS (4), SOAK_UPLOAD_EVERY (5),
# SOAK_SLICE_PAUSE (10), SOAK_SAMPLE_SECS (10), SOAK_MAX_RSS_MIB_PER_H (32),
# SOAK_MAX_FDS_PER_H (60). Needs wrk, curl, python3 with aiohttp, prusa-slicer, psql, sqlite3.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION="${DURATION:-1800}"
AGENTS="${AGENTS:-500}"
SOAK_JOBS="${SOAK_JOBS:-20}"
SOAK_WRK_CONNECTIONS="${SOAK_WRK_CONNECTIONS:-4}"
SOAK_UPLOAD_EVERY="${SOAK_UPLOAD_EVERY:-5}"
SOAK_SLICE_PAUSE="${SOAK_SLICE_PAUSE:-10}"
SOAK_SAMPLE_SECS="${SOAK_SAMPLE_SECS:-10}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/soak-$(date -u +%Y%m%dT%H%M%SZ)}"
PRINTER_CONFIG='{"bed_size_x": 220, "bed_size_y": 220, "bed_size_z": 250}'

backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || read -ra backends <<<"${BACKENDS:-sqlite postgres}"
need_tools curl python3 wrk prusa-slicer
python3 -c 'import aiohttp' 2>/dev/null || die "python3 lacks aiohttp (pip install aiohttp)"
check_backends

# Every load generator runs in the background; their PIDs (only these) are ended on exit.
declare -a LOAD_PIDS=()
stop_load() {
    local p
    for p in "${LOAD_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${LOAD_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    LOAD_PIDS=()
}
trap 'stop_load; cleanup_backend' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

want_files=$((AGENTS * 2 + 1024))
if (($(ulimit -n) < want_files)); then
    ulimit -n "$want_files" 2>/dev/null || log "warning: cannot raise the open-files limit to $want_files ($(ulimit -n))"
fi

mkdir -p "$BENCH_RESULTS_DIR"
python3 "$BENCH_DIR/slicing_models.py" "$BENCH_RESULTS_DIR/models" >/dev/null
build_server
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
SUMMARY="$BENCH_RESULTS_DIR/results.md"
{
    echo "# soak bench $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $COMMIT$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)'), $(nproc) cores"
    echo
    echo "DURATION=${DURATION}s, AGENTS=$AGENTS (poll every 2 s, $SOAK_JOBS jobs), wrk -t1 -c$SOAK_WRK_CONNECTIONS (bench/soak.lua)," \
        "an upload every ${SOAK_UPLOAD_EVERY}s, one slicing client (pause ${SOAK_SLICE_PAUSE}s), samples every ${SOAK_SAMPLE_SECS}s"
    echo
} >"$SUMMARY"

db_bytes() {
    if [[ $1 == sqlite ]]; then
        du -cb "$DB_URL"* 2>/dev/null | tail -n1 | cut -f1
    else
        pg_db -c "SELECT pg_database_size(current_database())"
    fi
}

# sampler OUT: t_s,rss_kib,fds,staging_kib,load1 every SOAK_SAMPLE_SECS until killed.
sampler() {
    local t0 now staging
    t0="$(date +%s)"
    echo "t_s,rss_kib,fds,staging_kib,load1" >"$1"
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        now="$(date +%s)"
        staging="$(du -sk "$WORK_DIR/staging" 2>/dev/null | cut -f1)"
        echo "$((now - t0)),$(proc_status_kb "$SERVER_PID" VmRSS),$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l),${staging:-0},$(load1)" >>"$1"
        sleep "$SOAK_SAMPLE_SECS"
    done
}

uploader() { # OUT: an upload every SOAK_UPLOAD_EVERY s for DURATION s
    local end=$((SECONDS + DURATION)) answer
    while ((SECONDS < end)); do
        if answer="$(upload_file "$REPO/fixtures/cube_20mm.gcode" 2>&1)" && [[ -n "$(json_field file_id <<<"$answer")" ]]; then
            echo ok >>"$1"
        else
            echo "fail ${answer:0:200}" | tr '\n' ' ' >>"$1"
            echo >>"$1"
        fi
        sleep "$SOAK_UPLOAD_EVERY"
    done
}

soak_backend() {
    local backend="$1" out="$BENCH_RESULTS_DIR/$backend" answer fid token db0 db1 rc=0 what
    mkdir -p "$out"
    new_database "$backend"
    SERVER_ENV=()
    start_server "$backend"
    create_bench_user
    answer="$(upload_file "$REPO/fixtures/cube_20mm.gcode")" || die "upload failed"
    fid="$(json_field file_id <<<"$answer")"
    [[ -n "$fid" ]] || die "no file_id in the upload answer: $answer"
    answer="$(curl -fsS -X POST "$BASE/apiglobal/create_api_token" \
        --data-urlencode "session=$BENCH_SESSION" --data-urlencode "name=soak")" || die "create_api_token failed"
    token="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["message"]["token"])' <<<"$answer")"
    db0="$(db_bytes "$backend")"
    log "$backend: ${DURATION}s of mixed traffic from $(date -u +%H:%M:%S) UTC; $(uptime | sed 's/.*load average/load average/')"
    echo "$backend: start $(date -u +%H:%M:%S) UTC, $(uptime | sed 's/.*load average/load average/')" >"$out/uptime.txt"

    sampler "$out/samples.csv" &
    LOAD_PIDS+=($!)
    local sampler_pid=$!
    local pg=()
    [[ $backend == postgres ]] && pg=(--pg-url "$DB_URL")
    # Registration takes a few seconds; the agents then poll for the rest of DURATION.
    python3 "$BENCH_DIR/agents_bench.py" --base "$BASE" --session "$BENCH_SESSION" --file-id "$fid" \
        --server-pid "$SERVER_PID" "${pg[@]}" --label "$backend" --agents "$AGENTS" --modes plain \
        --warmup 10 --duration "$((DURATION - 20))" --jobs "$SOAK_JOBS" --max-load 1000 --load-wait 0 \
        --out "$out/agents.json" >"$out/agents.txt" 2>"$out/agents.log" &
    LOAD_PIDS+=($!)
    local agents_pid=$!
    sleep 10 # printers and the first jobs exist before the API clients ask for them
    BENCH_PRINTERS="$AGENTS" BENCH_JOBS="$SOAK_JOBS" wrk -t1 -c"$SOAK_WRK_CONNECTIONS" \
        -d"$((DURATION - 10))s" --timeout 10s --latency -s "$BENCH_DIR/soak.lua" "$BASE" >"$out/wrk.txt" 2>&1 &
    LOAD_PIDS+=($!)
    local wrk_pid=$!
    uploader "$out/uploads.txt" &
    LOAD_PIDS+=($!)
    local up_pid=$!
    python3 "$BENCH_DIR/slicing_clients.py" load "$BASE" "$token" "$BENCH_RESULTS_DIR/models/sphere20k.stl" \
        "$PRINTER_CONFIG" 1 "$((DURATION - 10))" "$SOAK_SLICE_PAUSE" >"$out/slices.json" 2>"$out/slices.log" &
    LOAD_PIDS+=($!)
    local slice_pid=$!

    wait "$wrk_pid" || log "warning: wrk exited with $?"
    wait "$up_pid" || true
    wait "$slice_pid" || log "warning: the slicing client exited with $?"
    wait "$agents_pid" || log "warning: agents_bench.py exited with $? (see $out/agents.log)"
    kill -TERM "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    LOAD_PIDS=()
    echo "$backend: end $(date -u +%H:%M:%S) UTC, $(uptime | sed 's/.*load average/load average/')" >>"$out/uptime.txt"

    db1="$(db_bytes "$backend")"
    if [[ $backend == sqlite ]]; then what="SQLite file + WAL + SHM"; else what="pg_database_size"; fi
    printf '{"start": %s, "end": %s, "what": "%s"}\n' "$db0" "$db1" "$what" >"$out/db.json"
    stop_server
    cp "$WORK_DIR/server.log" "$out/server.log"
    cleanup_backend
    python3 "$BENCH_DIR/soak_report.py" "$out" "$backend" >"$out/report.md" || rc=$?
    {
        cat "$out/report.md"
        sed 's/^/    /' "$out/uptime.txt"
        echo
    } | tee -a "$SUMMARY"
    return "$rc"
}

status=0
for backend in "${backends[@]}"; do
    soak_backend "$backend" || status=1
done
log "summary: $SUMMARY"
exit "$status"
