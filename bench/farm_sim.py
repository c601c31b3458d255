#!/usr/bin/env python3
"""Farm-queue simulation (issue #18): virtual printers working off a farm queue through the
real agent protocol (bench/farm_sim.sh runs it).

    python3 bench/farm_sim.py --base http://127.0.0.1:PORT --sessions S1,S2 --file-ids F1,F2 \
        --server-pid PID (--sqlite-path DB | --pg-url URL) [--printers 500] [--copies 5000] \
        [--jobs 50] [--mode long|plain] [--label sqlite] [--out OUT.json]

1. Registration: ``--printers`` agents register through the real protocol,
   ``--register-concurrency`` at a time (``register`` -> code, Global API
   ``add_printer_by_registration_code`` with the first session, ``register`` with the code ->
   ``auth_token``); the device says ``"type": --printer-type`` (PRUSA_MK4), so every printer
   gets that printer type. Its id is read from the database (``printers.printer_type_id``,
   which must be one and the same for all).
2. Every agent polls once ``ready`` with ``"bed_clear": true`` (no wait), then idles: in
   ``long`` mode a poll with ``"wait": --wait`` re-sent as soon as it returns, in ``plain``
   mode a poll every ``--interval`` s.
3. After a wait for a quiet machine, ``--jobs`` farm jobs are submitted with ``print_file``
   (``file_id``, ``printer_type_id``, ``copies``; ``--copies`` in all, spread evenly; job k by
   session k mod len(sessions), one after the other; with ``--owner-submits no`` the first
   session, which registered and so owns the printers, submits none). A call answered with an
   error is retried (see ``submit``).
4. Each agent, on ``gcodes``: acks it at once with ``printing`` percent 1, "prints" for a
   simulated duration (the k-th copy received takes durations[k], uniform in
   [--print-min, --print-max] from ``--seed``, so the total print time is the same in every
   run), with a plain progress poll every ``--interval`` s, then ``printing`` percent 100,
   ``ready`` percent 100 (the job ends ``finished``), waits ``--clear`` s (the operator
   clearing the tray) and polls ``ready`` with ``"bed_clear": true`` (+ ``wait`` in long mode).
   That poll frees the printer; the server normally answers it with the next copy's
   ``gcodes``.
5. The run ends when every copy has finished; it fails after ``--stall`` s without any
   dispatch or finish, ``--max-run`` s after the submission began, or on SIGTERM/SIGINT (the
   report is still written). The agents keep polling ``--tail`` s more (nothing may arrive).

Measured (client clock, time.monotonic):
- makespan: first ``gcodes`` received -> last job finished (answer to its ``ready`` 100);
  ideal makespan max(total print s / printers, longest print); utilisation = total print s /
  (printers x makespan). For reference, the makespan of a perfect dispatcher (zero latency,
  the same durations in the same order, the same --clear s per copy, no protocol round trips):
  each copy to the printer free first.
- dispatch latency: from sending the ``bed_clear`` poll to holding the next ``gcodes``
  (answer of that poll = "inline", else a later poll), for every bed_clear followed by a copy;
  bed_clear polls that got no copy although copies were still unassigned (client view) are
  counted apart. Also: submission -> first ``gcodes`` of the printers idle at submission.
- CPU from the first ``print_file`` to the last finish: the server PID (utime+stime), the Postgres backends of its
  database (pg_stat_activity, refreshed every 2 s), this client, the machine; as % of one core.
- correctness, from the database: finished farm jobs (status 77) == copies, no copy with more
  than one finished job, every farm copy ``done``, no other job status; and from
  ``get_farm_queue``: done == copies. Any failure (or a protocol anomaly: a copy handed to a
  busy printer, a job id handed out twice, more copies than submitted) exits with status 1.

Results: a table row on stdout, JSON at ``--out``, and beside it ``<label>-copies.csv`` (one
row per copy) and ``<label>-timeline.csv`` (one row per second).
"""

import argparse
import asyncio
import csv
import heapq
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from agents_bench import (  # noqa: E402  (shared helpers)
    CLK_TCK,
    load1,
    machine_busy_ticks,
    pct,
    proc_ticks,
    register_all,
    uvloop,
    wait_for_quiet,
)

FINISHED = 77


