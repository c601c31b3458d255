#!/usr/bin/env python3
"""Simulated printer agents against one printfarm server (bench/agents_bench.sh runs it).

    python3 bench/agents_bench.py --base http://127.0.0.1:PORT --session S --file-id F \
        --server-pid PID [--pg-url URL] [--agents 2000] [--modes plain,long] [--label sqlite]

1. Registration (once): every agent registers through the real protocol, ``--register-
   concurrency`` at a time: POST /apiprinter/v1/printer/register (device info) -> code; the
   user redeems it with the Global API ``add_printer_by_registration_code``; the agent's next
   ``register`` poll (with the code) -> ``auth_token``.
2. For each mode (``plain``: a poll every ``--interval`` s; ``long``: the same, with
   ``"wait": --wait`` so that the server holds the request until a command arrives; the next
   request goes out at once when a held one returns, at most one per interval):
   - wait until the 1-minute load average is below ``--max-load`` (at most ``--load-wait`` s);
   - start all agents' loops: POST /apiprinter/v1/printer/command with
     ``{"auth_token", "report": {"state", "percent", "temps": [21.5, 22.0],
     "target_temps": [0, 0]}}`` (+ ``command_ack`` of the command received by the previous
     poll, + ``wait`` in long mode);
   - start a job on ``--jobs`` printers of agents not used before (``print_file`` with the
     user session; the printers are ready, their trays clear): each agent gets the
     ``gcodes`` command, acks it on its next poll and reports ``printing`` from then on;
   - after ``--warmup`` s (and once every job agent reported ``printing``), measure for
     ``--duration`` s: the server's CPU (utime+stime from /proc/PID/stat), that of the
     Postgres backends serving its database (``--pg-url``), this client's, the machine's;
     every poll's latency; the server's VmRSS at the window's end, every agent still connected;
     and ``--jobs`` times, spread over the window, ``job_pause`` of one
     job: the delay from sending ``job_pause`` to the agent's poll returning
     ``{"command": "pause", ...}``.
   Results go to stdout (a table row per mode) and to ``--out`` (JSON).
"""

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time

import aiohttp

try:
    import uvloop  # optional: less client CPU
