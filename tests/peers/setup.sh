#!/usr/bin/env bash
# Installs the real peers used by the tests (idempotent): OctoPrint (with its bundled virtual
# printer), Moonraker and (from $SPOOLMAN_SRC) Spoolman for tests/integration/agent_drivers.rs, and moto's S3 server for
# tests/storage_s3.rs, each in its own venv under $PEERS_DIR (default <repo>/target/peers), from
# PyPI with the machine's python3.
# Moonraker needs Klipper's host process; tests/peers/fake_klippy.py stands in for it
# (standard library only, nothing to install).
# A second run with everything present only checks and returns in about a second.
# Several runs at once (test processes that each found a peer missing) take turns on a lock:
# the later ones then find everything installed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
mkdir -p "$PEERS_DIR"
if command -v flock >/dev/null; then
  exec 9>"$PEERS_DIR/.setup.lock"
  flock 9
fi

install() { # venv package version modules [extras] [what the modules need from the system]
  local venv=$1 pkg=$2 ver=$3 module=$4 extras=${5:-} needs=${6:-}
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
  "$venv/bin/python" -c "import $module" || {
    echo "peers: $pkg is installed but cannot load ($module)${needs:+: it needs $needs}" >&2
    # Gone again, so that the tests see it missing (and skip) rather than start it and fail.
    rm -rf "$venv"
    return 1
  }
  touch "$stamp"
  echo "peers: $pkg installed in $((SECONDS - t0)) s"
}

# All at once: the time is mostly waiting on downloads.
install "$OCTOPRINT_VENV" octoprint "$OCTOPRINT_VERSION" octoprint & o=$!
# libnacl (Moonraker's authorization component) loads the system's libsodium when Moonraker
# starts; checked here so that a machine without it skips the tests that need Moonraker.
install "$MOONRAKER_VENV" moonraker "$MOONRAKER_VERSION" "moonraker, libnacl" "" \
  "libsodium (Debian: apt-get install libsodium23)" & m=$!
# The [server] extra brings Flask, which moto_server (the standalone HTTP server) needs.
install "$MOTO_VENV" moto "$MOTO_VERSION" moto.server "[server]" & s=$!
# Spoolman: only from a source tree ($SPOOLMAN_SRC, e.g. a checkout of Donkie/Spoolman at
# v0.26.1): its server is not published on PyPI. Its web client (a separate npm build) is
# not needed: the tests use the API only.
install_spoolman() {
  local stamp="$SPOOLMAN_VENV/.printfarm-spoolman"
  if [ -f "$stamp" ] && [ -f "$SPOOLMAN_HOME/spoolman/main.py" ]; then
    echo "peers: spoolman already installed in $SPOOLMAN_VENV"
    return 0
  fi
  if [ -z "${SPOOLMAN_SRC:-}" ]; then
    echo "peers: spoolman skipped (set SPOOLMAN_SRC to a Spoolman source tree to install it)"
    return 0
  fi
  [ -f "$SPOOLMAN_SRC/spoolman/main.py" ] || { echo "peers: $SPOOLMAN_SRC is not a Spoolman source tree" >&2; return 1; }
  local t0=$SECONDS
  rm -rf "$SPOOLMAN_VENV" "$SPOOLMAN_HOME"
  mkdir -p "$SPOOLMAN_HOME"
  cp -r "$SPOOLMAN_SRC/spoolman" "$SPOOLMAN_SRC/migrations" "$SPOOLMAN_SRC/alembic.ini" \
    "$SPOOLMAN_SRC/pyproject.toml" "$SPOOLMAN_HOME/"
  # The API-only stand-in for the web client bundle Spoolman refuses to start without.
  mkdir -p "$SPOOLMAN_HOME/client_v2/build"
  echo '<!doctype html><title>Spoolman (API only)</title>' > "$SPOOLMAN_HOME/client_v2/build/200.html"
  python3 -m venv "$SPOOLMAN_VENV"
  # Spoolman's pyproject dependencies for SQLite (the MySQL/PostgreSQL drivers are not needed).
  "$SPOOLMAN_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "uvicorn~=0.34" "fastapi~=0.115" "SQLAlchemy[aiosqlite,asyncio]~=2.0" "pydantic~=2.10" \
    "platformdirs~=4.3" "alembic~=1.15" "scheduler~=0.8" "WebSockets~=15.0" \
    "prometheus-client~=0.21" "httpx~=0.28" "hishel~=0.1" setuptools
  (cd "$SPOOLMAN_HOME" && "$SPOOLMAN_VENV/bin/python" -c "import spoolman.env")
  touch "$stamp"
  echo "peers: spoolman installed in $((SECONDS - t0)) s"
}
install_spoolman & p=$!
rc=0
wait $p || rc=1
wait $o || rc=1
wait $m || rc=1
wait $s || rc=1
[ $rc -eq 0 ] || { echo "peers: installation failed" >&2; exit 1; }
echo "peers: ready in $PEERS_DIR"
