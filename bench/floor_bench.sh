#!/usr/bin/env bash
# Issue #20, goal 1: the CPU per request of printfarm's Global API read calls against a "floor",
# a bare actix-web + Diesel program (bench/floor/) that answers the same calls with only their
# main query, on the same seeded database (1,000 printers, 1,000,000 jobs).
#
#   bench/floor_bench.sh                  # Postgres, then SQLite
#   bench/floor_bench.sh sqlite           # one backend (sqlite | postgres)
#
# Per backend: the database is seeded once exactly as jobs_bench.sh seeds it (lib.sh's
# seed_jobs_database: bench user, one G-code upload, printers and jobs by SQL). Then
# BENCH_ROUNDS interleaved rounds; in each round, for each call, printfarm and the floor run one
# after the other (printfarm first in odd rounds, the floor first in even ones), each as:
# start the server on a free port, one sanity call with curl (HTTP 200, "result": true), a
# warm-up wrk run (BENCH_WARMUP), the wait for a quiet machine, then
#   wrk -t2 -c32 -d20s --timeout 10s --latency -s bench/<call's script>.lua
# and the server stopped. CPU per request = (server process + the Postgres backends connected
# to the bench database) utime+stime from /proc during the wrk run, divided by the requests.
# The table has the medians over the rounds and the ratio printfarm / floor; every run is kept
# in runs.md. The script fails if any run had a non-2xx answer or a socket error.
#
# Environment (besides bench/lib.sh's PRINTFARM_BIN, BENCH_TARGET_DIR, BENCH_PG_URL,
# BENCH_MAX_LOAD, BENCH_LOAD_WAIT_SECS, BENCH_RESULTS_DIR, BENCH_KEEP_WORK):
#   BENCH_PRINTERS (1000), BENCH_JOBS (1000000), BENCH_DURATION (20s), BENCH_WARMUP (5s),
#   BENCH_THREADS (2), BENCH_CONNECTIONS (32), BENCH_ROUNDS (3), BENCH_CALLS (all eight, below),
#   FLOOR_BIN (a floor binary; skips its build), FLOOR_TARGET_DIR (its cargo target dir,
#   default <repo>/../bench-target/floor), BENCH_PG_LOG (the Postgres server log, e.g.
#   /var/log/postgresql/postgresql-15-main.log: lists the statements of each call, see
#   capture_statements), BENCH_DB_PREFIX (pf_floor)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_PRINTERS="${BENCH_PRINTERS:-1000}"
BENCH_JOBS="${BENCH_JOBS:-1000000}"
BENCH_DURATION="${BENCH_DURATION:-20s}"
BENCH_WARMUP="${BENCH_WARMUP:-5s}"
BENCH_THREADS="${BENCH_THREADS:-2}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-32}"
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
BENCH_CALLS="${BENCH_CALLS:-check_session get_projects get_workgroups_simple_list get_organization_printers_list get_printers_list get_printer_shares get_printer_jobs get_job_info}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/floor-$(date -u +%Y%m%dT%H%M%SZ)}"
BENCH_DB_PREFIX="${BENCH_DB_PREFIX:-pf_floor}" # Postgres: pf_floor_<uuid>, dropped at the end

need_tools wrk curl python3
backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(postgres sqlite)
check_backends
read -ra calls <<<"$BENCH_CALLS"
for c in "${calls[@]}"; do
    case "$c" in
        check_session | get_projects | get_workgroups_simple_list | get_organization_printers_list | \
            get_printers_list | get_printer_shares | get_printer_jobs | get_job_info) ;;
        *) die "the floor does not answer '$c'" ;;
    esac
done
install_traps
FAILURES=0
TCK="$(clk_tck)"

