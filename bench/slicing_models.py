#!/usr/bin/env python3
"""Writes the models of bench/slicing_bench.sh as binary STLs (standard library only).

    bench/slicing_models.py OUT_DIR

  cube.stl        the 20 mm cube of fixtures/cube_20mm.stl (12 triangles), regenerated here
  sphere.stl      UV sphere, diameter 30 mm, 64 x 64 segments (8,064 triangles)
  sphere20k.stl   UV sphere, diameter 30 mm, 100 x 100 segments (19,800 triangles): the
                  throughput model (about a second of PrusaSlicer)
  torus100k.stl   torus, R 30 mm, r 10 mm, 250 x 200 segments (100,000 triangles)
  overhang.stl    a "T": a 10 x 10 x 30 mm post under a 60 x 10 x 5 mm bar (two closed,
                  overlapping boxes, 24 triangles); its 25 mm arms need supports

Every model is closed and wound outwards; the output is byte-for-byte reproducible.
Prints one line per model: name, triangles, bytes.
"""

import math
import os
import struct
import sys


def write_stl(path, tris):
    with open(path, "wb") as f:
        f.write(b"printfarm bench model".ljust(80, b" "))
        f.write(struct.pack("<I", len(tris)))
        for t in tris:
            f.write(struct.pack("<3f", 0.0, 0.0, 0.0))  # PrusaSlicer recomputes normals
            for v in t:
                f.write(struct.pack("<3f", *v))
            f.write(b"\0\0")
    return len(tris), os.path.getsize(path)


def box(x0, y0, z0, sx, sy, sz):
    p = [
        (x0 + (i & 1) * sx, y0 + ((i >> 1) & 1) * sy, z0 + ((i >> 2) & 1) * sz)
        for i in range(8)
    ]
    faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    out = []
    for a, b, c, d in faces:
        out += [(p[a], p[b], p[c]), (p[a], p[c], p[d])]
    return out


def sphere(radius, n):
    def point(i, j):
        t, p = math.pi * i / n, 2 * math.pi * j / n
        return (
            radius * math.sin(t) * math.cos(p) + radius,
            radius * math.sin(t) * math.sin(p) + radius,
            radius * math.cos(t) + radius,
        )

    out = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = point(i, j), point(i + 1, j), point(i + 1, j + 1), point(i, j + 1)
            if i != 0:
                out.append((a, c, d))
            if i != n - 1:
                out.append((a, b, c))
    return out


def torus(big, small, around, tube):
    def point(i, j):
        u = 2 * math.pi * (i % around) / around
        v = 2 * math.pi * (j % tube) / tube
        r = big + small * math.cos(v)
        return (r * math.cos(u) + big + small, r * math.sin(u) + big + small, small * math.sin(v) + small)

    out = []
    for i in range(around):
        for j in range(tube):
            a, b, c, d = point(i, j), point(i + 1, j), point(i + 1, j + 1), point(i, j + 1)
            out += [(a, b, c), (a, c, d)]
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    models = {
        "cube.stl": box(0, 0, 0, 20, 20, 20),
        "sphere.stl": sphere(15, 64),
        "sphere20k.stl": sphere(15, 100),
        "torus100k.stl": torus(30, 10, 250, 200),
        # The bar overlaps the post by 0.5 mm, so the two shells slice as one part.
        "overhang.stl": box(25, 0, 0, 10, 10, 30) + box(0, 0, 29.5, 60, 10, 5),
    }
    for name, tris in models.items():
        n, size = write_stl(os.path.join(out, name), tris)
        print(f"{name} {n} {size}")


if __name__ == "__main__":
    main()
