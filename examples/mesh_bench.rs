//! Mesh reading/analysis benchmark.
//!
//! ```text
//! cargo run --release --example mesh_bench                 # generate a 1M-triangle torus in a temp file
//! cargo run --release --example mesh_bench -- FILE.stl     # analyse FILE.stl (generated there if missing)
//! cargo run --release --example mesh_bench -- FILE.stl --png preview.png --json
//! ```
//!
//! Generates (if needed) a binary STL of a finely tessellated torus (R = 40 mm, r = 15 mm,
//! 1000 × 500 quads = 1,000,000 triangles, closed), then times `read_mesh` + `analyse` and
//! prints triangles, volume, area, watertightness, seconds and peak RSS (VmHWM). `--json`
//! adds one machine-readable line (used by bench/mesh_bench.sh); `--png` also renders a preview
//! (timed separately).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use printfarm::mesh::{analyse, read_mesh, MeshFormat};
use printfarm::render::{render_mesh_png, RenderOptions};

const MAJOR_RADIUS: f64 = 40.0;
const MINOR_RADIUS: f64 = 15.0;
const AROUND: usize = 1000; // segments around the big circle
const TUBE: usize = 500; // segments around the tube

fn main() {
    let mut path: Option<PathBuf> = None;
    let mut png: Option<PathBuf> = None;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--png" => png = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                eprintln!("usage: mesh_bench [FILE.stl] [--png OUT.png] [--json]");
                return;
            }
            _ => path = Some(PathBuf::from(arg)),
        }
    }
    let path = path.unwrap_or_else(|| std::env::temp_dir().join("printfarm_mesh_bench_torus.stl"));
    if !path.exists() {
        let t = Instant::now();
        write_torus(&path).expect("write the benchmark STL");
        eprintln!(
            "generated {} ({} triangles, {:.1} MB) in {:.2} s",
            path.display(),
            2 * AROUND * TUBE,
            std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        eprintln!(
            "analytic smooth torus: volume {:.1} mm³, area {:.1} mm² (the tessellation is slightly smaller)",
            2.0 * std::f64::consts::PI.powi(2) * MAJOR_RADIUS * MINOR_RADIUS.powi(2),
            4.0 * std::f64::consts::PI.powi(2) * MAJOR_RADIUS * MINOR_RADIUS
        );
    }
    let rss_before = proc_status_kb("VmRSS");

    let t0 = Instant::now();
    let file = File::open(&path).expect("open the STL");
    let mesh = match read_mesh(MeshFormat::Stl, file) {
        Ok(mesh) => mesh,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let read_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let a = analyse(MeshFormat::Stl, &mesh);
    let analyse_s = t1.elapsed().as_secs_f64();
    let peak_kb = proc_status_kb("VmHWM");

    println!("file            {}", path.display());
    println!("triangles       {}", a.triangles);
    println!("vertices        {}", a.vertices);
    println!("volume          {:.3} mm³", a.volume_mm3);
    println!("area            {:.3} mm²", a.area_mm2);
    println!(
        "bbox            {:.3?} .. {:.3?}  (size {:.3?})",
        a.bbox_min, a.bbox_max, a.size
    );
    println!(
        "watertight      {}  (boundary {}, non-manifold {}, mis-oriented {}, degenerate {}, parts {})",
        a.watertight,
        a.boundary_edges,
        a.non_manifold_edges,
        a.inconsistent_orientation_edges,
        a.degenerate_triangles,
        a.objects
    );
    println!("read_mesh       {read_s:.3} s");
    println!("analyse         {analyse_s:.3} s");
    println!("total           {:.3} s", read_s + analyse_s);
    println!(
        "peak RSS        {:.1} MB (VmHWM; VmRSS before reading {:.1} MB; indexed mesh {:.1} MB)",
        peak_kb as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        (mesh.vertices.len() * 12 + mesh.triangles.len() * 12) as f64 / 1048576.0
    );

    let mut render_s = None;
    if let Some(png) = &png {
        let t = Instant::now();
        let bytes = render_mesh_png(&mesh, &RenderOptions::default());
        render_s = Some(t.elapsed().as_secs_f64());
        std::fs::write(png, bytes).expect("write the PNG");
        println!(
            "render 512²     {:.3} s -> {}",
            render_s.unwrap_or_default(),
            png.display()
        );
    }

    if json {
        let line = serde_json::json!({
            "tool": "printfarm (Rust)",
            "triangles": a.triangles,
            "volume_mm3": a.volume_mm3,
            "area_mm2": a.area_mm2,
            "watertight": a.watertight,
            "load_s": read_s,
            "metrics_s": analyse_s,
            "total_s": read_s + analyse_s,
            "peak_rss_mb": peak_kb as f64 / 1024.0,
            "render_s": render_s,
        });
        println!("JSON {line}");
    }
}

/// A value in kB from /proc/self/status (0 where unavailable).
fn proc_status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Streams a closed torus as binary STL (outward normals, counter-clockwise from outside).
/// Shared corners are computed from the same grid indices, so they are bit-identical.
fn write_torus(path: &Path) -> std::io::Result<()> {
    let point = |i: usize, j: usize| -> [f32; 3] {
        let u = (i % AROUND) as f64 / AROUND as f64 * std::f64::consts::TAU;
        let v = (j % TUBE) as f64 / TUBE as f64 * std::f64::consts::TAU;
        let ring = MAJOR_RADIUS + MINOR_RADIUS * v.cos();
        [
            (ring * u.cos()) as f32,
            (ring * u.sin()) as f32,
            (MINOR_RADIUS * v.sin()) as f32,
        ]
    };
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut header = [b' '; 80];
    let text = b"printfarm mesh_bench torus R=40 r=15 1000x500 binary STL";
    header[..text.len()].copy_from_slice(text);
    out.write_all(&header)?;
    out.write_all(&((2 * AROUND * TUBE) as u32).to_le_bytes())?;
    let mut facet = |t: [[f32; 3]; 3]| -> std::io::Result<()> {
        let e1 = [0, 1, 2].map(|k| f64::from(t[1][k] - t[0][k]));
        let e2 = [0, 1, 2].map(|k| f64::from(t[2][k] - t[0][k]));
        let n = [
            e1[1] * e2[2] - e1[2] * e2[1],
            e1[2] * e2[0] - e1[0] * e2[2],
            e1[0] * e2[1] - e1[1] * e2[0],
        ];
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-30);
        let mut rec = [0u8; 50];
        let values = n
            .map(|c| (c / len) as f32)
            .into_iter()
            .chain(t.into_iter().flatten());
        for (k, v) in values.enumerate() {
            rec[k * 4..k * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out.write_all(&rec)
    };
    for i in 0..AROUND {
        for j in 0..TUBE {
            let (a, b, c, d) = (
                point(i, j),
                point(i + 1, j),
                point(i + 1, j + 1),
                point(i, j + 1),
            );
            // (u, v) increasing is counter-clockwise seen from outside the tube.
            facet([a, b, c])?;
            facet([a, c, d])?;
        }
    }
    out.flush()
}
