//! Where the time of a large G-code upload goes: the server's upload analysis
//! (`services::files::analyse_staged`: G-code analysis + toolpath preview + PNG) against its
//! parts, on the same file. Companion of `bench/upload_bench.sh`.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/bench-target nice cargo run --release --example upload_analysis_bench -- FILE.gcode...
//! ```
//!
//! For each file it prints, in seconds and MiB/s: `analyse_staged` (what an upload runs),
//! `gcode::analyse` alone (no preview), `gcode::analyse_with` feeding a `ToolpathPreview`
//! (no PNG), `render_png` with what it drew and the rasteriser work against its budget, the
//! preview's segment counts, and the process peak RSS (`VmHWM`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use printfarm::gcode::{self, MachineLimits, ToolpathVisitor};
use printfarm::render::ToolpathPreview;
use printfarm::services::files::{analyse_staged, Kind};

fn hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |k| k / 1024.0)
}

struct Preview(ToolpathPreview);

impl ToolpathVisitor for Preview {
    fn segment(&mut self, from: [f64; 3], to: [f64; 3], extruding: bool) {
        self.0.add_segment(from, to, extruding);
    }
}

fn reader(path: &Path) -> BufReader<File> {
    BufReader::with_capacity(256 * 1024, File::open(path).expect("open"))
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: upload_analysis_bench FILE.gcode...");
        std::process::exit(2);
    }
    println!("| file | MiB | step | seconds | MiB/s | notes |");
    println!("|---|---|---|---|---|---|");
    for f in files {
        let path = Path::new(&f);
        let size = std::fs::metadata(path).expect("stat").len();
        let mib = size as f64 / 1048576.0;
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let row = |step: &str, secs: f64, notes: String| {
            println!(
                "| {name} | {mib:.1} | {step} | {secs:.2} | {:.1} | {notes} |",
                mib / secs
            );
        };

        let t = Instant::now();
        let a = gcode::analyse(reader(path), &MachineLimits::marlin_defaults()).expect("analyse");
        row(
            "gcode::analyse (no preview)",
            t.elapsed().as_secs_f64(),
            format!("{} moves; peak RSS so far {:.0} MiB", a.moves, hwm_mib()),
        );

        let t = Instant::now();
        let mut p = Preview(ToolpathPreview::new());
        gcode::analyse_with(
            reader(path),
            &MachineLimits::marlin_defaults(),
            Some(&mut p),
        )
        .expect("analyse_with");
        row(
            "gcode::analyse_with + ToolpathPreview",
            t.elapsed().as_secs_f64(),
            format!(
                "{} extruding segments offered, {} kept; peak RSS so far {:.0} MiB",
                p.0.segments_added(),
                p.0.len(),
                hwm_mib()
            ),
        );
        let t = Instant::now();
        let (png, stats) = p.0.render_png_with_stats(&Default::default());
        row(
            "ToolpathPreview::render_png",
            t.elapsed().as_secs_f64(),
            format!(
                "{} bytes; {} of {} segments drawn ({} duplicates, {} layers with {} segments \
                 and {} more left out); work {:.1} M of {:.1} M allowed",
                png.len(),
                stats.drawn,
                stats.segments,
                stats.duplicates,
                stats.layers_left_out,
                stats.layer_segments_left_out,
                stats.over_budget,
                stats.work as f64 / 1e6,
                stats.budget as f64 / 1e6
            ),
        );
        drop(p);

        let t = Instant::now();
        analyse_staged(path, size, Kind::Gcode, false).expect("analyse_staged");
        row(
            "services::files::analyse_staged (upload)",
            t.elapsed().as_secs_f64(),
            format!("peak RSS so far {:.0} MiB", hwm_mib()),
        );
    }
}
