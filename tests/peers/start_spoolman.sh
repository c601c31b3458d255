#!/usr/bin/env bash
# start_spoolman.sh RUN_DIR [PORT]
# Starts a real Spoolman (API only, SQLite in RUN_DIR/spoolman, loopback only, no backups,
# no external filament catalogue), waits until /api/v1/info answers, then prints
#   SPOOLMAN_URL=http://127.0.0.1:PORT
# (also written to RUN_DIR/spoolman.env) and leaves its pid in RUN_DIR/spoolman.pid.
set -euo pipefail
source "$(dirname "$0")/common.sh"
run=${1:?usage: start_spoolman.sh RUN_DIR [PORT]}
mkdir -p "$run"; run="$(cd "$run" && pwd)"
port=${2:-$(free_port)}
[ -x "$SPOOLMAN_VENV/bin/uvicorn" ] && [ -f "$SPOOLMAN_HOME/spoolman/main.py" ] || {
  echo "Spoolman is not installed: run SPOOLMAN_SRC=<source tree> tests/peers/setup.sh" >&2; exit 3; }
data="$run/spoolman"
mkdir -p "$data"
# Spoolman runs its migrations with the alembic command: the venv's bin goes first on PATH.
# EXTERNAL_DB_URL points at a closed local port so it never reaches for the internet.
# One process, its pid recorded: the subshell becomes uvicorn (exec), and all its output goes
# to the log, so no process is left holding the caller's stdout.
(
  cd "$SPOOLMAN_HOME"
  export PATH="$SPOOLMAN_VENV/bin:$PATH" SPOOLMAN_DIR_DATA="$data" SPOOLMAN_DIR_LOGS="$data" \
    SPOOLMAN_DIR_BACKUPS="$data" SPOOLMAN_AUTOMATIC_BACKUP=FALSE \
    EXTERNAL_DB_URL="http://127.0.0.1:9/"
  exec "$SPOOLMAN_VENV/bin/uvicorn" spoolman.main:app --host 127.0.0.1 --port "$port"
) > "$run/spoolman.log" 2>&1 < /dev/null &
echo $! > "$run/spoolman.pid"
if ! wait_http "http://127.0.0.1:$port/api/v1/info" 60; then
  echo "Spoolman did not answer on port $port; log tail:" >&2
  tail -n 30 "$run/spoolman.log" >&2 || true
  kill "$(cat "$run/spoolman.pid")" 2>/dev/null || true
  exit 1
fi
echo "SPOOLMAN_URL=http://127.0.0.1:$port" | tee "$run/spoolman.env"