def log(msg):
    print(f"[farm {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_start_ticks(pid):
    """Start time of a process, in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return int(s[s.rindex(")") + 2 :].split()[19])


def boot_ticks_now():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) * CLK_TCK


# --- the database (read-only checks) ------------------------------------------------------


class Db:
    def __init__(self, sqlite_path, pg_url):
        self.sqlite_path, self.pg_url = sqlite_path, pg_url

    def rows(self, sql):
        if self.sqlite_path:
            con = sqlite3.connect(self.sqlite_path, timeout=30)
            try:
                return [tuple(r) for r in con.execute(sql).fetchall()]
            finally:
                con.close()
        out = subprocess.run(
            ["psql", self.pg_url, "-v", "ON_ERROR_STOP=1", "-qAtX", "-F", "\t", "-c", sql],
            check=True, capture_output=True, text=True,
        ).stdout
        return [tuple(_num(v) for v in line.split("\t")) for line in out.splitlines() if line]


def _num(v):
    try:
        return int(v)
    except ValueError:
        return v


async def pg_pids(pg_url):
    if not pg_url:
        return []
    proc = await asyncio.create_subprocess_exec(
        "psql", pg_url, "-qAtX", "-c",
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    return [int(x) for x in out.split()] if proc.returncode == 0 else []


class CpuMeter:
    """CPU ticks of the server, the Postgres backends of its database (pids may come and go:
    each is counted from its first sight, or from 0 when it started inside the window), this
    client and the machine, sampled every second between start() and stop()."""

    def __init__(self, server_pid, pg_url):
        self.server_pid, self.pg_url = server_pid, pg_url
        self.pg_base, self.pg_last = {}, {}
        self.timeline = []  # (t, server ticks, pg ticks, client ticks, machine ticks)

    async def refresh_pg(self, t0_boot_ticks=None):
        for pid in await pg_pids(self.pg_url):
            if pid in self.pg_base:
                continue
            start = proc_start_ticks(pid)
            born_inside = t0_boot_ticks is not None and start is not None and start >= t0_boot_ticks
            self.pg_base[pid] = 0 if born_inside else proc_ticks([pid])
            self.pg_last[pid] = self.pg_base[pid]

    def pg_ticks(self):
        total = 0
        for pid, base in self.pg_base.items():
            if os.path.exists(f"/proc/{pid}"):  # a backend gone keeps its last count
                self.pg_last[pid] = proc_ticks([pid])
            total += self.pg_last[pid] - base
        return total

    def sample(self):
        return (
            time.monotonic(),
            proc_ticks([self.server_pid]),
            self.pg_ticks(),
            proc_ticks([os.getpid()]),
            machine_busy_ticks(),
        )

    async def start(self):
        await self.refresh_pg()
        self.t0_boot = boot_ticks_now()
        self.first = self.sample()
        self.timeline = [self.first]

    async def tick(self, k):
        if self.pg_url and k % 2 == 0:
            await self.refresh_pg(self.t0_boot)
        s = self.sample()
        self.timeline.append(s)
        return s

    def between(self, a, b):
        secs = b[0] - a[0]
        pc = lambda i: round(100.0 * (b[i] - a[i]) / CLK_TCK / secs, 1) if secs > 0 else None  # noqa: E731
        other = None
        if secs > 0:
            other = round(max(0.0, 100.0 * ((b[4] - a[4]) - (b[1] - a[1]) - (b[2] - a[2]) - (b[3] - a[3]))
                                  / CLK_TCK / secs), 1)
        return {
            "seconds": round(secs, 2),
            "other_processes_pct_of_one_core": other,
            "server_pct_of_one_core": pc(1),
            "postgres_pct_of_one_core": pc(2) if self.pg_url else None,
            "client_pct_of_one_core": pc(3),
            "machine_pct_of_one_core": pc(4),
            "machine_cores": os.cpu_count(),
        }


# --- the agents ----------------------------------------------------------------------------


class Shared:
    """State all agents share: the copy counter, the clock marks, the samples."""

    def __init__(self, args, durations):
        self.args = args
        self.durations = durations
        self.copies = args.copies
        self.handed_out = 0  # distinct gcodes received
        self.finished = 0  # jobs ended by the ready-100 poll
        self.job_ids = {}  # job id -> agent index (a job handed out twice is an anomaly)
        self.copy_rows = []  # per copy received
        self.t_submit = None
        self.t_first_dispatch = None
        self.t_last_finish = None
        self.t_last_progress = time.monotonic()
        self.initial_polls = 0
        self.initial_done = asyncio.Event()
        self.all_finished = asyncio.Event()
        self.stop = asyncio.Event()
        self.latencies = []  # (seconds, inline?) bed_clear -> next gcodes
        self.first_wave = []  # submission -> first gcodes, for printers idle at submission
        self.starved = 0  # bed_clear answered without a copy while copies were unassigned
        self.anomalies = []
        self.errors = 0
        self.http_errors = 0
        self.protocol_errors = 0
        self.error_samples = []
        self.requests = 0
        # Round trips of polls not held, by kind: the first poll (all agents at once, before
        # the submission), ack, progress, finish; clear and idle in plain mode only.
        self.rtt = {"first": [], "ack": [], "progress": [], "finish": [], "clear": [], "idle": []}
        self.held = []  # long-poll idle answers without a command: seconds held
        self.extra_after_done = 0  # gcodes received after every copy had finished


class FarmAgent:
    def __init__(self, i, printer_type):
        self.i = i
        self.device = {
            "VID": "2C99",
            "PID": "0002",
            "SNR": f"FARMSIM{i:06d}",
            "type": printer_type,
            "mac": f"02:01:00:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}",
            "version": "bench-farm-1.0",
            "local_ip": f"10.2.{i // 256}.{i % 256}",
        }
        self.token = None
        self.printer_id = None
        self.ack = None
        self.seen = set()
        self.busy = False
        self.pending = None  # a gcodes command to start next
        self.free_since = None  # monotonic time of the bed_clear poll that freed the printer
        self.free_while_waiting = False
        self.printed = 0
        self.print_s = 0.0

    def body(self, state, percent, bed_clear=False, wait=None):
        b = {
            "auth_token": self.token,
            "report": {
                "state": state,
                "percent": percent,
                "temps": [215.0, 60.0] if state == "printing" else [23.0, 22.5],
                "target_temps": [215, 60] if state == "printing" else [0, 0],
            },
        }
        if self.ack is not None:
            b["command_ack"] = {"number": self.ack, "result": True}
        if bed_clear:
            b["bed_clear"] = True
        if wait:
            b["wait"] = wait
        return b


async def poll(http, url, sh, a, kind, state, percent, bed_clear=False, wait=None):
    """One command poll, retried until the server answers 200 without an error (an agent
    keeps its report and ack for the next try). Returns (answer, t_sent, t_answered)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=(wait or 0) + 30)
    while True:
        body = a.body(state, percent, bed_clear, wait)
        sent_ack = a.ack
        t0 = time.monotonic()
        try:
            async with http.post(url, json=body, timeout=timeout) as r:
                status = r.status
                d = await r.json(content_type=None)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            sh.errors += 1
            if len(sh.error_samples) < 8:
                sh.error_samples.append(f"{kind}: {e!r} after {time.monotonic() - t0:.3f}s")
            await asyncio.sleep(0.5)
            continue
        t1 = time.monotonic()
        sh.requests += 1
        if status != 200 or not isinstance(d, dict) or "error" in d:
            if status != 200:
                sh.http_errors += 1
            else:
                sh.protocol_errors += 1
            if len(sh.error_samples) < 8:
                sh.error_samples.append(f"{kind}: HTTP {status}: {str(d)[:300]}")
            await asyncio.sleep(0.5)
            continue
        if sent_ack is not None and a.ack == sent_ack:
            a.ack = None
        if wait:  # held: not a round trip
            if not d.get("command"):
                sh.held.append(t1 - t0)
        else:
            sh.rtt[kind].append(t1 - t0)
        return d, t0, t1


