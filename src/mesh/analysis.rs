//! Hand-written mesh metrics: bounding box, volume, area, edge topology, parts.

use super::weld::weld_ids;
use super::{Mesh, MeshAnalysis, MeshFormat};

/// Computes the figures of a mesh.
///
/// * Positions are welded first (exactly equal `f32` positions are one vertex), so a triangle
///   soup (STL) and an indexed mesh with repeated positions (OBJ, 3MF) give the same topology.
/// * `volume_mm3` is the absolute value of Σ v0·(v1×v2)/6, computed in `f64` relative to the
///   bounding-box centre; it is only meaningful for a closed, consistently oriented mesh.
/// * Edge counts consider each undirected edge once. Triangles with two equal corners (after
///   welding) are counted as degenerate and left out of the edge topology.
/// * `objects` is the number of connected components (shells) of the welded mesh.
///
/// Runs in linear time (plus small per-vertex sorts); the extra memory is about 30 bytes per
/// triangle of a closed mesh (12 for the edge lists, the rest per vertex), freed on return.
pub fn analyse(format: MeshFormat, mesh: &Mesh) -> MeshAnalysis {
    let (ids, distinct) = weld_ids(&mesh.vertices);
    let n_ids = distinct as usize;

    // Triangles with valid indices only (a Mesh built by hand could hold bad ones).
    let nv = mesh.vertices.len();
    let valid = |t: &&[u32; 3]| t.iter().all(|&i| (i as usize) < nv);

    // Pass 1: bounding box and used positions.
    let mut min = [f64::INFINITY; 3];
    let mut max = [f64::NEG_INFINITY; 3];
    let mut used = vec![false; n_ids];
    let mut triangle_count = 0u64;
    for t in mesh.triangles.iter().filter(valid) {
        triangle_count += 1;
        for &i in t {
            let p = mesh.vertices[i as usize];
            for k in 0..3 {
                let c = f64::from(p[k]);
                min[k] = min[k].min(c);
                max[k] = max[k].max(c);
            }
            used[ids[i as usize] as usize] = true;
        }
    }
    if triangle_count == 0 {
        min = [0.0; 3];
        max = [0.0; 3];
    }
    let centre = [0, 1, 2].map(|k| (min[k] + max[k]) / 2.0);
    let vertex_count = used.iter().filter(|&&u| u).count() as u64;

    // Pass 2: volume, area, degenerate triangles, edge counts per lower endpoint.
    let mut volume6 = 0.0f64;
    let mut area2 = 0.0f64;
    let mut degenerate = 0u64;
    // counts[v] = edges whose lower endpoint is v.
    let mut counts = vec![0usize; n_ids + 1];
    let mut parent: Vec<u32> = (0..distinct).collect();
    for t in mesh.triangles.iter().filter(valid) {
        let p = t.map(|i| {
            let v = mesh.vertices[i as usize];
            [
                f64::from(v[0]) - centre[0],
                f64::from(v[1]) - centre[1],
                f64::from(v[2]) - centre[2],
            ]
        });
        let e1 = sub(p[1], p[0]);
        let e2 = sub(p[2], p[0]);
        let c = cross(e1, e2);
        let twice_area = norm(c);
        area2 += twice_area;
        volume6 += dot(p[0], cross(p[1], p[2]));

        let w = t.map(|i| ids[i as usize]);
        let longest = dot(e1, e1)
            .max(dot(e2, e2))
            .max(dot(sub(p[2], p[1]), sub(p[2], p[1])));
        let repeated = w[0] == w[1] || w[1] == w[2] || w[0] == w[2];
        if repeated || twice_area <= 1e-12 * longest {
            degenerate += 1;
        }
        // A degenerate triangle still joins its distinct corners into one part.
        union(&mut parent, w[0], w[1]);
        union(&mut parent, w[1], w[2]);
        if !repeated {
            for k in 0..3 {
                let (a, b) = (w[k], w[(k + 1) % 3]);
                counts[a.min(b) as usize] += 1;
            }
        }
    }

    // Welded triangles that take part in the edge topology.
    let proper = || {
        mesh.triangles
            .iter()
            .filter(valid)
            .map(|t| t.map(|i| ids[i as usize]))
            .filter(|w| w[0] != w[1] && w[1] != w[2] && w[0] != w[2])
    };
    let edges = if distinct < 1 << 31 {
        edge_topology::<u32, _>(proper, counts)
    } else {
        edge_topology::<u64, _>(proper, counts)
    };

    let mut objects = 0u32;
    for v in 0..distinct {
        if used[v as usize] && find(&mut parent, v) == v {
            objects += 1;
        }
    }

    let size = [0, 1, 2].map(|k| max[k] - min[k]);
    MeshAnalysis {
        format,
        triangles: triangle_count,
        vertices: vertex_count,
        bbox_min: min,
        bbox_max: max,
        size,
        volume_mm3: (volume6 / 6.0).abs(),
        area_mm2: area2 / 2.0,
        watertight: edges.total > 0 && edges.boundary == 0 && edges.non_manifold == 0,
        boundary_edges: edges.boundary,
        non_manifold_edges: edges.non_manifold,
        inconsistent_orientation_edges: edges.inconsistent,
        degenerate_triangles: degenerate,
        objects,
    }
}

