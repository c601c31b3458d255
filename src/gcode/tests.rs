//! Tests of the G-code analyser: the two real PrusaSlicer fixtures (acceptance), synthetic
//! headers of other slicers, G-code forms, arcs, overrides, the upload sniff, and fuzzing.
//!
//! Fixtures are read from `$PRINTFARM_FIXTURES` if set, else `<crate>/fixtures`.
//!
//! Measured against PrusaSlicer 2.5.0 while writing this module (our estimate with the file's
//! own M201–M205 lines vs. the footer's normal-mode figure): the cube fixture 956.4 s vs 956 s
//! (+0.05 %), the cylinder fixture 435.2 s vs 435 s (+0.04 %), and 35 more slices kept out of
//! the repository (cylinders with 12–384 facets, gyroid / grid / honeycomb infill, spheres, a
//! tube with brim and wipe, per-feature accelerations, legacy / marlin2 flavours, relative /
//! absolute E, silent mode, XY acceleration limits below the print acceleration, 200 mm/s²
//! accelerations) all within ±0.2 % (worst +0.19 %); filament within 0.02 mm on all of them.

use std::io::{BufReader, Read};
use std::path::PathBuf;

use super::*;

fn fixtures() -> PathBuf {
    std::env::var_os("PRINTFARM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")))
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    let p = fixtures().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn analyse_file(name: &str) -> GcodeAnalysis {
    let f = std::fs::File::open(fixtures().join(name)).expect("fixture");
    analyse(BufReader::new(f), &MachineLimits::marlin_defaults()).expect("analyse")
}

fn run(src: &str) -> GcodeAnalysis {
    analyse(src.as_bytes(), &MachineLimits::marlin_defaults()).expect("analyse")
}