# --- the floor binary ----------------------------------------------------------------------
build_floor() {
    if [[ -n "${FLOOR_BIN:-}" ]]; then
        :
    else
        FLOOR_TARGET_DIR="${FLOOR_TARGET_DIR:-$(cd "$REPO/.." && pwd)/bench-target/floor}"
        log "building: CARGO_TARGET_DIR=$FLOOR_TARGET_DIR nice cargo build --release --manifest-path bench/floor/Cargo.toml"
        (cd "$REPO" && CARGO_TARGET_DIR="$FLOOR_TARGET_DIR" nice cargo build --release \
            --manifest-path bench/floor/Cargo.toml) >&2 || die "cargo build of the floor failed"
        FLOOR_BIN="$FLOOR_TARGET_DIR/release/floor"
    fi
    [[ -x "$FLOOR_BIN" ]] || die "no floor binary at $FLOOR_BIN"
    log "floor binary: $FLOOR_BIN"
}

# start_floor: the floor on a free port, on DB_URL, answering as the bench user; sets
# SERVER_PID (so lib.sh's traps stop it too), PORT and BASE.
start_floor() {
    PORT="$(free_port)"
    BASE="http://127.0.0.1:$PORT"
    log "starting $FLOOR_BIN on $BASE"
    "$FLOOR_BIN" --database-url "$DB_URL" --bind "127.0.0.1:$PORT" --user-email "$BENCH_EMAIL" \
        >>"$WORK_DIR/floor.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 30 "$WORK_DIR/floor.log" >&2
            die "the floor exited during start-up"
        fi
        if curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; then
            log "floor ready (pid $SERVER_PID)"
            return
        fi
        sleep 0.1
    done
    tail -n 30 "$WORK_DIR/floor.log" >&2
    die "the floor did not answer GET /readyz within 60s"
}

# --- the calls -----------------------------------------------------------------------------
# call_script CALL: sets SCRIPT, the wrk script of a call, and the environment floor_call.lua
# reads.
call_script() {
    export BENCH_CALL="$1" BENCH_CALL_PRINTER=0
    case "$1" in
        check_session) SCRIPT="$BENCH_DIR/check_session.lua" ;;
        get_printer_jobs) SCRIPT="$BENCH_DIR/printer_jobs.lua" ;;
        get_job_info) SCRIPT="$BENCH_DIR/job_info.lua" ;;
        get_printer_shares)
            BENCH_CALL_PRINTER=1
            SCRIPT="$BENCH_DIR/floor_call.lua"
            ;;
        *) SCRIPT="$BENCH_DIR/floor_call.lua" ;;
    esac
}

# sample_call CALL OUT: one call with curl, its answer in OUT; fails unless 200 and a success.
sample_call() {
    local call="$1" out="$2" code
    local -a args=(-d "session=$BENCH_SESSION")
    case "$call" in
        get_printer_jobs) args+=(-d "printer_id=$BENCH_PRINTER_MAX" -d limit=20) ;;
        get_job_info) args+=(-d "job_id=$BENCH_JOB_MAX") ;;
        get_printer_shares) args+=(-d "printer_id=$BENCH_PRINTER_MAX") ;;
    esac
    code="$(curl -sS -o "$out" -w '%{http_code}' -X POST "$BASE/apiglobal/$call" "${args[@]}")" ||
        die "$call: curl failed"
    [[ $code == 200 ]] && grep -q '"result":true' "$out" || die "$call answered $code: $(head -c 300 "$out")"
}

# The JSON shape of an answer: keys and value types, lists by their first item.
shape() {
    python3 - "$1" <<'PY'
import json, sys
def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__
print(json.dumps(shape(json.load(open(sys.argv[1]))), sort_keys=True))
PY
}

# Postgres backends connected to the bench database (pool connections of the running server).
database_backends() {
    [[ -n "$PG_DB" ]] || return 0
    pg_admin -c "SELECT pid FROM pg_stat_activity WHERE datname = '$PG_DB'"
}