def take(sh, a, d, t):
    """Handles a command in an answer; returns True when it is a new gcodes."""
    cmd = d.get("command")
    if not cmd:
        return False
    number = d.get("number")
    a.ack = number
    if number in a.seen:
        return False  # re-sent (our ack got lost): acked again on the next poll
    a.seen.add(number)
    if cmd != "gcodes":
        sh.anomalies.append(f"agent {a.i}: unexpected command {cmd} ({d})")
        return False
    job = d.get("job_id")
    if a.busy or a.pending is not None:
        sh.anomalies.append(f"agent {a.i}: gcodes for job {job} while busy")
    if job in sh.job_ids:
        sh.anomalies.append(f"job {job} handed to agent {a.i} and agent {sh.job_ids[job]}")
    sh.job_ids[job] = a.i
    if sh.all_finished.is_set():
        sh.extra_after_done += 1
    k = sh.handed_out
    sh.handed_out += 1
    if k >= sh.copies:
        sh.anomalies.append(f"agent {a.i}: copy #{k + 1} received, only {sh.copies} submitted")
    if sh.t_first_dispatch is None:
        sh.t_first_dispatch = t
    sh.t_last_progress = t
    a.pending = {"job_id": job, "number": number, "t_recv": t, "k": k,
                 "duration": sh.durations[k % len(sh.durations)]}
    # Latency from the poll that freed the printer (none for the first wave).
    if a.free_since is not None:
        lat = t - a.free_since
        sh.latencies.append((lat, a.pending.get("inline", False)))
        a.pending["latency"] = lat
        a.free_since = None
    elif sh.t_submit is not None and a.printed == 0:
        sh.first_wave.append(t - sh.t_submit)
    return True


