//! The slicer driver: PrusaSlicer's command line, run in a folder of its own per slice with a
//! time limit, and profiles built from PrusaSlicer keys and Cloud Slicer `printer_config` names.

pub mod worker;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// `slicer_id`s this server slices with (PrusaSlicer); the others of the Global API are refused.
pub const SLICERS: [i64; 3] = [61, 51, 3];
pub const DEFAULT_SLICER: i64 = 61;

const PRUSA_KEYS: &str = include_str!("prusa_keys.txt");

/// Cloud Slicer's `printer_config` names (and our optional extras) accepted in a profile.
pub const PRINTER_CONFIG_KEYS: [&str; 18] = [
    "bed_size_x",
    "bed_size_y",
    "bed_size_z",
    "print_speed",
    "first_layer_speed",
    "nozzle_diameter",
    "layer_height",
    "perimeters",
    "top_solid_layers",
    "bottom_solid_layers",
    "fill_density",
    "support_material",
    "color",
    "filament_type",
    "temperature",
    "bed_temperature",
    "filament_diameter",
    "filament_density",
];

fn is_prusa_key(k: &str) -> bool {
    PRUSA_KEYS
        .lines()
        .any(|l| !l.starts_with('#') && l.trim() == k)
}

/// Machine and material defaults: Cloud Slicer's `printer_config` defaults on a Marlin printer
/// whose limits are written into the G-code (so our analyser reproduces the estimate).
const BASE: &[(&str, &str)] = &[
    ("bed_shape", "0x0,210x0,210x210,0x210"),
    ("max_print_height", "250"),
    ("nozzle_diameter", "0.4"),
    ("gcode_flavor", "marlin2"),
    ("use_relative_e_distances", "1"),
    ("layer_gcode", "G92 E0"),
    ("silent_mode", "0"),
    ("remaining_times", "1"),
    ("machine_limits_usage", "emit_to_gcode"),
    ("machine_max_feedrate_x", "500,500"),
    ("machine_max_feedrate_y", "500,500"),
    ("machine_max_feedrate_z", "12,12"),
    ("machine_max_feedrate_e", "120,120"),
    ("machine_max_acceleration_x", "2000,2000"),
    ("machine_max_acceleration_y", "2000,2000"),
    ("machine_max_acceleration_z", "200,200"),
    ("machine_max_acceleration_e", "5000,5000"),
    ("machine_max_acceleration_extruding", "1500,1500"),
    ("machine_max_acceleration_retracting", "1500,1500"),
    ("machine_max_acceleration_travel", "2000,2000"),
    ("machine_max_jerk_x", "8,8"),
    ("machine_max_jerk_y", "8,8"),
    ("machine_max_jerk_z", "0.4,0.4"),
    ("machine_max_jerk_e", "5,5"),
    ("retract_length", "0.8"),
    ("retract_speed", "35"),
    ("start_gcode", "G90\\nM83\\nM140 S[first_layer_bed_temperature]\\nM104 S[first_layer_temperature]\\nG28\\nM190 S[first_layer_bed_temperature]\\nM109 S[first_layer_temperature]\\nG92 E0"),
    ("end_gcode", "M104 S0\\nM140 S0\\nM107\\nG91\\nG1 Z10 F720\\nG90\\nM84"),
    ("layer_height", "0.2"),
    ("first_layer_height", "0.2"),
    ("perimeters", "3"),
    ("top_solid_layers", "3"),
    ("bottom_solid_layers", "3"),
    ("fill_density", "20%"),
    ("fill_pattern", "grid"),
    ("support_material", "0"),
    ("perimeter_speed", "100"),
    ("external_perimeter_speed", "50"),
    ("infill_speed", "100"),
    ("solid_infill_speed", "100"),
    ("top_solid_infill_speed", "60"),
    ("travel_speed", "150"),
    ("first_layer_speed", "50"),
    ("skirts", "1"),
    ("filament_diameter", "1.75"),
    ("filament_density", "1.24"),
    ("filament_type", "PLA"),
    ("temperature", "210"),
    ("first_layer_temperature", "210"),
    ("bed_temperature", "60"),
    ("first_layer_bed_temperature", "60"),
];

/// A complete slicing profile: PrusaSlicer keys and their values.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub keys: BTreeMap<String, String>,
}

fn scalar(k: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        _ => Err(format!("'{k}' must be a string, number or boolean")),
    }
}

fn number(k: &str, v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').parse().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("'{k}' must be a non-negative number"))
}

