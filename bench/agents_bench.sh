#!/usr/bin/env bash
# Printer-agent channel benchmark: BENCH_AGENTS (2,000) simulated agents polling every 2 s
# against one server, without and with long poll, on SQLite and on Postgres.
#
#   bench/agents_bench.sh                 # SQLite, then Postgres
#   bench/agents_bench.sh postgres        # one backend (sqlite | postgres)
#
# Per backend: a fresh database and server (production defaults: 2 workers on 2 cores, request
# logging at info into a file), a bench user (organization admin, `printfarm admin
# create-user`), one G-code upload (fixtures/cube_20mm.gcode) for the jobs, then
# bench/agents_bench.py (Python asyncio + aiohttp, uvloop when installed) which registers the
# agents through the real protocol and runs the modes `plain` (a poll every 2 s) and `long`
# (the same with "wait": 20), each after waiting for a quiet machine, with BENCH_WARMUP s of
# warm-up and a BENCH_WINDOW s measurement window (server CPU, poll latency, 20 job_pause →
# agent delays; see the docstring of agents_bench.py).
#
# Needs: python3 with aiohttp (pip install aiohttp; optional uvloop), curl, psql for Postgres.
# Environment (besides bench/lib.sh's PRINTFARM_BIN, BENCH_TARGET_DIR, BENCH_PG_URL,
# BENCH_MAX_LOAD, BENCH_LOAD_WAIT_SECS, BENCH_RESULTS_DIR):
#   BENCH_AGENTS (2000), BENCH_INTERVAL (2), BENCH_WAIT (20), BENCH_MODES (plain,long),
#   BENCH_WARMUP (20), BENCH_WINDOW (60), BENCH_JOBS (20), BENCH_REGISTER_CONCURRENCY (100)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_AGENTS="${BENCH_AGENTS:-2000}"
BENCH_INTERVAL="${BENCH_INTERVAL:-2}"
BENCH_WAIT="${BENCH_WAIT:-20}"
BENCH_MODES="${BENCH_MODES:-plain,long}"
BENCH_WARMUP="${BENCH_WARMUP:-20}"
BENCH_WINDOW="${BENCH_WINDOW:-60}"
BENCH_JOBS="${BENCH_JOBS:-20}"
BENCH_REGISTER_CONCURRENCY="${BENCH_REGISTER_CONCURRENCY:-100}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/agents-$(date -u +%Y%m%dT%H%M%SZ)}"

need_tools curl python3
python3 -c 'import aiohttp' 2>/dev/null || die "python3 lacks aiohttp (pip install aiohttp)"
backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(sqlite postgres)
for b in "${backends[@]}"; do
    [[ $b == sqlite || $b == postgres ]] || die "unknown backend '$b' (sqlite | postgres)"
    [[ $b == sqlite ]] || need_tools psql
done
install_traps

# 2,000 held connections on each side, plus the server's files.
want_files=$((BENCH_AGENTS * 2 + 1024))
if (($(ulimit -n) < want_files)); then
    ulimit -n "$want_files" 2>/dev/null || log "warning: cannot raise the open-files limit to $want_files ($(ulimit -n))"
fi

bench_backend() {
    local backend="$1" answer fid pg=()
    new_database "$backend"
    SERVER_ENV=()
    start_server "$backend"
    create_bench_user
    answer="$(upload_file "$REPO/fixtures/cube_20mm.gcode")" || die "upload failed"
    fid="$(json_field file_id <<<"$answer")"
    [[ -n "$fid" ]] || die "no file_id in the upload answer: $answer"
    [[ $backend == postgres ]] && pg=(--pg-url "$DB_URL")
    local cmd=(python3 "$BENCH_DIR/agents_bench.py" --base "$BASE" --session "$BENCH_SESSION"
        --file-id "$fid" --server-pid "$SERVER_PID" "${pg[@]}" --label "$backend"
        --agents "$BENCH_AGENTS" --interval "$BENCH_INTERVAL" --wait "$BENCH_WAIT"
        --modes "$BENCH_MODES" --warmup "$BENCH_WARMUP" --duration "$BENCH_WINDOW"
        --jobs "$BENCH_JOBS" --register-concurrency "$BENCH_REGISTER_CONCURRENCY"
        --max-load "$BENCH_MAX_LOAD" --load-wait "$BENCH_LOAD_WAIT_SECS"
        --out "$BENCH_RESULTS_DIR/$backend.json")
    log "running: ${cmd[*]//$BENCH_SESSION/<session>}"
    "${cmd[@]}" | tee -a "$TABLE"
    # The server's own view: request counts and errors, and its memory after the run.
    curl -fsS "$BASE/metrics" >"$BENCH_RESULTS_DIR/$backend-metrics.txt" || true
    log "server memory: $(grep -E '^Vm(HWM|RSS)' "/proc/$SERVER_PID/status" | tr -s ' \n' ' ')"
    grep -E '^Vm(HWM|RSS)' "/proc/$SERVER_PID/status" >"$BENCH_RESULTS_DIR/$backend-server-memory.txt" || true
    stop_server
    grep -v 'middleware::logger' "$WORK_DIR/server.log" >"$BENCH_RESULTS_DIR/$backend-server.log" || true
    log "$backend: $(grep -E ' (WARN|ERROR) ' "$BENCH_RESULTS_DIR/$backend-server.log" | grep -vc 'first start' || true) WARN/ERROR lines in the server log"
    cleanup_backend
}

build_server
mkdir -p "$BENCH_RESULTS_DIR"
TABLE="$BENCH_RESULTS_DIR/results.md"
log "results in $BENCH_RESULTS_DIR"
python3 "$BENCH_DIR/agents_bench.py" --header | tee "$TABLE"
for b in "${backends[@]}"; do
    bench_backend "$b"
done
echo
cat "$TABLE"
log "done; table in $TABLE"