except ImportError:  # pragma: no cover
    uvloop = None

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[agents {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def proc_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total


def machine_busy_ticks():
    with open("/proc/stat") as f:
        parts = f.readline().split()
    # user nice system idle iowait irq softirq steal
    v = list(map(int, parts[1:9]))
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def status_kib(pid, field):
    """A ``/proc/PID/status`` size in KiB (None when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


async def wait_for_quiet(max_load, max_wait):
    waited = 0
    load = load1()
    while load >= max_load and waited < max_wait:
        if waited % 60 == 0:
            log(f"load average {load} >= {max_load}, waiting")
        await asyncio.sleep(10)
        waited += 10
        load = load1()
    if load >= max_load:
        log(f"warning: load average still {load} after {waited}s; measuring anyway")
        return f"{load}!"
    log(f"load before measuring: {open('/proc/loadavg').read().strip()}")
    return str(load)


def pg_backend_pids(pg_url):
    if not pg_url:
        return []
    try:
        out = subprocess.run(
            ["psql", pg_url, "-qAtX", "-c",
             "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
             "AND pid <> pg_backend_pid()"],
            check=True, capture_output=True, text=True,
        ).stdout
        return [int(x) for x in out.split()]
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        log(f"warning: cannot list Postgres backends: {e}")
        return []


class Agent:
    def __init__(self, i):
        self.i = i
        self.device = {
            "VID": "2C99",
            "PID": "0002",
            "SNR": f"BENCHAGENT{i:06d}",
            "mac": f"02:00:00:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}",
            "version": "bench-1.0",
            "local_ip": f"10.1.{i // 256}.{i % 256}",
        }
        self.token = None
        self.printer_id = None
        self.state = "ready"
        self.percent = 0
        self.ack = None  # number of the command to acknowledge on the next poll
        self.seen = set()  # command numbers received
        self.job_id = None
        self.gcodes_number = None
        self.gcodes_acked = False
        self.printing_reported = False
        self.pause_waiter = None  # (t_sent, future)

    def body(self, wait):
        b = {
            "auth_token": self.token,
            "report": {
                "state": self.state,
                "percent": self.percent,
                "temps": [21.5, 22.0],
                "target_temps": [0, 0],
            },
        }
        if self.ack is not None:
            b["command_ack"] = {"number": self.ack, "result": True}
        if wait:
            b["wait"] = wait
        return b


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.latencies = []  # plain, or long-mode answers with a command
        self.held = []  # long mode: empty answers, seconds held
        self.requests = 0
        self.errors = 0
        self.http_errors = 0
        self.protocol_errors = 0
        self.commands = 0
        self.error_samples = []
        self.error_times = []  # seconds after the start of the window
        self.t_window = time.monotonic()


async def register_all(http, base, session, agents, concurrency):
    sem = asyncio.Semaphore(concurrency)
    url_reg = f"{base}/apiprinter/v1/printer/register"
    url_add = f"{base}/apiglobal/add_printer_by_registration_code"

    async def one(a):
        async with sem:
            async with http.post(url_reg, json=a.device) as r:
                d = await r.json(content_type=None)
            code = d.get("registration_code")
            if not code:
                raise RuntimeError(f"register: {d}")
            async with http.post(url_add, data={"session": session, "registration_code": code}) as r:
                d = await r.json(content_type=None)
            if not d.get("result"):
                raise RuntimeError(f"add_printer_by_registration_code: {r.status} {d}")
            a.printer_id = int(d["message"]["printer_id"])
            async with http.post(url_reg, json=dict(a.device, registration_code=code)) as r:
                d = await r.json(content_type=None)
            if not d.get("auth_token"):
                raise RuntimeError(f"register with code: {d}")
            a.token = d["auth_token"]

    t0 = time.monotonic()
    await asyncio.gather(*(one(a) for a in agents))
    return time.monotonic() - t0


async def agent_loop(http, url, a, mode, interval, wait, stop_evt, stats, measuring):
    next_t = time.monotonic() + random.uniform(0, interval)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=(wait or 0) + 30)
    while not stop_evt.is_set():
        delay = next_t - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stop_evt.wait(), delay)
                break
            except asyncio.TimeoutError:
                pass
        body = a.body(wait if mode == "long" else None)
        sent_ack = a.ack
        sent_state = a.state
        t0 = time.monotonic()
        try:
            async with http.post(url, json=body, timeout=timeout) as r:
                status = r.status
                d = await r.json(content_type=None)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            if measuring[0]:
                stats.errors += 1
                stats.error_times.append(round(time.monotonic() - stats.t_window, 1))
                if len(stats.error_samples) < 5:
                    stats.error_samples.append(f"{e!r} after {time.monotonic() - t0:.3f}s")
            next_t = time.monotonic() + interval
            continue
        t1 = time.monotonic()
        if status != 200:
            if measuring[0]:
                stats.http_errors += 1
                if len(stats.error_samples) < 5:
                    stats.error_samples.append(f"HTTP {status}: {d}")
            next_t = max(t0 + interval, t1)
            continue
        if isinstance(d, dict) and "error" in d:
            if measuring[0]:
                stats.protocol_errors += 1
                if len(stats.error_samples) < 5:
                    stats.error_samples.append(str(d))
            next_t = max(t0 + interval, t1)
            continue
        if sent_ack is not None and a.ack == sent_ack:
            a.ack = None
            if sent_ack == a.gcodes_number:
                a.gcodes_acked = True
        # The gcodes command is acknowledged and the printer reported "printing" (the same
        # poll may do both).
        if a.gcodes_acked and sent_state == "printing":
            a.printing_reported = True
        cmd = d.get("command") if isinstance(d, dict) else None
        if measuring[0]:
            stats.requests += 1
            if mode == "long" and not cmd:
                stats.held.append(t1 - t0)
            else:
                stats.latencies.append(t1 - t0)
        if cmd:
            number = d.get("number")
            if measuring[0]:
                stats.commands += 1
            a.ack = number
            if number not in a.seen:
                a.seen.add(number)
                if cmd == "gcodes":
                    a.gcodes_number = number
                    a.state = "printing"
                    a.percent = 1
                elif cmd == "pause":
                    a.state = "paused"
                    if a.pause_waiter is not None and not a.pause_waiter.done():
                        a.pause_waiter.set_result(t1)
                elif cmd == "unpause":
                    a.state = "printing"
                elif cmd == "cancel":
                    a.state = "ready"
        if mode == "long":
            next_t = max(t0 + interval, t1)
        else:
            next_t = max(next_t + interval, t1)


async def global_call(http, base, name, data):
    async with http.post(f"{base}/apiglobal/{name}", data=data) as r:
        d = await r.json(content_type=None)
        if r.status != 200 or not d.get("result"):
            raise RuntimeError(f"{name}: HTTP {r.status}: {d}")
        return d["message"]


async def run_mode(http, args, agents, job_agents, mode, stats):
    load = await wait_for_quiet(args.max_load, args.load_wait)
    url = f"{args.base}/apiprinter/v1/printer/command"
    stop_evt = asyncio.Event()
    measuring = [False]
    stats.reset()
    t_start = time.monotonic()
    tasks = [
        asyncio.create_task(
            agent_loop(http, url, a, mode, args.interval, args.wait, stop_evt, stats, measuring)
        )
        for a in agents
    ]
    # Jobs: every agent has reported "ready" once all loops made one poll (interval + margin).
    await asyncio.sleep(args.interval + 1.0)
    for a in job_agents:
        msg = await global_call(
            http, args.base, "print_file",
            {"session": args.session, "file_id": args.file_id, "printer_id": a.printer_id},
        )
        a.job_id = int(msg["job_id"])
    deadline = time.monotonic() + max(args.warmup, 30)
    while time.monotonic() < deadline and not all(a.printing_reported for a in job_agents):
        await asyncio.sleep(0.2)
    not_printing = [a.i for a in job_agents if not a.printing_reported]
    if not_printing:
        log(f"warning: {len(not_printing)} job agents never reported printing: {not_printing[:5]}")
    rest = args.warmup - (time.monotonic() - t_start)
    if rest > 0:
        await asyncio.sleep(rest)

    # --- measurement window ---
    server_pids = [args.server_pid]
    pg_pids = pg_backend_pids(args.pg_url)
    me = [os.getpid()]
    c_srv0, c_pg0, c_me0, busy0 = (
        proc_ticks(server_pids), proc_ticks(pg_pids), proc_ticks(me), machine_busy_ticks()
    )
    w0 = time.monotonic()
    stats.t_window = w0
    measuring[0] = True
    delays, pause_calls = [], []
    loop = asyncio.get_running_loop()
    gap = (args.duration - 8.0) / max(1, len(job_agents))
    for k, a in enumerate(job_agents):
        target = w0 + 2.0 + k * gap
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        a.pause_waiter = loop.create_future()
        t_sent = time.monotonic()
        await global_call(http, args.base, "job_pause", {"session": args.session, "job_id": a.job_id})
        pause_calls.append(time.monotonic() - t_sent)
        a.pause_sent = t_sent
    await asyncio.sleep(max(0.0, w0 + args.duration - time.monotonic()))
    measuring[0] = False
    w1 = time.monotonic()
    c_srv1, c_pg1, c_me1, busy1 = (
        proc_ticks(server_pids), proc_ticks(pg_pids), proc_ticks(me), machine_busy_ticks()
    )
    # Memory with every agent still connected (in long mode, most of them held).
    rss_kib, anon_kib, file_kib = (
        status_kib(args.server_pid, f) for f in ("VmRSS", "RssAnon", "RssFile")
    )
    # Pauses still in flight get up to interval + wait + 5 s more.
    for a in job_agents:
        try:
            t_recv = await asyncio.wait_for(asyncio.shield(a.pause_waiter), args.interval + args.wait + 5)
            delays.append(t_recv - a.pause_sent)
        except asyncio.TimeoutError:
            log(f"warning: agent {a.i} never received its pause")
    stop_evt.set()
    await asyncio.sleep(0.1)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    secs = w1 - w0
    cores = lambda a, b: (b - a) / CLK_TCK / secs  # noqa: E731
    other = cores(busy0, busy1) - cores(c_srv0, c_srv1) - cores(c_pg0, c_pg1) - cores(c_me0, c_me1)
    res = {
        "label": args.label,
        "mode": mode,
        "agents": len(agents),
        "interval_s": args.interval,
        "wait_s": args.wait if mode == "long" else None,
        "window_s": round(secs, 2),
        "load_before": load,
        "requests": stats.requests,
        "requests_per_s": round(stats.requests / secs, 1),
        "server_cpu_pct_of_one_core": round(100 * cores(c_srv0, c_srv1), 1),
        "postgres_cpu_pct_of_one_core": round(100 * cores(c_pg0, c_pg1), 1) if args.pg_url else None,
        "client_cpu_pct_of_one_core": round(100 * cores(c_me0, c_me1), 1),
        "other_cpu_cores": round(max(0.0, other), 2),
        "latency_ms_p50": round(1000 * pct(stats.latencies, 50), 2),
        "latency_ms_p99": round(1000 * pct(stats.latencies, 99), 2),
        "latency_ms_max": round(1000 * max(stats.latencies), 2) if stats.latencies else None,
        "latency_samples": len(stats.latencies),
        "held_polls": len(stats.held),
        "held_s_p50": round(pct(stats.held, 50), 3) if stats.held else None,
        "held_s_p99": round(pct(stats.held, 99), 3) if stats.held else None,
        "held_s_min_p10_p90_max": [round(f(stats.held), 3) for f in (
            min, lambda v: pct(v, 10), lambda v: pct(v, 90), max)] if stats.held else None,
        "commands_received": stats.commands,
        "pauses": len(job_agents),
        "pauses_received": len(delays),
        "pause_delay_ms_p50": round(1000 * pct(delays, 50), 1),
        "pause_delay_ms_p99": round(1000 * pct(delays, 99), 1),
        "pause_delay_ms_max": round(1000 * max(delays), 1) if delays else None,
        "pause_delay_ms_all": [round(1000 * d, 1) for d in sorted(delays)],
        "job_pause_call_ms_p50": round(1000 * pct(pause_calls, 50), 1),
        "server_rss_mib_end_of_window": round(rss_kib / 1024, 1) if rss_kib else None,
        "server_rss_anon_mib_end_of_window": round(anon_kib / 1024, 1) if anon_kib else None,
        "server_rss_file_mib_end_of_window": round(file_kib / 1024, 1) if file_kib else None,
        "errors": stats.errors,
        "http_errors": stats.http_errors,
        "protocol_errors": stats.protocol_errors,
        "error_samples": stats.error_samples,
        "errors_per_5s": {
            str(5 * k): n
            for k in range(int(secs // 5) + 1)
            if (n := sum(1 for t in stats.error_times if 5 * k <= t < 5 * (k + 1)))
        },
    }
    return res


def row(r):
    fmt = lambda v: "–" if v is None else v  # noqa: E731
    lat = (
        f"{r['latency_ms_p50']} / {r['latency_ms_p99']}"
        if r["mode"] == "plain"
        else f"held {r['held_s_p50']} s / {r['held_s_p99']} s"
    )
    return (
        f"| {r['label']} | {r['mode']} | {r['agents']} | {r['requests_per_s']} | "
        f"{r['server_cpu_pct_of_one_core']} | {fmt(r['postgres_cpu_pct_of_one_core'])} | "
        f"{r['client_cpu_pct_of_one_core']} | {lat} | "
        f"{r['pause_delay_ms_p50']} / {r['pause_delay_ms_p99']} / {fmt(r['pause_delay_ms_max'])} "
        f"({r['pauses_received']}/{r['pauses']}) | "
        f"{r['errors'] + r['http_errors'] + r['protocol_errors']} | {r['load_before']} | {r['other_cpu_cores']} | "
        f"{fmt(r['server_rss_mib_end_of_window'])} |"
    )


HEADER = (
    "| backend | mode | agents | polls/s | server CPU % of a core | Postgres backends CPU % | "
    "client CPU % | poll latency p50 / p99 ms | pause delay p50 / p99 / max ms (received) | "
    "errors | load before | other CPU (cores) | server RSS MiB, end of window |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--session", required=True)
    ap.add_argument("--file-id", required=True, type=int)
    ap.add_argument("--server-pid", required=True, type=int)
    ap.add_argument("--pg-url", default="")
    ap.add_argument("--label", default="")
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--wait", type=float, default=20.0)
    ap.add_argument("--modes", default="plain,long")
    ap.add_argument("--warmup", type=float, default=20.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--register-concurrency", type=int, default=100)
    ap.add_argument("--max-load", type=float, default=1.5)
    ap.add_argument("--load-wait", type=float, default=600)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in ("plain", "long"):
            ap.error(f"unknown mode {m}")
    if args.jobs * len(modes) > args.agents:
        ap.error("not enough agents for the jobs")

    # The server (actix) closes a keep-alive connection after 5 s idle. aiohttp keeps idle
    # connections 15 s by default and reuses the OLDEST first, so it picked connections the
    # server was closing at that moment: "Can not write request body" (882 in the first
    # SQLite long run). Reusing only connections idle for less than 3 s avoids the race.
    conn = aiohttp.TCPConnector(
        limit=args.agents + 200, limit_per_host=0, force_close=False, keepalive_timeout=3.0
    )
    async with aiohttp.ClientSession(connector=conn) as http:
        agents = [Agent(i) for i in range(args.agents)]
        log(f"registering {len(agents)} agents, {args.register_concurrency} at a time")
        secs = await register_all(http, args.base, args.session, agents, args.register_concurrency)
        log(f"registered in {secs:.1f}s ({3 * len(agents) / secs:.0f} requests/s)")
        results = {"registration_s": round(secs, 1), "modes": []}
        stats = Stats()
        for k, mode in enumerate(modes):
            job_agents = agents[k * args.jobs : (k + 1) * args.jobs]
            log(f"mode {mode}: {len(agents)} agents, {len(job_agents)} jobs, "
                f"warm-up {args.warmup}s, window {args.duration}s")
            r = await run_mode(http, args, agents, job_agents, mode, stats)
            results["modes"].append(r)
            log(json.dumps({k2: v for k2, v in r.items() if k2 != "pause_delay_ms_all"}))
            print(row(r), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    if sys.argv[1:] == ["--header"]:
        print(HEADER)
        sys.exit(0)
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main())
