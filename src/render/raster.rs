//! A tiny software rasteriser: a supersampled RGB canvas with a depth buffer, convex-region
//! scan conversion, the isometric camera and PNG output.

/// Supersampling factor per axis (4 samples per output pixel).
pub(super) const SUPERSAMPLE: usize = 2;

/// Output images are clamped to this many pixels per side.
pub(super) const MAX_SIDE: u32 = 4096;

pub(super) type Rgb = [f32; 3];

/// Direction towards the viewer: front (−Y), right (+X), above (+Z), the usual slicer view.
const VIEW: [f64; 3] = [
    0.577_350_269_189_625_8,
    -0.577_350_269_189_625_8,
    0.577_350_269_189_625_8,
];
/// Screen right: (1, 1, 0)/√2 (perpendicular to VIEW, horizontal).
const RIGHT: [f64; 3] = [
    std::f64::consts::FRAC_1_SQRT_2,
    std::f64::consts::FRAC_1_SQRT_2,
    0.0,
];
/// Screen up: VIEW × RIGHT = (−1, 1, 2)/√6.
const UP: [f64; 3] = [
    -0.408_248_290_463_863,
    0.408_248_290_463_863,
    0.816_496_580_927_726,
];

/// Isometric projection of a world point: (screen x, screen y up, depth towards the viewer).
pub(super) fn project(p: [f64; 3]) -> [f64; 3] {
    [dot(p, RIGHT), dot(p, UP), dot(p, VIEW)]
}

pub(super) fn view_direction() -> [f64; 3] {
    VIEW
}

pub(super) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Maps projected coordinates to supersampled pixel coordinates, fitting given bounds.
pub(super) struct Fit {
    scale: f64,
    offset: [f64; 2],
}

impl Fit {
    /// `min`/`max` are projected (screen x, screen y) bounds; `margin` a fraction of the side.
    pub(super) fn new(
        min: [f64; 2],
        max: [f64; 2],
        width: usize,
        height: usize,
        margin: f64,
    ) -> Fit {
        let (w, h) = (width as f64, height as f64);
        let span = [(max[0] - min[0]).max(1e-9), (max[1] - min[1]).max(1e-9)];
        let scale =
            ((w * (1.0 - 2.0 * margin)) / span[0]).min((h * (1.0 - 2.0 * margin)) / span[1]);
        let centre = [(min[0] + max[0]) / 2.0, (min[1] + max[1]) / 2.0];
        Fit {
            scale,
            offset: [w / 2.0 - centre[0] * scale, h / 2.0 + centre[1] * scale],
        }
    }

    /// Pixels per world millimetre.
    pub(super) fn scale(&self) -> f64 {
        self.scale
    }

    /// Pixel position (x right, y down) of a projected point.
    pub(super) fn to_pixel(&self, s: [f64; 3]) -> [f64; 2] {
        [
            self.offset[0] + s[0] * self.scale,
            self.offset[1] - s[1] * self.scale,
        ]
    }
}

/// A supersampled colour + depth buffer.
pub(super) struct Canvas {
    pub(super) width: usize,
    pub(super) height: usize,
    color: Vec<Rgb>,
    depth: Vec<f32>,
    /// Rasteriser work done so far: rows scanned plus samples visited by `fill_convex`.
    pub(super) work: u64,
}

impl Canvas {
    /// A canvas for an output image of `width`×`height`, cleared to a light vertical gradient.
    pub(super) fn new(width: u32, height: u32) -> Canvas {
        let (w, h) = (
            width.clamp(1, MAX_SIDE) as usize * SUPERSAMPLE,
            height.clamp(1, MAX_SIDE) as usize * SUPERSAMPLE,
        );
        let mut color = Vec::with_capacity(w * h);
        for y in 0..h {
            let t = y as f32 / h as f32;
            let top = [246.0, 247.0, 250.0];
            let bottom = [222.0, 225.0, 232.0];
            let c = [0, 1, 2].map(|k| top[k] + (bottom[k] - top[k]) * t);
            color.extend(std::iter::repeat_n(c, w));
        }
        Canvas {
            width: w,
            height: h,
            color,
            depth: vec![f32::NEG_INFINITY; w * h],
            work: 0,
        }
    }

