#!/usr/bin/env python3
"""Samples one process from /proc while a benchmark runs, until SIGTERM/SIGINT or its exit.

    bench/proc_sampler.py PID OUT.json [--interval 0.02] [--size BYTES]

Every INTERVAL seconds it reads /proc/PID/status (VmRSS, VmHWM), /proc/PID/io (wchar) and
/proc/PID/stat (utime + stime). On exit it writes OUT.json:

    {"t0_epoch" (wall-clock start), "samples", "seconds", "rss_start_kib", "rss_end_kib", "rss_max_kib" (sampled peak),
     "hwm_start_kib", "hwm_end_kib", "cpu_seconds", "wchar_bytes",
     "t_wchar_size", "t_wchar_size_grow"}

With --size (an upload's size), t_wchar_size is the first time (seconds after the start) the
process had written SIZE bytes (its staging copy of the upload is complete) and
t_wchar_size_grow the first time it had written more than SIZE + 1 MiB (the copy into the
store began, i.e. analysis and preview were done). A timeline CSV is written beside OUT.json.
"""

import json
import os
import signal
import sys
import time


def read_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def read_wchar(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except PermissionError:
        return 0
    return 0


def read_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def main():
    args = sys.argv[1:]
    interval = 0.02
    size = None
    if "--interval" in args:
        i = args.index("--interval")
        interval = float(args[i + 1])
        del args[i : i + 2]
    if "--size" in args:
        i = args.index("--size")
        size = int(args[i + 1])
        del args[i : i + 2]
    pid, out = int(args[0]), args[1]
    tck = os.sysconf("SC_CLK_TCK")

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t0_epoch = time.time()
    t0 = time.monotonic()
    st0 = read_status(pid)
    w0 = read_wchar(pid)
    c0 = read_ticks(pid)
    rss_max = st0["VmRSS"]
    last = (st0, w0, c0)
    n = 0
    t_size = t_grow = None
    timeline = []
    while not stop:
        try:
            st = read_status(pid)
            w = read_wchar(pid)
            c = read_ticks(pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        t = time.monotonic() - t0
        n += 1
        last = (st, w, c)
        rss_max = max(rss_max, st["VmRSS"])
        if size is not None:
            if t_size is None and w - w0 >= size:
                t_size = t
            if t_grow is None and w - w0 > size + (1 << 20):
                t_grow = t
        if n % 5 == 1:
            timeline.append((round(t, 3), st["VmRSS"], st["VmHWM"], w - w0, c - c0))
        time.sleep(interval)
    st, w, c = last
    summary = {
        "t0_epoch": t0_epoch,
        "samples": n,
        "seconds": round(time.monotonic() - t0, 3),
        "rss_start_kib": st0["VmRSS"],
        "rss_end_kib": st["VmRSS"],
        "rss_max_kib": rss_max,
        "hwm_start_kib": st0["VmHWM"],
        "hwm_end_kib": st["VmHWM"],
        "cpu_seconds": round((c - c0) / tck, 2),
        "wchar_bytes": w - w0,
        "t_wchar_size": None if t_size is None else round(t_size, 3),
        "t_wchar_size_grow": None if t_grow is None else round(t_grow, 3),
    }
    with open(out, "w") as f:
        json.dump(summary, f)
    with open(os.path.splitext(out)[0] + ".csv", "w") as f:
        f.write("t_s,rss_kib,hwm_kib,wchar_bytes,cpu_ticks\n")
        for row in timeline:
            f.write(",".join(map(str, row)) + "\n")


if __name__ == "__main__":
    main()
