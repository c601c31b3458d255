#!/usr/bin/env bash
# start_octoprint.sh RUN_DIR [PORT]
# Starts a real OctoPrint (loopback only, virtual printer enabled, not connected) with a
# fresh basedir in RUN_DIR/octoprint and an admin user "agent" whose API key is
# $OCTOPRINT_API_KEY (default below). Waits until the API answers, then prints
#   OCTOPRINT_URL=http://127.0.0.1:PORT
#   OCTOPRINT_API_KEY=...
# (also written to RUN_DIR/octoprint.env) and leaves its pid in RUN_DIR/octoprint.pid.
set -euo pipefail
source "$(dirname "$0")/common.sh"
run=${1:?usage: start_octoprint.sh RUN_DIR [PORT]}
mkdir -p "$run"; run="$(cd "$run" && pwd)"
port=${2:-$(free_port)}
key=${OCTOPRINT_API_KEY:-AGENTUSERKEY0123456789ABCDEFGHI}
[ -x "$OCTOPRINT_VENV/bin/octoprint" ] || { echo "OctoPrint is not installed: run tests/peers/setup.sh" >&2; exit 3; }
base="$run/octoprint"
mkdir -p "$base"
# Nothing here may reach the internet: the plugins that would are disabled.
cat > "$base/config.yaml" <<YAML
server:
  host: 127.0.0.1
  port: $port
  firstRun: false
  onlineCheck: {enabled: false}
  pluginBlacklist: {enabled: false}
plugins:
  _disabled: [announcements, discovery, softwareupdate, tracking, errortracking,
              pluginmanager, health_check, achievements, pi_support, firmware_check, file_check]
  virtual_printer:
    enabled: true
serial:
  port: VIRTUAL
  baudrate: 115200
  autoconnect: false
YAML
# Written directly rather than with `octoprint user add` (saves ~4 s per start).
# The hash is argon2id of "agentpw"; only the API key is used by the tests.
cat > "$base/users.yaml" <<YAML
_version: 2
agent:
  active: true
  apikey: $key
  groups: [admins]
  password: \$argon2id\$v=19\$m=65536,t=3,p=4\$ltIawxiDcG7NubdWqnXO+Q\$cW3ku2Rmvggs654abrg0QEMcsf8zK84fJM0PsGInbc8
  permissions: []
  roles: [user, admin]
  settings: {}
YAML
nohup "$OCTOPRINT_VENV/bin/octoprint" serve --iknowwhatimdoing --basedir "$base" \
  --host 127.0.0.1 --port "$port" > "$run/octoprint.log" 2>&1 &
echo $! > "$run/octoprint.pid"
if ! wait_http "http://127.0.0.1:$port/api/version" 60 "X-Api-Key: $key"; then
  echo "OctoPrint did not come up on port $port; log tail:" >&2
  tail -n 30 "$run/octoprint.log" >&2
  kill "$(cat "$run/octoprint.pid")" 2>/dev/null || true
  exit 1
fi
{ echo "OCTOPRINT_URL=http://127.0.0.1:$port"; echo "OCTOPRINT_API_KEY=$key"; } | tee "$run/octoprint.env"