fn run_with(src: &str, limits: &MachineLimits) -> GcodeAnalysis {
    analyse(src.as_bytes(), limits).expect("analyse")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// Limits with no acceleration / jerk effects worth mentioning: time ≈ Σ distance / feedrate.
fn fast_limits() -> MachineLimits {
    MachineLimits {
        max_feedrate: [1e4; 4],
        max_acceleration: [1e8; 4],
        acceleration_print: 1e8,
        acceleration_retract: 1e8,
        acceleration_travel: 1e8,
        max_jerk: [1e4; 4],
        min_extruding_rate: 0.0,
        min_travel_rate: 0.0,
        ..MachineLimits::marlin_defaults()
    }
}

#[derive(Default)]
struct Collect {
    segments: usize,
    extruding: usize,
    length: f64,
    extruded_length: f64,
    min_y: f64,
    max_z: f64,
}

impl ToolpathVisitor for Collect {
    fn segment(&mut self, from: [f64; 3], to: [f64; 3], extruding: bool) {
        let d = ((to[0] - from[0]).powi(2) + (to[1] - from[1]).powi(2) + (to[2] - from[2]).powi(2))
            .sqrt();
        self.segments += 1;
        self.length += d;
        if extruding {
            self.extruding += 1;
            self.extruded_length += d;
            self.min_y = self.min_y.min(to[1]).min(from[1]);
            self.max_z = self.max_z.max(to[2]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Acceptance: real PrusaSlicer output.

#[test]
fn cube_fixture_matches_prusaslicer() {
    let a = analyse_file("cube_20mm.gcode");
    // Time: footer says 15m 56s; the file's M201/M203/M204/M205 override the Marlin defaults.
    assert_eq!(a.slicer_estimated_time_s, Some(956.0));
    let err = (a.estimated_time_s - 956.0) / 956.0;
    assert!(
        err.abs() < 0.01,
        "estimate {} s, error {:.3} %",
        a.estimated_time_s,
        err * 100.0
    );
    // Filament: 1303.27 − 21.5 (purge line before the first layer) + 0.8 (final retraction).
    assert!(
        close(a.filament_used_mm, 1282.57, 0.5),
        "{}",
        a.filament_used_mm
    );
    assert!(
        close(a.filament_used_cm3, 3.08, 0.006),
        "{}",
        a.filament_used_cm3
    );
    assert!(
        close(a.filament_weight_g, 3.83, 0.006),
        "{}",
        a.filament_weight_g
    );
    assert_eq!(a.slicer_filament_mm, Some(1282.57));
    assert_eq!(a.slicer_filament_g, Some(3.83));
    assert_eq!(a.slicer.as_deref(), Some("PrusaSlicer"));
    assert_eq!(a.slicer_version.as_deref(), Some("2.5.0"));
    assert_eq!(a.layer_height, Some(0.2));
    assert_eq!(a.first_layer_height, Some(0.2));
    assert_eq!(a.layer_count, 100);
    assert!(close(a.max_z, 20.0, 1e-9), "{}", a.max_z);
    assert_eq!(a.nozzle_temperatures, vec![215.0]);
    assert_eq!(a.bed_temperature, Some(60.0));
    assert!(a.heated_bed);
    assert_eq!(a.filament_diameter, Some(1.75));
    assert_eq!(a.filament_density, Some(1.24));
    assert_eq!(a.filament_type.as_deref(), Some("PLA"));
    assert_eq!(
        a.settings.get("fill_density").map(String::as_str),
        Some("15%")
    );
    assert_eq!(
        a.settings.get("gcode_flavor").map(String::as_str),
        Some("marlin2")
    );
    assert_eq!(
        a.settings.get("gcode_substitutions").map(String::as_str),
        Some("")
    );
    assert!(a.settings.len() > 200, "{}", a.settings.len());
    assert!(!a
        .settings
        .contains_key("external perimeters extrusion width"));
    // Extent of the print (the skirt included, the purge line at Y = −3 not).
    assert!(close(a.bounds_min[0], 111.643, 1e-9) && close(a.bounds_max[0], 138.357, 1e-9));
    assert!(close(a.bounds_min[1], 91.643, 1e-9) && close(a.bounds_max[1], 118.357, 1e-9));
    assert!(close(a.bounds_min[2], 0.2, 1e-9));
    assert_eq!(a.extruders_used, 1);
    assert!(!a.supports && !a.raft);
    assert_eq!(a.lines, 7001);
    assert!(a.moves > 5000);
}

#[test]
fn cylinder_fixture_matches_prusaslicer() {
    // Legacy flavour with per-feature `M204 S`, absolute E, silent mode, XY accel cap.
    let a = analyse_file("cylinder_prusa.gcode");
    assert_eq!(
        a.slicer_estimated_time_s,
        Some(435.0),
        "normal mode, not silent (437 s)"
    );
    let err = (a.estimated_time_s - 435.0) / 435.0;
    assert!(
        err.abs() < 0.01,
        "estimate {} s, error {:.3} %",
        a.estimated_time_s,
        err * 100.0
    );
    assert!(
        close(a.filament_used_mm, 665.31, 0.5),
        "{}",
        a.filament_used_mm
    );
    assert!(
        close(a.filament_weight_g, 2.03, 0.006),
        "{}",
        a.filament_weight_g
    );
    assert_eq!(a.slicer_filament_g, Some(2.03));
    assert_eq!(a.layer_height, Some(0.25));
    assert_eq!(a.first_layer_height, Some(0.3));
    assert_eq!(a.layer_count, 40);
    assert!(close(a.max_z, 10.05, 1e-9));
    assert_eq!(a.nozzle_temperatures, vec![235.0]);
    assert_eq!(a.bed_temperature, Some(80.0));
    assert_eq!(a.filament_type.as_deref(), Some("PETG"));
    assert_eq!(a.filament_density, Some(1.27));
    assert_eq!(
        a.settings.get("gcode_flavor").map(String::as_str),
        Some("marlin")
    );
}

#[test]
fn fixture_estimates_do_not_depend_on_starting_limits() {
    // The files set every limit themselves, so the printer profile we start from is irrelevant.
    let types: serde_json::Value =
        serde_json::from_slice(&fixture_bytes("printer_types.json")).unwrap();
    let mk3 = types
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["short_name"] == "PRUSA_MK3S_PLUS")
        .unwrap();
    let limits = MachineLimits::from_printer_profile(mk3).unwrap();
    let f = std::fs::File::open(fixtures().join("cube_20mm.gcode")).unwrap();
    let a = analyse(BufReader::new(f), &limits).unwrap();
    let b = analyse_file("cube_20mm.gcode");
    assert_eq!(a.estimated_time_s, b.estimated_time_s);
}

#[test]
fn printer_profiles() {
    let types: serde_json::Value =
        serde_json::from_slice(&fixture_bytes("printer_types.json")).unwrap();
    let mut some = 0;
    for t in types.as_array().unwrap() {
        let l = MachineLimits::from_printer_profile(t);
        if t["gcode_flavor"] == "none" {
            assert!(l.is_none(), "{}", t["short_name"]);
        } else {
            let l = l.unwrap_or_else(|| panic!("{}", t["short_name"]));
            assert!(l
                .max_feedrate
                .iter()
                .chain(&l.max_acceleration)
                .all(|v| *v > 0.0));
            some += 1;
        }
    }
    assert!(some > 20);
    let mk4 = types
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["short_name"] == "PRUSA_MK4")
        .unwrap();
    let l = MachineLimits::from_printer_profile(mk4).unwrap();
    assert_eq!(l.max_feedrate, [400.0, 400.0, 12.0, 100.0]);
    assert_eq!(l.max_acceleration, [4000.0, 4000.0, 200.0, 2500.0]);
}

#[test]
fn visitor_sees_the_whole_toolpath() {
    let bytes = fixture_bytes("cube_20mm.gcode");
    let mut c = Collect {
        min_y: f64::MAX,
        ..Default::default()
    };
    let a = analyse_with(&bytes[..], &MachineLimits::marlin_defaults(), Some(&mut c)).unwrap();
    assert!(
        c.segments > 4500 && c.extruding > 3500,
        "{} {}",
        c.segments,
        c.extruding
    );
    // The purge line (Y = −3) is part of the toolpath even though it is not in the bounds.
    assert!(close(c.min_y, -3.0, 1e-9));
    assert!(close(c.max_z, a.max_z, 1e-9));
    // Same result with and without a visitor.
    assert_eq!(a, analyse_file("cube_20mm.gcode"));
}

#[test]
fn tiny_read_buffers_and_crlf_give_the_same_result() {
    let bytes = fixture_bytes("cube_20mm.gcode");
    let whole = analyse(&bytes[..], &MachineLimits::marlin_defaults()).unwrap();
    let tiny = analyse(
        BufReader::with_capacity(7, &bytes[..]),
        &MachineLimits::marlin_defaults(),
    )
    .unwrap();
    assert_eq!(whole, tiny);
    let crlf: Vec<u8> = bytes
        .split(|&b| b == b'\n')
        .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
        .collect();
    let c = analyse(&crlf[..], &MachineLimits::marlin_defaults()).unwrap();
    assert_eq!(c.estimated_time_s, whole.estimated_time_s);
    assert_eq!(c.filament_used_mm, whole.filament_used_mm);
    assert_eq!(c.settings, whole.settings);
    assert_eq!(c.slicer_estimated_time_s, Some(956.0));
}

#[test]
fn serde_round_trip() {
    let a = analyse_file("cube_20mm.gcode");
    let json = serde_json::to_string(&a).unwrap();
    let b: GcodeAnalysis = serde_json::from_str(&json).unwrap();
    assert_eq!(a.settings, b.settings);
    assert_eq!(a.layer_count, b.layer_count);
    assert!(close(a.estimated_time_s, b.estimated_time_s, 1e-9));
    assert!(close(a.filament_used_mm, b.filament_used_mm, 1e-9));
}

// ---------------------------------------------------------------------------------------------
// Motion, modes and overrides.

#[test]
fn absolute_relative_and_g92() {
    // Absolute E with G92 resets; relative XYZ via G91; net and max E.
    let a = run_with(
        "G90\nM82\nG92 E0\nG1 X10 E1 F600\nG1 X20 E2\nG92 E0\nG1 X30 E1\nG1 E0.2\n",
        &fast_limits(),
    );
    // 1 + 1 + 1 = 3 mm extruded, then 0.8 retracted (not subtracted).
    assert!(
        close(a.filament_used_mm, 3.0, 1e-9),
        "{}",
        a.filament_used_mm
    );
    // 30 mm at 10 mm/s + 0.8 mm of E at 10 mm/s.
    assert!(
        close(a.estimated_time_s, 3.08, 1e-3),
        "{}",
        a.estimated_time_s
    );

    let b = run_with(
        "M83\nG1 X10 E1 F600\nG91\nG1 X10 E1\nG1 Y10 E1\nG90\nG1 X0 Y0 E-1\nG1 E1\nG1 X5 E0.5\n",
        &fast_limits(),
    );
    // Relative E: 1+1+1 −1 +1 +0.5 → max cumulative 3.5.
    assert!(
        close(b.filament_used_mm, 3.5, 1e-9),
        "{}",
        b.filament_used_mm
    );
    assert_eq!(b.bounds_max, [20.0, 10.0, 0.0]);
    // G91 makes E relative too; M82 under G91 keeps it relative (Marlin).
    let c = run_with("M82\nG91\nG1 X1 E1 F600\nG1 X1 E1\n", &fast_limits());
    assert!(close(c.filament_used_mm, 2.0, 1e-9));
    // G92 without axes resets everything.
    let d = run_with("M82\nG1 X5 E5 F600\nG92\nG1 X10 E5\n", &fast_limits());
    assert!(
        close(d.filament_used_mm, 10.0, 1e-9),
        "{}",
        d.filament_used_mm
    );
    assert_eq!(d.bounds_max[0], 10.0);
}

#[test]
fn line_numbers_checksums_lowercase_and_comments() {
    let a = run_with(
        "N10 G1 X10 F600*85\nn11 g1 y10 e1*12 ; comment\nG1X20Y10E2(inline)\n\n   \n; only a comment\nG1 (first) X30 (second) E3\n",
        &fast_limits(),
    );
    assert_eq!(a.bounds_max, [30.0, 10.0, 0.0]);
    // Absolute E (the default): E1, E2, E3.
    assert!(
        close(a.filament_used_mm, 3.0, 1e-9),
        "{}",
        a.filament_used_mm
    );
    assert_eq!(a.moves, 4);
    assert_eq!(a.lines, 7);
}

#[test]
fn g28_costs_nothing_and_zeroes_named_axes() {
    let a = run_with(
        "G1 X50 Y50 Z10 F6000\nG28 X\nG1 X10 E1 F600\n",
        &fast_limits(),
    );
    // After G28 X the extruding move goes from X0 to X10 (1 s), not from X50.
    let travel = (50f64 * 50.0 * 2.0 + 100.0).sqrt() / 100.0;
    assert!(
        close(a.estimated_time_s, travel + 1.0, 1e-3),
        "{}",
        a.estimated_time_s
    );
    assert_eq!(a.bounds_min, [0.0, 50.0, 10.0]);
    let b = run_with(
        "G1 X50 Y50 Z10 F6000\nG28\nG1 X10 E1 F600\n",
        &fast_limits(),
    );
    assert_eq!(b.bounds_min, [0.0, 0.0, 0.0]);
}

#[test]
fn dwell_adds_time() {
    let a = run_with("G4 P1500\nG4 S2\nG4\n", &fast_limits());
    assert!(
        close(a.estimated_time_s, 3.5, 1e-9),
        "{}",
        a.estimated_time_s
    );
}

#[test]
fn feed_and_flow_overrides() {
    let base = run_with("G1 X100 E10 F600\n", &fast_limits());
    assert!(close(base.estimated_time_s, 10.0, 1e-3));
    let slow = run_with("M220 S50\nG1 X100 E10 F600\n", &fast_limits());
    assert!(
        close(slow.estimated_time_s, 20.0, 1e-3),
        "{}",
        slow.estimated_time_s
    );
    let flow = run_with("M221 S90\nG1 X100 E10 F600\n", &fast_limits());
    assert!(
        close(flow.filament_used_mm, 9.0, 1e-9),
        "{}",
        flow.filament_used_mm
    );
}

#[test]
fn firmware_limit_commands() {
    // M203 caps the feedrate: 100 mm at F6000 (100 mm/s) limited to 10 mm/s.
    let a = run_with("M203 X10 Y10\nG1 X100 F6000\n", &fast_limits());
    assert!(
        close(a.estimated_time_s, 10.0, 1e-3),
        "{}",
        a.estimated_time_s
    );
    // M201 / M204 / M205: 100 mm at 100 mm/s, a = 100 → 1 s accel + 0 cruise… (triangle/trapezoid)
    let lim = "M201 X1000 Y1000\nM205 X0 Y0 Z0 E0\n";
    let p = run_with(
        &format!("{lim}M204 P100 T1000\nG1 X100 E1 F6000\n"),
        &fast_limits(),
    );
    // Extruding: a = 100, v = 100 → 0.5·(100/100)·2 = accel 50 mm + decel 50 mm = 2 s total.
    assert!(
        close(p.estimated_time_s, 2.0, 1e-3),
        "{}",
        p.estimated_time_s
    );
    let t = run_with(
        &format!("{lim}M204 P100 T1000\nG1 X100 F6000\n"),
        &fast_limits(),
    );
    // Travel: a = 1000 → 0.1 s + 0.9 s cruise + 0.1 s = 1.1 s.
    assert!(
        close(t.estimated_time_s, 1.1, 1e-3),
        "{}",
        t.estimated_time_s
    );
    // Legacy `M204 S<print/travel> T<retract>`.
    let s = run_with(
        &format!("{lim}M204 S100 T5000\nG1 X100 F6000\n"),
        &fast_limits(),
    );
    assert!(
        close(s.estimated_time_s, 2.0, 1e-3),
        "{}",
        s.estimated_time_s
    );
    // Klipper SET_VELOCITY_LIMIT ACCEL.
    let k = run_with(
        &format!("{lim}SET_VELOCITY_LIMIT ACCEL=100\nG1 X100 F6000\n"),
        &fast_limits(),
    );
    assert!(
        close(k.estimated_time_s, 2.0, 1e-3),
        "{}",
        k.estimated_time_s
    );
    // M205 S: minimum extruding rate raises a slow extrusion.
    let m = run_with("M205 S50\nG1 X100 E1 F60\n", &fast_limits());
    assert!(
        close(m.estimated_time_s, 2.0, 1e-3),
        "{}",
        m.estimated_time_s
    );
    // M201 with an axis cap below the acceleration: the acceleration becomes the axis maximum.
    let c = run_with(
        "M201 X100 Y100\nM205 X0 Y0 Z0 E0\nM204 P1000 T1000\nG1 X100 F6000\n",
        &fast_limits(),
    );
    assert!(
        close(c.estimated_time_s, 2.0, 1e-3),
        "{}",
        c.estimated_time_s
    );
}

#[test]
fn arcs_are_linearised() {
    let mut c = Collect::default();
    // Full circle r = 10 (I/J form, start = end), then a quarter with R, then a helix.
    let src = "M83\nG1 X10 Y0 F600\nG2 X10 Y0 I-10 J0 E5\nG3 X0 Y10 R10 E1\nG17\nG2 X10 Y0 I0 J-10 Z2 E1\n";
    let a = analyse_with(src.as_bytes(), &fast_limits(), Some(&mut c)).unwrap();
    let full = 2.0 * std::f64::consts::PI * 10.0;
    let quarter = full / 4.0;
    let helix = ((full / 4.0).powi(2) + 4.0).sqrt();
    assert!(
        close(c.extruded_length, full + quarter + helix, 0.05),
        "{} vs {}",
        c.extruded_length,
        full + quarter + helix
    );
    assert!(c.extruding > 60, "{}", c.extruding);
    assert!(close(a.filament_used_mm, 7.0, 1e-9));
    assert!(close(a.bounds_min[0], -10.0, 1e-3) && close(a.bounds_max[1], 10.0, 1e-3));
    assert!(close(a.max_z, 2.0, 1e-9));
    assert_eq!(a.moves, 4);
    // R with the long way round (negative R): three quarters of the circle.
    let mut l = Collect::default();
    analyse_with(
        "G1 X10 Y0 F600\nG3 X0 Y10 R-10 E1\n".as_bytes(),
        &fast_limits(),
        Some(&mut l),
    )
    .unwrap();
    assert!(
        close(l.extruded_length, 3.0 * quarter, 0.05),
        "{}",
        l.extruded_length
    );
    // Degenerate arcs fall back to a straight move.
    let d = run_with(
        "M83\nG1 X10 F600\nG2 X20 Y0 E1\nG2 X30 R0 E1\n",
        &fast_limits(),
    );
    assert!(close(d.bounds_max[0], 30.0, 1e-9));
}

/// Issue #13 item 6: full-circle arcs of a huge radius cannot multiply the analysis work;
/// the chords stay bounded by the input while time and filament stay right.
#[test]
fn huge_arcs_are_bounded_by_the_input() {
    let arcs = 20_000;
    let mut src = String::from("M83\nG1 X1000 Y0 F6000\n");
    for _ in 0..arcs {
        src += "G2 X1000 Y0 I-1000 J0 E1\n";
    }
    let mut c = Collect::default();
    let a = analyse_with(src.as_bytes(), &fast_limits(), Some(&mut c)).unwrap();
    // Before the bound: 4,096 chords per circle (82 M in all).
    let chords = c.extruding as u64;
    let bound = 100_000 + 64 * arcs as u64 + 32 * arcs as u64;
    assert!(chords <= bound, "{chords} chords > {bound}");
    assert!(close(a.filament_used_mm, arcs as f64, 1e-6));
    // Every circle is still drawn whole: length within 1 % of the true circumference.
    let full = 2.0 * std::f64::consts::PI * 1000.0 * arcs as f64;
    assert!(
        (c.extruded_length - full).abs() / full < 0.01,
        "{} vs {full}",
        c.extruded_length
    );
}

#[test]
fn tools_temperatures_and_extruders() {
    let a = run(
        "M104 S0\nM104 S215\nM104 T1 S240\nM140 S0\nM190 S70\nM83\nT0\nG1 X10 E2 F600\nT1\nG1 X20 E3\nG1 E-1\nT0\nG1 X30 E1\nM104 S0\n",
    );
    assert_eq!(a.nozzle_temperatures, vec![215.0, 240.0]);
    assert_eq!(a.bed_temperature, Some(70.0));
    assert!(a.heated_bed);
    assert_eq!(a.extruders_used, 2);
    assert!(
        close(a.filament_used_mm, 6.0, 1e-9),
        "{}",
        a.filament_used_mm
    );
    let none = run("G1 X10 F600\n");
    assert!(!none.heated_bed && none.bed_temperature.is_none());
    assert_eq!(none.extruders_used, 0);
}

#[test]
fn measured_layers_without_markers() {
    let a =
        run("M83\nG1 Z0.3 F600\nG1 X10 E1\nG1 Z0.5\nG1 X0 E1\nG1 Z0.7\nG1 X10 E1\nG1 Z5\nG1 X0\n");
    assert_eq!(a.layer_count, 3);
    assert!(close(a.layer_height.unwrap(), 0.2, 1e-9));
    assert!(close(a.first_layer_height.unwrap(), 0.3, 1e-9));
    assert!(close(a.max_z, 0.7, 1e-9));
}

#[test]
fn empty_and_garbage_inputs() {
    let e = run("");
    assert_eq!(e.lines, 0);
    assert_eq!(e.estimated_time_s, 0.0);
    assert_eq!(e.layer_count, 0);
    let g = run("hello world\nG1 X1e999 Y99999999999999999999 F0\nG1 F-5 X10\nM204 P0 S-1\n");
    assert!(g.estimated_time_s.is_finite());
    assert_eq!(g.lines, 4);
}

#[test]
fn very_long_lines_are_truncated_not_buffered() {
    let mut src = String::from("G1 X10 F600\n; ");
    src.push_str(&"x".repeat(3 * MAX_LINE_BYTES));
    src.push_str("\nG1 X20 E1\n");
    let a = run_with(&src, &fast_limits());
    assert_eq!(a.lines, 3);
    assert_eq!(a.bounds_max[0], 20.0);
}

// ---------------------------------------------------------------------------------------------
// Slicer detection and settings.

#[test]
fn cura_header_and_settings() {
    let src = r#";FLAVOR:Marlin
;TIME:6666
;Filament used: 1.23456m
;Layer height: 0.16
;MINX:100.1
;TARGET_MACHINE.NAME:Creality Ender-3
;Generated with Cura_SteamEngine 5.4.0
M140 S60
M105
M190 S60
M104 S200
M109 S200
M82 ;absolute extrusion mode
G28 ;Home
G92 E0
G1 Z2.0 F3000
G1 X0.1 Y20 Z0.3 F5000.0
G1 X0.1 Y200.0 Z0.3 F1500.0 E15
G92 E0
;LAYER_COUNT:3
;LAYER:0
M107
G0 F6000 X100 Y100 Z0.3
;TYPE:WALL-OUTER
G1 F1500 X120 Y100 E0.8
;LAYER:1
G0 Z0.46
G1 X100 Y100 E1.6
;TYPE:SUPPORT
;LAYER:2
G0 Z0.62
G1 X120 Y100 E2.4
;TIME_ELAPSED:100.5
G1 E1.4
;End of Gcode
;SETTING_3 {"global_quality": "[general]\\nversion = 4\\nname = Fine #2\\ndefinit
;SETTING_3 ion = creality_ender3\\n\\n[metadata]\\ntype = quality_changes\\nqua
;SETTING_3 lity_type = standard\\nsetting_version = 22\\n\\n[values]\\nadhesion_t
;SETTING_3 ype = raft\\nlayer_height = 0.16\\nsupport_enable = True\\n\\n", "ext
;SETTING_3 ruder_quality": ["[general]\\nversion = 4\\nname = Fine #2\\n\\n[values
;SETTING_3 ]\\nmaterial_print_temperature = 205\\nmaterial_diameter = 1.75\\n\\n"]}
"#;
    let a = run(src);
    assert_eq!(a.slicer.as_deref(), Some("Cura"));
    assert_eq!(a.slicer_version.as_deref(), Some("5.4.0"));
    assert_eq!(a.slicer_estimated_time_s, Some(6666.0));
    assert!(close(a.slicer_filament_mm.unwrap(), 1234.56, 1e-9));
    assert_eq!(a.settings.get("flavor").map(String::as_str), Some("Marlin"));
    assert_eq!(
        a.settings.get("layer_height").map(String::as_str),
        Some("0.16")
    );
    assert_eq!(
        a.settings.get("target_machine.name").map(String::as_str),
        Some("Creality Ender-3")
    );
    assert_eq!(
        a.settings.get("adhesion_type").map(String::as_str),
        Some("raft")
    );
    assert_eq!(
        a.settings
            .get("material_print_temperature")
            .map(String::as_str),
        Some("205")
    );
    assert!(!a.settings.contains_key("time"));
    assert!(
        !a.settings.contains_key("name"),
        "only [values] are settings"
    );
    assert!(a.raft && a.supports);
    assert_eq!(a.layer_height, Some(0.16));
    assert_eq!(a.layer_count, 3);
    assert_eq!(a.filament_diameter, Some(1.75));
    // The purge line (E15 before ;LAYER:0) is not counted; the final retraction is not subtracted.
    assert!(
        close(a.filament_used_mm, 2.4, 1e-9),
        "{}",
        a.filament_used_mm
    );
    assert_eq!(a.nozzle_temperatures, vec![200.0]);
    assert_eq!(a.bed_temperature, Some(60.0));
    assert_eq!(a.bounds_min, [100.0, 100.0, 0.3]);
    assert!(close(a.max_z, 0.62, 1e-9));
}

#[test]
fn simplify3d_header_and_footer() {
    let src = "; G-Code generated by Simplify3D(R) Version 4.1.2
; Jan 1, 2020 at 10:00:00 AM
; Settings Summary
;   processName,Process1
;   applyToModels,cube
;   extruderDiameter,0.4
;   layerHeight,0.2
;   firstLayerHeightPercentage,90
;   useRaft,0
;   generateSupport,1
;   filamentDiameters,1.75|1.75|1.75|1.75|1.75|1.75
;   filamentDensities,1.25|1.25|1.25|1.25|1.25|1.25
;   printMaterial,PLA
;   startingGcode,G28 ; home all axes,G1 Z5
G90
M82
M106 S0
M140 S60
M190 S60
M104 S210 T0
M109 S210 T0
G28 ; home all axes
; process Process1
; layer 1, Z = 0.18
T0
G92 E0.0000
G1 E-1.0000 F1800
; feature skirt
G1 Z0.180 F1000
G1 X90 Y90 F4800
G1 E0.0000 F540
G92 E0.0000
G1 X110 Y90 E0.6 F1080
; feature support
G1 X110 Y110 E1.2
; layer 2, Z = 0.38
G1 Z0.380 F1000
G1 X90 Y110 E1.8 F1800
; Build Summary
;   Build time: 1 hours 2 minutes
;   Filament length: 1234.5 mm (1.23 m)
;   Plastic volume: 2967.97 mm^3 (2.97 cc)
;   Plastic weight: 3.71 g (0.01 lb)
;   Material cost: 0.09
";
    let a = run(src);
    assert_eq!(a.slicer.as_deref(), Some("Simplify3D"));
    assert_eq!(a.slicer_version.as_deref(), Some("4.1.2"));
    assert_eq!(
        a.settings.get("layerHeight").map(String::as_str),
        Some("0.2")
    );
    assert_eq!(
        a.settings.get("processName").map(String::as_str),
        Some("Process1")
    );
    assert_eq!(
        a.settings.get("startingGcode").map(String::as_str),
        Some("G28 ; home all axes,G1 Z5")
    );
    assert_eq!(a.layer_height, Some(0.2));
    assert!(close(a.first_layer_height.unwrap(), 0.18, 1e-9));
    assert_eq!(a.slicer_estimated_time_s, Some(3720.0));
    assert_eq!(a.slicer_filament_mm, Some(1234.5));
    assert_eq!(a.slicer_filament_g, Some(3.71));
    assert_eq!(a.filament_diameter, Some(1.75));
    assert_eq!(a.filament_density, Some(1.25));
    assert_eq!(a.filament_type.as_deref(), Some("PLA"));
    assert!(a.supports && !a.raft);
    assert_eq!(a.layer_count, 2);
    assert_eq!(a.nozzle_temperatures, vec![210.0]);
    assert!(
        close(a.filament_used_mm, 1.8, 1e-9),
        "{}",
        a.filament_used_mm
    );
}

#[test]
fn bambu_and_orca_headers() {
    let src = "; HEADER_BLOCK_START
; BambuStudio 01.08.04.51
; model printing time: 31m 28s; total estimated time: 38m 5s
; total layer number: 50
; total filament length [mm] : 2345.67
; total filament volume [cm^3] : 5641.86
; total filament weight [g] : 7.05
; filament_density: 1.26
; filament_diameter: 1.75
; max_z_height: 10.00
; HEADER_BLOCK_END

; CONFIG_BLOCK_START
; layer_height = 0.2
; initial_layer_print_height = 0.2
; enable_support = 1
; raft_layers = 0
; filament_type = PETG
; nozzle_temperature = 250
; CONFIG_BLOCK_END
M83
G1 X10 Y10 Z0.2 F3000
G1 X20 E1
";
    let a = run(src);
    assert_eq!(a.slicer.as_deref(), Some("Bambu Studio"));
    assert_eq!(a.slicer_version.as_deref(), Some("01.08.04.51"));
    assert_eq!(a.slicer_estimated_time_s, Some(2285.0));
    assert_eq!(a.layer_count, 50);
    assert_eq!(a.slicer_filament_mm, Some(2345.67));
    assert_eq!(a.slicer_filament_g, Some(7.05));
    assert_eq!(a.filament_density, Some(1.26));
    assert_eq!(
        a.settings.get("max_z_height").map(String::as_str),
        Some("10.00")
    );
    assert_eq!(a.filament_type.as_deref(), Some("PETG"));
    assert_eq!(a.first_layer_height, Some(0.2));
    assert!(a.supports && !a.raft);
    // No M104 in the file: the nozzle temperature comes from the settings.
    assert_eq!(a.nozzle_temperatures, vec![250.0]);

    let o = run("; generated by OrcaSlicer 2.1.1 on 2024-05-01 at 10:00:00 UTC\n; estimated printing time (normal mode) = 1h 2m 3s\n;LAYER_CHANGE\n");
    assert_eq!(o.slicer.as_deref(), Some("OrcaSlicer"));
    assert_eq!(o.slicer_version.as_deref(), Some("2.1.1"));
    assert_eq!(o.slicer_estimated_time_s, Some(3723.0));
    assert_eq!(o.layer_count, 1);
}

#[test]
fn other_slicers_are_detected() {
    let cases = [
        ("; generated by SuperSlicer 2.5.59 on 2023-01-01 at 10:00:00 UTC\n", "SuperSlicer", Some("2.5.59")),
        ("; generated by Slic3r 1.3.0 on 2019-01-01 at 10:00:00\n", "Slic3r", Some("1.3.0")),
        ("; generated by PrusaSlicer 2.6.1+win64 on 2023-09-01 at 10:00:00 UTC\n", "PrusaSlicer", Some("2.6.1+win64")),
        (";Sliced by ideaMaker 4.2.1.4582, Windows\n", "IdeaMaker", Some("4.2.1.4582")),
        ("; KISSlicer - PRO\n; version 2.0.2\n", "KISSlicer", Some("2.0.2")),
        ("G1 X1\n; prusaslicer_config = begin\n; layer_height = 0.3\n; prusaslicer_config = end\n", "PrusaSlicer", None),
    ];
    for (src, name, version) in cases {
        let a = run(src);
        assert_eq!(a.slicer.as_deref(), Some(name), "{src}");
        assert_eq!(a.slicer_version.as_deref(), version, "{src}");
    }
    assert_eq!(run("G1 X1\n").slicer, None);
    let d = run("; estimated printing time (silent mode) = 2h\n; estimated printing time (normal mode) = 1d 2h 3m 4s\n");
    assert_eq!(d.slicer_estimated_time_s, Some(93_784.0));
    let f = run("; filament used [mm] = 100.5, 20.25\n; filament used [g] = 1.0, 0.5\n");
    assert_eq!(f.slicer_filament_mm, Some(120.75));
    assert_eq!(f.slicer_filament_g, Some(1.5));
}

// ---------------------------------------------------------------------------------------------
// Upload sniff.

#[test]
fn sniff_accepts_gcode() {
    let cube = fixture_bytes("cube_20mm.gcode");
    assert!(looks_like_gcode(&cube));
    assert!(looks_like_gcode(&cube[..64 * 1024]));
    assert!(looks_like_gcode(&fixture_bytes("cylinder_prusa.gcode")));
    assert!(looks_like_gcode(b"G28\nG1 X10 Y10 F3000\n"));
    assert!(looks_like_gcode(
        b"\xEF\xBB\xBFN1 G28*18\r\nn2 m104 s200*90\r\n"
    ));
    assert!(looks_like_gcode(
        b"; klipper\nPRINT_START BED=60 EXTRUDER=210\nG1 X1 Y1\nEXCLUDE_OBJECT_DEFINE NAME=a\n"
    ));
    assert!(looks_like_gcode(b"%\n(program)\nG0 X1\nX2 Y3\nM30\n%\n"));
    // A PrusaSlicer-style thumbnail larger than the sniff window.
    let mut thumb =
        String::from("; generated by PrusaSlicer 2.7.0\n;\n; thumbnail begin 400x300 90000\n");
    while thumb.len() < 100_000 {
        thumb.push_str("; iVBORw0KGgoAAAANSUhEUgAAAZAAAAEsCAYAAAA1u0HIAAAgAElEQVR4nOzdeXxU9b3\n");
    }
    thumb.push_str("; thumbnail end\nG28\nG1 X1\n");
    assert!(looks_like_gcode(thumb.as_bytes()));
}

#[test]
fn sniff_rejects_other_content() {
    assert!(!looks_like_gcode(b""));
    assert!(!looks_like_gcode(&fixture_bytes("cube_20mm.stl")));
    assert!(!looks_like_gcode(&fixture_bytes("cube_20mm_ascii.stl")));
    assert!(!looks_like_gcode(&fixture_bytes("printer_types.json")));
    assert!(!looks_like_gcode(&fixture_bytes("cube_20mm_mk4like.ini")));
    assert!(!looks_like_gcode(b"; only comments\n; nothing else\n"));
    assert!(!looks_like_gcode(b"G1 X1\0\n"));
    assert!(!looks_like_gcode(b"PK\x03\x04\x14\x00\x00\x00"));
    assert!(!looks_like_gcode(
        b"Hello, this is a text file.\nIt mentions G1 here.\nG1 X1\n"
    ));
}

// ---------------------------------------------------------------------------------------------
// Fuzzing: nothing panics, every number stays finite.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn check_sane(a: &GcodeAnalysis) {
    let nums = [
        a.max_z,
        a.filament_used_mm,
        a.filament_used_cm3,
        a.filament_weight_g,
        a.estimated_time_s,
    ];
    assert!(nums.iter().all(|v| v.is_finite()), "{a:?}");
    assert!(a.estimated_time_s >= 0.0);
    assert!(a
        .bounds_min
        .iter()
        .chain(&a.bounds_max)
        .all(|v| v.is_finite()));
    // Serialises (non-finite floats would turn into null and fail to read back).
    let json = serde_json::to_string(a).unwrap();
    let _: GcodeAnalysis = serde_json::from_str(&json).unwrap();
}

#[test]
fn fuzz_random_bytes() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..400 {
        let len = rng.below(4096);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let a = analyse(&bytes[..], &MachineLimits::marlin_defaults()).unwrap();
        check_sane(&a);
        let _ = looks_like_gcode(&bytes);
    }
}

#[test]
fn fuzz_gcode_like_tokens() {
    const TOKENS: &[&str] = &[
        "G0",
        "G1",
        "G2",
        "G3",
        "G4",
        "G17",
        "G18",
        "G19",
        "G20",
        "G21",
        "G28",
        "G90",
        "G91",
        "G92",
        "M82",
        "M83",
        "M104",
        "M109",
        "M140",
        "M190",
        "M201",
        "M203",
        "M204",
        "M205",
        "M220",
        "M221",
        "M73",
        "T0",
        "T1",
        "T999999",
        "Tc",
        "X",
        "Y",
        "Z",
        "E",
        "F",
        "I",
        "J",
        "K",
        "R",
        "P",
        "S",
        "N",
        "*",
        ";",
        "(",
        ")",
        "-",
        "+",
        ".",
        " ",
        "\n",
        "\r\n",
        "0",
        "1",
        "7",
        "99999999",
        "0.0001",
        "-1e5",
        "1000000000",
        "nan",
        "inf",
        ";LAYER_CHANGE\n",
        ";LAYER:",
        ";TYPE:Support",
        "; layer_height = ",
        "; estimated printing time (normal mode) = ",
        ";SETTING_3 {",
        "; HEADER_BLOCK_START\n",
        "; generated by ",
        "SET_VELOCITY_LIMIT ACCEL=",
        "\u{e9}",
        "\0",
    ];
    let mut rng = XorShift(42);
    for _ in 0..600 {
        let n = rng.below(400);
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(TOKENS[rng.below(TOKENS.len())]);
        }
        let a = run(&s);
        check_sane(&a);
        let mut limits = fast_limits();
        limits.max_jerk = [0.0; 4];
        check_sane(&run_with(&s, &limits));
    }
}

