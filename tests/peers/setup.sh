#!/usr/bin/env bash
# Installs the real peers used by the tests (idempotent): OctoPrint (with its bundled virtual
# printer) and Moonraker for tests/agent_drivers.rs, and moto's S3 server for
# tests/storage_s3.rs, each in its own venv under $PEERS_DIR (default <repo>/target/peers), from
# PyPI with the machine's python3.
# Moonraker needs Klipper's host process; tests/peers/fake_klippy.py stands in for it
# (standard library only, nothing to install).
# A second run with everything present only checks and returns in about a second.
set -euo pipefail
source "$(dirname "$0")/common.sh"
mkdir -p "$PEERS_DIR"

install() { # venv package version module [extras]
  local venv=$1 pkg=$2 ver=$3 module=$4 extras=${5:-}
  local stamp="$venv/.printfarm-$pkg-$ver"
  if [ -f "$stamp" ] && "$venv/bin/python" -c "import $module" 2>/dev/null; then
    echo "peers: $pkg $ver already installed in $venv"
    return 0
  fi
  echo "peers: installing $pkg$extras==$ver into $venv"
  local t0=$SECONDS
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$pkg$extras==$ver"
  "$venv/bin/python" -c "import $module"
  touch "$stamp"
  echo "peers: $pkg installed in $((SECONDS - t0)) s"
}

# All at once: the time is mostly waiting on downloads.
install "$OCTOPRINT_VENV" octoprint "$OCTOPRINT_VERSION" octoprint & o=$!
install "$MOONRAKER_VENV" moonraker "$MOONRAKER_VERSION" moonraker & m=$!
# The [server] extra brings Flask, which moto_server (the standalone HTTP server) needs.
install "$MOTO_VENV" moto "$MOTO_VERSION" moto.server "[server]" & s=$!
rc=0
wait $o || rc=1
wait $m || rc=1
wait $s || rc=1
[ $rc -eq 0 ] || { echo "peers: installation failed" >&2; exit 1; }
command -v curl >/dev/null || { echo "peers: curl is required" >&2; exit 1; }
echo "peers: ready in $PEERS_DIR"