#[derive(Default)]
struct EdgeCounts {
    total: u64,
    boundary: u64,
    non_manifold: u64,
    inconsistent: u64,
}

/// An adjacency entry: the upper endpoint of an edge and whether the triangle runs it from the
/// upper to the lower endpoint. `u32` (half the memory) whenever vertex ids fit in 31 bits.
trait EdgeEntry: Copy + Ord + Default {
    fn pack(upper: u32, reversed: bool) -> Self;
    fn upper(self) -> u64;
    fn reversed(self) -> u64;
}

impl EdgeEntry for u32 {
    #[inline]
    fn pack(upper: u32, reversed: bool) -> Self {
        (upper << 1) | u32::from(reversed)
    }
    #[inline]
    fn upper(self) -> u64 {
        u64::from(self >> 1)
    }
    #[inline]
    fn reversed(self) -> u64 {
        u64::from(self & 1)
    }
}

impl EdgeEntry for u64 {
    #[inline]
    fn pack(upper: u32, reversed: bool) -> Self {
        (u64::from(upper) << 1) | u64::from(reversed)
    }
    #[inline]
    fn upper(self) -> u64 {
        self >> 1
    }
    #[inline]
    fn reversed(self) -> u64 {
        self & 1
    }
}

/// Counts boundary, non-manifold and mis-oriented edges through a compressed adjacency list:
/// every edge is filed under its lower endpoint (`counts[v]` edges for vertex v, plus one
/// unused trailing slot), then each vertex's short list is sorted and scanned for runs.
fn edge_topology<E: EdgeEntry, I: Iterator<Item = [u32; 3]>>(
    triangles: impl Fn() -> I,
    mut offsets: Vec<usize>,
) -> EdgeCounts {
    let n = offsets.len() - 1;
    // Inclusive prefix sums: offsets[v] = end of v's range; filling below moves it to the start.
    for v in 1..=n {
        offsets[v] += offsets[v - 1];
    }
    let mut edges = vec![E::default(); offsets[n]];
    for w in triangles() {
        for k in 0..3 {
            let (a, b) = (w[k], w[(k + 1) % 3]);
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            let slot = &mut offsets[lo as usize];
            *slot -= 1;
            edges[*slot] = E::pack(hi, a > b);
        }
    }
    // Now offsets[v]..offsets[v + 1] is v's range (offsets[n] is the total).
    let mut counts = EdgeCounts::default();
    for v in 0..n {
        let list = &mut edges[offsets[v]..offsets[v + 1]];
        list.sort_unstable();
        let mut i = 0;
        while i < list.len() {
            let upper = list[i].upper();
            let mut j = i;
            let mut reversed = 0;
            while j < list.len() && list[j].upper() == upper {
                reversed += list[j].reversed();
                j += 1;
            }
            counts.total += 1;
            match j - i {
                1 => counts.boundary += 1,
                2 if reversed != 1 => counts.inconsistent += 1,
                2 => {}
                _ => counts.non_manifold += 1,
            }
            i = j;
        }
    }
    counts
}

fn find(parent: &mut [u32], mut v: u32) -> u32 {
    while parent[v as usize] != v {
        let grand = parent[parent[v as usize] as usize];
        parent[v as usize] = grand;
        v = grand;
    }
    v
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let ra = find(parent, a);
    let rb = find(parent, b);
    if ra != rb {
        // Smaller root id wins: deterministic and keeps trees shallow enough with path halving.
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

#[inline]
fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[inline]
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[inline]
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}
