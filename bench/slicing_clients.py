#!/usr/bin/env python3
"""Clients of bench/slicing_bench.sh: /v1 uploads and quotes against a running server
(standard library only). Every command prints one JSON object on stdout.

  slicing_clients.py overhead BASE TOKEN MODEL PRINTER_CONFIG_JSON REPS WORK_DIR
      Per repetition: PrusaSlicer alone (`prusa-slicer --loglevel 1 --load <ini> --export-gcode
      -o … MODEL`, with the ini taken from the config block at the end of a quote's G-code,
      so the settings are the server's own), then a fresh `POST /v1/file` upload of MODEL and
      `POST /v1/quote/{file_id}`. The two alternate, so drifting machine load hits both alike.
      Reports each run and median / min / max of: slicer alone, upload, quote, upload + quote,
      and the overhead (upload + quote − slicer alone), and checks that both G-codes carry the
      same estimate.

  slicing_clients.py load BASE TOKEN MODEL PRINTER_CONFIG_JSON CLIENTS SECONDS [PAUSE]
      CLIENTS threads for SECONDS: each uploads MODEL, then loops: quote it (polling on 202),
      then sleep PAUSE seconds (default 0; bench/soak.sh uses it for a steady trickle),
      and every second iteration upload a fresh copy first (half the quotes are on new
      uploads, half reuse one). Reports quotes completed, quotes per minute over the
      measured window (first quote start to last quote end), latency median / p95 / max, and
      any failures.

  slicing_clients.py quote BASE TOKEN MODEL PRINTER_CONFIG_JSON
      One upload + quote; prints the quote, and the G-code footer's time and grams.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid


def request(method, url, token, body=None, content_type=None, timeout=600):
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def upload(base, token, path):
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, answer = request(
        "POST", f"{base}/v1/file", token, body, f"multipart/form-data; boundary={boundary}"
    )
    if status != 200:
        raise RuntimeError(f"upload answered {status}: {answer[:300]!r}")
    return json.loads(answer)["file_id"]


def quote(base, token, file_id, printer_config):
    """Quote and, on 202, poll until the slice ended. Returns (status, quote)."""
    body = json.dumps({"printer_config": printer_config}).encode()
    status, answer = request("POST", f"{base}/v1/quote/{file_id}", token, body, "application/json")
    q = json.loads(answer)
    while status == 202:
        time.sleep(0.1)
        status, answer = request("GET", f"{base}/v1/quote/{q['quote_id']}", token)
        q = json.loads(answer)
    return status, q


def gcode(base, token, quote_id):
    status, data = request("GET", f"{base}/v1/quote/gcode/{quote_id}", token)
    if status != 200:
        raise RuntimeError(f"G-code download answered {status}")
    return data.decode()


def footer(text, key):
    for line in reversed(text.splitlines()):
        if line.startswith(key):
            return line.split("=", 1)[1].strip()
    return None


def seconds(human):
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(p[:-1]) * units[p[-1]] for p in human.split())


def config_ini(text):
    """The `; prusaslicer_config = begin … end` block as an ini PrusaSlicer can --load."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("; prusaslicer_config = begin"):
            inside = True
        elif line.startswith("; prusaslicer_config = end"):
            break
        elif inside and line.startswith("; "):
            lines.append(line[2:])
    return "\n".join(lines) + "\n"


