#!/usr/bin/env python3
"""Analyse an STL with numpy-stl (and trimesh, if installed) to compare with printfarm.

Usage:
    python3 bench/mesh_compare.py FILE.stl            # every available tool, one subprocess each
    python3 bench/mesh_compare.py FILE.stl --tool numpy-stl|trimesh
    python3 bench/mesh_compare.py --table < results   # comparison table of "JSON" result lines

Install:  pip install numpy-stl trimesh

For each tool it prints volume (mm³), surface area (mm²), watertightness, the load time, the
time of the metrics, and the peak RSS of the process (each tool runs in its own subprocess, so
the figures do not mix). Every tool also prints one machine-readable line starting with
"JSON " (read by bench/mesh_bench.sh).

* numpy-stl: Mesh.from_file; volume as the vectorised signed-tetrahedra sum over its arrays,
  update_areas() for the area; is_closed(exact=True) (a directed-edge check in pure Python,
  slow, timed separately); and, reported on its own, the library's get_mass_properties(),
  which in numpy-stl 4 runs that same exact closedness check before computing.
* trimesh: trimesh.load(process=True, merges vertices), .volume, .area, .is_watertight.
"""

import json
import resource
import subprocess
import sys
import time


def peak_rss_mb():
    # ru_maxrss is in kB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_numpy_stl(path):
    import numpy as np
    from stl import mesh

    t0 = time.perf_counter()
    m = mesh.Mesh.from_file(path)
    t1 = time.perf_counter()
    # Vectorised volume (signed tetrahedra, float64) and area on numpy-stl's arrays.
    v0, v1, v2 = (m.v0.astype(np.float64), m.v1.astype(np.float64), m.v2.astype(np.float64))
    volume = float(np.einsum("ij,ij->", v0, np.cross(v1, v2)) / 6.0)
    m.update_areas()
    area = float(m.areas.sum())
    t2 = time.perf_counter()
    closed = bool(m.is_closed(exact=True))
    t3 = time.perf_counter()
    # The library's own volume: get_mass_properties() runs check(exact=True) first (numpy-stl 4).
    lib_volume, _cog, _inertia = m.get_mass_properties()
    t4 = time.perf_counter()
    return {
        "tool": "numpy-stl",
        "triangles": int(len(m.vectors)),
        "volume_mm3": abs(volume),
        "area_mm2": area,
        "watertight": closed,
        "load_s": t1 - t0,
        "metrics_s": t2 - t1,
        "watertight_s": t3 - t2,
        "total_s": t3 - t0,
        "mass_properties_volume_mm3": float(abs(lib_volume)),
        "mass_properties_s": t4 - t3,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_trimesh(path):
    import trimesh

    t0 = time.perf_counter()
    m = trimesh.load(path, force="mesh", process=True)
    t1 = time.perf_counter()
    volume = float(m.volume)
    area = float(m.area)
    t2 = time.perf_counter()
    watertight = bool(m.is_watertight)
    t3 = time.perf_counter()
    return {
        "tool": "trimesh",
        "triangles": int(len(m.faces)),
        "volume_mm3": abs(volume),
        "area_mm2": area,
        "watertight": watertight,
        "load_s": t1 - t0,
        "metrics_s": t2 - t1,
        "watertight_s": t3 - t2,
        "total_s": t3 - t0,
        "peak_rss_mb": peak_rss_mb(),
    }


TOOLS = {"numpy-stl": ("stl", run_numpy_stl), "trimesh": ("trimesh", run_trimesh)}


def available(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def report(r):
    print(f"== {r['tool']}")
    print(f"triangles       {r['triangles']}")
    print(f"volume          {r['volume_mm3']:.3f} mm³")
    print(f"area            {r['area_mm2']:.3f} mm²")
    print(f"watertight      {r['watertight']}")
    print(f"load            {r['load_s']:.3f} s")
    print(f"volume+area     {r['metrics_s']:.3f} s")
    print(f"watertight chk  {r['watertight_s']:.3f} s")
    print(f"total           {r['total_s']:.3f} s")
    if "mass_properties_s" in r:
        print(
            f"get_mass_props  {r['mass_properties_s']:.3f} s "
            f"(volume {r['mass_properties_volume_mm3']:.3f} mm³)"
        )
    print(f"peak RSS        {r['peak_rss_mb']:.1f} MB")
    print("JSON " + json.dumps(r), flush=True)


def table(lines):
    """Prints a comparison table of result dicts; the first row is the reference for the Δ."""
    rows = [json.loads(line) for line in lines if line.strip()]
    if not rows:
        print("no results", file=sys.stderr)
        return 1
    ref = rows[0]

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    def rel(v, r):
        return format((v - r) / r, "+.1e") if r else "-"

    head = ["tool", "triangles", "volume mm³", "Δvol", "area mm²", "Δarea", "watertight",
            "load s", "metrics s", "watertight s", "total s", "peak RSS MB"]
    out = [head]
    for r in rows:
        out.append([
            r["tool"], str(r["triangles"]),
            num(r["volume_mm3"], ".3f"), rel(r["volume_mm3"], ref["volume_mm3"]),
            num(r["area_mm2"], ".3f"), rel(r["area_mm2"], ref["area_mm2"]),
            str(r["watertight"]).lower(),
            num(r["load_s"], ".3f"), num(r["metrics_s"], ".3f"),
            num(r["watertight_s"], ".3f") if "watertight_s" in r else "(in metrics)",
            num(r["total_s"], ".3f"), num(r["peak_rss_mb"], ".1f"),
        ])
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    for n, row in enumerate(out):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print(" | ".join(cells))
        if n == 0:
            print("-+-".join("-" * w for w in widths))
    print()
    print("metrics = volume + area (printfarm: all of analyse(), edge topology and parts included);")
    print("Δ = relative difference to the first row; peak RSS of the whole process (VmHWM / ru_maxrss).")
    for r in rows:
        if "mass_properties_s" in r:
            s, v = r["mass_properties_s"], r["mass_properties_volume_mm3"]
            print(f"numpy-stl get_mass_properties(): {s:.3f} s, volume {v:.3f} mm³ "
                  "(it runs the exact closedness check first)")
    return 0


def main(argv):
    if argv == ["--table"]:
        return table(sys.stdin)
    tool = None
    args = list(argv)
    if "--tool" in args:
        at = args.index("--tool")
        tool = args[at + 1] if at + 1 < len(args) else None
        del args[at : at + 2]
        if tool not in TOOLS:
            print(f"--tool must be one of {', '.join(TOOLS)}", file=sys.stderr)
            return 2
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    path = args[0]
    if tool:
        report(TOOLS[tool][1](path))
        return 0
    status = 0
    for name, (module, _run) in TOOLS.items():
        if not available(module):
            print(f"== {name}: not installed (pip install {name})")
            continue
        done = subprocess.run([sys.executable, __file__, path, "--tool", name])
        status = status or done.returncode
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
