#!/usr/bin/env bash
# start_moonraker.sh RUN_DIR [PORT]
# Starts a real Moonraker (loopback only, trusted loopback clients, no auth) with its data
# in RUN_DIR/moonraker, plus tests/peers/fake_klippy.py as its Klippy. A print lasts
# (file KiB) * $FAKE_KLIPPY_SECONDS_PER_KB seconds (default 1.5). With $SPOOLMAN_URL set,
# its Spoolman integration ([spoolman]) points there. Waits until Moonraker
# reports klippy_state "ready", then prints
#   MOONRAKER_URL=http://127.0.0.1:PORT
# (also written to RUN_DIR/moonraker.env) and leaves the pids in RUN_DIR/moonraker.pid
# and RUN_DIR/fake_klippy.pid.
set -euo pipefail
source "$(dirname "$0")/common.sh"
run=${1:?usage: start_moonraker.sh RUN_DIR [PORT]}
mkdir -p "$run"; run="$(cd "$run" && pwd)"
port=${2:-$(free_port)}
[ -x "$MOONRAKER_VENV/bin/moonraker" ] || { echo "Moonraker is not installed: run tests/peers/setup.sh" >&2; exit 3; }
data="$run/moonraker"
mkdir -p "$data/config" "$data/gcodes" "$data/misc" "$data/comms" "$data/logs"
# An existing usb.ids stops Moonraker from fetching it from the internet.
touch "$data/misc/usb.ids"
sock="$data/comms/klippy.sock"
if [ ${#sock} -gt 100 ]; then
  echo "RUN_DIR path too long for a Unix socket: $sock" >&2; exit 1
fi
cat > "$data/config/moonraker.conf" <<CONF
[server]
host: 127.0.0.1
port: $port
klippy_uds_address: $sock

[machine]
provider: none
validate_service: False
validate_config: False

[announcements]
enable_moonlight: False

[file_manager]
enable_object_processing: False

[authorization]
force_logins: False
trusted_clients:
  127.0.0.0/8
cors_domains:
  *
CONF
# SPOOLMAN_URL: enable Moonraker's Spoolman integration against that Spoolman.
if [ -n "${SPOOLMAN_URL:-}" ]; then
  printf '\n[spoolman]\nserver: %s\n' "$SPOOLMAN_URL" >> "$data/config/moonraker.conf"
fi
nohup "$MOONRAKER_VENV/bin/python" "$PEERS_HERE/fake_klippy.py" "$sock" "$data/gcodes" \
  --seconds-per-kb "${FAKE_KLIPPY_SECONDS_PER_KB:-1.5}" > "$run/fake_klippy.log" 2>&1 &
echo $! > "$run/fake_klippy.pid"
nohup "$MOONRAKER_VENV/bin/moonraker" -d "$data" -c "$data/config/moonraker.conf" \
  -l "$data/logs/moonraker.log" > "$run/moonraker.log" 2>&1 &
echo $! > "$run/moonraker.pid"
deadline=$((SECONDS + 60))
until http_get "http://127.0.0.1:$port/server/info" 2>/dev/null | grep -q '"klippy_state": *"ready"'; do
  if [ $SECONDS -ge $deadline ]; then
    echo "Moonraker/fake Klippy did not become ready on port $port; log tails:" >&2
    tail -n 30 "$run/moonraker.log" "$data/logs/moonraker.log" "$run/fake_klippy.log" >&2 || true
    kill "$(cat "$run/moonraker.pid")" "$(cat "$run/fake_klippy.pid")" 2>/dev/null || true
    exit 1
  fi
  sleep 0.2
done
echo "MOONRAKER_URL=http://127.0.0.1:$port" | tee "$run/moonraker.env"
