//! The slicer driver: PrusaSlicer's command line, run in a folder of its own per slice with a
//! time limit, and profiles built from PrusaSlicer keys and Cloud Slicer `printer_config` names.

pub mod keys;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// How an operator gets the slicer (said where it is missing; no path, no command of ours).
pub const INSTALL_HINT: &str =
    "install it with the system's package manager (Debian or Ubuntu: apt-get install prusa-slicer) or set slicer.prusa_slicer";

/// Whether the configured slicer command can be run: a path to an executable file, or a name
/// found on the PATH slices run with.
pub fn installed(command: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        return runnable(Path::new(command));
    }
    SLICE_PATH
        .split(':')
        .any(|dir| runnable(&Path::new(dir).join(command)))
}

/// The PATH a slice runs with.
const SLICE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `slicer_id`s this server slices with (PrusaSlicer); the others of the Global API are refused.
pub const SLICERS: [i64; 3] = [61, 51, 3];
pub const DEFAULT_SLICER: i64 = 61;

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

/// Keys of [`BASE`] the client may not set: G-code templates, which PrusaSlicer expands.
const OWN_TEMPLATES: [&str; 3] = ["start_gcode", "end_gcode", "layer_gcode"];

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
    /// Keys outside the typed allow-list ([`keys::KEYS`]) are refused by name (never silently
    /// dropped), and every value is checked against its key's kind.
    pub fn from_json(value: &Value) -> Result<Profile, String> {
        let obj = value
            .as_object()
            .ok_or("profile must be a JSON object of slicer settings")?;
        let refused: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| !PRINTER_CONFIG_KEYS.contains(k) && keys::kind(k).is_none())
            .collect();
        if !refused.is_empty() {
            return Err(format!(
                "these keys cannot be set: {} (only plain numeric, on/off and choice settings \
                 are accepted; programs, paths, file names, notes and G-code templates are not)",
                refused.join(", ")
            ));
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
            set(k, scalar(k, v)?);
        }
        // Every value but our own templates, including those derived from printer_config
        // names, must match its kind: no newline, path or macro can reach the slicer's config.
        for (k, v) in keys
            .iter()
            .filter(|(k, _)| !OWN_TEMPLATES.contains(&k.as_str()))
        {
            keys::validate(k, v)?;
        }
        Ok(Profile { keys })
    }

    pub fn to_ini(&self) -> String {
        self.keys
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    }

    /// A profile read back from the queue, checked again before it reaches the slicer (a row
    /// queued by an older version, or written by hand, gets no pass): every key must be on the
    /// allow-list with a value of its kind, and our own templates must be ours.
    pub fn from_stored(keys: BTreeMap<String, String>) -> Result<Profile, String> {
        for (k, v) in &keys {
            if OWN_TEMPLATES.contains(&k.as_str()) {
                if !BASE.contains(&(k.as_str(), v.as_str())) {
                    return Err(format!("'{k}' cannot be set"));
                }
            } else {
                keys::validate(k, v)?;
            }
        }
        Ok(Profile { keys })
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

/// Puts the model where PrusaSlicer will read it, as `dir/model.<kind>`. Only STLs that
/// PrusaSlicer reads as we do (see [`prusa_reads_stl`]) go as they are. Everything else goes as
/// an OBJ written from our own reading of the file (the one the upload analysed), so what we
/// accepted is what gets sliced, and PrusaSlicer never loads anything the client wrote but a
/// mesh: a 3MF carries its own slicer configuration (`Metadata/Slic3r_PE.config`, which may
/// hold `post_process`), an OBJ may name other files (`mtllib`).
pub fn prepare_model(src: &Path, dir: &Path, kind: &str) -> Result<PathBuf, SliceError> {
    let io = |e: std::io::Error| SliceError::Failed(format!("slice folder: {e}"));
    let format = match kind {
        "stl" => crate::mesh::MeshFormat::Stl,
        "3mf" => crate::mesh::MeshFormat::ThreeMf,
        "obj" => crate::mesh::MeshFormat::Obj,
        other => return Err(SliceError::Unreadable(format!("not a model kind: {other}"))),
    };
    let mut file = std::fs::File::open(src).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(212);
    (&mut file).take(212).read_to_end(&mut head).map_err(io)?;
    if kind == "stl" && prusa_reads_stl(&head, len) {
        let model = dir.join("model.stl");
        std::fs::copy(src, &model).map_err(io)?;
        return Ok(model);
    }
    let reader = std::io::BufReader::new(std::fs::File::open(src).map_err(io)?);
    let mesh = crate::mesh::read_mesh(format, reader)
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

/// PrusaSlicer's last `[error]` log line, with every path cut to its file name (the client
/// never sees our folders).
fn loader_reason(log: &str, model: &Path) -> String {
    let Some(line) = log.lines().rev().find_map(|l| l.split_once("[error]")) else {
        return String::new();
    };
    let mut text = line.1.trim().to_string();
    if let (Some(full), Some(name)) = (model.to_str(), model.file_name().and_then(|n| n.to_str())) {
        text = text.replace(full, name);
    }
    // Any other absolute path (a file the slicer looked for) goes too.
    strip_paths(&text).chars().take(300).collect()
}

/// The last `n` non-empty lines of PrusaSlicer's log, as the client may see them: absolute
/// paths (the slice folder, the slicer's own files) become their file name only.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<String> = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(strip_paths)
        .collect();
    let text = lines[lines.len().saturating_sub(n)..].join("\n");
    text.chars().take(600).collect()
}

/// Replaces every absolute path in `line` by its last component.
fn strip_paths(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('/') {
        // A path starts at a '/' at the start of a word (not inside "mm/s" or a URL's "//").
        let starts_word = i == 0
            || rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_whitespace() || "\"'(=:[<".contains(c));
        if !starts_word {
            out.push_str(&rest[..=i]);
            rest = &rest[i + 1..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let end = after
            .find(|c: char| c.is_whitespace() || "\"')]>,;".contains(c))
            .unwrap_or(after.len());
        let path = &after[..end];
        out.push_str(path.rsplit('/').find(|p| !p.is_empty()).unwrap_or(""));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The bounds a slicer process runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time; the process group is killed when it runs out.
    pub time: Duration,
    /// CPU seconds of all its threads (RLIMIT_CPU).
    pub cpu_secs: u64,
    /// Data segment and anonymous memory (RLIMIT_DATA), bytes.
    pub memory_bytes: u64,
    /// Largest file it may write (RLIMIT_FSIZE), bytes.
    pub output_bytes: u64,
}

impl Limits {
    pub fn from_config(c: &crate::config::SlicerConfig) -> Limits {
        Limits {
            time: Duration::from_secs(c.time_limit_secs),
            cpu_secs: c.cpu_limit_secs.max(1),
            memory_bytes: c.memory_limit_mb.max(1).saturating_mul(1 << 20),
            output_bytes: c.max_output_mb.max(1).saturating_mul(1 << 20),
        }
    }
}

/// The process groups of the slicers one server instance runs, so its shutdown can kill them
/// (a process may hold several instances, as the tests do).
#[derive(Debug, Default)]
pub struct Running(std::sync::Mutex<Vec<i32>>);

impl Running {
    fn groups(&self) -> std::sync::MutexGuard<'_, Vec<i32>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kills every running slicer's whole process group (server shutdown). Each slice's own
    /// guard reaps its child.
    pub fn kill_all(&self) {
        for &pgid in self.groups().iter() {
            // SAFETY: killpg only sends a signal to a group we created and still track.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
    }

    /// The process groups (their leader's pid) of the running slicers.
    pub fn list(&self) -> Vec<i32> {
        self.groups().clone()
    }
}

/// Owns a running slicer's process group: kills the whole group when dropped (a timeout, a
/// cancelled slice, a panic), so no helper process outlives the slice.
struct Group<'a>(i32, &'a Running);

impl<'a> Group<'a> {
    fn new(pgid: i32, running: &'a Running) -> Group<'a> {
        running.groups().push(pgid);
        Group(pgid, running)
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        // SAFETY: as in kill_all; a group that already ended makes killpg fail (ESRCH).
        unsafe { libc::killpg(self.0, libc::SIGKILL) };
        self.1.groups().retain(|&g| g != self.0);
    }
}

/// Sets the limits in the child between fork and exec. Only async-signal-safe calls.
fn confine(limits: &Limits, parent: libc::pid_t) -> std::io::Result<()> {
    let set = |res, value: u64| {
        let lim = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            // CPU: the soft limit sends SIGXCPU (reported as such); the hard one SIGKILLs.
            rlim_max: if res == libc::RLIMIT_CPU {
                value.saturating_add(5)
            } else {
                value
            } as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(res, &lim) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    set(libc::RLIMIT_CPU, limits.cpu_secs)?;
    set(libc::RLIMIT_DATA, limits.memory_bytes)?;
    set(libc::RLIMIT_FSIZE, limits.output_bytes)?;
    set(libc::RLIMIT_CORE, 0)?;
    // Die with the server (SIGKILL when the thread that started us ends).
    // SAFETY: prctl with these arguments only sets the parent-death signal.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The server may have died before prctl: then nobody would ever signal us.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err(std::io::Error::other("the server ended"));
    }
    Ok(())
}

/// Runs `prusa-slicer` on `model` with `ini`, writing `output`, sandboxed: a minimal
/// environment, an empty working folder of its own, its own process group (killed as a whole
/// on timeout and shutdown), CPU, memory and file-size limits, and death with the server.
/// `model`, `ini` and `output` must be in the slice folder (their parent), which becomes the
/// slicer's HOME and TMPDIR. Returns the slicer's log (stdout + stderr, its last 64 KiB) in
/// both cases, for the record.
pub async fn run(
    exe: &str,
    ini: &Path,
    model: &Path,
    output: &Path,
    limits: &Limits,
    running: &Running,
) -> (Result<(), SliceError>, String) {
    let failed = |what: &str, e: std::io::Error| {
        tracing::warn!(error = %e, slicer = exe, "{what}");
        let why = if e.kind() == std::io::ErrorKind::NotFound && what == "spawn" {
            format!("PrusaSlicer is not installed on this server; {INSTALL_HINT}")
        } else {
            what.to_string()
        };
        (
            Err(SliceError::Failed(format!(
                "cannot start the slicer ({why})"
            ))),
            String::new(),
        )
    };
    let folder = output.parent().unwrap_or(Path::new("/")).to_path_buf();
    // An empty working folder of its own (removed with the slice), so relative names resolve
    // to nothing of ours.
    let work = match tempfile::Builder::new().prefix("work-").tempdir_in(&folder) {
        Ok(w) => w,
        Err(e) => return failed("its working folder", e),
    };
    let log_path = folder.join("slicer.log");
    let log_file = match std::fs::File::create(&log_path) {
        Ok(f) => f,
        Err(e) => return failed("its log", e),
    };
    let log_err = match log_file.try_clone() {
        Ok(f) => f,
        Err(e) => return failed("its log", e),
    };
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--loglevel")
        .arg("1")
        .arg("--load")
        .arg(ini)
        .arg("--export-gcode")
        .arg("-o")
        .arg(output)
        .arg(model)
        .env_clear()
        .env("PATH", SLICE_PATH)
        .env("HOME", &folder)
        .env("TMPDIR", &folder)
        .env("LC_ALL", "C")
        .current_dir(work.path())
        .stdin(std::process::Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(true);
    let (limits_copy, parent) = (*limits, std::process::id() as libc::pid_t);
    // SAFETY: confine only makes async-signal-safe calls (setrlimit, prctl, getppid).
    unsafe {
        cmd.pre_exec(move || confine(&limits_copy, parent));
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed("spawn", e),
    };
    let Some(pid) = child.id() else {
        return failed("spawn", std::io::Error::other("no pid"));
    };
    let group = Group::new(pid as i32, running);
    let waited = tokio::time::timeout(limits.time, child.wait()).await;
    // Kill the whole group (PrusaSlicer's helpers too) whatever happened, then reap.
    drop(group);
    let status = match waited {
        Err(_) => {
            let _ = child.wait().await;
            let _ = std::fs::remove_file(output);
            return (
                Err(SliceError::TimedOut(limits.time.as_secs())),
                read_log(&log_path),
            );
        }
        Ok(Err(e)) => return failed("wait", e),
        Ok(Ok(s)) => s,
    };
    let log = read_log(&log_path);
    if status.success() && output.exists() {
        return (Ok(()), log);
    }
    let _ = std::fs::remove_file(output);
    use std::os::unix::process::ExitStatusExt;
    let err = if log.contains("Loading of a model file failed") {
        SliceError::Unreadable(loader_reason(&log, model))
    } else if log.contains("No layers were detected") {
        SliceError::NoLayers
    } else if log.contains("bad_alloc") {
        // Its memory limit (RLIMIT_DATA): allocation failed.
        SliceError::Failed("the slicer ran out of memory".into())
    } else if log.contains("could not fit")
        || status.signal() == Some(libc::SIGABRT)
        || status.code() == Some(134)
    {
        SliceError::DoesNotFit
    } else if status.signal() == Some(libc::SIGXCPU) {
        SliceError::Failed("the slicer ran out of CPU time".into())
    } else if status.signal() == Some(libc::SIGKILL) {
        SliceError::Failed("the slicer was stopped".into())
    } else if status.signal() == Some(libc::SIGXFSZ) {
        SliceError::Failed("the G-code would be larger than this server allows".into())
    } else if status.code() == Some(1) {
        SliceError::InvalidSetting(tail(&log, 3))
    } else {
        SliceError::Failed(tail(&log, 3))
    };
    (Err(err), log)
}

/// The last 64 KiB of the slicer's log.
fn read_log(path: &Path) -> String {
    const KEEP: u64 = 64 * 1024;
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    use std::io::Seek;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(KEEP)));
    let mut bytes = Vec::new();
    let _ = f.take(KEEP).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slicer_is_found_where_slices_look_for_it() {
        assert!(installed("sh"));
        assert!(installed("/bin/sh"));
        assert!(!installed("/nonexistent/prusa-slicer"));
        assert!(!installed("no-such-slicer-here"));
        // A file that is not executable is not a slicer.
        let plain = tempfile::NamedTempFile::new().unwrap();
        assert!(!installed(plain.path().to_str().unwrap()));
    }
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

    #[test]
    fn only_typed_values_of_allowed_keys_pass() {
        for (k, v) in [
            ("post_process", json!("touch /tmp/x")),
            (
                "start_gcode",
                json!("G28 {if 1}M117 [input_filename]{endif}"),
            ),
            ("output_filename_format", json!("x.gcode")),
            ("notes", json!("hello")),
            ("filament_notes", json!("hello")),
            ("printer_notes", json!("hello")),
            ("template_custom_gcode", json!("M117")),
            ("colorprint_heights", json!("1,2")),
            ("layer_gcode", json!("G92 E0")),
            ("thumbnails", json!("16x16")),
        ] {
            let e = Profile::from_json(&json!({ k: v })).unwrap_err();
            assert!(e.contains(k) && e.contains("cannot be set"), "{k}: {e}");
        }
        for (k, v) in [
            ("perimeters", json!("2\npost_process = touch /tmp/x")),
            ("perimeters", json!("2.5")),
            ("first_layer_height", json!("0.2 mm")),
            ("first_layer_height", json!("1e3")),
            ("layer_height", json!("nan")),
            ("max_layer_height", json!("inf")),
            ("fill_pattern", json!("grid\n")),
            ("fill_pattern", json!("[input_filename]")),
            ("filament_type", json!("PLA; rm -rf")),
            ("support_material", json!("yes")),
            ("bed_shape", json!("0x0,/etc/passwd")),
            ("retract_length", json!("1,2,x")),
            ("infill_overlap", json!("25%%")),
        ] {
            let e = Profile::from_json(&json!({ k: v })).unwrap_err();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
        let p = Profile::from_json(&json!({
            "perimeters": 2, "layer_height": "0.15", "fill_pattern": "gyroid",
            "filament_type": "PETG", "infill_overlap": "15%", "retract_length": "0.8,1",
            "support_material": true, "standby_temperature_delta": -5, "first_layer_height": ".2"
        }));
        // PETG is not one of PrusaSlicer's names (PET is).
        assert!(p.unwrap_err().contains("filament_type"));
        let p = Profile::from_json(&json!({
            "perimeters": 2, "layer_height": "0.15", "fill_pattern": "gyroid",
            "filament_type": "PET", "infill_overlap": "15%", "retract_length": "0.8,1",
            "support_material": true, "standby_temperature_delta": -5, "first_layer_height": ".2"
        }))
        .unwrap();
        assert_eq!(p.keys["filament_type"], "PET");
        // Our own templates stay.
        assert!(p.keys["start_gcode"].contains("G28"));
        assert!(Profile::from_stored(p.keys.clone()).is_ok());
        let mut bad = p.keys.clone();
        bad.insert("start_gcode".into(), "M117 {input_filename}".into());
        assert!(Profile::from_stored(bad).is_err());
        let mut bad = p.keys;
        bad.insert("post_process".into(), "touch /tmp/x".into());
        assert!(Profile::from_stored(bad).is_err());
    }

    #[test]
    fn slicer_messages_lose_their_paths() {
        assert_eq!(
            tail(
                "a\nError: cannot open /tmp/staging/slice-x1/model.obj now\n",
                1
            ),
            "Error: cannot open model.obj now"
        );
        assert_eq!(
            strip_paths("speed 50 mm/s, file '/usr/share/x/y.ini': bad"),
            "speed 50 mm/s, file 'y.ini': bad"
        );
    }
}
