//! PNG previews, software-rendered (no GPU): shaded isometric views of meshes and G-code
//! toolpath previews.
//!
//! Both use the same isometric camera (seen from the front right, above; Z up), auto-fit the
//! content to the image with a small margin, use a depth buffer and 2×2 supersampling, and
//! encode an 8-bit RGB PNG. Images are clamped to 1..=4096 pixels per side.

mod raster;
mod toolpath;

#[cfg(test)]
mod tests;

use raster::{dot, project, view_direction, Canvas, Fit};

pub use toolpath::{PreviewStats, ToolpathPreview, DEFAULT_MAX_SEGMENTS, WORK_PER_SAMPLE};

/// Size of a rendered preview in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    pub width: u32,
    pub height: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            width: 512,
            height: 512,
        }
    }
}

/// Fraction of the image kept free around the content.
const MARGIN: f64 = 0.06;
/// The model colour: a print-farm orange.
const MODEL_COLOUR: [f32; 3] = [240.0, 128.0, 32.0];
/// Direction towards the light (world space): above, front, a little right.
const LIGHT: [f64; 3] = [0.27, -0.49, 0.83];
const AMBIENT: f64 = 0.32;

/// A shaded isometric view of a mesh (flat shading by face normal against a fixed light,
/// z-buffer, light background, model colour orange-ish), auto-fitted to the image.
///
/// Faces are lit from both sides, so meshes with flipped normals still look right. Triangles
/// with out-of-range indices or non-finite corners are skipped; an empty mesh gives the
/// background only.
pub fn render_mesh_png(mesh: &crate::mesh::Mesh, opts: &RenderOptions) -> Vec<u8> {
    let mut canvas = Canvas::new(opts.width, opts.height);
    let nv = mesh.vertices.len();
    let corners = |t: &[u32; 3]| -> Option<[[f64; 3]; 3]> {
        let mut out = [[0.0; 3]; 3];
        for (k, &i) in t.iter().enumerate() {
            let v = *mesh.vertices.get(i as usize)?;
            if v.iter().any(|c| !c.is_finite()) {
                return None;
            }
            out[k] = v.map(f64::from);
        }
        Some(out)
    };

    // Projected bounds of the drawn triangles.
    let (mut min, mut max) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    let mut any = false;
    if nv > 0 {
        for t in &mesh.triangles {
            if let Some(c) = corners(t) {
                any = true;
                for p in c {
                    let s = project(p);
                    for k in 0..2 {
                        min[k] = min[k].min(s[k]);
                        max[k] = max[k].max(s[k]);
                    }
                }
            }
        }
    }
    if !any {
        return canvas.into_png();
    }
    let fit = Fit::new(min, max, canvas.width, canvas.height, MARGIN);
    let light = normalize(LIGHT);
    let view = view_direction();

    for t in &mesh.triangles {
        let Some(c) = corners(t) else { continue };
        let mut n = cross(sub(c[1], c[0]), sub(c[2], c[0]));
        let len = dot(n, n).sqrt();
        if len == 0.0 || !len.is_finite() {
            continue;
        }
        n = n.map(|v| v / len);
        if dot(n, view) < 0.0 {
            n = n.map(|v| -v); // two-sided lighting
        }
        let intensity = (AMBIENT + (1.0 - AMBIENT) * dot(n, light).max(0.0)) as f32;
        let colour = MODEL_COLOUR.map(|v| v * intensity);

        let s = c.map(project);
        let p = s.map(|s| fit.to_pixel(s));
        fill_triangle(&mut canvas, p, [s[0][2], s[1][2], s[2][2]], colour);
    }
    canvas.into_png()
}

/// Fills a screen-space triangle with one colour, depth interpolated linearly.
fn fill_triangle(canvas: &mut Canvas, p: [[f64; 2]; 3], depth: [f64; 3], colour: [f32; 3]) {
    let area2 =
        (p[1][0] - p[0][0]) * (p[2][1] - p[0][1]) - (p[1][1] - p[0][1]) * (p[2][0] - p[0][0]);
    if area2.abs() < 1e-12 || !area2.is_finite() {
        return;
    }
    // Depth plane z = zx·x + zy·y + z0.
    let (d1, d2) = (depth[1] - depth[0], depth[2] - depth[0]);
    let zx = (d1 * (p[2][1] - p[0][1]) - d2 * (p[1][1] - p[0][1])) / area2;
    let zy = (d2 * (p[1][0] - p[0][0]) - d1 * (p[2][0] - p[0][0])) / area2;
    let z0 = depth[0] - zx * p[0][0] - zy * p[0][1];

    // Edge half-planes, oriented so the inside is positive.
    let sign = area2.signum();
    let plane = |a: [f64; 2], b: [f64; 2]| {
        // cross(b − a, q − a) = (bx−ax)(qy−ay) − (by−ay)(qx−ax)
        let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
        [-ey * sign, ex * sign, (ey * a[0] - ex * a[1]) * sign]
    };
    let planes = [plane(p[0], p[1]), plane(p[1], p[2]), plane(p[2], p[0])];
    let y_min = p[0][1].min(p[1][1]).min(p[2][1]);
    let y_max = p[0][1].max(p[1][1]).max(p[2][1]);
    canvas.fill_convex(&planes, (y_min, y_max), |canvas, x, y, px, py| {
        canvas.plot(x, y, zx * px + zy * py + z0, colour);
    });
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalize(a: [f64; 3]) -> [f64; 3] {
    let l = dot(a, a).sqrt();
    a.map(|v| v / l)
}
