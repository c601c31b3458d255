#!/usr/bin/env bash
# Farm-queue simulation (issue #18): BENCH_PRINTERS (500) virtual printers of one type work off
# BENCH_COPIES (5,000) farm copies through the real agent protocol, on SQLite and on Postgres.
#
#   bench/farm_sim.sh                     # SQLite, then Postgres
#   bench/farm_sim.sh postgres            # one backend (sqlite | postgres)
#
# Per backend: a fresh database and server (production defaults: 2 workers on 2 cores,
# request logging at info into a file, dispatch pass every second), BENCH_USERS users
# (organization admins, `printfarm admin create-user`; the first is the bench user of
# lib.sh), each with one upload of fixtures/cube_20mm.gcode, then bench/farm_sim.py (asyncio +
# aiohttp, uvloop when installed): registration of the printers (device type PRUSA_MK4),
# BENCH_JOBS farm jobs (print_file with printer_type_id and copies) submitted after a wait for
# a quiet machine, agents that print each copy for a simulated uniform BENCH_PRINT_MIN–MAX s,
# then clear their tray after BENCH_CLEAR_S s (bed_clear), until every copy has printed.
# Measures utilisation and makespan against the ideal, the dispatch latency after a printer
# is freed, the CPU of the server (and of its Postgres backends), and checks in the database
# that every copy printed exactly once (see the docstring of farm_sim.py). Exits 1 when a
# check fails, after saving the server log.
#
# Needs: python3 with aiohttp (pip install aiohttp; optional uvloop), curl, psql for Postgres.
# Environment (besides bench/lib.sh's PRINTFARM_BIN, BENCH_TARGET_DIR, BENCH_PG_URL,
# BENCH_MAX_LOAD, BENCH_LOAD_WAIT_SECS, BENCH_RESULTS_DIR, BENCH_KEEP_WORK):
#   BENCH_PRINTERS (500), BENCH_COPIES (5000), BENCH_JOBS (50 farm jobs), BENCH_USERS (5),
#   BENCH_MODE (long: idle printers long-poll with "wait": BENCH_WAIT; plain: a poll every
#   BENCH_INTERVAL s), BENCH_INTERVAL (2; also the progress-report period while printing),
#   BENCH_WAIT (20), BENCH_PRINT_MIN (2), BENCH_PRINT_MAX (12), BENCH_CLEAR_S (0.5),
#   BENCH_SEED (1), BENCH_REGISTER_CONCURRENCY (50), BENCH_STALL_S (60: fail after so long
#   without a dispatch or finish), BENCH_MAX_RUN_S (0 = max(600, 10 x the ideal makespan): fail
#   when not done so long after the submission began), BENCH_PRINTER_TYPE
#   (PRUSA_MK4), BENCH_OWNER_SUBMITS (yes; no: the first user, who registers and so owns the
#   printers, submits no farm job, the other BENCH_USERS - 1 do)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_PRINTERS="${BENCH_PRINTERS:-500}"
BENCH_COPIES="${BENCH_COPIES:-5000}"
BENCH_JOBS="${BENCH_JOBS:-50}"
BENCH_USERS="${BENCH_USERS:-5}"
BENCH_MODE="${BENCH_MODE:-long}"
BENCH_INTERVAL="${BENCH_INTERVAL:-2}"
BENCH_WAIT="${BENCH_WAIT:-20}"
BENCH_PRINT_MIN="${BENCH_PRINT_MIN:-2}"
BENCH_PRINT_MAX="${BENCH_PRINT_MAX:-12}"
BENCH_CLEAR_S="${BENCH_CLEAR_S:-0.5}"
BENCH_SEED="${BENCH_SEED:-1}"
BENCH_REGISTER_CONCURRENCY="${BENCH_REGISTER_CONCURRENCY:-50}"
BENCH_STALL_S="${BENCH_STALL_S:-60}"
BENCH_MAX_RUN_S="${BENCH_MAX_RUN_S:-0}"
BENCH_PRINTER_TYPE="${BENCH_PRINTER_TYPE:-PRUSA_MK4}"
BENCH_OWNER_SUBMITS="${BENCH_OWNER_SUBMITS:-yes}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/farm-$(date -u +%Y%m%dT%H%M%SZ)}"

need_tools curl python3
python3 -c 'import aiohttp' 2>/dev/null || die "python3 lacks aiohttp (pip install aiohttp)"
[[ $BENCH_MODE == long || $BENCH_MODE == plain ]] || die "BENCH_MODE must be long or plain"
((BENCH_USERS >= 1)) || die "BENCH_USERS must be at least 1"
backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(sqlite postgres)
for b in "${backends[@]}"; do
    [[ $b == sqlite || $b == postgres ]] || die "unknown backend '$b' (sqlite | postgres)"
    [[ $b == sqlite ]] || need_tools psql
done

SAMPLER_PID=""
stop_sampler() {
    if [[ -n "$SAMPLER_PID" ]]; then
        kill -TERM "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
        SAMPLER_PID=""
    fi
}
install_traps
trap 'stop_sampler; cleanup_backend' EXIT

# One held connection per printer on each side, plus the server's files.
want_files=$((BENCH_PRINTERS * 2 + 1024))
if (($(ulimit -n) < want_files)); then
    ulimit -n "$want_files" 2>/dev/null || log "warning: cannot raise the open-files limit to $want_files ($(ulimit -n))"
fi

