#!/usr/bin/env python3
"""Summary of one backend's soak run (bench/soak.sh runs it; standard library only).

    bench/soak_report.py DIR LABEL

DIR holds what soak.sh collected: server.log (access lines), samples.csv (t_s, rss_kib, fds,
staging_kib, load1 every SOAK_SAMPLE_SECS), db.json (database size at start and end, bytes),
agents.json (agents_bench.py --out), slices.json (slicing_clients.py load), wrk.txt, uploads.txt
(one line per upload: "ok" or "fail <reason>").

Prints a Markdown section: per call family (method + path, numeric segments as {id}) the
requests, non-2xx, 5xx and p50 / p99 of the server-side time from the access log; the
client-side failures; RSS / FDs / staging / database at start and end; the growth check. Writes
DIR/verdict.json. Exits 1 when any 5xx was answered, any client saw a failure (socket errors,
agent errors, failed uploads or slices), or RSS or FDs grew without bound:

  growth check: a least-squares line through the samples of the second half of the run; the
  series "grows without bound" when its slope is above the limit (SOAK_MAX_RSS_MIB_PER_H,
  default 32 MiB per hour; SOAK_MAX_FDS_PER_H, default 60 per hour) AND its last sample is
  above the highest sample of the first half (memory that rises and then plateaus, e.g. the
  allocator keeping per-thread arenas after the first uploads, passes).
"""

import json
import os
import re
import sys

ACCESS = re.compile(r'"([A-Z]+) ([^ ?"]+)[^"]*" (\d{3}) \S+ ([0-9.]+)ms')


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def family(method, path):
    return method + " " + "/".join("{id}" if seg.isdigit() else seg for seg in path.split("/"))


def slope_per_hour(points):
    n = len(points)
    if n < 3:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if den == 0 else sum((t - mx) * (v - my) for t, v in points) / den * 3600.0


def load_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def main():
    d, label = sys.argv[1], sys.argv[2]
    fams = {}
    with open(os.path.join(d, "server.log"), errors="replace") as f:
        for line in f:
            if "printfarm::access" not in line:
                continue
            m = ACCESS.search(line)
            if not m:
                continue
            fam = fams.setdefault(family(m.group(1), m.group(2)), {"ms": [], "non2xx": 0, "5xx": 0})
            status = int(m.group(3))
            fam["ms"].append(float(m.group(4)))
            fam["non2xx"] += not 200 <= status < 300
            fam["5xx"] += status >= 500

    samples = []
    with open(os.path.join(d, "samples.csv")) as f:
        next(f)
        for line in f:
            t, rss, fds, staging, load = line.strip().split(",")
            if rss:  # empty when the server was gone at that moment
                samples.append((float(t), int(rss), int(fds), int(staging), float(load)))
    db = load_json(os.path.join(d, "db.json"), {})
    agents = load_json(os.path.join(d, "agents.json"), {})
    slices = load_json(os.path.join(d, "slices.json"), {})
    wrk = open(os.path.join(d, "wrk.txt")).read() if os.path.exists(os.path.join(d, "wrk.txt")) else ""
    uploads = open(os.path.join(d, "uploads.txt")).read().split("\n") if os.path.exists(os.path.join(d, "uploads.txt")) else []

    out = [f"### {label}", "", "| call family | requests | non-2xx | 5xx | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    total_5xx = 0
    for name, v in sorted(fams.items(), key=lambda kv: -len(kv[1]["ms"])):
        total_5xx += v["5xx"]
        out.append(f"| `{name}` | {len(v['ms'])} | {v['non2xx']} | {v['5xx']} | {pct(v['ms'], 50):.2f} | {pct(v['ms'], 99):.2f} |")

    failures = {}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", wrk)
    failures["wrk socket errors"] = sum(map(int, sock.groups())) if sock else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
    failures["wrk non-2xx"] = int(non2xx.group(1)) if non2xx else 0
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", wrk)
    agent_errors = None
    if isinstance(agents, dict) and agents.get("modes"):
        agent_errors = sum(r["errors"] + r["http_errors"] + r["protocol_errors"] for r in agents["modes"])
    failures["agent client errors"] = agent_errors if agent_errors is not None else "no agents.json"
    failures["upload failures"] = sum(1 for u in uploads if u.startswith("fail"))
    failures["slice failures"] = slices.get("failure_count", "no slices.json")
    failed_clients = any((not isinstance(v, int)) or v > 0 for k, v in failures.items() if k != "wrk non-2xx")

    out += ["", "clients: wrk " + (f"{float(rate.group(1)):.0f} requests/s" if rate else "?")
            + f"; uploads {sum(1 for u in uploads if u.startswith('ok'))} ok"
            + f"; slices (quotes) {slices.get('quotes', '?')} ok, latency median {slices.get('latency_s', {}).get('median', '?')} s",
            "", "| client-side failures | count |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in failures.items()]

    verdict = {"label": label, "total_5xx": total_5xx, "client_failures": failures}
    grow = []
    if samples:
        t_end = samples[-1][0]
        first = [s for s in samples if s[0] <= t_end / 2]
        second = [s for s in samples if s[0] >= t_end / 2]
        limits = {"rss": float(os.environ.get("SOAK_MAX_RSS_MIB_PER_H", "32")) * 1024,
                  "fds": float(os.environ.get("SOAK_MAX_FDS_PER_H", "60"))}
        out += ["", "| resource | start | end | max | second-half slope per hour | limit per hour | verdict |", "|---|---|---|---|---|---|---|"]
        for i, name, unit, scale in ((1, "rss", "MiB", 1024), (2, "fds", "", 1), (3, "staging", "MiB", 1024)):
            vals = [s[i] for s in samples]
            slope = slope_per_hour([(s[0], s[i]) for s in second])
            if name in limits:
                unbounded = slope > limits[name] and vals[-1] > max(s[i] for s in first)
                grow.append(name) if unbounded else None
                lim = f"{limits[name] / scale:.0f}"
                ok = "GROWS" if unbounded else "ok"
            else:
                lim, ok = "–", "–"
            out.append(f"| {name} {unit} | {vals[0] / scale:.1f} | {vals[-1] / scale:.1f} | {max(vals) / scale:.1f} | {slope / scale:+.1f} | {lim} | {ok} |")
            verdict[name] = {"start": vals[0], "end": vals[-1], "max": max(vals), "slope_per_h": slope}
        loads = [s[4] for s in samples]
        out += ["", f"machine load (1-minute average, sampled): mean {sum(loads) / len(loads):.2f}, "
                f"min {min(loads):.2f}, max {max(loads):.2f} on {os.cpu_count()} cores"]
    if db:
        s0, s1 = db.get("start", 0), db.get("end", 0)
        out += ["", f"database: {s0 / 1048576:.2f} MiB at start, {s1 / 1048576:.2f} MiB at end "
                f"(+{(s1 - s0) / 1048576:.2f} MiB; {db.get('what', '')})"]
        verdict["db"] = db
    verdict["unbounded"] = grow
    verdict["failed"] = bool(total_5xx or failed_clients or grow)
    out += ["", "verdict: " + ("**FAILED** (" + ", ".join(
        ([f"{total_5xx} × 5xx"] if total_5xx else []) + (["client failures"] if failed_clients else [])
        + [f"{g} grows" for g in grow]) + ")" if verdict["failed"] else "passed"), ""]
    print("\n".join(out))
    with open(os.path.join(d, "verdict.json"), "w") as f:
        json.dump(verdict, f, indent=1)
    sys.exit(1 if verdict["failed"] else 0)


if __name__ == "__main__":
    main()