# measure BACKEND CALL SERVER ROUND: one run of SERVER (printfarm | floor) on the call; appends
# a row to runs.md and runs.tsv.
measure() {
    local backend="$1" call="$2" server="$3" round="$4"
    local tag="$backend-$call-$server-r$round" script SCRIPT
    if [[ $server == printfarm ]]; then start_server "$backend"; else start_floor; fi
    sample_call "$call" "$BENCH_RESULTS_DIR/$backend-$call-$server.sample.json"
    call_script "$call"
    script="$SCRIPT"
    log "$tag: warm-up wrk -d$BENCH_WARMUP"
    wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$BENCH_WARMUP" --timeout 10s -s "$script" "$BASE" \
        >"$BENCH_RESULTS_DIR/$tag.warmup.txt" 2>&1 || die "warm-up wrk failed ($tag)"
    wait_for_quiet
    local -a pids
    mapfile -t pids < <(
        echo "$SERVER_PID"
        database_backends
    )
    local out="$BENCH_RESULTS_DIR/$tag.txt" tf="$WORK_DIR/wrk.time"
    local busy0 busy1 own0 own1 t0 t1 wrk_ticks other
    busy0="$(cpu_busy_ticks)"
    own0="$(proc_ticks "${pids[@]}")"
    t0="$(date +%s.%N)"
    log "$tag: wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d$BENCH_DURATION --timeout 10s --latency -s $(basename "$script") $BASE (${#pids[@]} processes measured)"
    local TIMEFORMAT='%3U %3S'
    { time wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$BENCH_DURATION" --timeout 10s \
        --latency -s "$script" "$BASE" >"$out" 2>&1; } 2>"$tf" || {
        cat "$out" >&2
        die "wrk failed ($tag)"
    }
    t1="$(date +%s.%N)"
    own1="$(proc_ticks "${pids[@]}")"
    busy1="$(cpu_busy_ticks)"
    stop_server
    wrk_ticks="$(awk -v t="$TCK" '{ printf "%d", ($1 + $2) * t }' "$tf")"
    other="$(awk -v b=$((busy1 - busy0)) -v o=$((own1 - own0)) -v w="$wrk_ticks" -v a="$t0" -v z="$t1" -v t="$TCK" \
        'BEGIN { x = (b - o - w) / t / (z - a); if (x < 0) x = 0; printf "%.2f", x }')"

    local rps p50 p99 non2xx sockerr requests cpu_ms
    rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
    p50="$(awk '$1 == "50%" { print $2 }' "$out")"
    p99="$(awk '$1 == "99%" { print $2 }' "$out")"
    requests="$(awk '/requests in/ { print $1 }' "$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")"
    non2xx="${non2xx:-0}"
    sockerr="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")"
    sockerr="${sockerr:-0}"
    [[ -n "$rps" && -n "$p50" && -n "$p99" && -n "$requests" ]] || die "could not parse wrk output $out"
    cpu_ms="$(awk -v o=$((own1 - own0)) -v t="$TCK" -v r="$requests" 'BEGIN { printf "%.4f", (r > 0 ? o / t * 1000 / r : 0) }')"
    echo "# load before: $LOAD_BEFORE; other CPU during run: $other cores; server(+Postgres) CPU $(awk -v o=$((own1 - own0)) -v t="$TCK" 'BEGIN { printf "%.2f", o / t }')s, wrk CPU $(awk -v w="$wrk_ticks" -v t="$TCK" 'BEGIN { printf "%.2f", w / t }')s" >>"$out"
    p50="$(to_ms "$p50")"
    p99="$(to_ms "$p99")"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$backend" "$call" "$server" "$round" "$requests" "$rps" "$p50" "$p99" "$cpu_ms" \
        "$non2xx" "$sockerr" "$LOAD_BEFORE" "$other" | tee -a "$RUNS" >&2
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$backend" "$call" "$server" "$round" "$requests" "$rps" "$p50" "$p99" "$cpu_ms" "$other" >>"$TSV"
    if ((non2xx != 0 || sockerr != 0 || requests == 0)); then
        log "$tag: $non2xx non-2xx answers, $sockerr socket errors (see $out)"
        FAILURES=$((FAILURES + 1))
    fi
}