#[test]
fn fuzz_mutated_fixture() {
    let cube = fixture_bytes("cube_20mm.gcode");
    let mut rng = XorShift(7);
    for _ in 0..20 {
        let mut b = cube.clone();
        for _ in 0..200 {
            let i = rng.below(b.len());
            b[i] = rng.next() as u8;
        }
        let start = rng.below(b.len());
        let a = analyse(&b[start..], &MachineLimits::marlin_defaults()).unwrap();
        check_sane(&a);
    }
}

#[test]
fn io_errors_are_returned() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let r = analyse(BufReader::new(Failing), &MachineLimits::marlin_defaults());
    assert!(r.is_err());
    // An interrupted read is retried.
    struct Interrupted(bool, &'static [u8]);
    impl Read for Interrupted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.0 {
                self.0 = true;
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = self.1.len().min(buf.len());
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1 = &self.1[n..];
            Ok(n)
        }
    }
    let a = analyse(
        BufReader::new(Interrupted(false, b"G1 X10 E1 F600\n")),
        &fast_limits(),
    )
    .unwrap();
    assert_eq!(a.moves, 1);
}

// --- Machine limits from the slicer's configuration block (issue #14 item 14) ---

/// Analyses `body` followed by `tail` the way uploads do: starting limits from the tail.
fn run_file(body: &str, tail: &str) -> GcodeAnalysis {
    let src = format!("{body}{tail}");
    let limits = limits_from_tail(src.as_bytes(), &MachineLimits::marlin_defaults());
    analyse(src.as_bytes(), &limits).expect("analyse")
}

