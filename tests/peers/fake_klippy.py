#!/usr/bin/env python3
"""A stand-in for Klipper's host process ("Klippy"), just enough for a real Moonraker.

Moonraker talks to Klippy over a Unix socket: JSON objects, each terminated by 0x03.
Requests are {id, method, params}; answers are {id, result} or {id, error: {message}};
pushes are {method: <response_template.method>, params: {...}}.  This fake keeps a
simulated printer (heaters, virtual SD card, print_stats) and answers the calls
Moonraker makes at start-up and for printing: info, list_endpoints, objects/list|query|
subscribe, gcode/subscribe_output, register_remote_method, gcode/script
(SDCARD_PRINT_FILE, M104/M140/M109/M190, PAUSE/RESUME/CANCEL_PRINT),
pause_resume/pause|resume|cancel and emergency_stop.

A print lasts (file size in KiB) * --seconds-per-kb seconds.  A file containing the
line "; printfarm:fail" stops with print_stats.state "error" half way.

usage: fake_klippy.py SOCKET_PATH GCODES_DIR [--seconds-per-kb S]
Standard library only.
"""
import argparse
import asyncio
import json
import os
import re
import time

ETX = b"\x03"
AMBIENT = 22.0
HEAT_RATE = 40.0  # degrees per second; fast on purpose, tests should not wait for heat-up


class Printer:
    def __init__(self, gcodes_dir, seconds_per_kb):
        self.gcodes_dir = os.path.realpath(gcodes_dir)
        self.seconds_per_kb = seconds_per_kb
        self.state = "standby"  # print_stats.state
        self.message = ""
        self.filename = ""
        self.file_size = 0
        self.duration = 0.0  # seconds the whole print takes
        self.elapsed = 0.0  # printed seconds, excluding pauses
        self.fail_at = None  # progress (0..1) at which the print errors
        self.started_at = None
        self.last_tick = time.monotonic()
        self.temps = {"extruder": [AMBIENT, 0.0], "heater_bed": [AMBIENT, 0.0]}
        self.shutdown = False

    # --- simulation -------------------------------------------------------
    def tick(self):
        now = time.monotonic()
        dt = now - self.last_tick
        self.last_tick = now
        for name, (cur, target) in self.temps.items():
            goal = target if target > 0 else AMBIENT
            step = HEAT_RATE * dt
            if cur < goal:
                cur = min(goal, cur + step)
            else:
                cur = max(goal, cur - step)
            self.temps[name][0] = round(cur, 2)
        if self.state == "printing":
            self.elapsed += dt
            if self.fail_at is not None and self.progress() >= self.fail_at:
                self.state = "error"
                self.message = "printfarm:fail requested by the G-code"
                self._heaters_off()
            elif self.elapsed >= self.duration:
                self.elapsed = self.duration
                self.state = "complete"
                self._heaters_off()

    def _heaters_off(self):
        for t in self.temps.values():
            t[1] = 0.0

    def progress(self):
        if self.duration <= 0:
            return 1.0 if self.state == "complete" else 0.0
        return min(1.0, self.elapsed / self.duration)

    def start(self, filename):
        if self.state in ("printing", "paused"):
            raise KlippyError("SD busy")
        path = os.path.realpath(os.path.join(self.gcodes_dir, filename))
        if not path.startswith(self.gcodes_dir + os.sep) or not os.path.isfile(path):
            raise KlippyError(f"Unable to open file \"{filename}\"")
        with open(path, "rb") as f:
            data = f.read()
        self.filename = filename
        self.file_size = len(data)
        self.duration = max(0.5, len(data) / 1024.0 * self.seconds_per_kb)
        self.elapsed = 0.0
        self.fail_at = 0.5 if b"; printfarm:fail" in data else None
        self.message = ""
        self.state = "printing"
        self.started_at = time.time()
        text = data[:200_000].decode("utf-8", "replace")
        self.temps["extruder"][1] = _first_temp(text, ("M104", "M109"), 215.0)
        self.temps["heater_bed"][1] = _first_temp(text, ("M140", "M190"), 60.0)

    def pause(self):
        if self.state == "paused":
            raise KlippyError("Print already paused")
        if self.state != "printing":
            raise KlippyError("Print is not active")
        self.state = "paused"

    def resume(self):
        if self.state != "paused":
            raise KlippyError("Print is not paused, resume aborted")
        self.state = "printing"

    def cancel(self):
        if self.state not in ("printing", "paused"):
            raise KlippyError("No print to cancel")
        self.state = "cancelled"
        self._heaters_off()

    # --- status objects ---------------------------------------------------
    def objects(self):
        prog = self.progress()
        active = self.state == "printing"
        ext, bed = self.temps["extruder"], self.temps["heater_bed"]
        return {
            "webhooks": {
                "state": "shutdown" if self.shutdown else "ready",
                "state_message": "Emergency stop" if self.shutdown else "Printer is ready",
            },
            "configfile": {
                "config": {"virtual_sdcard": {"path": self.gcodes_dir},
                           "pause_resume": {}, "display_status": {}},
                "settings": {"virtual_sdcard": {"path": self.gcodes_dir}},
                "save_config_pending": False,
            },
            "heaters": {"available_heaters": ["heater_bed", "extruder"],
                        "available_sensors": ["heater_bed", "extruder"]},
            "extruder": {"temperature": ext[0], "target": ext[1],
                         "power": 1.0 if ext[0] < ext[1] else 0.0,
                         "can_extrude": ext[0] >= 170.0, "pressure_advance": 0.0,
                         "smooth_time": 0.04},
            "heater_bed": {"temperature": bed[0], "target": bed[1],
                           "power": 1.0 if bed[0] < bed[1] else 0.0},
            "print_stats": {
                "filename": self.filename,
                "total_duration": round(self.elapsed, 3),
                "print_duration": round(self.elapsed, 3),
                "filament_used": 0.0,
                "state": self.state,
                "message": self.message,
                "info": {"total_layer": None, "current_layer": None},
            },
            "virtual_sdcard": {
                "file_path": os.path.join(self.gcodes_dir, self.filename) if self.filename else None,
                "progress": round(prog, 4),
                "is_active": active,
                "file_position": int(prog * self.file_size),
                "file_size": self.file_size,
            },
            "display_status": {"progress": round(prog, 4), "message": None},
            "pause_resume": {"is_paused": self.state == "paused"},
            "idle_timeout": {"state": "Printing" if active else "Idle", "printing_time": 0.0},
            "toolhead": {"homed_axes": "xyz", "position": [0.0, 0.0, 0.0, 0.0],
                         "print_time": 0.0, "estimated_print_time": 0.0,
                         "max_velocity": 300.0, "max_accel": 3000.0},
            "gcode_move": {"speed_factor": 1.0, "extrude_factor": 1.0,
                           "absolute_coordinates": True, "position": [0.0, 0.0, 0.0, 0.0]},
            "system_stats": {"sysload": 0.1, "cputime": time.process_time(), "memavail": 1 << 20},
        }


