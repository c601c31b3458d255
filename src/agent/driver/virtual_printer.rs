//! A built-in simulated printer, no I/O: it heats toward the G-code's temperatures at
//! `heat_rate` °C per simulated second, then "prints" for the G-code's own duration
//! (header `; estimated printing time … = 1h 2m 3s` or `;TIME:<s>`, else 0.1 s per
//! command line). Simulated time runs `speed_factor` times faster than real time.
//!
//! Failures on request: `fail_after_percent` fails every print at that percent, and a
//! G-code comment `; printfarm:fail` (or `; printfarm:fail_at=30`) fails that print
//! (default at 50 %).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{round2, DriverError, DriverState, Material, PrinterStatus};
use crate::agent::config::PrinterConfig;

const AMBIENT: f64 = 22.0;
/// Within this many degrees of the target counts as heated.
const HEAT_TOLERANCE: f64 = 1.0;
const SECONDS_PER_LINE: f64 = 0.1;
const DEFAULT_FAIL_PERCENT: f64 = 50.0;
/// Files kept "on the printer".
const MAX_FILES: usize = 16;

/// What the virtual printer learned from a G-code at upload.
#[derive(Debug, Clone, PartialEq)]
pub struct GcodeInfo {
    /// Print time in simulated seconds.
    pub duration: f64,
    pub bed_target: f64,
    pub tool_target: f64,
    pub fail_at: Option<f64>,
}

impl GcodeInfo {
    pub fn parse(text: &str) -> GcodeInfo {
        let mut header_time: Option<f64> = None;
        let mut lines = 0u64;
        let mut bed: Option<f64> = None;
        let mut tool: Option<f64> = None;
        let mut fail_at = None;
        for raw in text.lines() {
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix(';') {
                let c = comment.trim();
                if header_time.is_none() {
                    header_time = parse_time_comment(c);
                }
                if let Some(rest) = c.strip_prefix("printfarm:fail") {
                    fail_at = Some(
                        rest.trim()
                            .strip_prefix("_at=")
                            .and_then(|v| v.trim().parse::<f64>().ok())
                            .unwrap_or(DEFAULT_FAIL_PERCENT),
                    );
                }
                continue;
            }
            let code = line.split(';').next().unwrap_or("").trim();
            if code.is_empty() {
                continue;
            }
            lines += 1;
            let mut words = code.split_whitespace();
            let cmd = words.next().unwrap_or("").to_ascii_uppercase();
            let slot = match cmd.as_str() {
                "M104" | "M109" => &mut tool,
                "M140" | "M190" => &mut bed,
                _ => continue,
            };
            if slot.is_none() {
                *slot = words
                    .find_map(|w| w.strip_prefix('S').or_else(|| w.strip_prefix('s')))
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|t| t.is_finite() && *t >= 0.0);
            }
        }
        GcodeInfo {
            duration: header_time.unwrap_or(lines as f64 * SECONDS_PER_LINE),
            bed_target: bed.unwrap_or(0.0),
            tool_target: tool.unwrap_or(0.0),
            fail_at,
        }
    }
}

/// `estimated printing time (normal mode) = 1d 2h 3m 4s` or `TIME:1234`.
fn parse_time_comment(c: &str) -> Option<f64> {
    if let Some(v) = c.strip_prefix("TIME:") {
        return v.trim().parse::<f64>().ok().filter(|t| *t >= 0.0);
    }
    if !c.starts_with("estimated printing time") {
        return None;
    }
    let value = c.split_once('=')?.1;
    let mut total = 0.0;
    let mut any = false;
    for part in value.split_whitespace() {
        let (num, unit) = part.split_at(part.find(|ch: char| ch.is_alphabetic())?);
        let n: f64 = num.parse().ok()?;
        total += n * match unit {
            "d" => 86400.0,
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            _ => return None,
        };
        any = true;
    }
    any.then_some(total)
}

#[derive(Debug)]
struct Active {
    file: String,
    info: GcodeInfo,
    /// Printed simulated seconds (excluding heating and pauses).
    printed: f64,
    heating: bool,
    paused: bool,
}

#[derive(Debug)]
struct Sim {
    last: Instant,
    temps: [f64; 2],
    targets: [f64; 2],
    active: Option<Active>,
    /// State after the last job: Idle, Finished, Cancelled or Failed.
    outcome: DriverState,
    outcome_message: Option<String>,
    last_file: Option<String>,
    last_percent: f64,
    files: HashMap<String, GcodeInfo>,
    file_order: Vec<String>,
}