/// One 100 mm travel at 100 mm/s from and to standstill.
const TRAVEL: &str = "G90\nG1 X0 Y0 F6000\nG1 X100 F6000\n";

/// A PrusaSlicer-style block: travel acceleration 100 (silent 5000), no jerk.
fn block(flavor: &str, usage: Option<&str>) -> String {
    let mut s = format!(
        "; prusaslicer_config = begin\n; gcode_flavor = {flavor}\n\
         ; machine_max_acceleration_x = 9000,9000\n; machine_max_acceleration_y = 9000,9000\n\
         ; machine_max_acceleration_extruding = 80,5000\n\
         ; machine_max_acceleration_retracting = 1000,5000\n\
         ; machine_max_acceleration_travel = 100,5000\n\
         ; machine_max_feedrate_x = 500,500\n; machine_max_feedrate_y = 500,500\n\
         ; machine_max_jerk_x = 0,20\n; machine_max_jerk_y = 0,20\n"
    );
    if let Some(u) = usage {
        s += &format!("; machine_limits_usage = {u}\n");
    }
    s + "; prusaslicer_config = end\n"
}

#[test]
fn config_block_limits_start_the_planner_normal_mode_value_only() {
    // a = 100 (not the silent 5000), no jerk: a triangle 0 → 100 → 0 mm/s over 100 mm = 2 s.
    for usage in ["time_estimate_only", "emit_to_gcode"] {
        let a = run_file(TRAVEL, &block("marlin2", Some(usage)));
        assert!(
            close(a.estimated_time_s, 2.0, 1e-6),
            "{usage}: {}",
            a.estimated_time_s
        );
    }
    // Without the block: Marlin defaults (a = 3000, jerk 10) are much faster.
    let plain = run_file(TRAVEL, "");
    assert!(plain.estimated_time_s < 1.1, "{}", plain.estimated_time_s);
}