def _first_temp(text, codes, default):
    for line in text.splitlines():
        word = line.split(";", 1)[0].strip().split()
        if word and word[0] in codes:
            for w in word[1:]:
                if w.startswith("S"):
                    try:
                        return float(w[1:])
                    except ValueError:
                        pass
    return default


class KlippyError(Exception):
    pass


class Connection:
    """One Moonraker connection: requests, subscriptions and status pushes."""

    def __init__(self, printer, reader, writer):
        self.p = printer
        self.reader = reader
        self.writer = writer
        self.subs = {}  # object name -> None (all fields) or a set of field names
        self.sub_template = None
        self.last_sent = {}

    def send(self, obj):
        self.writer.write(json.dumps(obj).encode() + ETX)

    def select(self, objects, status):
        out = {}
        for name, fields in objects.items():
            if name not in status:
                continue
            val = status[name]
            out[name] = dict(val) if fields is None else {k: v for k, v in val.items() if k in fields}
        return out

    async def push_loop(self):
        while True:
            await asyncio.sleep(0.25)
            self.p.tick()
            if not self.sub_template:
                continue
            cur = self.select(self.subs, self.p.objects())
            diff = {}
            for name, fields in cur.items():
                prev = self.last_sent.get(name, {})
                changed = {k: v for k, v in fields.items() if prev.get(k) != v}
                if changed:
                    diff[name] = changed
            if diff:
                self.last_sent = cur
                self.send({"method": self.sub_template["method"],
                           "params": {"eventtime": time.monotonic(), "status": diff}})
                await self.writer.drain()

    async def serve(self):
        pusher = asyncio.get_running_loop().create_task(self.push_loop())
        try:
            while True:
                try:
                    data = await self.reader.readuntil(ETX)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    req = json.loads(data[:-1])
                except ValueError:
                    continue
                rid = req.get("id")
                try:
                    result = self.handle(req.get("method", ""), req.get("params") or {})
                    self.send({"id": rid, "result": result})
                except KlippyError as e:
                    self.send({"id": rid, "error": {"error": "WebRequestError", "message": str(e)}})
                await self.writer.drain()
        finally:
            pusher.cancel()

    def handle(self, method, params):
        p = self.p
        p.tick()
        if method == "info":
            return {
                "state": "shutdown" if p.shutdown else "ready",
                "state_message": "Printer is ready",
                "hostname": "fake-klippy",
                # Moonraker reserves klipper_path: it must not contain the gcodes folder.
                "klipper_path": "/opt/fake-klipper",
                "python_path": "/opt/fake-klipper/venv/bin/python",
                "process_id": os.getpid(),
                "user_id": os.getuid(),
                "group_id": os.getgid(),
                "log_file": "/tmp/fake-klippy.log",
                "config_file": "/opt/fake-klipper/printer.cfg",
                "software_version": "v0.12.0-fake",
                "cpu_info": "fake",
                "app": "Klipper",
            }
        if method == "list_endpoints":
            return {"endpoints": [
                "info", "emergency_stop", "list_endpoints", "register_remote_method",
                "gcode/help", "gcode/script", "gcode/restart", "gcode/firmware_restart",
                "gcode/subscribe_output", "objects/list", "objects/query", "objects/subscribe",
                "pause_resume/pause", "pause_resume/resume", "pause_resume/cancel",
            ]}
        if method == "objects/list":
            return {"objects": list(p.objects().keys())}
        if method == "objects/query":
            return {"eventtime": time.monotonic(),
                    "status": self.select(params.get("objects") or {}, p.objects())}
        if method == "objects/subscribe":
            objs = params.get("objects") or {}
            for name, fields in objs.items():
                if name in self.subs and (self.subs[name] is None or fields is None):
                    self.subs[name] = None
                elif name in self.subs:
                    self.subs[name] = set(self.subs[name]) | set(fields)
                else:
                    self.subs[name] = None if fields is None else set(fields)
            self.sub_template = params.get("response_template") or self.sub_template
            status = self.select(objs, p.objects())
            self.last_sent = self.select(self.subs, p.objects())
            return {"eventtime": time.monotonic(), "status": status}
        if method in ("gcode/subscribe_output", "register_remote_method", "gcode/help"):
            return {}
        if method == "gcode/script":
            self.script(params.get("script", ""))
            return {}
        if method in ("gcode/restart", "gcode/firmware_restart"):
            p.shutdown = False
            return {}
        if method == "emergency_stop":
            p.shutdown = True
            if p.state in ("printing", "paused"):
                p.state = "error"
                p.message = "Emergency stop"
            p._heaters_off()
            return {}
        if method == "pause_resume/pause":
            p.pause()
            return {}
        if method == "pause_resume/resume":
            p.resume()
            return {}
        if method == "pause_resume/cancel":
            p.cancel()
            return {}
        raise KlippyError(f"Unknown endpoint {method}")

    def script(self, script):
        p = self.p
        for line in script.splitlines():
            line = line.split(";", 1)[0].strip()
            if not line:
                continue
            m = re.match(r'SDCARD_PRINT_FILE\s+FILENAME="?(.*?)"?\s*$', line, re.I)
            if m:
                p.start(m.group(1).replace('\\"', '"'))
                continue
            words = line.split()
            cmd = words[0].upper()
            if cmd in ("M104", "M109", "M140", "M190"):
                heater = "extruder" if cmd in ("M104", "M109") else "heater_bed"
                for w in words[1:]:
                    if w.upper().startswith("S"):
                        try:
                            p.temps[heater][1] = float(w[1:])
                        except ValueError:
                            raise KlippyError(f"Malformed command '{line}'")
            elif cmd == "PAUSE":
                p.pause()
            elif cmd == "RESUME":
                p.resume()
            elif cmd == "CANCEL_PRINT":
                p.cancel()
            elif cmd == "SDCARD_RESET_FILE":
                if p.state in ("printing", "paused"):
                    raise KlippyError("SD busy")
                p.state, p.filename, p.elapsed = "standby", "", 0.0


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("gcodes")
    ap.add_argument("--seconds-per-kb", type=float, default=1.5)
    args = ap.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.socket)), exist_ok=True)
    os.makedirs(args.gcodes, exist_ok=True)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    printer = Printer(args.gcodes, args.seconds_per_kb)

    async def on_client(reader, writer):
        await Connection(printer, reader, writer).serve()
        writer.close()

    server = await asyncio.start_unix_server(on_client, path=args.socket)
    print(f"fake klippy listening on {args.socket}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
