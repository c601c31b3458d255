#!/usr/bin/env bash
# Mesh analysis benchmark: printfarm (Rust, examples/mesh_bench.rs) against numpy-stl and
# trimesh (bench/mesh_compare.py) on the same binary STL, with a comparison table at the end.
#
#   bench/mesh_bench.sh [FILE.stl]
#
# Without FILE (or when FILE does not exist yet) the example writes a closed 1,000,000-triangle
# torus (R 40 mm, r 15 mm) there first; the default is $TMPDIR/printfarm_mesh_bench_torus.stl.
# The Python side needs `pip install numpy-stl trimesh` (either one is enough; missing tools
# are skipped). numpy-stl's exact closedness check is pure Python: allow about a minute.
set -euo pipefail

cd "$(dirname "$0")/.."
STL="${1:-${TMPDIR:-/tmp}/printfarm_mesh_bench_torus.stl}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/bench-target-mesh}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

echo "### printfarm (Rust, release)"
nice cargo run --release --quiet --example mesh_bench -- "$STL" --json | tee "$OUT/rust.txt"

echo
echo "### Python"
# OpenBLAS tuning variables slow a current numpy down; unset them for this run only.
nice env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/mesh_compare.py "$STL" \
    | tee "$OUT/python.txt" || echo "(the Python comparison failed; see above)"

echo
echo "### Comparison: $STL"
grep -h '^JSON ' "$OUT/rust.txt" "$OUT/python.txt" | sed 's/^JSON //' \
    | python3 bench/mesh_compare.py --table
