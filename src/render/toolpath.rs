//! G-code toolpath previews with bounded memory.

use super::raster::{project, Canvas, Fit};
use super::{RenderOptions, MARGIN};

/// Default cap on stored segments (24 bytes each, so about 48 MB at most).
pub const DEFAULT_MAX_SEGMENTS: usize = 2_000_000;

/// Extrusion width drawn, in mm (a typical 0.4 mm nozzle line).
const LINE_WIDTH_MM: f64 = 0.45;

type Point = [f32; 3];

/// G-code toolpaths: collect segments via a builder, then draw the extruding segments as lines
/// in an isometric projection (colour by height); travel moves are not drawn.
///
/// Memory stays bounded on any amount of G-code:
/// * consecutive collinear extrusions in the same layer are merged (lossless);
/// * at most `max_segments` segments are kept: when the store is full, consecutive connected
///   segments are joined pairwise into chords (and, if that is not enough, every other one is
///   dropped), and from then on connected paths keep only every 2nd, 4th, … vertex. The result
///   is a uniformly simplified picture of the whole print, not of its first part.
#[derive(Debug, Clone)]
pub struct ToolpathPreview {
    segments: Vec<[Point; 2]>,
    max_segments: usize,
    /// Keep one path vertex in `stride` on connected paths (doubles on each compaction).
    stride: u32,
    /// The connected path being merged: start, end, vertices skipped so far, last direction.
    chain: Option<Chain>,
    added: u64,
}

#[derive(Debug, Clone, Copy)]
struct Chain {
    start: Point,
    end: Point,
    skipped: u32,
    direction: [f32; 3],
}

impl Default for ToolpathPreview {
    fn default() -> Self {
        Self::new()
    }
}

impl ToolpathPreview {
    pub fn new() -> Self {
        Self::with_max_segments(DEFAULT_MAX_SEGMENTS)
    }

    /// A preview keeping at most `max_segments` segments (at least 16).
    pub fn with_max_segments(max_segments: usize) -> Self {
        ToolpathPreview {
            segments: Vec::new(),
            max_segments: max_segments.max(16),
            stride: 1,
            chain: None,
            added: 0,
        }
    }

    /// Adds one move. Only extruding moves are kept; a travel move ends the current path.
    pub fn add_segment(&mut self, from: [f64; 3], to: [f64; 3], extruding: bool) {
        if !extruding {
            self.flush();
            return;
        }
        let (a, b) = (from.map(|v| v as f32), to.map(|v| v as f32));
        if a.iter().chain(b.iter()).any(|v| !v.is_finite()) || a == b {
            return;
        }
        self.added += 1;
        let direction = unit([b[0] - a[0], b[1] - a[1], b[2] - a[2]]);
        if let Some(chain) = &mut self.chain {
            let connected = chain.end == a && chain.start[2] == a[2] && a[2] == b[2];
            if connected {
                let cos = chain.direction[0] * direction[0]
                    + chain.direction[1] * direction[1]
                    + chain.direction[2] * direction[2];
                let collinear = cos > 0.999_999;
                if collinear || chain.skipped + 1 < self.stride {
                    if !collinear {
                        chain.skipped += 1;
                    }
                    chain.end = b;
                    chain.direction = direction;
                    return;
                }
            }
        }
        self.flush();
        self.chain = Some(Chain {
            start: a,
            end: b,
            skipped: 0,
            direction,
        });
    }

    /// Extruding segments offered so far (before merging and simplification).
    pub fn segments_added(&self) -> u64 {
        self.added
    }