# --- which statements each server runs (optional) -----------------------------------------
# With BENCH_PG_LOG naming the Postgres server log (readable; log_line_prefix with %d), the
# Postgres pass first logs every statement of the bench database (ALTER DATABASE … SET
# log_statement = 'all', reset before the measurements, whose servers open new connections),
# calls each call twice on each server (the second call is kept: the first prepares), and
# writes statements/<server>-<call>.log and statements.md. Statements also seen in an idle
# window of the same server are marked as its background work, not the request's.
capture_statements() {
    local server call off dir="$BENCH_RESULTS_DIR/statements"
    [[ -n "${BENCH_PG_LOG:-}" ]] || return 0
    [[ -r "$BENCH_PG_LOG" ]] || {
        log "warning: cannot read BENCH_PG_LOG=$BENCH_PG_LOG; no statement lists"
        return 0
    }
    mkdir -p "$dir"
    pg_admin -c "ALTER DATABASE $PG_DB SET log_statement = 'all'" >/dev/null
    for server in printfarm floor; do
        if [[ $server == printfarm ]]; then start_server "statements"; else start_floor; fi
        off="$(stat -c %s "$BENCH_PG_LOG")"
        sleep 2.5
        tail -c +$((off + 1)) "$BENCH_PG_LOG" | grep -a "@$PG_DB " >"$dir/$server-idle.log" || true
        for call in "${calls[@]}"; do
            sample_call "$call" "$WORK_DIR/statement-sample.json"
            sleep 0.3
            off="$(stat -c %s "$BENCH_PG_LOG")"
            sample_call "$call" "$WORK_DIR/statement-sample.json"
            sleep 0.3
            tail -c +$((off + 1)) "$BENCH_PG_LOG" | grep -a "@$PG_DB " >"$dir/$server-$call.log" || true
        done
        stop_server
    done
    pg_admin -c "ALTER DATABASE $PG_DB RESET log_statement" >/dev/null
    python3 - "$dir" "${calls[@]}" >"$BENCH_RESULTS_DIR/statements.md" <<'PY'
import re, sys
folder, calls = sys.argv[1], sys.argv[2:]
def statements(path):
    out = []
    for line in open(path, errors="replace"):
        m = re.search(r"LOG:  (?:execute [^:]*|statement): (.*)", line)
        if m:
            out.append(m.group(1).strip())
    return out
def short(sql):
    # SELECT "t"."a", "t"."b", … FROM → SELECT <t: 2 columns> FROM
    m = re.match(r"SELECT (.*?) FROM (.*)", sql)
    if not m:
        return sql
    counts = {}
    for col in m.group(1).split(", "):
        table = col.split(".")[0].strip('"')
        counts[table] = counts.get(table, 0) + 1
    cols = ", ".join(f"<{t}: {n} columns>" for t, n in counts.items())
    return f"SELECT {cols} FROM {m.group(2)}"
print("# Statements per call (Postgres log, second call of each kind)\n")
for server in ("printfarm", "floor"):
    idle = set(statements(f"{folder}/{server}-idle.log"))
    print(f"## {server}\n")
    for call in calls:
        print(f"### `{call}`\n")
        for sql in statements(f"{folder}/{server}-{call}.log"):
            mark = " *(also seen idle: background work)*" if sql in idle else ""
            print(f"- `{short(sql)}`{mark}")
        print()
PY
    log "statements of each call in $BENCH_RESULTS_DIR/statements.md"
}

bench_backend() {
    local backend="$1" round call server shape_pf shape_floor
    seed_jobs_database "$backend"
    printf '| %s | %s | %s | %s | %s |\n' "$backend" "$BENCH_PRINTERS" "$BENCH_JOBS" "$DB_MIB" "$JOBS_MIB" >>"$SIZES"
    if [[ $backend == postgres ]]; then
        capture_statements
    fi
    local -a order
    for round in $(seq 1 "$BENCH_ROUNDS"); do
        if ((round % 2 == 1)); then order=(printfarm floor); else order=(floor printfarm); fi
        for call in "${calls[@]}"; do
            for server in "${order[@]}"; do
                measure "$backend" "$call" "$server" "$round"
            done
            if ((round == 1)); then
                shape_pf="$(shape "$BENCH_RESULTS_DIR/$backend-$call-printfarm.sample.json")"
                shape_floor="$(shape "$BENCH_RESULTS_DIR/$backend-$call-floor.sample.json")"
                if [[ "$shape_pf" == "$shape_floor" ]]; then
                    echo "$backend $call: same shape $shape_pf" >>"$SHAPES"
                else
                    log "warning: $backend $call: the floor's answer has another shape than printfarm's"
                    printf '%s %s: DIFFERENT\n  printfarm %s\n  floor     %s\n' "$backend" "$call" \
                        "$shape_pf" "$shape_floor" >>"$SHAPES"
                fi
            fi
        done
    done
    if [[ -n "${BENCH_KEEP_WORK:-}" ]]; then
        log "$backend: work dir kept: $WORK_DIR"
    else
        grep -v 'middleware::logger\|access_log' "$WORK_DIR/server.log" >"$BENCH_RESULTS_DIR/$backend-server.log" || true
        cp "$WORK_DIR/floor.log" "$BENCH_RESULTS_DIR/$backend-floor.log" 2>/dev/null || true
    fi
    cleanup_backend
}

