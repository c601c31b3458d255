#!/usr/bin/env bash
# Load test of the Global API calls `login` and `check_session` on SQLite and Postgres.
#
#   bench/login_load.sh                 # both backends
#   bench/login_load.sh sqlite          # one backend (sqlite | postgres)
#
# Needs: wrk (Debian package `wrk`), curl, psql (for postgres), and a release build of
# printfarm. Unless PRINTFARM_BIN is set, the script builds one first into a separate target
# directory (so it never waits on, or blocks, the lock of the usual ./target):
#   CARGO_TARGET_DIR=$BENCH_TARGET_DIR nice cargo build --release
#
# Environment (all optional):
#   PRINTFARM_BIN        printfarm binary to test (skips the build)
#   BENCH_TARGET_DIR     cargo target dir for the build (default: <repo>/../bench-target)
#   BENCH_PG_URL         Postgres admin URL, allowed to CREATE DATABASE
#                        (default postgres://postgres@127.0.0.1:5432/postgres)
#   BENCH_DURATION       wrk duration per scenario (default 20s)
#   BENCH_THREADS        wrk threads (default 2)
#   BENCH_CONNECTIONS    wrk connections (default 16)
#   BENCH_SCENARIOS      scenarios to run (default "login check_session mixed")
#   BENCH_MAX_LOAD       wait before each scenario until the 1-minute load average is at most
#                        this (default 1.0) ...
#   BENCH_LOAD_WAIT_SECS ... for at most this long, then run anyway and report it (default 600)
#   BENCH_MAX_OTHER_CPU  if other processes used more than this many cores on average during
#                        a scenario (someone compiling), the run is repeated (default 0.25) ...
#   BENCH_ATTEMPTS       ... up to this many attempts in all; the last one is reported (default 3)
#   BENCH_RESULTS_DIR    where raw wrk outputs and the table are kept
#                        (default bench/results/<timestamp>)
#
# The server runs with the production defaults (Argon2id 19 MiB / 2 passes, request logging
# at info), except for the failed-login throttle, which is raised so that it can never
# answer 429 during the bench. Every scenario must end with zero non-2xx answers and zero
# socket errors, otherwise the script fails.

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"

BENCH_PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BENCH_DURATION="${BENCH_DURATION:-20s}"
BENCH_THREADS="${BENCH_THREADS:-2}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-16}"
BENCH_SCENARIOS="${BENCH_SCENARIOS:-login check_session mixed}"
BENCH_MAX_LOAD="${BENCH_MAX_LOAD:-1.0}"
BENCH_LOAD_WAIT_SECS="${BENCH_LOAD_WAIT_SECS:-600}"
BENCH_MAX_OTHER_CPU="${BENCH_MAX_OTHER_CPU:-0.25}"
BENCH_ATTEMPTS="${BENCH_ATTEMPTS:-3}"
BENCH_RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)}"
SHUTDOWN_TIMEOUT_SECS=30 # server.shutdown_timeout_secs (default; set explicitly below)

export BENCH_EMAIL="bench@example.com"
export BENCH_PASSWORD="bench-password-123"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}

for tool in wrk curl; do
    command -v "$tool" >/dev/null || die "$tool is not installed (Debian: apt-get install -y $tool)"
done

