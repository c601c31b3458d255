#!/usr/bin/env python3
"""Samples the CPU of a process and all its descendants (the server and its prusa-slicer
children) until SIGTERM/SIGINT or the process's exit.

    bench/slicing_tree_sampler.py PID OUT.json [--interval 0.25]

Tree CPU = the process's own utime + stime, plus cutime + cstime (children it has already
reaped: a finished prusa-slicer's time moves there), plus utime + stime of every live
descendant. Each sample also counts the live descendants whose executable is prusa-slicer (the
slices running at that moment). OUT.json: seconds, cpu_seconds, mean_cores, max_cores_1s (the
busiest 1-second window), max_slicers (most slicers seen at once), slicer_seconds_by_count
(how long 0, 1, 2 … slicers ran at once); a timeline CSV is written beside it.
"""

import json
import os
import signal
import sys
import time


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    name = s[s.index("(") + 1 : s.rindex(")")]
    fields = s[s.rindex(")") + 2 :].split()
    # fields[1] = ppid; [11] utime, [12] stime, [13] cutime, [14] cstime
    return name, int(fields[1]), [int(x) for x in fields[11:15]]


def tree(root):
    """(ticks, slicers) of root and its live descendants."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                procs[int(entry)] = stat(int(entry))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
    if root not in procs:
        raise ProcessLookupError(root)
    children = {}
    for pid, (_, ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    _, _, (u, s, cu, cs) = procs[root]
    ticks, slicers = u + s + cu + cs, 0
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        name, _, (u, s, _, _) = procs[pid]
        ticks += u + s
        # PrusaSlicer renames its main thread (comm "slic3r_main"): go by the executable.
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            exe = name
        slicers += exe.startswith("prusa-slicer")
        todo.extend(children.get(pid, []))
    return ticks, slicers


def main():
    args = sys.argv[1:]
    interval = 0.25
    if "--interval" in args:
        i = args.index("--interval")
        interval = float(args[i + 1])
        del args[i : i + 2]
    pid, out = int(args[0]), args[1]
    tck = os.sysconf("SC_CLK_TCK")
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t0 = time.monotonic()
    c0, _ = tree(pid)
    samples = [(0.0, 0, 0)]
    while not stop:
        time.sleep(interval)
        try:
            c, n = tree(pid)
        except ProcessLookupError:
            break
        samples.append((time.monotonic() - t0, c - c0, n))
    total_s = samples[-1][0]
    cpu = samples[-1][1] / tck
    # Busiest 1-second window: ticks between each sample and the first sample >= 1 s later.
    max_1s, j = 0.0, 0
    for i, (t, c, _) in enumerate(samples):
        while j < len(samples) and samples[j][0] < t + 1.0:
            j += 1
        if j < len(samples):
            tj, cj, _ = samples[j]
            max_1s = max(max_1s, (cj - c) / tck / (tj - t))
    by_count = {}
    for (t, _, _), (t2, _, n) in zip(samples, samples[1:]):
        by_count[n] = by_count.get(n, 0.0) + (t2 - t)
    summary = {
        "seconds": round(total_s, 2),
        "cpu_seconds": round(cpu, 2),
        "mean_cores": round(cpu / total_s, 3) if total_s else 0,
        "max_cores_1s": round(max_1s, 3),
        "max_slicers": max(n for _, _, n in samples),
        "slicer_seconds_by_count": {str(k): round(v, 1) for k, v in sorted(by_count.items())},
        "cores": os.cpu_count(),
    }
    with open(out, "w") as f:
        json.dump(summary, f)
    with open(os.path.splitext(out)[0] + ".csv", "w") as f:
        f.write("t_s,cpu_ticks,slicers\n")
        for t, c, n in samples:
            f.write(f"{t:.2f},{c},{n}\n")


if __name__ == "__main__":
    main()