# The summary: medians over the rounds per backend, call and server, and the ratio.
summary() {
    python3 - "$TSV" "$BENCH_ROUNDS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
runs = {}
order = []
for backend, call, server, rnd, requests, rps, p50, p99, cpu, other in rows:
    if (backend, call) not in order:
        order.append((backend, call))
    runs.setdefault((backend, call, server), []).append(
        dict(rps=float(rps), p50=float(p50), p99=float(p99), cpu=float(cpu), other=float(other)))
def med(backend, call, server, key):
    vals = [r[key] for r in runs.get((backend, call, server), [])]
    return statistics.median(vals) if vals else float("nan")
def fmt(x):
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"
print(f"| backend | call | printfarm CPU ms/req | floor CPU ms/req | ratio | printfarm req/s | floor req/s "
      f"| p50 ms printfarm / floor | p99 ms printfarm / floor | rounds | max other CPU (cores) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for backend, call in order:
    pf = med(backend, call, "printfarm", "cpu")
    fl = med(backend, call, "floor", "cpu")
    ratio = pf / fl if fl > 0 else float("nan")
    n = min(len(runs.get((backend, call, s), [])) for s in ("printfarm", "floor"))
    other = max(r["other"] for s in ("printfarm", "floor") for r in runs.get((backend, call, s), []))
    print(f"| {backend} | `{call}` | {fmt(pf)} | {fmt(fl)} | **{ratio:.2f}** "
          f"| {med(backend, call, 'printfarm', 'rps'):.0f} | {med(backend, call, 'floor', 'rps'):.0f} "
          f"| {med(backend, call, 'printfarm', 'p50'):g} / {med(backend, call, 'floor', 'p50'):g} "
          f"| {med(backend, call, 'printfarm', 'p99'):g} / {med(backend, call, 'floor', 'p99'):g} "
          f"| {n} | {other:.2f} |")
PY
}

build_server
build_floor
mkdir -p "$BENCH_RESULTS_DIR"
TABLE="$BENCH_RESULTS_DIR/results.md"
RUNS="$BENCH_RESULTS_DIR/runs.md"
TSV="$BENCH_RESULTS_DIR/runs.tsv"
SIZES="$BENCH_RESULTS_DIR/sizes.md"
SHAPES="$BENCH_RESULTS_DIR/shapes.txt"
log "results in $BENCH_RESULTS_DIR"
: >"$TSV"
: >"$SHAPES"
{
    echo "| backend | call | server | round | requests | requests/s | p50 ms | p99 ms | CPU ms/req (server + Postgres) | non-2xx | socket errors | load before | other CPU (cores) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$RUNS"
{
    echo "| backend | printers | jobs | database MiB | jobs table + indexes MiB |"
    echo "|---|---|---|---|---|"
} >"$SIZES"
for b in "${backends[@]}"; do
    bench_backend "$b"
done
{
    echo "wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d$BENCH_DURATION, $BENCH_ROUNDS round(s), medians; $(nproc) cores; $("$BIN" --version 2>/dev/null || echo 'printfarm ?') ($BIN), floor ($FLOOR_BIN)"
    echo
    summary
    echo
    cat "$SIZES"
} >"$TABLE"
echo
cat "$TABLE"
echo
cat "$SHAPES"
((FAILURES == 0)) || die "$FAILURES run(s) had non-2xx answers or socket errors"
if grep -q DIFFERENT "$SHAPES"; then
    log "warning: some answers differ in shape (see $SHAPES)"
fi
log "done; table in $TABLE, every run in $RUNS"