#[test]
fn ignore_or_a_flavor_without_limits_means_prusaslicer_defaults_not_the_block() {
    let defaults = run_with(TRAVEL, &MachineLimits::prusaslicer_defaults()).estimated_time_s;
    // 1500 mm/s², jerk 10: 100 mm at 100 mm/s takes a little over 1 s.
    assert!(defaults > 1.0 && defaults < 1.1, "{defaults}");
    for (flavor, usage) in [
        ("marlin2", "ignore"),
        ("marlin", "ignore"),
        ("reprapfirmware", "ignore"),
        ("reprap", "time_estimate_only"),
        ("smoothie", "emit_to_gcode"),
        ("repetier", "time_estimate_only"),
        ("teacup", "time_estimate_only"),
    ] {
        let a = run_file(TRAVEL, &block(flavor, Some(usage)));
        assert!(
            close(a.estimated_time_s, defaults, 1e-9),
            "{flavor}/{usage}: {} vs {defaults}",
            a.estimated_time_s
        );
    }
    // RepRapFirmware with the limits in use takes them.
    let rrf = run_file(TRAVEL, &block("reprapfirmware", Some("time_estimate_only")));
    assert!(
        close(rrf.estimated_time_s, 2.0, 1e-6),
        "{}",
        rrf.estimated_time_s
    );
}

