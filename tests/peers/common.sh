# Shared by the peer scripts: where the venvs live, and small helpers.
# PEERS_DIR (default <repo>/target/peers) holds one venv per peer:
#   $PEERS_DIR/octoprint-venv  (pip: octoprint)
#   $PEERS_DIR/moonraker-venv  (pip: moonraker)
#   $PEERS_DIR/moto-venv       (pip: moto[server], an S3 stand-in for tests/storage_s3.rs)
#   $PEERS_DIR/spoolman-venv   (Spoolman's dependencies; its source in $PEERS_DIR/spoolman-src)
# They are separate because pip cannot resolve both into one environment.
PEERS_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_REPO="$(cd "$PEERS_HERE/../.." && pwd)"
PEERS_DIR="${PEERS_DIR:-$PEERS_REPO/target/peers}"
OCTOPRINT_VENV="$PEERS_DIR/octoprint-venv"
MOONRAKER_VENV="$PEERS_DIR/moonraker-venv"
MOTO_VENV="$PEERS_DIR/moto-venv"
# Spoolman (the filament spool manager Moonraker integrates with) is not on PyPI (PyPI's
# "spoolman" is an unrelated client library): it is installed from a source tree of
# Donkie/Spoolman given in $SPOOLMAN_SRC, its dependencies from PyPI.
SPOOLMAN_VENV="$PEERS_DIR/spoolman-venv"
SPOOLMAN_HOME="$PEERS_DIR/spoolman-src"
# Versions verified on this machine (see the notes on printer peers).
OCTOPRINT_VERSION="${OCTOPRINT_VERSION:-1.11.8}"
MOONRAKER_VERSION="${MOONRAKER_VERSION:-0.11.0}"
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"

# A TCP port that is free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# http_get URL [HEADER: value ...]: prints the body of a 2xx answer, fails otherwise. With
# python3 (which the peers need anyway) rather than curl, which a minimal machine lacks.
http_get() {
  python3 - "$@" <<'PY'
import sys
import urllib.request

req = urllib.request.Request(sys.argv[1])
for header in sys.argv[2:]:
    name, value = header.split(":", 1)
    req.add_header(name.strip(), value.strip())
try:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=2) as r:
        sys.stdout.write(r.read().decode("utf-8", "replace"))
except Exception:
    sys.exit(1)
PY
}

# wait_http URL SECONDS [HEADER: value ...]: until URL answers 2xx.
wait_http() {
  local url=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  while [ $SECONDS -lt $deadline ]; do
    if http_get "$url" "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}