    /// Writes a sample if it is nearer than what is there.
    #[inline]
    pub(super) fn plot(&mut self, x: usize, y: usize, depth: f64, c: Rgb) {
        let i = y * self.width + x;
        let d = depth as f32;
        if d > self.depth[i] {
            self.depth[i] = d;
            self.color[i] = c;
        }
    }

    /// Scan-converts the convex region `a·x + b·y + c ≥ 0` for every plane `[a, b, c]`, calling
    /// `f(x, y, px, py)` for every sample whose centre (`px`, `py`) lies inside, rows `y0..=y1`.
    pub(super) fn fill_convex(
        &mut self,
        planes: &[[f64; 3]],
        y_range: (f64, f64),
        mut f: impl FnMut(&mut Canvas, usize, usize, f64, f64),
    ) {
        let Some((y0, y1)) = self.rows(y_range) else {
            return;
        };
        let x_last = self.width as f64 - 1.0;
        for y in y0..=y1 {
            self.work += 1;
            let py = y as f64 + 0.5;
            let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
            for &[a, b, c] in planes {
                let rest = b * py + c;
                if a.abs() < 1e-12 {
                    if rest < -1e-9 {
                        hi = f64::NEG_INFINITY;
                    }
                } else if a > 0.0 {
                    lo = lo.max(-rest / a);
                } else {
                    hi = hi.min(-rest / a);
                }
            }
            // A hair of slack so samples exactly on shared edges are not lost to rounding.
            let x0 = (lo - 0.5 - 1e-7).ceil().max(0.0);
            let x1 = (hi - 0.5 + 1e-7).floor().min(x_last);
            if x0.is_nan() || x1.is_nan() || x0 > x1 {
                continue;
            }
            self.work += (x1 - x0) as u64 + 1;
            for x in x0 as usize..=x1 as usize {
                f(self, x, y, x as f64 + 0.5, py);
            }
        }
    }

    /// The sample rows `fill_convex` scans for a y range (none if it misses the canvas).
    pub(super) fn rows(&self, y_range: (f64, f64)) -> Option<(usize, usize)> {
        let y0 = (y_range.0 - 0.5).ceil().max(0.0);
        let y1 = (y_range.1 - 0.5).floor().min(self.height as f64 - 1.0);
        if y0.is_nan() || y1.is_nan() || y0 > y1 {
            return None;
        }
        Some((y0 as usize, y1 as usize))
    }

    /// Averages the supersamples and encodes a PNG.
    pub(super) fn into_png(self) -> Vec<u8> {
        let (w, h) = (self.width / SUPERSAMPLE, self.height / SUPERSAMPLE);
        let mut rgb = Vec::with_capacity(w * h * 3);
        let n = (SUPERSAMPLE * SUPERSAMPLE) as f32;
        for y in 0..h {
            for x in 0..w {
                let mut sum = [0.0f32; 3];
                for sy in 0..SUPERSAMPLE {
                    let row = (y * SUPERSAMPLE + sy) * self.width;
                    for sx in 0..SUPERSAMPLE {
                        let c = self.color[row + x * SUPERSAMPLE + sx];
                        for k in 0..3 {
                            sum[k] += c[k];
                        }
                    }
                }
                rgb.extend(sum.map(|v| (v / n).round().clamp(0.0, 255.0) as u8));
            }
        }
        encode_png(w as u32, h as u32, &rgb)
    }
}

fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let result = (|| -> Result<(), png::EncodingError> {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()
    })();
    if let Err(e) = result {
        // Cannot happen for a well-sized in-memory image; never take the caller down for it.
        tracing::error!(error = %e, "PNG encoding failed");
        out.clear();
    }
    out
}