    /// Segments currently stored (what will be drawn).
    pub fn len(&self) -> usize {
        self.segments.len() + usize::from(self.chain.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn flush(&mut self) {
        if let Some(chain) = self.chain.take() {
            self.segments.push([chain.start, chain.end]);
            if self.segments.len() >= self.max_segments {
                self.compact();
            }
        }
    }

    /// Halves (about) the stored segments and doubles the stride.
    fn compact(&mut self) {
        self.stride = self.stride.saturating_mul(2);
        let s = &mut self.segments;
        let (mut read, mut write) = (0, 0);
        while read < s.len() {
            let first = s[read];
            let joined = s.get(read + 1).and_then(|next| {
                let same_layer = first[0][2] == first[1][2] && next[0][2] == next[1][2];
                (first[1] == next[0] && same_layer && first[0][2] == next[0][2])
                    .then_some([first[0], next[1]])
            });
            match joined {
                Some(seg) => {
                    s[write] = seg;
                    read += 2;
                }
                None => {
                    s[write] = first;
                    read += 1;
                }
            }
            write += 1;
        }
        s.truncate(write);
        if s.len() > self.max_segments * 3 / 4 {
            let mut i = 0;
            s.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
    }

    /// Renders the stored segments (see [`ToolpathPreview`]) as a PNG. The view is fitted to the
    /// print itself: a few extrusions far away from the rest (the purge line of a start G-code)
    /// are drawn but do not take part in the fit, so they may be cut off at the image border.
    /// With nothing to draw the image is the background only.
    ///
    /// The drawing work is bounded (see [`PreviewStats`]): at most [`WORK_PER_SAMPLE`] rows and
    /// samples per sample of the supersampled canvas, whatever the G-code.
    pub fn render_png(&self, opts: &RenderOptions) -> Vec<u8> {
        self.render_png_with_stats(opts).0
    }

    /// [`render_png`](Self::render_png), also telling what was drawn and the work it took.
    pub fn render_png_with_stats(&self, opts: &RenderOptions) -> (Vec<u8>, PreviewStats) {
        self.render_with_budget(opts, None)
    }

    /// Renders with the given work budget (`None`: [`WORK_PER_SAMPLE`] per canvas sample).
    pub(super) fn render_with_budget(
        &self,
        opts: &RenderOptions,
        budget: Option<u64>,
    ) -> (Vec<u8>, PreviewStats) {
        let mut canvas = Canvas::new(opts.width, opts.height);
        let budget = budget.unwrap_or(WORK_PER_SAMPLE * canvas.width as u64 * canvas.height as u64);
        let pending = self.chain.map(|c| [c.start, c.end]);
        let count = self.segments.len() + pending.iter().len();
        let segment = |i: usize| -> &[Point; 2] {
            self.segments
                .get(i)
                .or(pending.as_ref())
                .expect("segment index in range")
        };
        let segments = || self.segments.iter().chain(pending.iter());
        let mut stats = PreviewStats {
            segments: count as u64,
            budget,
            ..Default::default()
        };
        if count == 0 {
            return (canvas.into_png(), stats);
        }

        // Fit to the print, not to far-away strays such as the purge line of the start G-code.
        let window = [0, 1].map(|axis| robust_range(segments(), axis));
        let inside = |p: &Point| (0..2).all(|k| p[k] >= window[k][0] && p[k] <= window[k][1]);
        let (mut min, mut max) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        let (mut z_min, mut z_max) = (f64::INFINITY, f64::NEG_INFINITY);
        for seg in segments().filter(|s| s.iter().all(inside)) {
            for p in seg {
                let p = p.map(f64::from);
                let s = project(p);
                for k in 0..2 {
                    min[k] = min[k].min(s[k]);
                    max[k] = max[k].max(s[k]);
                }
                z_min = z_min.min(p[2]);
                z_max = z_max.max(p[2]);
            }
        }
        let fit = Fit::new(min, max, canvas.width, canvas.height, MARGIN);
        // Half the line width in supersampled pixels: the real extrusion width when zoomed in,
        // at least one output pixel wide, at most a few.
        let half_width = (LINE_WIDTH_MM * fit.scale() / 2.0).clamp(
            super::raster::SUPERSAMPLE as f64 / 2.0,
            8.0 * super::raster::SUPERSAMPLE as f64,
        );
        let z_span = (z_max - z_min).max(1e-9);
        let line = |seg: &[Point; 2]| {
            let a = seg[0].map(f64::from);
            let b = seg[1].map(f64::from);
            let (sa, sb) = (project(a), project(b));
            let t = ((a[2] + b[2]) / 2.0 - z_min) / z_span;
            Line {
                p0: fit.to_pixel(sa),
                p1: fit.to_pixel(sb),
                depth: [sa[2], sb[2]],
                t,
            }
        };
        let cost = |i: usize| line(segment(i)).work_bound(&canvas, half_width);

        let keep = select_within_budget(
            count,
            budget,
            &cost,
            &|i| line(segment(i)).t,
            &|i| segment(i),
            &mut stats,
        );

        // The bound holds whatever the selection: a segment that would overrun it is left out.
        let mut planned = 0u64;
        for i in 0..count {
            if keep.as_ref().is_some_and(|k| !k[i]) {
                continue;
            }
            let l = line(segment(i));
            let work = l.work_bound(&canvas, half_width);
            if planned + work > budget {
                stats.over_budget += 1;
                continue;
            }
            planned += work;
            stats.drawn += 1;
            draw_line(
                &mut canvas,
                l.p0,
                l.p1,
                l.depth,
                half_width,
                fit.scale(),
                height_colour(l.t),
            );
        }
        stats.work = canvas.work;
        (canvas.into_png(), stats)
    }
}

/// What a toolpath preview drew, and the rasteriser work it took.
///
/// Ordinary prints are drawn whole. A G-code whose segments would cost more than the budget
/// (a small part printed over and over in place, or so many layers on one spot that each
/// pixel would be painted hundreds of times) is thinned until it fits, in this order:
/// exact duplicate segments are left out (they cannot change the image); then whole layers,
/// evenly spread from the top one down; then, as a last resort, segments evenly spread over
/// what is left (and any that would still overrun the budget).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreviewStats {
    /// Segments stored, i.e. what an unbounded preview would draw.
    pub segments: u64,
    /// Segments drawn.
    pub drawn: u64,
    /// Exact duplicates left out.
    pub duplicates: u64,
    /// Layers (heights) left out, and the segments they held.
    pub layers_left_out: u64,
    pub layer_segments_left_out: u64,
    /// Segments left out beyond whole layers, because the layers kept still cost too much.
    pub over_budget: u64,
    /// Rasteriser work done: sample rows scanned plus samples visited.
    pub work: u64,
    /// The most work allowed.
    pub budget: u64,
}

/// Rasteriser work allowed per sample of the supersampled canvas: several times what an
/// ordinary print needs (fixtures/cube_20mm.gcode takes about 10), little enough to bound the
/// drawing of any G-code to about a second and a half at the ~20–30 ns per unit measured for a
/// 512 px preview (67 M units), whatever its size.
pub const WORK_PER_SAMPLE: u64 = 64;

/// Height bins used to group segments into layers when thinning.
const LAYER_BINS: usize = 1 << 16;

/// Chooses the segments to draw so that their work bound stays within `budget`
/// (`None`: all of them). See [`PreviewStats`] for the order of the thinning steps.
fn select_within_budget<'a>(
    count: usize,
    budget: u64,
    cost: &dyn Fn(usize) -> u64,
    height: &dyn Fn(usize) -> f64,
    segment: &dyn Fn(usize) -> &'a [Point; 2],
    stats: &mut PreviewStats,
) -> Option<Vec<bool>> {
    let total: u64 = (0..count).map(cost).sum();
    if total <= budget {
        return None;
    }

    // Exact duplicates (either direction) paint the same samples at the same depth, and the
    // depth test keeps the first: only the first of each is drawn.
    let key = |i: usize| {
        let s = segment(i);
        let (a, b) = (s[0].map(f32::to_bits), s[1].map(f32::to_bits));
        if a <= b {
            [a, b]
        } else {
            [b, a]
        }
    };
    let mut order: Vec<u32> = (0..count as u32).collect();
    order.sort_unstable_by_key(|&i| (key(i as usize), i));
    let mut keep = vec![false; count];
    let mut previous = None;
    for &i in &order {
        let k = key(i as usize);
        if previous != Some(k) {
            keep[i as usize] = true;
            previous = Some(k);
        } else {
            stats.duplicates += 1;
        }
    }
    drop(order);
    let total: u64 = (0..count).filter(|&i| keep[i]).map(cost).sum();
    if total <= budget {
        return Some(keep);
    }

    // Whole layers, from the top down, one in every `step`, the smallest step that fits.
    let bin = |i: usize| (height(i).clamp(0.0, 1.0) * (LAYER_BINS - 1) as f64).round() as usize;
    let mut work = vec![0u64; LAYER_BINS];
    let mut held = vec![0u64; LAYER_BINS];
    for i in (0..count).filter(|&i| keep[i]) {
        work[bin(i)] += cost(i);
        held[bin(i)] += 1;
    }
    let layers: Vec<usize> = (0..LAYER_BINS).rev().filter(|&b| held[b] > 0).collect();
    let chosen = |step: usize| layers.iter().step_by(step).map(|&b| work[b]).sum::<u64>();
    let mut step = usize::try_from(total.div_ceil(budget))
        .unwrap_or(usize::MAX)
        .max(2);
    while step < layers.len() && chosen(step) > budget {
        step = (step + 1).max(step.saturating_mul(5) / 4);
    }
    let mut drawn_bin = vec![false; LAYER_BINS];
    for &b in layers.iter().step_by(step.max(1)) {
        drawn_bin[b] = true;
    }
    for &b in &layers {
        if !drawn_bin[b] {
            stats.layers_left_out += 1;
            stats.layer_segments_left_out += held[b];
        }
    }
    for (i, k) in keep.iter_mut().enumerate() {
        *k = *k && drawn_bin[bin(i)];
    }

    // Even the layers kept cost too much (one layer crowded with strokes): one segment in
    // `every`, spread over the whole layer rather than its first strokes only.
    let total: u64 = (0..count).filter(|&i| keep[i]).map(cost).sum();
    if total > budget {
        let every = total.div_ceil(budget);
        for (n, k) in keep.iter_mut().filter(|k| **k).enumerate() {
            if !(n as u64).is_multiple_of(every) {
                *k = false;
                stats.over_budget += 1;
            }
        }
    }
    Some(keep)
}

/// One segment in screen space: supersampled pixel ends, depths, and height (0 bottom, 1 top).
struct Line {
    p0: [f64; 2],
    p1: [f64; 2],
    depth: [f64; 2],
    t: f64,
}

impl Line {
    /// An upper bound of the work `draw_line` does for this line: the rows it scans, plus the
    /// samples inside its rectangle (at most area + perimeter / 2 + 1 for a convex region, one
    /// more per row for the rounding slack), and never more than whole rows.
    fn work_bound(&self, canvas: &Canvas, half_width: f64) -> u64 {
        let (dx, dy) = (self.p1[0] - self.p0[0], self.p1[1] - self.p0[1]);
        let length = (dx * dx + dy * dy).sqrt();
        if !length.is_finite() {
            return 0;
        }
        let Some((y0, y1)) = canvas.rows(line_y_range(self.p0, self.p1, half_width)) else {
            return 0;
        };
        let rows = (y1 - y0 + 1) as f64;
        let (long, wide) = (length + 2.0 * half_width, 2.0 * half_width);
        let samples = (long * wide + long + wide + 1.0 + rows).min(rows * canvas.width as f64);
        (rows + samples).ceil() as u64
    }
}

/// The rows a line of `half_width` around p0–p1 may touch (its corners, with room to spare).
fn line_y_range(p0: [f64; 2], p1: [f64; 2], half_width: f64) -> (f64, f64) {
    let reach = half_width * 1.5;
    (p0[1].min(p1[1]) - reach, p0[1].max(p1[1]) + reach)
}

/// The range of one bed axis (0 = X, 1 = Y) that holds the print: the full range of the
/// segment endpoints, minus outlying groups cut off by an empty gap of more than a quarter of
/// the range and holding at most 0.2 % of the points (purge and intro lines). Large prints are
/// sampled (at most ~256k points).
fn robust_range<'a>(
    segments: impl Iterator<Item = &'a [Point; 2]> + Clone,
    axis: usize,
) -> [f32; 2] {
    let count = segments.clone().count();
    let step = count.div_ceil(1 << 17).max(1);
    let mut values: Vec<f32> = segments
        .step_by(step)
        .flat_map(|s| [s[0][axis], s[1][axis]])
        .collect();
    values.sort_unstable_by(f32::total_cmp);
    let (mut lo, mut hi) = (0, values.len() - 1);
    let allowed = (values.len() / 500).max(4);
    for _ in 0..4 {
        let span = values[hi] - values[lo];
        let Some((i, gap)) = (lo..hi)
            .map(|i| (i, values[i + 1] - values[i]))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            break;
        };
        if gap <= 0.25 * span {
            break;
        }
        let (left, right) = (i + 1 - lo, hi - i);
        if left <= allowed && left < right {
            lo = i + 1;
        } else if right <= allowed && right < left {
            hi = i;
        } else {
            break;
        }
    }
    [values[lo], values[hi]]
}