async def print_copy(http, url, sh, a):
    job = a.pending
    a.busy = True
    args = sh.args
    t_recv, dur = job["t_recv"], job["duration"]
    # Ack + printing (heating done at once in this simulation).
    d, _, t = await poll(http, url, sh, a, "ack", "printing", 1)
    take(sh, a, d, t)
    t_end = t_recv + dur
    while True:
        left = t_end - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(args.interval, left))
        if t_end - time.monotonic() > 0.05:
            done = (time.monotonic() - t_recv) / dur
            d, _, t = await poll(http, url, sh, a, "progress", "printing", round(1 + 98 * done, 1))
            take(sh, a, d, t)
    d, _, t = await poll(http, url, sh, a, "finish", "printing", 100)
    take(sh, a, d, t)
    d, _, t_fin = await poll(http, url, sh, a, "finish", "ready", 100)
    take(sh, a, d, t_fin)
    sh.finished += 1
    sh.t_last_finish = t_fin
    sh.t_last_progress = t_fin
    job["t_finish"] = t_fin
    job["agent"] = a.i
    job["printer_id"] = a.printer_id
    sh.copy_rows.append(job)
    a.printed += 1
    a.print_s += dur
    a.pending = None
    a.busy = False
    if sh.finished >= sh.copies:
        sh.all_finished.set()
    # The operator clears the tray; the agent says so.
    await asyncio.sleep(args.clear)
    a.free_while_waiting = sh.handed_out < sh.copies
    d, t_sent, t = await poll(http, url, sh, a, "clear", "ready", 0, bed_clear=True,
                              wait=args.wait if args.mode == "long" else None)
    a.free_since = t_sent
    if a.free_while_waiting and not d.get("command"):
        sh.starved += 1
    if take(sh, a, d, t) and a.pending is not None:
        a.pending["inline"] = True
        sh.latencies[-1] = (sh.latencies[-1][0], True)


async def agent_loop(http, url, sh, a):
    args = sh.args
    d, _, t = await poll(http, url, sh, a, "first", "ready", 0, bed_clear=True)
    take(sh, a, d, t)
    sh.initial_polls += 1
    if sh.initial_polls == len(sh.agents):
        sh.initial_done.set()
    next_t = time.monotonic() + random.uniform(0, args.interval)
    while not sh.stop.is_set():
        if a.pending is not None:
            await print_copy(http, url, sh, a)
            next_t = time.monotonic() + args.interval
            continue
        if args.mode == "long":
            d, _, t = await poll(http, url, sh, a, "idle", "ready", 0, wait=args.wait)
        else:
            delay = next_t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_t = max(next_t + args.interval, time.monotonic())
            d, _, t = await poll(http, url, sh, a, "idle", "ready", 0)
        take(sh, a, d, t)


async def global_call(http, base, name, data):
    async with http.post(f"{base}/apiglobal/{name}", data=data) as r:
        d = await r.json(content_type=None)
        if r.status != 200 or not d.get("result"):
            raise RuntimeError(f"{name}: HTTP {r.status}: {d}")
        return d["message"]


async def submit(http, base, session, file_id, type_id, copies, known, failed_calls):
    """print_file with a printer type and copies; answers (farm job id, copies started).
    A failed call (the server answers 503 "please retry" when its database is busy) is
    retried up to 10 times, 1 s apart, but only after get_farm_queue shows that it made no
    farm job: print_file commits the farm job before its dispatch pass, so a call can fail
    after the job exists (then that job is taken, not a second one made)."""
    form = {"session": session, "file_id": file_id, "printer_type_id": type_id, "copies": copies}
    for attempt in range(10):
        try:
            msg = await global_call(http, base, "print_file", form)
            return int(msg["farm_job_id"]), len(msg.get("job_ids") or [])
        except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError) as e:
            failed_calls.append(f"{time.strftime('%H:%M:%S')} {e}")
            log(f"print_file failed (attempt {attempt + 1}): {e}")
        await asyncio.sleep(1.0)
        try:
            listed = await global_call(http, base, "get_farm_queue", {"session": session, "limit": 500})
        except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError) as e:
            failed_calls.append(f"{time.strftime('%H:%M:%S')} get_farm_queue: {e}")
            log(f"get_farm_queue failed too: {e}")
            continue
        made = [f for f in listed if f["farm_job_id"] not in known
                and f["file_id"] == file_id and f["copies"] == copies]
        if made:
            failed_calls.append(f"farm job {made[0]['farm_job_id']} exists although print_file failed")
            return made[0]["farm_job_id"], 0
    raise RuntimeError(f"print_file failed 10 times: {failed_calls[-1]}")


