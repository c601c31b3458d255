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
    pub fn render_png(&self, opts: &RenderOptions) -> Vec<u8> {
        let mut canvas = Canvas::new(opts.width, opts.height);
        let pending = self.chain.map(|c| [c.start, c.end]);
        let segments = || self.segments.iter().chain(pending.iter());
        if segments().next().is_none() {
            return canvas.into_png();
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

        for seg in segments() {
            let a = seg[0].map(f64::from);
            let b = seg[1].map(f64::from);
            let t = ((a[2] + b[2]) / 2.0 - z_min) / z_span;
            let colour = height_colour(t);
            let (sa, sb) = (project(a), project(b));
            draw_line(
                &mut canvas,
                fit.to_pixel(sa),
                fit.to_pixel(sb),
                [sa[2], sb[2]],
                half_width,
                fit.scale(),
                colour,
            );
        }
        canvas.into_png()
    }
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
    let reach = half_width * 1.5;
    let y_range = (p0[1].min(p1[1]) - reach, p0[1].max(p1[1]) + reach);
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