impl Profile {
    /// Builds a profile from a JSON object of PrusaSlicer keys and/or `printer_config` names.
    /// Unknown keys are refused by name (never silently dropped).
    pub fn from_json(value: &Value) -> Result<Profile, String> {
        let obj = value
            .as_object()
            .ok_or("profile must be a JSON object of slicer settings")?;
        let unknown: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| !PRINTER_CONFIG_KEYS.contains(k) && !is_prusa_key(k))
            .collect();
        if !unknown.is_empty() {
            return Err(format!("unknown profile keys: {}", unknown.join(", ")));
        }
        let mut keys: BTreeMap<String, String> = BASE
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut set = |k: &str, v: String| {
            keys.insert(k.to_string(), v);
        };
        // printer_config names first, then PrusaSlicer keys, which are more specific.
        let (mut bx, mut by) = (210.0, 210.0);
        for (k, v) in obj
            .iter()
            .filter(|(k, _)| PRINTER_CONFIG_KEYS.contains(&k.as_str()))
        {
            match k.as_str() {
                "bed_size_x" => bx = number(k, v)?,
                "bed_size_y" => by = number(k, v)?,
                "bed_size_z" => set("max_print_height", number(k, v)?.to_string()),
                "print_speed" => {
                    let s = number(k, v)?;
                    for key in ["perimeter_speed", "infill_speed", "solid_infill_speed"] {
                        set(key, s.to_string());
                    }
                    set("external_perimeter_speed", (s / 2.0).to_string());
                    set("top_solid_infill_speed", (s * 0.6).to_string());
                }
                "fill_density" => {
                    let d = number(k, v)?;
                    if d > 100.0 {
                        return Err("'fill_density' must be 0..100".into());
                    }
                    set("fill_density", format!("{d}%"));
                }
                "layer_height" => {
                    let h = number(k, v)?;
                    set("layer_height", h.to_string());
                    set("first_layer_height", h.to_string());
                }
                "temperature" | "bed_temperature" => {
                    let t = number(k, v)?;
                    set(k, t.to_string());
                    set(&format!("first_layer_{k}"), t.to_string());
                }
                "support_material" => set(k, scalar(k, v)?),
                "color" => {}
                "filament_type" => set(k, scalar(k, v)?),
                _ => set(k, number(k, v)?.to_string()),
            }
        }
        if bx <= 0.0 || by <= 0.0 {
            return Err("bed_size_x and bed_size_y must be positive".into());
        }
        set("bed_shape", format!("0x0,{bx}x0,{bx}x{by},0x{by}"));
        for (k, v) in obj
            .iter()
            .filter(|(k, _)| !PRINTER_CONFIG_KEYS.contains(&k.as_str()))
        {
            let text = scalar(k, v)?;
            if text.contains('\n') || text.contains('\r') {
                return Err(format!("'{k}' must be one line (write newlines as \\n)"));
            }
            set(k, text);
        }
        Ok(Profile { keys })
    }

    pub fn to_ini(&self) -> String {
        self.keys
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    }

    /// The build volume (x, y, z in mm) the profile describes.
    pub fn build_volume(&self) -> [f64; 3] {
        let (mut x, mut y) = (0.0f64, 0.0f64);
        if let Some(shape) = self.keys.get("bed_shape") {
            for p in shape.split(',') {
                if let Some((px, py)) = p.split_once('x') {
                    x = x.max(px.trim().parse().unwrap_or(0.0));
                    y = y.max(py.trim().parse().unwrap_or(0.0));
                }
            }
        }
        let z = self
            .keys
            .get("max_print_height")
            .and_then(|z| z.parse().ok())
            .unwrap_or(0.0);
        [x, y, z]
    }
}

/// Whether PrusaSlicer 2.5's STL reader (admesh) reads this STL as we do. It takes a file for
/// binary only when one of the 128 bytes after the 84-byte header is above 127 (so binary STLs
/// of round coordinates with zero normals pass for ASCII), refuses files shorter than that,
/// and reads ASCII only from a plain lowercase `solid` line (no byte-order mark).
fn prusa_reads_stl(head: &[u8], len: u64) -> bool {
    let announced = head
        .get(80..84)
        .map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    // The same binary rule as our reader: the size matches the announced triangle count.
    let binary = announced.is_some_and(|n| 84 + 50 * n == len);
    binary && head.len() >= 212 && head[84..212].iter().any(|&b| b > 127)
}

/// Puts the model where PrusaSlicer will read it, as `dir/model.<kind>`. STLs its reader
/// would misread (see [`prusa_reads_stl`]) go as an OBJ written from our own reading of the
/// file (the one the upload analysed), so what we accepted is what gets sliced.
pub fn prepare_model(src: &Path, dir: &Path, kind: &str) -> Result<PathBuf, SliceError> {
    let io = |e: std::io::Error| SliceError::Failed(format!("slice folder: {e}"));
    let mut file = std::fs::File::open(src).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(212);
    (&mut file).take(212).read_to_end(&mut head).map_err(io)?;
    if kind != "stl" || prusa_reads_stl(&head, len) {
        let model = dir.join(format!("model.{kind}"));
        std::fs::copy(src, &model).map_err(io)?;
        return Ok(model);
    }
    let reader = std::io::BufReader::new(std::fs::File::open(src).map_err(io)?);
    let mesh = crate::mesh::read_mesh(crate::mesh::MeshFormat::Stl, reader)
        .map_err(|e| SliceError::Unreadable(e.to_string()))?;
    let model = dir.join("model.obj");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&model).map_err(io)?);
    // f32's Display is the shortest text that reads back to the same value.
    for [x, y, z] in &mesh.vertices {
        writeln!(out, "v {x} {y} {z}").map_err(io)?;
    }
    for [a, b, c] in &mesh.triangles {
        writeln!(out, "f {} {} {}", a + 1, b + 1, c + 1).map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(model)
}