pub struct VirtualPrinter {
    sim: Mutex<Sim>,
    speed: f64,
    heat_rate: f64,
    fail_after_percent: Option<f64>,
    camera: bool,
    /// The materials "loaded" (from `[[printer.filaments]]`; tests may swap them).
    materials: Mutex<Vec<Material>>,
    /// Added to the real clock: lets tests move time forward without waiting.
    skew_nanos: AtomicU64,
}

impl VirtualPrinter {
    pub fn new(speed: f64, heat_rate: f64) -> VirtualPrinter {
        VirtualPrinter {
            sim: Mutex::new(Sim {
                last: Instant::now(),
                temps: [AMBIENT, AMBIENT],
                targets: [0.0, 0.0],
                active: None,
                outcome: DriverState::Idle,
                outcome_message: None,
                last_file: None,
                last_percent: 0.0,
                files: HashMap::new(),
                file_order: Vec::new(),
            }),
            speed,
            heat_rate,
            fail_after_percent: None,
            camera: false,
            materials: Mutex::new(Vec::new()),
            skew_nanos: AtomicU64::new(0),
        }
    }

    /// Moves this printer's clock forward (tests).
    pub fn advance_clock(&self, d: Duration) {
        self.skew_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn now(&self) -> Instant {
        Instant::now() + Duration::from_nanos(self.skew_nanos.load(Ordering::Relaxed))
    }

    pub fn from_config(p: &PrinterConfig) -> VirtualPrinter {
        let mut v = VirtualPrinter::new(p.speed_factor.unwrap_or(1.0), p.heat_rate.unwrap_or(3.0));
        v.fail_after_percent = p.fail_after_percent;
        v.camera = p.camera.unwrap_or(false);
        v.set_materials(Material::from_config(p));
        v
    }

    /// Loads other materials, as an operator changing spools would.
    pub fn set_materials(&self, materials: Vec<Material>) {
        *self.materials.lock().unwrap_or_else(|p| p.into_inner()) = materials;
    }

    pub fn has_camera(&self) -> bool {
        self.camera
    }

    /// Adds a file directly (tests).
    pub fn add_file(&self, name: &str, info: GcodeInfo) {
        let mut s = self.lock();
        s.store(name, info);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sim> {
        // A poisoned lock only means a panic elsewhere; the simulation data is still usable.
        self.sim.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn advance(&self, s: &mut Sim) {
        let now = self.now();
        let dt = now.saturating_duration_since(s.last).as_secs_f64() * self.speed;
        s.last = now;
        if dt <= 0.0 {
            return;
        }
        // Heat/cool first, then spend the time left over after heating on printing.
        let mut heat_time_needed: f64 = 0.0;
        for i in 0..2 {
            let goal = if s.targets[i] > 0.0 {
                s.targets[i]
            } else {
                AMBIENT
            };
            let diff = goal - s.temps[i];
            let step = self.heat_rate * dt;
            // Only heaters with a target hold the print back; cooling ones do not.
            let needed = if diff.abs() <= step {
                s.temps[i] = goal;
                diff.abs() / self.heat_rate
            } else {
                s.temps[i] += step * diff.signum();
                dt
            };
            if s.targets[i] > 0.0 {
                heat_time_needed = heat_time_needed.max(needed);
            }
        }
        let heated = (0..2)
            .all(|i| s.targets[i] <= 0.0 || (s.temps[i] - s.targets[i]).abs() <= HEAT_TOLERANCE);
        let fail_after = self.fail_after_percent;
        let Some(a) = s.active.as_mut() else { return };
        if a.paused {
            return;
        }
        let mut print_dt = dt;
        if a.heating {
            if !heated {
                return;
            }
            a.heating = false;
            print_dt = (dt - heat_time_needed).max(0.0);
        }
        a.printed += print_dt;
        let percent = progress(a);
        let fail_at = a.info.fail_at.or(fail_after);
        if let Some(at) = fail_at.filter(|at| percent >= *at) {
            let file = a.file.clone();
            s.finish(
                DriverState::Failed,
                Some(format!("virtual printer failure at {at:.0} % (requested)")),
                file,
                at,
            );
        } else if a.printed >= a.info.duration {
            let file = a.file.clone();
            s.finish(DriverState::Finished, None, file, 100.0);
        }
    }
}

fn progress(a: &Active) -> f64 {
    if a.info.duration <= 0.0 {
        return if a.heating { 0.0 } else { 100.0 };
    }
    (a.printed / a.info.duration * 100.0).clamp(0.0, 100.0)
}

impl Sim {
    fn finish(&mut self, outcome: DriverState, msg: Option<String>, file: String, percent: f64) {
        self.active = None;
        self.outcome = outcome;
        self.outcome_message = msg;
        self.last_file = Some(file);
        self.last_percent = percent;
        self.targets = [0.0, 0.0];
    }

    fn store(&mut self, name: &str, info: GcodeInfo) {
        if self.files.insert(name.to_string(), info).is_none() {
            self.file_order.push(name.to_string());
        }
        while self.file_order.len() > MAX_FILES {
            let old = self.file_order.remove(0);
            self.files.remove(&old);
        }
    }
}

impl super::Driver for VirtualPrinter {
    async fn connect(&self) -> Result<(), DriverError> {
        Ok(())
    }

    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        let mut s = self.lock();
        self.advance(&mut s);
        let (state, percent, file, message) = match &s.active {
            Some(a) => (
                if a.paused {
                    DriverState::Paused
                } else {
                    DriverState::Printing
                },
                progress(a),
                Some(a.file.clone()),
                None,
            ),
            None => (
                s.outcome.clone(),
                s.last_percent,
                s.last_file.clone(),
                s.outcome_message.clone(),
            ),
        };
        Ok(PrinterStatus {
            state,
            message,
            percent: round2(percent),
            temps: [round2(s.temps[0]), round2(s.temps[1])],
            target_temps: s.targets,
            job_file: file,
        })
    }

    async fn upload(&self, path: &Path, name: &str) -> Result<(), DriverError> {
        let bytes = std::fs::read(path).map_err(|e| DriverError::Other(e.to_string()))?;
        let info = GcodeInfo::parse(&String::from_utf8_lossy(&bytes));
        let mut s = self.lock();
        if s.active.as_ref().is_some_and(|a| a.file == name) {
            return Err(DriverError::Refused(format!("{name} is being printed")));
        }
        s.store(name, info);
        Ok(())
    }

    async fn start(&self, name: &str) -> Result<(), DriverError> {
        let mut s = self.lock();
        self.advance(&mut s);
        if s.active.is_some() {
            return Err(DriverError::Refused("already printing".into()));
        }
        let Some(info) = s.files.get(name).cloned() else {
            return Err(DriverError::Refused(format!("no file {name}")));
        };
        s.targets = [info.bed_target, info.tool_target];
        s.outcome = DriverState::Idle;
        s.outcome_message = None;
        s.active = Some(Active {
            file: name.to_string(),
            info,
            printed: 0.0,
            heating: true,
            paused: false,
        });
        Ok(())
    }

    async fn pause(&self) -> Result<(), DriverError> {
        let mut s = self.lock();
        self.advance(&mut s);
        match s.active.as_mut() {
            Some(a) => {
                a.paused = true;
                Ok(())
            }
            None => Err(DriverError::Refused("not printing".into())),
        }
    }

    async fn resume(&self) -> Result<(), DriverError> {
        let mut s = self.lock();
        self.advance(&mut s);
        match s.active.as_mut() {
            Some(a) if a.paused => {
                a.paused = false;
                Ok(())
            }
            Some(_) => Err(DriverError::Refused("not paused".into())),
            None => Err(DriverError::Refused("not printing".into())),
        }
    }

    async fn cancel(&self) -> Result<(), DriverError> {
        let mut s = self.lock();
        self.advance(&mut s);
        match s.active.as_ref() {
            Some(a) => {
                let (file, percent) = (a.file.clone(), progress(a));
                s.finish(DriverState::Cancelled, None, file, percent);
                Ok(())
            }
            None => Err(DriverError::Refused("nothing to cancel".into())),
        }
    }

    async fn snapshot(&self) -> Option<Vec<u8>> {
        if !self.camera {
            return None;
        }
        let status = super::Driver::status(self).await.ok()?;
        let printing = matches!(status.state, DriverState::Printing | DriverState::Paused);
        Some(crate::agent::jpeg::progress_frame(
            if printing { status.percent } else { 0.0 },
            status.temps[1],
        ))
    }

    async fn materials(&self) -> Result<Vec<Material>, DriverError> {
        Ok(self
            .materials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Driver;
    use super::*;

    #[test]
    fn reads_durations_and_temperatures() {
        let prusa = GcodeInfo::parse(
            "M140 S60\nM104 S215\nG28\n; estimated printing time (normal mode) = 1h 15m 56s\n",
        );
        assert_eq!(prusa.duration, 4556.0);
        assert_eq!((prusa.bed_target, prusa.tool_target), (60.0, 215.0));
        assert_eq!(prusa.fail_at, None);
        let cura = GcodeInfo::parse(";TIME:95\nM190 S50\nM109 S200 ; wait\n");
        assert_eq!(cura.duration, 95.0);
        assert_eq!((cura.bed_target, cura.tool_target), (50.0, 200.0));
        let plain = GcodeInfo::parse("G28\n\n; c\nG1 X1\nG1 X2 ; move\n; printfarm:fail_at=30\n");
        assert!((plain.duration - 0.3).abs() < 1e-9);
        assert_eq!(plain.fail_at, Some(30.0));
        assert_eq!(
            GcodeInfo::parse("; printfarm:fail\n").fail_at,
            Some(DEFAULT_FAIL_PERCENT)
        );
        let cube = GcodeInfo::parse(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/cube_20mm.gcode"
            ))
            .unwrap(),
        );
        assert_eq!(cube.duration, 15.0 * 60.0 + 56.0);
    }

    fn info(duration: f64, fail_at: Option<f64>) -> GcodeInfo {
        GcodeInfo {
            duration,
            bed_target: 60.0,
            tool_target: 215.0,
            fail_at,
        }
    }

    #[tokio::test]
    async fn heats_prints_pauses_and_finishes() {
        // 10 °C per simulated second, 10× speed: heating 22→215 takes 19.3 s simulated.
        let v = VirtualPrinter::new(10.0, 10.0);
        v.add_file("a.gcode", info(100.0, None));
        assert_eq!(v.status().await.unwrap().state, DriverState::Idle);
        v.start("a.gcode").await.unwrap();
        assert!(v.start("a.gcode").await.is_err(), "busy");
        v.advance_clock(Duration::from_secs(1));
        let s = v.status().await.unwrap();
        assert_eq!(s.state, DriverState::Printing);
        assert_eq!(s.percent, 0.0, "still heating: {s:?}");
        assert_eq!(s.target_temps, [60.0, 215.0]);
        assert!(s.temps[1] > 100.0 && s.temps[1] < 215.0);
        // 0.93 s more finishes heating; 5 s more is 50 simulated seconds of printing.
        v.advance_clock(Duration::from_millis(930 + 5000));
        let s = v.status().await.unwrap();
        assert!((s.percent - 50.0).abs() < 1.0, "{s:?}");
        assert_eq!(s.job_file.as_deref(), Some("a.gcode"));
        v.pause().await.unwrap();
        v.advance_clock(Duration::from_secs(60));
        let p = v.status().await.unwrap();
        assert_eq!(p.state, DriverState::Paused);
        assert_eq!(p.percent, s.percent);
        assert!(v.pause().await.is_ok(), "pausing twice is harmless");
        v.resume().await.unwrap();
        assert!(v.resume().await.is_err());
        v.advance_clock(Duration::from_secs(6));
        let f = v.status().await.unwrap();
        assert_eq!(f.state, DriverState::Finished);
        assert_eq!(f.percent, 100.0);
        assert_eq!(f.target_temps, [0.0, 0.0]);
        assert_eq!(f.job_file.as_deref(), Some("a.gcode"));
        // It cools down afterwards.
        v.advance_clock(Duration::from_secs(60));
        assert_eq!(v.status().await.unwrap().temps, [AMBIENT, AMBIENT]);
    }

    #[tokio::test]
    async fn cancels_and_fails_on_request() {
        let v = VirtualPrinter::new(1000.0, 100.0);
        v.add_file("a.gcode", info(1000.0, None));
        v.add_file("f.gcode", info(1000.0, Some(30.0)));
        assert!(v.cancel().await.is_err());
        assert!(v.start("missing.gcode").await.is_err());
        v.start("a.gcode").await.unwrap();
        v.advance_clock(Duration::from_millis(500));
        v.cancel().await.unwrap();
        let s = v.status().await.unwrap();
        assert_eq!(s.state, DriverState::Cancelled);
        assert!(s.percent > 0.0 && s.percent < 100.0);

        v.start("f.gcode").await.unwrap();
        v.advance_clock(Duration::from_secs(5));
        let s = v.status().await.unwrap();
        assert_eq!(s.state, DriverState::Failed);
        assert_eq!(s.percent, 30.0);
        assert!(s.message.unwrap().contains("failure"));

        let mut v2 = VirtualPrinter::new(1000.0, 100.0);
        v2.fail_after_percent = Some(10.0);
        v2.add_file("a.gcode", info(1000.0, None));
        v2.start("a.gcode").await.unwrap();
        v2.advance_clock(Duration::from_secs(5));
        assert_eq!(v2.status().await.unwrap().state, DriverState::Failed);
    }

    #[tokio::test]
    async fn uploads_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gcode");
        std::fs::write(&p, ";TIME:2\nM104 S0\nG28\n").unwrap();
        let v = VirtualPrinter::new(1000.0, 100.0);
        v.upload(&p, "x.gcode").await.unwrap();
        v.start("x.gcode").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(v.status().await.unwrap().state, DriverState::Finished);
        assert!(v.upload(&dir.path().join("nope"), "n.gcode").await.is_err());
    }
}