def perfect_dispatcher_makespan(durations, printers, clear):
    """Each copy, in the order the run handed them out, to the printer free first; a printer
    is free again `clear` s after its print; no other delay."""
    free = [0.0] * printers
    heapq.heapify(free)
    end = 0.0
    for d in durations:
        t = heapq.heappop(free)
        end = max(end, t + d)
        heapq.heappush(free, t + d + clear)
    return end


def ms(v):
    return None if v is None or v != v else round(1000 * v, 1)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--sessions", required=True, help="comma-separated user sessions")
    ap.add_argument("--file-ids", required=True, help="comma-separated, one per session")
    ap.add_argument("--server-pid", required=True, type=int)
    ap.add_argument("--sqlite-path", default="")
    ap.add_argument("--pg-url", default="")
    ap.add_argument("--label", default="")
    ap.add_argument("--printers", type=int, default=500)
    ap.add_argument("--copies", type=int, default=5000)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--printer-type", default="PRUSA_MK4")
    ap.add_argument("--mode", choices=("long", "plain"), default="long")
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--wait", type=float, default=20.0)
    ap.add_argument("--print-min", type=float, default=2.0)
    ap.add_argument("--print-max", type=float, default=12.0)
    ap.add_argument("--clear", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--register-concurrency", type=int, default=50)
    ap.add_argument("--stall", type=float, default=60.0)
    ap.add_argument("--tail", type=float, default=3.0)
    ap.add_argument("--max-run", type=float, default=0,
                    help="fail when the copies have not all finished this many s after the "
                         "submission began (0: max(600, 10 x the ideal makespan))")
    ap.add_argument("--max-load", type=float, default=1.5)
    ap.add_argument("--load-wait", type=float, default=600)
    ap.add_argument("--owner-submits", choices=("yes", "no"), default="yes",
                    help="no: the first session registers the printers (owns them) and submits "
                         "no farm job; the others submit")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    sessions = [s for s in args.sessions.split(",") if s]
    file_ids = [int(f) for f in args.file_ids.split(",") if f]
    if len(sessions) != len(file_ids):
        ap.error("one file id per session")
    submitters = list(range(len(sessions))) if args.owner_submits == "yes" else list(range(1, len(sessions)))
    if not submitters:
        ap.error("--owner-submits no needs at least two sessions")
    if not args.sqlite_path and not args.pg_url:
        ap.error("--sqlite-path or --pg-url")
    if not 1 <= args.jobs <= args.copies:
        ap.error("--jobs must be between 1 and --copies")
    per_job = [args.copies // args.jobs + (1 if k < args.copies % args.jobs else 0) for k in range(args.jobs)]
    if max(per_job) > 1000:
        ap.error(f"{max(per_job)} copies per farm job: at most 1000 (more --jobs)")
    if not 0 < args.print_min <= args.print_max:
        ap.error("0 < --print-min <= --print-max")

    rng = random.Random(args.seed)
    durations = [round(rng.uniform(args.print_min, args.print_max), 3) for _ in range(args.copies)]
    total_print = sum(durations)
    db = Db(args.sqlite_path, args.pg_url)
    sh = Shared(args, durations)
    url = f"{args.base}/apiprinter/v1/printer/command"
    failures = []

    conn = aiohttp.TCPConnector(limit=args.printers + 100, limit_per_host=0, keepalive_timeout=3.0)
    async with aiohttp.ClientSession(connector=conn) as http:
        agents = [FarmAgent(i, args.printer_type) for i in range(args.printers)]
        sh.agents = agents
        log(f"registering {len(agents)} agents ({args.printer_type}), {args.register_concurrency} at a time")
        reg_s = await register_all(http, args.base, sessions[0], agents, args.register_concurrency)
        log(f"registered in {reg_s:.1f}s")
        types = db.rows("SELECT printer_type_id, count(*) FROM printers GROUP BY 1")
        if len(types) != 1 or types[0][0] in (None, "") or types[0][1] != args.printers:
            raise SystemExit(f"FAILED: printers by type {types}: expected {args.printers} of one type")
        type_id = int(types[0][0])
        log(f"printer type id {type_id} ({args.printer_type}) on all {args.printers} printers")

        tasks = [asyncio.create_task(agent_loop(http, url, sh, a)) for a in agents]
        try:
            await asyncio.wait_for(sh.initial_done.wait(), 120)
        except asyncio.TimeoutError:
            raise SystemExit(f"FAILED: only {sh.initial_polls} of {len(agents)} agents polled within 120 s")
        await asyncio.sleep(1.0)  # long mode: the idle polls are held now
        load = await wait_for_quiet(args.max_load, args.load_wait)
        load_txt = open("/proc/loadavg").read().strip()
        req0, err0 = sh.requests, sh.errors + sh.http_errors + sh.protocol_errors

        cpu = CpuMeter(args.server_pid, args.pg_url)
        await cpu.start()
        sh.t_submit = sh.t_last_progress = time.monotonic()
        farm_jobs, submit_ms, started_at_submit, submit_failures = [], [], 0, []
        for k, n in enumerate(per_job):
            s = submitters[k % len(submitters)]
            t0 = time.monotonic()
            try:
                fj, started = await submit(http, args.base, sessions[s], file_ids[s], type_id, n,
                                           farm_jobs, submit_failures)
            except RuntimeError as e:
                failures.append(f"farm job {k + 1} of {len(per_job)} not submitted: {e}")
                break
            submit_ms.append(1000 * (time.monotonic() - t0))
            farm_jobs.append(fj)
            started_at_submit += started
        t_submitted = time.monotonic()
        log(f"{len(farm_jobs)} farm jobs ({sum(per_job[:len(farm_jobs)])} copies) submitted in "
            f"{t_submitted - sh.t_submit:.2f}s; {started_at_submit} copies started by the calls; "
            f"{len(submit_failures)} failed print_file calls")

        # Watch: progress every second; stall = no dispatch and no finish for --stall s; too
        # slow = not done --max-run s after the submission began; SIGTERM/SIGINT end it too.
        max_run = args.max_run or max(600.0, 10 * max(total_print / args.printers, max(durations)))
        interrupted = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, interrupted.set)
        timeline, k, load_max = [], 0, load1()
        if len(farm_jobs) < len(per_job):
            # What was submitted is still followed to its end (or a stall); the run fails.
            sh.copies = sum(per_job[:len(farm_jobs)])
            if sh.finished >= sh.copies:
                sh.all_finished.set()
        while not sh.all_finished.is_set():
            try:
                await asyncio.wait_for(sh.all_finished.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            k += 1
            s = await cpu.tick(k)
            idle = sum(1 for a in agents if not a.busy and a.pending is None)
            load_max = max(load_max, load1())
            timeline.append((round(s[0] - sh.t_submit, 2), sh.handed_out, sh.finished,
                             sh.handed_out - sh.finished, idle, s[1], s[2], s[3], s[4]))
            if k % 10 == 0:
                log(f"t={s[0] - sh.t_submit:.0f}s handed out {sh.handed_out}, finished {sh.finished}, "
                    f"idle printers {idle}, load {load1()}")
            if interrupted.is_set():
                failures.append(f"interrupted (handed out {sh.handed_out}, finished {sh.finished} of {args.copies})")
                break
            if time.monotonic() - sh.t_submit > max_run:
                failures.append(
                    f"too slow: {sh.finished} of {args.copies} copies finished {max_run:.0f}s after the "
                    f"submission began (handed out {sh.handed_out})")
                break
            if time.monotonic() - sh.t_last_progress > args.stall:
                failures.append(
                    f"stall: no copy handed out or finished for {args.stall:.0f}s "
                    f"(handed out {sh.handed_out}, finished {sh.finished} of {args.copies})")
                break
        s_end = cpu.sample()
        req_end = sh.requests
        await asyncio.sleep(args.tail)  # nothing may come now
        sh.stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        # The server's view.
        queue = {}
        for sess in sessions:
            try:
                listed = await global_call(http, args.base, "get_farm_queue", {"session": sess, "limit": 500})
            except (RuntimeError, aiohttp.ClientError, asyncio.TimeoutError) as e:
                failures.append(f"get_farm_queue failed: {e}")
                break
            for fj in listed:
                if fj["farm_job_id"] in farm_jobs:
                    queue[fj["farm_job_id"]] = fj
    q_done = sum(fj["done"] for fj in queue.values())
    q_left = {k2: sum(fj[k2] for fj in queue.values()) for k2 in ("waiting", "printing", "failed", "cancelled")}

    finished_db = db.rows(f"SELECT count(*) FROM jobs WHERE status_id = {FINISHED} AND farm_copy_id IS NOT NULL")[0][0]
    dup = db.rows(f"SELECT farm_copy_id, count(*) FROM jobs WHERE status_id = {FINISHED} "
                  "GROUP BY 1 HAVING count(*) > 1")
    by_status = dict(db.rows("SELECT status_id, count(*) FROM jobs GROUP BY 1"))
    copies_by_state = dict(db.rows("SELECT state, count(*) FROM farm_copies GROUP BY 1"))
    retried = db.rows("SELECT count(*) FROM farm_copies WHERE attempts > 1")[0][0]
    printers_used = len({r["printer_id"] for r in sh.copy_rows})

    if len(queue) != len(farm_jobs):
        failures.append(f"get_farm_queue lists {len(queue)} of the {len(farm_jobs)} farm jobs")
    if q_done != args.copies:
        failures.append(f"get_farm_queue: done {q_done} != copies {args.copies} (others: {q_left})")
    if finished_db != args.copies:
        failures.append(f"database: {finished_db} finished farm jobs != copies {args.copies}")
    if dup:
        failures.append(f"database: copies with more than one finished job: {dup[:10]} ({len(dup)})")
    if set(by_status) - {FINISHED}:
        failures.append(f"database: jobs not finished: {by_status}")
    if copies_by_state != {"done": args.copies}:
        failures.append(f"database: farm copies by state {copies_by_state}")
    if sh.finished != args.copies or sh.handed_out != sh.copies:
        failures.append(f"agents: {sh.handed_out} copies received, {sh.finished} finished, of {args.copies}")
    if sh.anomalies:
        failures.append(f"{len(sh.anomalies)} protocol anomalies: {sh.anomalies[:5]}")
    if sh.extra_after_done:
        failures.append(f"{sh.extra_after_done} gcodes received after every copy had finished")

    # Figures.
    t_first = sh.t_first_dispatch
    makespan = (sh.t_last_finish - t_first) if (t_first and sh.t_last_finish) else None
    ideal = max(total_print / args.printers, max(durations))
    received = [r["duration"] for r in sorted(sh.copy_rows, key=lambda r: r["k"])]
    perfect = perfect_dispatcher_makespan(received or durations, args.printers, args.clear)
    lat = [x for x, _ in sh.latencies]
    inline = sum(1 for _, i in sh.latencies if i)
    win = cpu.between(cpu.first, s_end)
    busy_print = sum(r["duration"] for r in sh.copy_rows)
    res = {
        "label": args.label,
        "mode": args.mode,
        "printers": args.printers,
        "copies": args.copies,
        "farm_jobs": len(farm_jobs),
        "users": len(sessions),
        "submitting_users": len(submitters),
        "printer_owner_submits": args.owner_submits == "yes",
        "copies_per_job": per_job[0] if len(set(per_job)) == 1 else per_job,
        "print_s_min_max": [args.print_min, args.print_max],
        "clear_s": args.clear,
        "interval_s": args.interval,
        "wait_s": args.wait if args.mode == "long" else None,
        "seed": args.seed,
        "registration_s": round(reg_s, 1),
        "load_before": load,
        "loadavg_before": load_txt,
        "load1_max_during_run": load_max,
        "submit_s": round(t_submitted - sh.t_submit, 2),
        "print_file_ms_p50_max": [round(pct(submit_ms, 50), 1), round(max(submit_ms, default=0), 1)],
        "started_by_print_file": started_at_submit,
        "print_file_failures": submit_failures,
        "first_wave_ms_p50_p99_max": [ms(pct(sh.first_wave, 50)), ms(pct(sh.first_wave, 99)),
                                      ms(max(sh.first_wave) if sh.first_wave else None)],
        "first_wave_n": len(sh.first_wave),
        "total_print_s": round(total_print, 1),
        "printed_print_s": round(busy_print, 1),
        "ideal_makespan_s": round(ideal, 2),
        "perfect_dispatcher_makespan_s": round(perfect, 2),
        "makespan_s": round(makespan, 2) if makespan else None,
        "submit_to_last_finish_s": round(sh.t_last_finish - sh.t_submit, 2) if sh.t_last_finish else None,
        "utilisation_pct": round(100 * busy_print / (args.printers * makespan), 1) if makespan else None,
        "perfect_dispatcher_utilisation_pct": round(100 * sum(received or durations) / (args.printers * perfect), 1),
        "makespan_over_ideal": round(makespan / ideal, 3) if makespan else None,
        "makespan_over_perfect_dispatcher": round(makespan / perfect, 3) if makespan else None,
        "dispatch_latency_ms_p50": ms(pct(lat, 50)),
        "dispatch_latency_ms_p90": ms(pct(lat, 90)),
        "dispatch_latency_ms_p99": ms(pct(lat, 99)),
        "dispatch_latency_ms_max": ms(max(lat) if lat else None),
        "dispatch_latency_samples": len(lat),
        "dispatch_inline": inline,
        "dispatch_later": len(lat) - inline,
        "dispatch_later_ms_p50_max": [ms(pct([x for x, i in sh.latencies if not i], 50)),
                                      ms(max([x for x, i in sh.latencies if not i], default=None))],
        "bed_clear_without_copy_while_unassigned": sh.starved,
        "cpu": win,
        "requests": req_end - req0,
        "requests_per_s": round((req_end - req0) / win["seconds"], 1) if win["seconds"] else None,
        "poll_rtt_ms_p50_p99": {k2: [ms(pct(v, 50)), ms(pct(v, 99))] for k2, v in sh.rtt.items() if v},
        "held_s_p50": round(pct(sh.held, 50), 2) if sh.held else None,
        "errors": sh.errors + sh.http_errors + sh.protocol_errors,
        "errors_during_run": sh.errors + sh.http_errors + sh.protocol_errors - err0,
        "error_samples": sh.error_samples,
        "printers_used": printers_used,
        "copies_per_printer_min_max": [min(a.printed for a in sh.agents), max(a.printed for a in sh.agents)],
        "check": {
            "get_farm_queue_done": q_done,
            "get_farm_queue_other": q_left,
            "db_finished_farm_jobs": finished_db,
            "db_copies_finished_twice": len(dup),
            "db_jobs_by_status": {str(k2): v for k2, v in by_status.items()},
            "db_copies_by_state": copies_by_state,
            "db_copies_retried": retried,
            "anomalies": sh.anomalies[:20],
        },
        "failures": failures,
    }
    if args.out:
        base = os.path.splitext(args.out)[0]
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
        with open(base + "-copies.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["k", "job_id", "printer_id", "agent", "received_s", "duration_s",
                        "finished_s", "latency_from_bed_clear_ms", "inline"])
            for r in sorted(sh.copy_rows, key=lambda r: r["k"]):
                w.writerow([r["k"], r["job_id"], r["printer_id"], r["agent"],
                            round(r["t_recv"] - sh.t_submit, 3), r["duration"],
                            round(r["t_finish"] - sh.t_submit, 3), ms(r.get("latency")),
                            int(bool(r.get("inline")))])
        with open(base + "-timeline.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "handed_out", "finished", "printing", "idle_printers",
                        "server_ticks", "postgres_ticks", "client_ticks", "machine_ticks"])
            w.writerows(timeline)
    log(json.dumps({k2: v for k2, v in res.items() if k2 not in ("check", "error_samples")}))
    log("check: " + json.dumps(res["check"]))
    print(row(res), flush=True)
    if failures:
        for f in failures:
            log(f"FAILED: {f}")
        sys.exit(1)