#[test]
fn orca_and_bambu_blocks_without_limits_usage_are_used() {
    let a = run_file(TRAVEL, &block("marlin", None));
    // Marlin (legacy): travel uses the extruding acceleration, 80: 2·sqrt(100/80) s.
    let expected = 2.0 * (100.0f64 / 80.0).sqrt();
    assert!(
        close(a.estimated_time_s, expected, 1e-6),
        "{}",
        a.estimated_time_s
    );
    let k = run_file(TRAVEL, &block("klipper", None));
    assert!(
        close(k.estimated_time_s, expected, 1e-6),
        "{}",
        k.estimated_time_s
    );
}

#[test]
fn body_m_codes_override_the_block_and_m204_is_clamped_to_its_ceiling() {
    let tail = block("marlin2", Some("time_estimate_only"));
    // M204 T50 below the configured ceiling (100) wins: 2·sqrt(100/50) s.
    let a = run_file(&format!("M204 T50\n{TRAVEL}"), &tail);
    assert!(
        close(a.estimated_time_s, 2.0 * 2f64.sqrt(), 1e-6),
        "{}",
        a.estimated_time_s
    );
    // M204 T5000 above it is clamped to 100, as PrusaSlicer's estimator does.
    let b = run_file(&format!("M204 T5000\n{TRAVEL}"), &tail);
    assert!(
        close(b.estimated_time_s, 2.0, 1e-6),
        "{}",
        b.estimated_time_s
    );
    // M201 X25 caps the X axis below the travel acceleration (per-axis rule).
    let c = run_file(&format!("M201 X25\n{TRAVEL}"), &tail);
    assert!(
        close(c.estimated_time_s, 4.0, 1e-6),
        "{}",
        c.estimated_time_s
    );
    // M203 X50 (mm/s for Marlin 2): 100 mm at 50 mm/s, a = 100: 0.5 + 1.5 + 0.5 s.
    let d = run_file(&format!("M203 X50\n{TRAVEL}"), &tail);
    assert!(
        close(d.estimated_time_s, 2.5, 1e-6),
        "{}",
        d.estimated_time_s
    );
    // M205 X20 (jerk) lets the move start and stop at 20 mm/s: 2·(80/100) s + the rest.
    let e = run_file(&format!("M205 X20\n{TRAVEL}"), &tail);
    let ramp = (100.0f64 * 100.0 - 20.0 * 20.0) / (2.0 * 100.0);
    let expected = 2.0 * 0.8 + (100.0 - 2.0 * ramp) / 100.0;
    assert!(
        close(e.estimated_time_s, expected, 1e-6),
        "{} vs {expected}",
        e.estimated_time_s
    );
}