/// Why a slice failed, in words a client can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SliceError {
    /// With PrusaSlicer's own reason when it gave one (our upload checks accept some files its
    /// loader refuses, e.g. OBJ polygons of more than 4 corners or STLs under 4 triangles).
    #[error("the slicer could not read the model file{}", reason(.0))]
    Unreadable(String),
    #[error("no layers were detected: the mesh is open, empty or thinner than one layer; repair it or check its size and try again")]
    NoLayers,
    #[error("the model does not fit on the printer's bed")]
    DoesNotFit,
    #[error("the slicer refused the profile: {0}")]
    InvalidSetting(String),
    #[error("slicing took longer than {0} s and was stopped")]
    TimedOut(u64),
    #[error("the slicer failed: {0}")]
    Failed(String),
}

fn reason(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// PrusaSlicer's last `[error]` log line, with the slice folder's path cut to the file name
/// (the client never sees our folders).
fn loader_reason(log: &str, model: &Path) -> String {
    let Some(line) = log.lines().rev().find_map(|l| l.split_once("[error]")) else {
        return String::new();
    };
    let mut text = line.1.trim().to_string();
    if let (Some(full), Some(name)) = (model.to_str(), model.file_name().and_then(|n| n.to_str())) {
        text = text.replace(full, name);
    }
    text.chars().take(300).collect()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `prusa-slicer` on `model` with `ini`, writing `output`. Returns the slicer's output
/// (stdout + stderr) in both cases, for the record.
pub async fn run(
    exe: &str,
    ini: &Path,
    model: &Path,
    output: &Path,
    limit: Duration,
) -> (Result<(), SliceError>, String) {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--loglevel")
        .arg("1")
        .arg("--load")
        .arg(ini)
        .arg("--export-gcode")
        .arg("-o")
        .arg(output)
        .arg(model)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // On timeout the output future is dropped, which kills the child (kill_on_drop).
    let child = tokio::time::timeout(limit, cmd.output()).await;
    let out = match child {
        Err(_) => return (Err(SliceError::TimedOut(limit.as_secs())), String::new()),
        Ok(Err(e)) => {
            return (
                Err(SliceError::Failed(format!("cannot run {exe}: {e}"))),
                String::new(),
            )
        }
        Ok(Ok(o)) => o,
    };
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && output.exists() {
        return (Ok(()), log);
    }
    use std::os::unix::process::ExitStatusExt;
    let err = if log.contains("Loading of a model file failed") {
        SliceError::Unreadable(loader_reason(&log, model))
    } else if log.contains("No layers were detected") {
        SliceError::NoLayers
    } else if log.contains("could not fit")
        || out.status.signal() == Some(6)
        || out.status.code() == Some(134)
    {
        SliceError::DoesNotFit
    } else if out.status.code() == Some(1) {
        SliceError::InvalidSetting(tail(&log, 3))
    } else {
        SliceError::Failed(tail(&log, 3))
    };
    (Err(err), log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printer_config_maps_to_slicer_keys() {
        let p = Profile::from_json(&json!({"bed_size_x": 250, "bed_size_y": 210, "bed_size_z": 220, "fill_density": 15, "layer_height": 0.3, "support_material": true, "temperature": 215})).unwrap();
        assert_eq!(p.build_volume(), [250.0, 210.0, 220.0]);
        assert_eq!(p.keys["fill_density"], "15%");
        assert_eq!(p.keys["first_layer_height"], "0.3");
        assert_eq!(p.keys["support_material"], "1");
        assert_eq!(p.keys["first_layer_temperature"], "215");
        assert!(p.to_ini().contains("bed_shape = 0x0,250x0,250x210,0x210\n"));
    }

    #[test]
    fn prusa_keys_win_and_unknown_keys_are_named() {
        let p = Profile::from_json(&json!({"fill_density": 10, "fill_density ": 1})).unwrap_err();
        assert!(p.contains("fill_density "));
        let p =
            Profile::from_json(&json!({"perimeters": 2, "infill_speed": "70", "brim_width": 3}))
                .unwrap();
        assert_eq!(
            (
                p.keys["perimeters"].as_str(),
                p.keys["infill_speed"].as_str(),
                p.keys["brim_width"].as_str()
            ),
            ("2", "70", "3")
        );
        let e = Profile::from_json(&json!({"infil_density": 10, "wat": 1})).unwrap_err();
        assert!(e.contains("infil_density") && e.contains("wat"), "{e}");
        assert!(Profile::from_json(&json!([1])).is_err());
        assert!(Profile::from_json(&json!({"fill_density": 150})).is_err());
        assert!(Profile::from_json(&json!({"start_gcode": "G28\nG1"})).is_err());
    }
}