fn unit(v: [f32; 3]) -> [f32; 3] {
    let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if l > 0.0 {
        v.map(|c| c / l)
    } else {
        [0.0; 3]
    }
}

/// Blue (bottom) → cyan → green → yellow → red (top).
fn height_colour(t: f64) -> [f32; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [48.0, 92.0, 210.0],
        [32.0, 182.0, 210.0],
        [70.0, 190.0, 80.0],
        [240.0, 205.0, 40.0],
        [226.0, 70.0, 40.0],
    ];
    let t = t.clamp(0.0, 1.0) as f32 * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    [0, 1, 2].map(|k| STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f)
}

/// Draws a thick line (a rectangle with square caps) shaded like a round bead.
fn draw_line(
    canvas: &mut Canvas,
    p0: [f64; 2],
    p1: [f64; 2],
    depth: [f64; 2],
    half_width: f64,
    pixels_per_mm: f64,
    colour: [f32; 3],
) {
    let (dx, dy) = (p1[0] - p0[0], p1[1] - p0[1]);
    let length = (dx * dx + dy * dy).sqrt();
    if !length.is_finite() {
        return;
    }
    // Direction along the line and across it (a point-like segment is drawn as a square dot).
    let (ux, uy) = if length > 1e-9 {
        (dx / length, dy / length)
    } else {
        (1.0, 0.0)
    };
    let (nx, ny) = (-uy, ux);
    // along(q) = (q − p0)·u ∈ [−hw, length + hw];  across(q) = (q − p0)·n ∈ [−hw, hw]
    let along0 = -(ux * p0[0] + uy * p0[1]);
    let across0 = -(nx * p0[0] + ny * p0[1]);
    let planes = [
        [ux, uy, along0 + half_width],
        [-ux, -uy, -along0 + length + half_width],
        [nx, ny, across0 + half_width],
        [-nx, -ny, -across0 + half_width],
    ];
    let y_range = line_y_range(p0, p1, half_width);
    let bulge_mm = half_width / pixels_per_mm;
    canvas.fill_convex(&planes, y_range, |canvas, x, y, px, py| {
        let along = ux * px + uy * py + along0;
        let across = (nx * px + ny * py + across0) / half_width;
        let t = if length > 1e-9 {
            (along / length).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let round = (1.0 - across * across).max(0.0).sqrt();
        let z = depth[0] + (depth[1] - depth[0]) * t + bulge_mm * round;
        let shade = (0.5 + 0.5 * round) as f32;
        canvas.plot(x, y, z, colour.map(|c| c * shade));
    });
}
