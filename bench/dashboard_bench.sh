#!/usr/bin/env bash
# Web-console dashboard benchmark (issue #17): what open dashboards cost the server while
# BENCH_AGENTS (200) printers report every 2 s, and what a first load of the dashboard weighs.
#
#   bench/dashboard_bench.sh              # SQLite, then Postgres
#   bench/dashboard_bench.sh sqlite       # one backend (sqlite | postgres)
#
# Per backend, two runs, each on a fresh database and release server (bench/lib.sh): the
# bench user (organization admin) sees every printer; bench/agents_bench.py registers
# BENCH_AGENTS agents and runs them in plain mode (a poll every 2 s, BENCH_JOBS printing),
# measuring the server's CPU over BENCH_WINDOW s after BENCH_WARMUP s:
#   1. agents only;
#   2. the same with BENCH_DASHBOARDS open dashboards (bench/dashboard_clients.py: each holds
#      /console/events with the bench user's session, as a browser tab does).
# The difference of server CPU between the runs, divided by BENCH_DASHBOARDS, is the cost of
# one open dashboard. Run 2 also times BENCH_LOADS first loads of the dashboard page (curl:
# the HTML, then its stylesheet and script gzip-compressed, as a browser with an empty cache
# fetches them) and reports their sizes.
#
# Needs: python3 with aiohttp, curl, psql for Postgres. Environment (besides bench/lib.sh's):
#   BENCH_AGENTS (200), BENCH_DASHBOARDS (20), BENCH_JOBS (20), BENCH_WARMUP (20),
#   BENCH_WINDOW (60), BENCH_LOADS (20)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_AGENTS="${BENCH_AGENTS:-200}"
BENCH_DASHBOARDS="${BENCH_DASHBOARDS:-20}"
BENCH_JOBS="${BENCH_JOBS:-20}"
BENCH_WARMUP="${BENCH_WARMUP:-20}"
BENCH_WINDOW="${BENCH_WINDOW:-60}"
BENCH_LOADS="${BENCH_LOADS:-20}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/dashboard-$(date -u +%Y%m%dT%H%M%SZ)}"

need_tools curl python3
python3 -c 'import aiohttp' 2>/dev/null || die "python3 lacks aiohttp (pip install aiohttp)"
backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(sqlite postgres)
for b in "${backends[@]}"; do
    [[ $b == sqlite || $b == postgres ]] || die "unknown backend '$b' (sqlite | postgres)"
    [[ $b == sqlite ]] || need_tools psql
done
install_traps

declare -a LOAD_PIDS=()

# first_loads: BENCH_LOADS cold loads of the dashboard; prints "html_bytes css_gz js_gz p50_ms".
first_loads() {
    local cookie="printfarm_session=$BENCH_SESSION" html css js times=()
    html="$(curl -fsS -H "Cookie: $cookie" "$BASE/")"
    css="$(grep -o '/assets/console\.[0-9a-f]*\.css' <<<"$html" | head -1)"
    js="$(grep -o '/assets/console\.[0-9a-f]*\.js' <<<"$html" | head -1)"
    for _ in $(seq 1 "$BENCH_LOADS"); do
        local t0 t1
        t0="$(date +%s%N)"
        curl -fsS -o /dev/null -H "Cookie: $cookie" "$BASE/"
        curl -fsS -o /dev/null -o /dev/null -H 'Accept-Encoding: gzip' "$BASE$css" "$BASE$js"
        t1="$(date +%s%N)"
        times+=($(((t1 - t0) / 1000000)))
    done
    printf '%s %s %s %s\n' "$(printf '%s' "$html" | wc -c)" \
        "$(curl -fsS -H 'Accept-Encoding: gzip' "$BASE$css" | wc -c)" \
        "$(curl -fsS -H 'Accept-Encoding: gzip' "$BASE$js" | wc -c)" \
        "$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
}

run() { # run BACKEND DASHBOARDS
    local backend="$1" dashboards="$2" answer fid pg=()
    new_database "$backend"
    SERVER_ENV=()
    start_server "$backend"
    create_bench_user
    answer="$(upload_file "$REPO/fixtures/cube_20mm.gcode")" || die "upload failed"
    fid="$(json_field file_id <<<"$answer")"
    [[ $backend == postgres ]] && pg=(--pg-url "$DB_URL")
    if ((dashboards > 0)); then
        python3 "$BENCH_DIR/dashboard_clients.py" --base "$BASE" --session "$BENCH_SESSION" \
            --clients "$dashboards" --duration $((BENCH_WARMUP + BENCH_WINDOW + 120)) \
            --out "$BENCH_RESULTS_DIR/$backend-dashboards.json" >/dev/null &
        LOAD_PIDS+=($!)
    fi
    python3 "$BENCH_DIR/agents_bench.py" --base "$BASE" --session "$BENCH_SESSION" \
        --file-id "$fid" --server-pid "$SERVER_PID" "${pg[@]}" --label "$backend+$dashboards dashboards" \
        --agents "$BENCH_AGENTS" --modes plain --warmup "$BENCH_WARMUP" --duration "$BENCH_WINDOW" \
        --jobs "$BENCH_JOBS" --max-load "$BENCH_MAX_LOAD" --load-wait "$BENCH_LOAD_WAIT_SECS" \
        --out "$BENCH_RESULTS_DIR/$backend-$dashboards.json" | tail -n 1 | tee -a "$TABLE"
    if ((dashboards > 0)); then
        read -r html css js p50 <<<"$(first_loads)"
        echo "| $backend first load | HTML $html B (${BENCH_AGENTS} cards), css $css B gz, js $js B gz | median $p50 ms |" | tee -a "$LOADS"
        for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
        LOAD_PIDS=()
    fi
    stop_server
    cleanup_backend
}

build_server
mkdir -p "$BENCH_RESULTS_DIR"
TABLE="$BENCH_RESULTS_DIR/results.md"
LOADS="$BENCH_RESULTS_DIR/first-load.md"
python3 "$BENCH_DIR/agents_bench.py" --header | tee "$TABLE"
for b in "${backends[@]}"; do
    run "$b" 0
    run "$b" "$BENCH_DASHBOARDS"
done
echo
cat "$TABLE" "$LOADS"
log "done; tables in $BENCH_RESULTS_DIR"