def spread(values):
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def overhead(base, token, model, printer_config, reps, work):
    os.makedirs(work, exist_ok=True)
    fid = upload(base, token, model)
    status, q = quote(base, token, fid, printer_config)
    if status != 200:
        raise RuntimeError(f"warm-up quote answered {status}: {q}")
    reference = gcode(base, token, q["quote_id"])
    ini = os.path.join(work, "server-profile.ini")
    with open(ini, "w") as f:
        f.write(config_ini(reference))
    runs = []
    for _ in range(reps):
        out = os.path.join(work, "direct.gcode")
        t0 = time.monotonic()
        done = subprocess.run(
            ["prusa-slicer", "--loglevel", "1", "--load", ini, "--export-gcode", "-o", out, model],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        direct = time.monotonic() - t0
        if done.returncode != 0:
            raise RuntimeError(f"prusa-slicer failed: {done.stderr[-500:]!r}")
        with open(out) as f:
            direct_time = footer(f.read(), "; estimated printing time (normal mode)")
        t0 = time.monotonic()
        fid = upload(base, token, model)
        t1 = time.monotonic()
        status, q = quote(base, token, fid, printer_config)
        t2 = time.monotonic()
        if status != 200:
            raise RuntimeError(f"quote answered {status}: {q}")
        runs.append({
            "slicer_alone_s": round(direct, 3),
            "upload_s": round(t1 - t0, 3),
            "quote_s": round(t2 - t1, 3),
            "upload_quote_s": round(t2 - t0, 3),
            "overhead_s": round(t2 - t0 - direct, 3),
            # PrusaSlicer is not bit-reproducible (seams move between runs), so the same
            # settings give estimates a few seconds apart.
            "same_estimate": abs(seconds(direct_time) - q["estimated_time_seconds"])
            <= max(5, 0.002 * q["estimated_time_seconds"]),
            "direct_estimate": direct_time,
            "estimate": q["estimated_time"],
        })
    keys = ["slicer_alone_s", "upload_s", "quote_s", "upload_quote_s", "overhead_s"]
    return {
        "model": os.path.basename(model),
        "reps": reps,
        "runs": runs,
        "summary": {k: spread([r[k] for r in runs]) for k in keys},
        "same_settings": all(r["same_estimate"] for r in runs),
    }


def load(base, token, model, printer_config, clients, duration, pause=0.0):
    lock = threading.Lock()
    latencies, failures, spans = [], [], []
    stop_at = time.monotonic() + duration

    def client():
        try:
            fid = upload(base, token, model)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            with lock:
                failures.append(f"upload: {e}")
            return
        i = 0
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            try:
                if i % 2 == 1:
                    fid = upload(base, token, model)
                status, q = quote(base, token, fid, printer_config)
            except Exception as e:  # noqa: BLE001
                with lock:
                    failures.append(str(e))
                time.sleep(pause)
                continue
            t1 = time.monotonic()
            with lock:
                if status == 200 and q.get("status") == "success":
                    latencies.append(t1 - t0)
                    spans.append((t0, t1))
                else:
                    failures.append(f"{status}: {json.dumps(q)[:200]}")
            i += 1
            time.sleep(min(pause, max(0.0, stop_at - time.monotonic())))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    window = (max(e for _, e in spans) - min(s for s, _ in spans)) if spans else 0
    lat = sorted(latencies)
    return {
        "model": os.path.basename(model),
        "clients": clients,
        "seconds": duration,
        "quotes": len(lat),
        "window_s": round(window, 1),
        "quotes_per_minute": round(len(lat) / window * 60, 2) if window else 0,
        "latency_s": {
            "median": round(statistics.median(lat), 2) if lat else None,
            "p95": round(lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
            "max": round(lat[-1], 2) if lat else None,
        },
        "failures": failures[:20],
        "failure_count": len(failures),
    }


def one_quote(base, token, model, printer_config):
    fid = upload(base, token, model)
    status, q = quote(base, token, fid, printer_config)
    if status != 200:
        raise RuntimeError(f"quote answered {status}: {q}")
    text = gcode(base, token, q["quote_id"])
    human = footer(text, "; estimated printing time (normal mode)")
    return {
        "model": os.path.basename(model),
        "quote": q,
        "footer_time": human,
        "footer_seconds": seconds(human),
        "footer_grams": float(footer(text, "; filament used [g]")),
    }


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    cmd, rest = args[0], args[1:]
    if cmd == "overhead" and len(rest) == 6:
        base, token, model, cfg, reps, work = rest
        result = overhead(base, token, model, json.loads(cfg), int(reps), work)
    elif cmd == "load" and len(rest) in (6, 7):
        base, token, model, cfg, clients, secs = rest[:6]
        pause = float(rest[6]) if len(rest) == 7 else 0.0
        result = load(base, token, model, json.loads(cfg), int(clients), float(secs), pause)
    elif cmd == "quote" and len(rest) == 4:
        base, token, model, cfg = rest
        result = one_quote(base, token, model, json.loads(cfg))
    else:
        sys.exit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
