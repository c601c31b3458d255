#!/usr/bin/env bash
# stop.sh RUN_DIR: stops whatever the start scripts started in RUN_DIR (by pid file).
set -uo pipefail
run=${1:?usage: stop.sh RUN_DIR}
for f in "$run"/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
done
