#!/usr/bin/env bash
# Fuzzes a running printfarm against its own OpenAPI document with schemathesis (PyPI):
# no answer may be a 5xx, and every answer must match its documented status, content type
# and schema. Runs once per database backend (SQLite, and Postgres when TEST_PG_URL answers).
#
#   bash tests/schemathesis/run.sh            # after `cargo build`
#
# One worker: schemathesis 4 on CPython 3.11 sometimes fails inside its own coverage phase
# ("AST constructor recursion depth mismatch") when it runs operations in threads.
#
# Env: ST_MAX_EXAMPLES (default 25), TEST_PG_URL, PRINTFARM_TEST_REQUIRE_PG=1 (fail when
# Postgres is unreachable instead of skipping its run).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=$root/target/debug/printfarm
[ -x "$bin" ] || { echo "build first: cargo build" >&2; exit 1; }

venv=$root/target/peers/schemathesis
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis==4.32.5'
fi

pg_url=${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d)
server_pid=
pg_db=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ -n "$pg_db" ] && psql -q "$pg_url" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_one() {
  local name=$1 db_url=$2
  local port; port=$(free_port)
  local dir=$work/$name; mkdir -p "$dir"
  export DATABASE_URL=$db_url PRINTFARM_SERVER__BIND=127.0.0.1:$port \
    PRINTFARM_STORAGE__FILES_DIR=$dir/files PRINTFARM_STORAGE__STAGING_DIR=$dir/staging \
    PRINTFARM_AUTH__THROTTLE_MAX_PER_ADDRESS=1000000 PRINTFARM_AUTH__THROTTLE_MAX_PER_ACCOUNT=1000000 \
    PRINTFARM_SLICER__TIME_LIMIT_SECS=20
  "$bin" serve > "$dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
  local base=http://127.0.0.1:$port
  PRINTFARM_NEW_PASSWORD=fuzz-password-123 "$bin" admin create-user --org 1 --role 1 \
    --email fuzz@example.com >/dev/null
  local session token
  session=$(curl -sf "$base/apiglobal/login" -d username=fuzz@example.com -d password=fuzz-password-123 \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["message"]["session"])')
  token=$(curl -sf "$base/apiglobal/create_api_token" -d "session=$session" -d name=fuzz \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["message"]["token"])')
  # Something real to find: a model for /v1 and a G-code for the Global API.
  curl -sf "$base/v1/file" -H "Authorization: Bearer $token" -F file=@fixtures/cube_20mm.stl >/dev/null
  curl -sf "$base/apiglobal/upload" -F "session=$session" -F file=@fixtures/cube_20mm.gcode >/dev/null

  echo "== schemathesis against $name ($base)"
  local rc=0
  PF_SESSION=$session SCHEMATHESIS_HOOKS=hooks PYTHONPATH=$root/tests/schemathesis \
    "$venv/bin/schemathesis" run "$base/openapi.json" \
      --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
      --phases examples,coverage,fuzzing \
      -n "${ST_MAX_EXAMPLES:-25}" --seed 1 \
      --request-timeout 60 \
      -H "Authorization: Bearer $token" \
      --report junit --report-dir "$root/target/schemathesis-$name" || rc=$?
  # How deep the fuzzing went: answers by status class, and the operations that answered 2xx.
  curl -sf "$base/metrics" > "$root/target/schemathesis-$name/metrics.txt" || true
  python3 - "$root/target/schemathesis-$name/metrics.txt" <<'PY' || true
import re, sys, collections
by_class, ok_routes = collections.Counter(), set()
for line in open(sys.argv[1]):
    m = re.match(r'printfarm_http_requests_total\{(.*)\} (\d+)', line)
    if not m:
        continue
    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
    by_class[labels["status"][0] + "xx"] += int(m.group(2))
    if labels["status"].startswith("2"):
        ok_routes.add(labels["method"] + " " + labels["route"])
print("answers by class:", dict(sorted(by_class.items())))
print(len(ok_routes), "operations answered 2xx:", ", ".join(sorted(ok_routes)))
PY
  if grep -q "panicked" "$dir/server.log"; then
    echo "the server panicked:" >&2; grep -A5 panicked "$dir/server.log" >&2; rc=1
  fi
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  cp "$dir/server.log" "$root/target/schemathesis-$name/server.log"
  return $rc
}

status=0
run_one sqlite "sqlite://$work/fuzz.db" || status=1
if psql -q "$pg_url" -c 'select 1' >/dev/null 2>&1; then
  pg_db=pf_fuzz_$$
  psql -q "$pg_url" -c "CREATE DATABASE $pg_db" >/dev/null
  run_one postgres "${pg_url%/*}/$pg_db" || status=1
elif [ "${PRINTFARM_TEST_REQUIRE_PG:-0}" = 1 ]; then
  echo "Postgres at $pg_url is unreachable" >&2; status=1
else
  echo "SKIPPING the Postgres run: $pg_url is unreachable" >&2
fi
exit $status