def row(r):
    fmt = lambda v: "–" if v is None else v  # noqa: E731
    c = r["cpu"]
    return (
        f"| {r['label']} | {r['mode']} | {r['printers']} | {r['copies']} | "
        f"{fmt(r['makespan_s'])} / {r['ideal_makespan_s']} / {r['perfect_dispatcher_makespan_s']} | "
        f"{fmt(r['utilisation_pct'])} (perfect {r['perfect_dispatcher_utilisation_pct']}) | "
        f"{fmt(r['dispatch_latency_ms_p50'])} / {fmt(r['dispatch_latency_ms_p99'])} / "
        f"{fmt(r['dispatch_latency_ms_max'])} ({r['dispatch_inline']}/{r['dispatch_latency_samples']} inline) | "
        f"{fmt(c['server_pct_of_one_core'])} | {fmt(c['postgres_pct_of_one_core'])} | "
        f"{fmt(c['client_pct_of_one_core'])} | {fmt(c['machine_pct_of_one_core'])} | "
        f"{r['requests_per_s']} | {r['check']['get_farm_queue_done']} / {r['check']['db_copies_finished_twice']} | "
        f"{r['errors']} | {r['load_before']} ({r['load1_max_during_run']}) | {fmt(c['other_processes_pct_of_one_core'])} |"
    )


HEADER = (
    "| backend | idle polls | printers | copies | makespan s: actual / ideal / perfect dispatcher | "
    "utilisation % | dispatch latency p50 / p99 / max ms (inline) | server CPU % of a core | "
    "Postgres backends % | client % | machine % (of one core) | polls/s | done / copies printed twice | "
    "errors | load before (max during) | other processes % |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


if __name__ == "__main__":
    if sys.argv[1:] == ["--header"]:
        print(HEADER)
        sys.exit(0)
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main())