backends=("$@")
[[ ${#backends[@]} -gt 0 ]] || backends=(sqlite postgres)
for b in "${backends[@]}"; do
    [[ $b == sqlite || $b == postgres ]] || die "unknown backend '$b' (sqlite | postgres)"
    [[ $b == sqlite ]] || command -v psql >/dev/null || die "psql is needed for the postgres backend"
done

# --- the binary --------------------------------------------------------------------------
if [[ -n "${PRINTFARM_BIN:-}" ]]; then
    BIN="$PRINTFARM_BIN"
else
    BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-$(cd "$REPO/.." && pwd)/bench-target}"
    log "building: CARGO_TARGET_DIR=$BENCH_TARGET_DIR nice cargo build --release"
    (cd "$REPO" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" nice cargo build --release) >&2
    BIN="$BENCH_TARGET_DIR/release/printfarm"
fi
[[ -x "$BIN" ]] || die "no printfarm binary at $BIN"

mkdir -p "$BENCH_RESULTS_DIR"
TABLE="$BENCH_RESULTS_DIR/results.md"

# --- per-backend state, cleaned up by the trap ---------------------------------------------
WORK_DIR=""
SERVER_PID=""
PG_DB=""

pg_admin() { psql "$BENCH_PG_URL" -v ON_ERROR_STOP=1 -qAtX "$@"; }

cleanup() {
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
    if [[ -n "$PG_DB" ]]; then
        pg_admin -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 ||
            pg_admin -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 ||
            log "warning: could not drop database $PG_DB"
        PG_DB=""
    fi
    if [[ -n "$WORK_DIR" ]]; then
        rm -rf "$WORK_DIR"
        WORK_DIR=""
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -----------------------------------------------------------------------------
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

load1() { cut -d' ' -f1 /proc/loadavg; }

# Waits until the 1-minute load average is at most BENCH_MAX_LOAD (other work on the machine,
# or the decay of the previous scenario), for at most BENCH_LOAD_WAIT_SECS. Sets LOAD_BEFORE.
wait_for_quiet() {
    local waited=0 load
    load="$(load1)"
    while awk -v l="$load" -v m="$BENCH_MAX_LOAD" 'BEGIN { exit !(l > m) }'; do
        if ((waited >= BENCH_LOAD_WAIT_SECS)); then
            log "warning: load average still $load after ${waited}s; running anyway"
            break
        fi
        ((waited % 60 == 0)) && log "load average $load > $BENCH_MAX_LOAD, waiting ($(uptime))"
        sleep 10
        waited=$((waited + 10))
        load="$(load1)"
    done
    LOAD_BEFORE="$load"
    log "load before run: $(uptime | sed 's/.*load average/load average/')"
}

# CPU accounting over a run, to see whether something else used the cores meanwhile.
cpu_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat; }
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
bench_pids() { # the server and, when local, the Postgres processes
    echo "$SERVER_PID"
    pgrep -x postgres 2>/dev/null || true
}

# wrk latency ("812.00us", "3.21ms", "1.02s") -> milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf (n < 10 ? "%.2f" : (n < 100 ? "%.1f" : "%.0f")), n
    }'
}

# --- one backend -------------------------------------------------------------------------
start_server() {
    PORT="$(free_port)"
    BASE="http://127.0.0.1:$PORT"
    log "starting $BIN serve on $BASE ($1)"
    DATABASE_URL="$DB_URL" \
        PRINTFARM_SERVER__BIND="127.0.0.1:$PORT" \
        PRINTFARM_SERVER__SHUTDOWN_TIMEOUT_SECS="$SHUTDOWN_TIMEOUT_SECS" \
        PRINTFARM_STORAGE__FILES_DIR="$WORK_DIR/files" \
        PRINTFARM_AUTH__THROTTLE_MAX_PER_ADDRESS=1000000000 \
        PRINTFARM_AUTH__THROTTLE_MAX_PER_ACCOUNT=1000000000 \
        "$BIN" serve >"$WORK_DIR/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 30 "$WORK_DIR/server.log" >&2
            die "server exited during start-up"
        fi
        if curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; then
            log "ready: $(curl -fsS "$BASE/readyz")"
            return
        fi
        sleep 0.1
    done
    tail -n 30 "$WORK_DIR/server.log" >&2
    die "GET /readyz did not answer 200 within 30s"
}

stop_server() {
    local t0 t1 rc=0
    log "stopping the server (SIGTERM, shutdown timeout ${SHUTDOWN_TIMEOUT_SECS}s)"
    t0="$(date +%s.%N)"
    kill -TERM "$SERVER_PID"
    for _ in $(seq 1 $(((SHUTDOWN_TIMEOUT_SECS + 5) * 10))); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        die "server still running $((SHUTDOWN_TIMEOUT_SECS + 5))s after SIGTERM"
    fi
    wait "$SERVER_PID" || rc=$?
    t1="$(date +%s.%N)"
    SERVER_PID=""
    [[ $rc -eq 0 ]] || { tail -n 20 "$WORK_DIR/server.log" >&2; die "server exited with status $rc after SIGTERM"; }
    grep -q "printfarm stopped" "$WORK_DIR/server.log" || die "no 'printfarm stopped' line in the server log"
    log "server stopped cleanly in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')s"
}

# run_wrk BACKEND SCENARIO SCRIPT -> one table row
run_wrk() {
    local backend="$1" scenario="$2" script="$3"
    local out="$BENCH_RESULTS_DIR/$backend-$scenario.txt"
    local busy0 busy1 own0 own1 wrk_ticks t0 t1 tf
    local -a pids

    local attempt other own_ticks
    for attempt in $(seq 1 "$BENCH_ATTEMPTS"); do
        wait_for_quiet
        mapfile -t pids < <(bench_pids)
        log "$backend/$scenario: wrk -t$BENCH_THREADS -c$BENCH_CONNECTIONS -d$BENCH_DURATION --latency -s $(basename "$script")"
        tf="$WORK_DIR/wrk.time"
        busy0="$(cpu_busy_ticks)"
        own0="$(proc_ticks "${pids[@]}")"
        t0="$(date +%s.%N)"
        local TIMEFORMAT='%3U %3S'
        { time wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$BENCH_DURATION" --timeout 10s \
            --latency -s "$script" "$BASE" >"$out" 2>&1; } 2>"$tf" || {
            cat "$out" >&2
            die "wrk failed ($backend/$scenario)"
        }
        t1="$(date +%s.%N)"
        own1="$(proc_ticks "${pids[@]}")"
        busy1="$(cpu_busy_ticks)"
        wrk_ticks="$(awk '{ printf "%d", ($1 + $2) * 100 }' "$tf")"
        own_ticks=$((own1 - own0))
        # Cores used by anything other than printfarm, Postgres and wrk during the run.
        other="$(awk -v b=$((busy1 - busy0)) -v o=$((own1 - own0)) -v w="$wrk_ticks" -v a="$t0" -v z="$t1" \
            'BEGIN { x = (b - o - w) / 100 / (z - a); if (x < 0) x = 0; printf "%.2f", x }')"
        {
            echo "# load before: $LOAD_BEFORE; other CPU during run: $other cores"
            awk -v o=$((own1 - own0)) -v w="$wrk_ticks" -v a="$t0" -v z="$t1" \
                'BEGIN { printf "# wall %.2fs; CPU: server+postgres %.2fs, wrk %.2fs\n", z - a, o / 100, w / 100 }'
            echo "# attempt $attempt of at most $BENCH_ATTEMPTS"
        } >>"$out"
        cat "$out" >&2
        if awk -v o="$other" -v m="$BENCH_MAX_OTHER_CPU" 'BEGIN { exit !(o > m) }'; then
            if ((attempt < BENCH_ATTEMPTS)); then
                cp "$out" "${out%.txt}.attempt$attempt.txt"
                log "$backend/$scenario: other processes used $other cores during the run (> $BENCH_MAX_OTHER_CPU); repeating it"
                continue
            fi
            log "warning: $backend/$scenario: other processes used $other cores during the last attempt too; reporting it anyway"
        fi
        break
    done

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
    ((requests > 0)) || die "$backend/$scenario: no request completed"

    # CPU time the server (and Postgres) spent per request: hardly affected by other work on
    # the machine, unlike requests/s; 2 cores / this = the throughput ceiling without wrk.
    local cpu_ms
    cpu_ms="$(awk -v t="$own_ticks" -v n="$requests" 'BEGIN { x = t * 10 / n; printf (x < 1 ? "%.3f" : (x < 10 ? "%.2f" : "%.1f")), x }')"

    local extra=""
    [[ $scenario == mixed ]] && extra=" ($(sed -n 's/^mixed: //p' "$out"))"
    printf '| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$backend" "$scenario" "$extra" "$requests" "$rps" "$(to_ms "$p50")" "$(to_ms "$p99")" \
        "$non2xx" "$sockerr" "$cpu_ms" "$LOAD_BEFORE" "$other" | tee -a "$TABLE"

    if ((non2xx != 0 || sockerr != 0)); then
        die "$backend/$scenario: $non2xx non-2xx answers, $sockerr socket errors (see $out)"
    fi
    if [[ $scenario == mixed ]] && ! grep -q 'non-200=0$' "$out"; then
        die "$backend/$scenario: some answers were not 200 (see $out)"
    fi
}

bench_backend() {
    local backend="$1"
    WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/printfarm-login-load-$backend.XXXXXX")"
    case "$backend" in
        sqlite)
            DB_URL="$WORK_DIR/printfarm.db"
            ;;
        postgres)
            local uuid
            uuid="$(cat /proc/sys/kernel/random/uuid)"
            PG_DB="pf_bench_${uuid//-/}"
            pg_admin -c "CREATE DATABASE $PG_DB" >/dev/null || die "cannot CREATE DATABASE through $BENCH_PG_URL"
            # Same server and credentials as the admin URL, our fresh database.
            local base="${BENCH_PG_URL%%\?*}" query=""
            [[ "$BENCH_PG_URL" == *\?* ]] && query="?${BENCH_PG_URL#*\?}"
            DB_URL="${base%/*}/$PG_DB$query"
            ;;
    esac
    log "$backend: database $DB_URL"

    start_server "$backend"

    log "creating the bench user"
    DATABASE_URL="$DB_URL" "$BIN" admin create-user --org 1 --email "$BENCH_EMAIL" \
        --password "$BENCH_PASSWORD" >"$WORK_DIR/create-user.log" 2>&1 || {
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
    curl -fsS -X POST "$BASE/apiglobal/check_session" -d "session=$BENCH_SESSION" |
        grep -q '"result":true' || die "check_session with the fresh session failed"

    local s
    for s in $BENCH_SCENARIOS; do
        [[ -f "$BENCH_DIR/$s.lua" ]] || die "unknown scenario $s (no bench/$s.lua)"
        run_wrk "$backend" "$s" "$BENCH_DIR/$s.lua"
    done

    stop_server
    # Keep the server log without the per-request access lines and without the throwaway
    # admin's one-time password.
    grep -v 'middleware::logger' "$WORK_DIR/server.log" |
        sed -E 's/(password=)[^ ]+/\1<redacted>/g' >"$BENCH_RESULTS_DIR/$backend-server.log" || true
    cleanup
}

# --- main --------------------------------------------------------------------------------
log "binary: $BIN ($("$BIN" --version 2>/dev/null || echo '?')), $(nproc) cores, results in $BENCH_RESULTS_DIR"
{
    echo "| backend | scenario | requests | requests/s | p50 ms | p99 ms | non-2xx | socket errors | server CPU ms/req | load before | other CPU (cores) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
} | tee "$TABLE"

for b in "${backends[@]}"; do
    bench_backend "$b"
done

log "done; table in $TABLE"