#[test]
fn m203_units_and_m566_follow_the_flavor() {
    // RepRapFirmware: M203 in mm/min (3000 = 50 mm/s), M566 jerk in mm/min.
    let tail = block("reprapfirmware", Some("time_estimate_only"));
    let a = run_file(&format!("M203 X3000\n{TRAVEL}"), &tail);
    assert!(
        close(a.estimated_time_s, 2.5, 1e-6),
        "{}",
        a.estimated_time_s
    );
    let b = run_file(&format!("M566 X1200\n{TRAVEL}"), &tail);
    let e = run_file(
        &format!("M205 X20\n{TRAVEL}"),
        &block("marlin2", Some("emit_to_gcode")),
    );
    assert!(close(b.estimated_time_s, e.estimated_time_s, 1e-9));
    // Repetier uses M203 for something else: no effect.
    let r = block("repetier", Some("time_estimate_only"));
    let with = run_file(&format!("M203 X1\n{TRAVEL}"), &r);
    let without = run_file(TRAVEL, &r);
    assert!(close(with.estimated_time_s, without.estimated_time_s, 1e-9));
}

#[test]
fn mach3_and_machinekit_extrude_on_the_a_axis() {
    let body = "G90\nM82\nG92 A0\nG1 X0 Y0 F1200\nG1 X10 A1.5 F1200\nG1 X20 A2\n";
    for flavor in ["mach3", "machinekit"] {
        let a = run_file(body, &block(flavor, Some("time_estimate_only")));
        assert!(
            close(a.filament_used_mm, 2.0, 1e-9),
            "{flavor}: {}",
            a.filament_used_mm
        );
        assert_eq!(a.bounds_max[0], 20.0);
    }
    // Elsewhere A is not the extruder.
    let m = run_file(body, &block("marlin2", Some("time_estimate_only")));
    assert_eq!(m.filament_used_mm, 0.0);
}

#[test]
fn config_scan_keeps_only_limit_keys_and_tolerates_junk() {
    let c = ConfigLimits::scan(
        b"olumn cut off = 3\n; machine_max_jerk_x = 7,3\n;machine_max_jerk_x=8,4\n\
          ; start_gcode = G28\\nM104 S200\n; gcode_flavor = marlin2\n\
          ; machine_max_feedrate_z = abc\n",
    );
    assert_eq!(c.flavor(), Flavor::Marlin2);
    let l = c.starting_limits(&MachineLimits::marlin_defaults());
    // The later line wins; its normal-mode value is used; an unparsable value keeps the default.
    assert_eq!(l.max_jerk[0], 8.0);
    assert_eq!(l.max_feedrate[2], 12.0);
    assert!(ConfigLimits::scan(b"G1 X1\n; not = limits\n").is_empty());
    let fallback = fast_limits();
    assert_eq!(limits_from_tail(b"G1 X1\n", &fallback), fallback);
}

#[test]
fn read_tail_keeps_the_last_bytes_only() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(read_tail(&data[..], 300).unwrap(), data[data.len() - 300..]);
    assert_eq!(read_tail(&data[..], 1 << 20).unwrap(), data);
}