# user_with_file N: user N (2..) of organization 1 as organization admin, logged in, with its
# own upload of the cube; prints "session file_id".
user_with_file() {
    local email="farm-user$1@example.com" answer session fid
    DATABASE_URL="$DB_URL" "$BIN" admin create-user --org 1 --email "$email" --role 1 \
        --password "$BENCH_PASSWORD" >>"$WORK_DIR/create-user.log" 2>&1 || {
        cat "$WORK_DIR/create-user.log" >&2
        die "admin create-user $email failed"
    }
    answer="$(curl -fsS -X POST "$BASE/apiglobal/login" --data-urlencode "username=$email" \
        --data-urlencode "password=$BENCH_PASSWORD")" || die "login of $email failed"
    session="$(json_field session <<<"$answer")"
    [[ -n "$session" ]] || die "no session in the login answer: $answer"
    answer="$(curl -fsS -X POST "$BASE/apiglobal/upload" -F "session=$session" \
        -F "file=@$REPO/fixtures/cube_20mm.gcode")" || die "upload by $email failed"
    fid="$(json_field file_id <<<"$answer")"
    [[ -n "$fid" ]] || die "no file_id in the upload answer: $answer"
    echo "$session $fid"
}

bench_backend() {
    local backend="$1" answer fid db=() sessions files rc=0 s f
    new_database "$backend"
    SERVER_ENV=()
    start_server "$backend"
    create_bench_user
    answer="$(upload_file "$REPO/fixtures/cube_20mm.gcode")" || die "upload failed"
    fid="$(json_field file_id <<<"$answer")"
    [[ -n "$fid" ]] || die "no file_id in the upload answer: $answer"
    sessions="$BENCH_SESSION" files="$fid"
    for n in $(seq 2 "$BENCH_USERS"); do
        read -r s f <<<"$(user_with_file "$n")"
        [[ -n "$f" ]] || die "user $n: no session or file"
        sessions+=",$s" files+=",$f"
    done
    if [[ $backend == postgres ]]; then db=(--pg-url "$DB_URL"); else db=(--sqlite-path "$DB_URL"); fi
    # Memory (and CPU over the whole run, registration included) of the server, sampled twice a second.
    python3 "$BENCH_DIR/proc_sampler.py" "$SERVER_PID" "$BENCH_RESULTS_DIR/$backend-server-proc.json" \
        --interval 0.5 &
    SAMPLER_PID=$!
    local cmd=(python3 "$BENCH_DIR/farm_sim.py" --base "$BASE" --sessions "$sessions"
        --file-ids "$files" --server-pid "$SERVER_PID" "${db[@]}" --label "$backend"
        --printers "$BENCH_PRINTERS" --copies "$BENCH_COPIES" --jobs "$BENCH_JOBS"
        --printer-type "$BENCH_PRINTER_TYPE" --mode "$BENCH_MODE" --interval "$BENCH_INTERVAL"
        --wait "$BENCH_WAIT" --print-min "$BENCH_PRINT_MIN" --print-max "$BENCH_PRINT_MAX"
        --clear "$BENCH_CLEAR_S" --seed "$BENCH_SEED"
        --register-concurrency "$BENCH_REGISTER_CONCURRENCY" --stall "$BENCH_STALL_S"
        --max-run "$BENCH_MAX_RUN_S"
        --owner-submits "$BENCH_OWNER_SUBMITS"
        --max-load "$BENCH_MAX_LOAD" --load-wait "$BENCH_LOAD_WAIT_SECS"
        --out "$BENCH_RESULTS_DIR/$backend.json")
    log "running: $(sed -E 's/--sessions [^ ]+/--sessions <sessions>/' <<<"${cmd[*]}")"
    "${cmd[@]}" | tee -a "$TABLE" || rc=$?
    stop_sampler
    curl -fsS "$BASE/metrics" >"$BENCH_RESULTS_DIR/$backend-metrics.txt" || true
    log "server memory: $(grep -E '^Vm(HWM|RSS)' "/proc/$SERVER_PID/status" | tr -s ' \n' ' ')"
    stop_server
    # The log without the access lines (~30 per copy); the access lines' status codes are counted.
    grep -v -e 'printfarm::access' -e 'middleware::logger' "$WORK_DIR/server.log" \
        >"$BENCH_RESULTS_DIR/$backend-server.log" || true
    grep 'printfarm::access' "$WORK_DIR/server.log" |
        grep -oE '(status[=:] ?"?|" )[1-5][0-9][0-9]\b' | grep -oE '[1-5][0-9][0-9]$' |
        sort | uniq -c >"$BENCH_RESULTS_DIR/$backend-access-status.txt" || true
    log "$backend: $(grep -E ' (WARN|ERROR) ' "$BENCH_RESULTS_DIR/$backend-server.log" | grep -vc 'first start' || true) WARN/ERROR lines in the server log; access statuses: $(tr -s ' \n' ' ' <"$BENCH_RESULTS_DIR/$backend-access-status.txt")"
    cleanup_backend
    ((rc == 0)) || die "$backend: farm_sim.py failed (status $rc); see $BENCH_RESULTS_DIR"
}

build_server
mkdir -p "$BENCH_RESULTS_DIR"
TABLE="$BENCH_RESULTS_DIR/results.md"
log "results in $BENCH_RESULTS_DIR"
python3 "$BENCH_DIR/farm_sim.py" --header | tee "$TABLE"
for b in "${backends[@]}"; do
    bench_backend "$b"
done
echo
cat "$TABLE"
log "done; table in $TABLE"
