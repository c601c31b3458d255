//! Throughput and memory benchmark of the streaming G-code analyser (`printfarm::gcode`).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/bench-target-gcode nice cargo run --release --example gcode_bench [-- FILE.gcode | --mb N]
//! ```
//!
//! Without a file it builds a G-code of about 100 MB (`--mb N` to change) in the temp directory
//! by stacking copies of the real PrusaSlicer fixture `fixtures/cube_20mm.gcode` on top of each
//! other (each copy's Z words shifted up by 20 mm, so the layers keep rising), analyses it, and
//! deletes it. It prints the wall time, MB/s, the estimate, and the process peak RSS (`VmHWM`
//! from `/proc/self/status`) before and after the analysis, which shows that memory stays flat.
//! Fixtures are read from `$PRINTFARM_FIXTURES`, else `<crate>/fixtures`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use printfarm::gcode::{analyse, analyse_with, MachineLimits, ToolpathVisitor};

fn fixtures() -> PathBuf {
    std::env::var_os("PRINTFARM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")))
}

/// `VmHWM` (peak resident set) and `VmRSS` of this process in KiB, from /proc (Linux only).
fn memory_kib() -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// Shifts the `Z` word of a G0/G1 line by `dz` (the fixture writes `Z.2`, `Z20`, …).
fn shift_z(line: &str, dz: f64, out: &mut String) {
    out.clear();
    if !(line.starts_with("G1 ") || line.starts_with("G0 ")) || !line.contains('Z') {
        out.push_str(line);
        return;
    }
    for (i, word) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match word.strip_prefix('Z').and_then(|v| v.parse::<f64>().ok()) {
            Some(z) => out.push_str(&format!("Z{:.3}", z + dz)),
            None => out.push_str(word),
        }
    }
}

/// Writes a G-code of at least `target` bytes built from the cube fixture.
fn generate(path: &Path, target: u64) -> std::io::Result<u64> {
    let src = std::fs::read_to_string(fixtures().join("cube_20mm.gcode"))?;
    let lines: Vec<&str> = src.lines().collect();
    let body_start = lines
        .iter()
        .position(|l| *l == ";LAYER_CHANGE")
        .expect("fixture has layers");
    let body_end = lines
        .iter()
        .position(|l| l.starts_with("; filament used [mm]"))
        .expect("fixture has a footer");
    // The end G-code (after the last layer) must not be repeated: stop at the `M107` / `G91`
    // block that follows the last extrusion.
    let body_end = lines[..body_end]
        .iter()
        .rposition(|l| l.starts_with("M104 S0"))
        .unwrap_or(body_end);
    let (head, body, tail) = (
        &lines[..body_start],
        &lines[body_start..body_end],
        &lines[body_end..],
    );
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut written = 0u64;
    let emit = |w: &mut BufWriter<File>, l: &str| -> std::io::Result<u64> {
        w.write_all(l.as_bytes())?;
        w.write_all(b"\n")?;
        Ok(l.len() as u64 + 1)
    };
    for l in head {
        written += emit(&mut w, l)?;
    }
    let mut buf = String::new();
    let mut copies = 0u32;
    while written < target {
        let dz = 20.0 * f64::from(copies);
        for l in body {
            shift_z(l, dz, &mut buf);
            written += emit(&mut w, &buf)?;
        }
        copies += 1;
    }
    for l in tail {
        written += emit(&mut w, l)?;
    }
    w.flush()?;
    eprintln!("generated {copies} copies of the cube body");
    Ok(written)
}

struct CountSegments(u64, u64);

impl ToolpathVisitor for CountSegments {
    fn segment(&mut self, _from: [f64; 3], _to: [f64; 3], extruding: bool) {
        self.0 += 1;
        self.1 += u64::from(extruding);
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut target_mb = 100u64;
    let mut file: Option<PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--mb" {
            target_mb = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(100);
            i += 2;
        } else {
            file = Some(PathBuf::from(&args[i]));
            i += 1;
        }
    }
    let (path, temporary) = match file {
        Some(p) => (p, false),
        None => {
            let p = std::env::temp_dir().join(format!("gcode_bench_{}.gcode", std::process::id()));
            let t = Instant::now();
            let n = generate(&p, target_mb * 1_000_000)?;
            eprintln!(
                "wrote {} ({:.1} MB) in {:.2} s",
                p.display(),
                n as f64 / 1e6,
                t.elapsed().as_secs_f64()
            );
            (p, true)
        }
    };
    let size = std::fs::metadata(&path)?.len();
    let (hwm_before, rss_before) = memory_kib();

    let t = Instant::now();
    let reader = BufReader::with_capacity(256 * 1024, File::open(&path)?);
    let a = analyse(reader, &MachineLimits::marlin_defaults())?;
    let secs = t.elapsed().as_secs_f64();
    let (hwm_after, rss_after) = memory_kib();

    println!(
        "file               {} ({:.1} MB)",
        path.display(),
        size as f64 / 1e6
    );
    println!("lines / moves      {} / {}", a.lines, a.moves);
    println!("analyse wall time  {secs:.3} s");
    println!("throughput         {:.1} MB/s", size as f64 / 1e6 / secs);
    println!(
        "estimate           {:.0} s ({:.1} h); filament {:.1} m; layers {}",
        a.estimated_time_s,
        a.estimated_time_s / 3600.0,
        a.filament_used_mm / 1000.0,
        a.layer_count
    );
    println!(
        "peak RSS (VmHWM)   before {}, after {}  (VmRSS before {}, after {})",
        mib(hwm_before),
        mib(hwm_after),
        mib(rss_before),
        mib(rss_after)
    );

    // Second pass with a toolpath visitor (the preview renderer's path).
    let t = Instant::now();
    let mut counter = CountSegments(0, 0);
    let reader = BufReader::with_capacity(256 * 1024, File::open(&path)?);
    let b = analyse_with(
        reader,
        &MachineLimits::marlin_defaults(),
        Some(&mut counter),
    )?;
    let secs2 = t.elapsed().as_secs_f64();
    let (hwm_end, _) = memory_kib();
    println!(
        "with visitor       {secs2:.3} s ({:.1} MB/s), {} segments ({} extruding); VmHWM {}",
        size as f64 / 1e6 / secs2,
        counter.0,
        counter.1,
        mib(hwm_end)
    );
    assert_eq!(a.estimated_time_s, b.estimated_time_s);

    if temporary {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
