#!/usr/bin/env bash
# Issue #20, goal 5: the server's memory. Per backend: the idle RSS right after the first start
# (a fresh database: migrations and the first admin) and after a restart, then the read mix of
# bench/soak.lua (check_session, get_printers_list, get_printer_jobs, get_job_info,
# get_projects) with wrk in segments of BENCH_SEGMENT seconds until BENCH_REQUESTS requests
# were answered, the server's VmRSS (anonymous and file-backed) read after every segment.
# RSS has reached a plateau when the last BENCH_PLATEAU_SEGMENTS segments grew it by less than
# BENCH_PLATEAU_KIB in all (the script says so; it fails on any non-2xx answer).
#
#   bench/rss_bench.sh                 # SQLite, then Postgres
#   bench/rss_bench.sh postgres        # one backend
#
# Data: lib.sh's seed_jobs_database with BENCH_PRINTERS (1000) printers and BENCH_JOBS
# (100000) jobs. Environment (besides bench/lib.sh's PRINTFARM_BIN, BENCH_TARGET_DIR,
# BENCH_PG_URL, BENCH_MAX_LOAD, BENCH_LOAD_WAIT_SECS, BENCH_RESULTS_DIR, BENCH_KEEP_WORK):
#   BENCH_REQUESTS (1000000), BENCH_SEGMENT (30), BENCH_CONNECTIONS (32),
#   BENCH_PLATEAU_SEGMENTS (5), BENCH_PLATEAU_KIB (1024)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_PRINTERS="${BENCH_PRINTERS:-1000}"
BENCH_JOBS="${BENCH_JOBS:-100000}"
BENCH_REQUESTS="${BENCH_REQUESTS:-1000000}"
BENCH_SEGMENT="${BENCH_SEGMENT:-30}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-32}"
BENCH_PLATEAU_SEGMENTS="${BENCH_PLATEAU_SEGMENTS:-5}"
BENCH_PLATEAU_KIB="${BENCH_PLATEAU_KIB:-1024}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/rss-$(date -u +%Y%m%dT%H%M%SZ)}"
BENCH_DB_PREFIX="${BENCH_DB_PREFIX:-pf_rss}"

need_tools wrk curl
backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(sqlite postgres)
check_backends
install_traps
mkdir -p "$BENCH_RESULTS_DIR"
SUMMARY="$BENCH_RESULTS_DIR/summary.md"
FAILURES=0

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
rss_line() { # "RSS anon file" in KiB
    echo "$(proc_status_kb "$SERVER_PID" VmRSS) $(proc_status_kb "$SERVER_PID" RssAnon) $(proc_status_kb "$SERVER_PID" RssFile)"
}
# Idle: two seconds after /readyz, when start-up work is done.
idle_rss() {
    sleep 2
    rss_line
}

build_server
{
    echo "| backend | start | idle RSS MiB | anon MiB | file-backed MiB |"
    echo "|---|---|---|---|---|"
} >"$SUMMARY"

for backend in "${backends[@]}"; do
    # First start on a fresh database (seed_jobs_database's own start), measured separately.
    new_database "$backend"
    SERVER_ENV=()
    start_server "$backend (first start)"
    read -r rss anon file < <(idle_rss)
    printf '| %s | first | %s | %s | %s |\n' "$backend" "$(mib "$rss")" "$(mib "$anon")" "$(mib "$file")" >>"$SUMMARY"
    stop_server
    cleanup_backend

    seed_jobs_database "$backend"
    export BENCH_PRINTERS BENCH_JOBS
    start_server "$backend (later start)"
    read -r rss anon file < <(idle_rss)
    printf '| %s | later | %s | %s | %s |\n' "$backend" "$(mib "$rss")" "$(mib "$anon")" "$(mib "$file")" >>"$SUMMARY"

    table="$BENCH_RESULTS_DIR/$backend-segments.md"
    {
        echo "| segment | requests so far | requests/s | VmRSS MiB | anon MiB | file-backed MiB |"
        echo "|---|---|---|---|---|---|"
        printf '| 0 | 0 | – | %s | %s | %s |\n' "$(mib "$rss")" "$(mib "$anon")" "$(mib "$file")"
    } >"$table"
    wait_for_quiet
    total=0
    segment=0
    declare -a history=("$rss")
    while ((total < BENCH_REQUESTS)); do
        segment=$((segment + 1))
        out="$BENCH_RESULTS_DIR/$backend-segment-$segment.txt"
        # soak.lua draws printers and jobs from 1..N: the seeded ids.
        BENCH_PRINTERS="$BENCH_PRINTER_MAX" BENCH_JOBS="$BENCH_JOB_MAX" \
            wrk -t2 -c"$BENCH_CONNECTIONS" -d"${BENCH_SEGMENT}s" --timeout 10s -s "$BENCH_DIR/soak.lua" "$BASE" >"$out" 2>&1 ||
            die "wrk failed (segment $segment, see $out)"
        n="$(awk '/requests in/ { print $1 }' "$out")"
        rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
        non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")"
        if ((${non2xx:-0} != 0)); then
            log "segment $segment: $non2xx non-2xx answers"
            FAILURES=$((FAILURES + 1))
        fi
        total=$((total + n))
        read -r rss anon file < <(rss_line)
        history+=("$rss")
        printf '| %s | %s | %s | %s | %s | %s |\n' "$segment" "$total" "$rps" "$(mib "$rss")" "$(mib "$anon")" "$(mib "$file")" | tee -a "$table" >&2
    done
    last=${#history[@]}
    if ((last > BENCH_PLATEAU_SEGMENTS)); then
        grew=$((history[last - 1] - history[last - 1 - BENCH_PLATEAU_SEGMENTS]))
        verdict="over the last $BENCH_PLATEAU_SEGMENTS segments RSS changed by $grew KiB"
        ((grew < BENCH_PLATEAU_KIB)) && verdict="plateau: $verdict" || verdict="NO plateau: $verdict"
    else
        verdict="too few segments to judge a plateau"
    fi
    log "$backend: $verdict"
    echo "$backend: $total requests; $verdict; peak $(mib "$(proc_status_kb "$SERVER_PID" VmHWM)") MiB (VmHWM)" >>"$BENCH_RESULTS_DIR/verdicts.txt"
    stop_server
    cleanup_backend
    unset history
done
cat "$SUMMARY" "$BENCH_RESULTS_DIR"/*-segments.md "$BENCH_RESULTS_DIR/verdicts.txt" >&2
((FAILURES == 0)) || die "$FAILURES segments had non-2xx answers"
