#!/usr/bin/env python3
"""Which code of a running process is resident: the pages of its executable's mappings that
are in its page tables (/proc/PID/pagemap), attributed to the symbols on them (nm) and summed
by crate. Shows what start-up or a workload touched (issue #20 goal 5). Needs root.

    bench/resident_code.py PID [TOP]
"""
import bisect
import collections
import os
import re
import struct
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def mappings(pid, exe):
    for line in open(f"/proc/{pid}/maps"):
        parts = line.split()
        if len(parts) >= 6 and parts[5] == exe:
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            yield lo, hi, parts[1], int(parts[2], 16)


def resident(pid, lo, hi):
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(lo // PAGE * 8)
        data = f.read((hi - lo) // PAGE * 8)
    for i in range(len(data) // 8):
        (entry,) = struct.unpack_from("<Q", data, i * 8)
        if entry >> 63 & 1:
            yield lo + i * PAGE


def sections(exe):
    """(start, end, name) of the allocated sections, by address."""
    out = subprocess.run(["readelf", "-SW", exe], capture_output=True, text=True).stdout
    found = []
    for m in re.finditer(r"\]\s+(\S+)\s+\S+\s+([0-9a-f]{16})\s+[0-9a-f]+\s+([0-9a-f]+)", out):
        name, addr, size = m.group(1), int(m.group(2), 16), int(m.group(3), 16)
        if addr:
            found.append((addr, addr + size, name))
    return sorted(found)


def crate_of(symbol):
    # Demangled Rust paths: `<a::B as c::D>::f` or `a::b::f`; take the first path segment.
    s = symbol.lstrip("<&*")
    m = re.match(r"(?:dyn |impl )?([A-Za-z_][A-Za-z0-9_]*)(::|$)", s)
    return m.group(1) if m else symbol[:20]


def main():
    pid = int(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    exe = os.readlink(f"/proc/{pid}/exe")
    out = subprocess.run(["nm", "-nC", "--defined-only", exe], capture_output=True, text=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1].lower() in "tTrRdDbB":
            syms.append((int(parts[0], 16), parts[2]))
    addrs = [a for a, _ in syms]
    # The executable is position independent: its load base is the first mapping's start
    # minus that mapping's file offset.
    maps = list(mappings(pid, exe))
    base = maps[0][0] - maps[0][3]
    secs = sections(exe)
    by_crate = collections.Counter()
    by_map = collections.Counter()
    for lo, hi, perms, _ in maps:
        for page in resident(pid, lo, hi):
            by_map[perms] += PAGE
            at = page - base
            sec = next((n for lo_, hi_, n in secs if lo_ <= at < hi_), "?")
            if sec != ".text":
                # Data without symbols (strings, unwind tables, relocations): by section.
                by_crate[sec] += PAGE
                continue
            i = bisect.bisect_right(addrs, at) - 1
            by_crate[crate_of(syms[i][1]) if i >= 0 else "?"] += PAGE
    total = sum(by_map.values())
    print(f"{exe}: {total / 2**20:.1f} MiB resident in its mappings")
    for perms, n in sorted(by_map.items()):
        print(f"  {perms}: {n / 2**20:.1f} MiB")
    for crate, n in by_crate.most_common(top):
        print(f"  {n / 2**20:6.2f} MiB  {crate}")


if __name__ == "__main__":
    main()
