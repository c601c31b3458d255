# Shared helpers of bench/upload_bench.sh, bench/jobs_bench.sh and bench/agents_bench.sh.
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
# free_port: a port nobody listens on, below the kernel's ephemeral range: client sockets (a
# previous run's, still in TIME_WAIT, or the load generator's) take their ports from that
# range, and a server port inside it could collide with them ("Address already in use").
free_port() {
    local port low=32768 span
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    fi
    ((low > 10001)) || die "the ephemeral port range starts at $low: no room below it for servers"
    span=$((low - 10000))
    for _ in $(seq 1 100); do
        port=$((10000 + (RANDOM * 32768 + RANDOM) % span))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

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
            PG_DB="pf_bench_${uuid//-/}"
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
