//! Machine limits from the configuration block slicers write at the end of a G-code file
//! (`; machine_max_acceleration_x = 500,500`, `; gcode_flavor = marlin2`,
//! `; machine_limits_usage = time_estimate_only`, …), turned into the planner's starting
//! limits with the rules of PrusaSlicer 2.5's own estimator (`GCodeProcessor::apply_config`,
//! `src/libslic3r/GCode/GCodeProcessor.cpp`, tag `version_2.5.0`):
//!
//! * the configured limits are used only for the Marlin (legacy), Marlin 2 and RepRapFirmware
//!   flavors (and Klipper, added in later versions), and only when `machine_limits_usage` is not
//!   `ignore`; otherwise the estimator runs with PrusaSlicer's built-in defaults
//!   ([`MachineLimits::prusaslicer_defaults`]), not without limits;
//! * Marlin (legacy) and Klipper have no separate travel acceleration: travel uses the
//!   extruding one; RepRapFirmware has no minimum feedrates (both set to 0);
//! * `machine_max_acceleration_extruding / _retracting / _travel` are also the ceilings that
//!   M204 in the body is clamped to, and the starting accelerations (1500 / 1500 / 1250 when 0);
//! * comma lists are "normal,silent": only the first (normal mode) value is used;
//! * M201/M203/M204/M205/M566 in the body override all of this as the file is read
//!   (see `machine.rs`), M203 in mm/min except for Marlin / Smoothie / Klipper, never for
//!   Repetier.
//!
//! OrcaSlicer and Bambu Studio write the same `machine_max_*` keys but no
//! `machine_limits_usage`; their estimators always use the limits for the flavors above.
//!
//! The block is found by scanning a bounded tail of the file ([`TAIL_BYTES`]) before the
//! main pass; only the few keys below are kept.

use super::planner::{MachineLimits, E, X, Y, Z};

/// How much of the end of a file is scanned for the configuration block. PrusaSlicer 2.5's
/// block is about 30 KiB, Orca / Bambu blocks with long custom G-code up to a few hundred.
pub const TAIL_BYTES: usize = 512 * 1024;

/// The firmware dialect, for the M-codes whose meaning depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// Unknown (no `gcode_flavor` in the file): Marlin conventions.
    #[default]
    Unknown,
    MarlinLegacy,
    Marlin2,
    Klipper,
    RepRapFirmware,
    Repetier,
    Smoothie,
    /// Mach3 and Machinekit: the extruder is the A axis.
    Mach3,
    Machinekit,
    /// reprap (Sprinter), teacup, makerware, sailfish, no-extrusion.
    Other,
}

impl Flavor {
    /// From a `gcode_flavor` value (PrusaSlicer / SuperSlicer / Orca / Bambu spellings).
    pub fn parse(v: &str) -> Flavor {
        match v.trim().to_ascii_lowercase().as_str() {
            "marlin" | "marlinlegacy" => Flavor::MarlinLegacy,
            "marlin2" | "marlinfirmware" => Flavor::Marlin2,
            "klipper" => Flavor::Klipper,
            "reprapfirmware" => Flavor::RepRapFirmware,
            "repetier" => Flavor::Repetier,
            "smoothie" => Flavor::Smoothie,
            "mach3" => Flavor::Mach3,
            "machinekit" => Flavor::Machinekit,
            "" => Flavor::Unknown,
            _ => Flavor::Other,
        }
    }

    /// PrusaSlicer applies the configured machine limits to these flavors only.
    fn uses_machine_limits(self) -> bool {
        matches!(
            self,
            Flavor::MarlinLegacy | Flavor::Marlin2 | Flavor::RepRapFirmware | Flavor::Klipper
        )
    }

    /// The axis letter of the extruder (PrusaSlicer writes `A` for Mach3 / Machinekit; its
    /// G-code reader maps it back to E).
    pub(crate) fn extrusion_letter(self) -> u8 {
        match self {
            Flavor::Mach3 | Flavor::Machinekit => b'A',
            _ => b'E',
        }
    }

    /// M203 values are mm/s for these, mm/min for the rest (RepRap convention).
    pub(crate) fn m203_per_second(self) -> bool {
        matches!(
            self,
            Flavor::Unknown
                | Flavor::MarlinLegacy
                | Flavor::Marlin2
                | Flavor::Klipper
                | Flavor::Smoothie
        )
    }
}

/// The configuration keys that matter for the estimate, as found in the file's tail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigLimits {
    entries: Vec<(&'static str, String)>,
}

const KEYS: &[&str] = &[
    "gcode_flavor",
    "machine_limits_usage",
    "emit_machine_limits_to_gcode",
    "machine_max_feedrate_x",
    "machine_max_feedrate_y",
    "machine_max_feedrate_z",
    "machine_max_feedrate_e",
    "machine_max_acceleration_x",
    "machine_max_acceleration_y",
    "machine_max_acceleration_z",
    "machine_max_acceleration_e",
    "machine_max_acceleration_extruding",
    "machine_max_acceleration_retracting",
    "machine_max_acceleration_travel",
    "machine_max_jerk_x",
    "machine_max_jerk_y",
    "machine_max_jerk_z",
    "machine_max_jerk_e",
    "machine_min_extruding_rate",
    "machine_min_travel_rate",
];

/// Values longer than this are not limits (a custom G-code, say) and are skipped.
const MAX_VALUE: usize = 256;

impl ConfigLimits {
    /// Scans `; key = value` comment lines of `text` (typically the file's last
    /// [`TAIL_BYTES`]); a later line wins over an earlier one. A cut-off first line is harmless:
    /// it cannot match a whole `; key = ` prefix and a value at the same time by accident
    /// unless it is a complete line.
    pub fn scan(text: &[u8]) -> ConfigLimits {
        let mut out = ConfigLimits::default();
        for line in text.split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            let Some(rest) = line.strip_prefix(b";") else {
                continue;
            };
            let rest = rest.trim_ascii_start();
            let Some(eq) = rest.iter().position(|&b| b == b'=') else {
                continue;
            };
            let key = rest[..eq].trim_ascii();
            let Some(&k) = KEYS.iter().find(|k| k.as_bytes() == key) else {
                continue;
            };
            let value = rest[eq + 1..].trim_ascii();
            if value.len() > MAX_VALUE {
                continue;
            }
            let value = String::from_utf8_lossy(value).into_owned();
            match out.entries.iter_mut().find(|(ek, _)| *ek == k) {
                Some(e) => e.1 = value,
                None => out.entries.push((k, value)),
            }
        }
        out
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The normal-mode (first) value of a `normal,silent` list.
    fn first(&self, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        let first = v.split([',', ';']).next()?.trim();
        first.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// True if the block says anything about machine limits or the flavor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The flavor the file was made for.
    pub fn flavor(&self) -> Flavor {
        self.get("gcode_flavor")
            .map(Flavor::parse)
            .unwrap_or_default()
    }

    /// The planner's starting limits for this file: `fallback` when the file carries no
    /// configuration block, else what the slicer's own estimator starts from (module doc).
    pub fn starting_limits(&self, fallback: &MachineLimits) -> MachineLimits {
        if self.is_empty() {
            return fallback.clone();
        }
        let flavor = self.flavor();
        let mut l = MachineLimits::prusaslicer_defaults();
        l.flavor = flavor;
        let use_config = match self.get("machine_limits_usage") {
            // PrusaSlicer / SuperSlicer.
            Some(u) => !u.trim().eq_ignore_ascii_case("ignore") && flavor.uses_machine_limits(),
            // OrcaSlicer / Bambu Studio have no such option: their `GCodeProcessor::apply_config`
            // (OrcaSlicer `src/libslic3r/GCode/GCodeProcessor.cpp`) takes the limits for
            // Marlin / Marlin 2 / Klipper / RepRapFirmware whatever `emit_machine_limits_to_gcode`
            // says. A block that names no flavor: the limits are there to be used.
            None => flavor.uses_machine_limits() || flavor == Flavor::Unknown,
        };
        if !use_config {
            return l;
        }
        let set = |slot: &mut f64, key: &str| {
            if let Some(v) = self.first(key).filter(|v| *v >= 0.0) {
                *slot = v;
            }
        };
        for (a, axis) in [(X, "x"), (Y, "y"), (Z, "z"), (E, "e")] {
            set(
                &mut l.max_feedrate[a],
                &format!("machine_max_feedrate_{axis}"),
            );
            set(
                &mut l.max_acceleration[a],
                &format!("machine_max_acceleration_{axis}"),
            );
            set(&mut l.max_jerk[a], &format!("machine_max_jerk_{axis}"));
        }
        set(&mut l.min_extruding_rate, "machine_min_extruding_rate");
        set(&mut l.min_travel_rate, "machine_min_travel_rate");
        set(
            &mut l.max_acceleration_print,
            "machine_max_acceleration_extruding",
        );
        set(
            &mut l.max_acceleration_retract,
            "machine_max_acceleration_retracting",
        );
        set(
            &mut l.max_acceleration_travel,
            "machine_max_acceleration_travel",
        );
        if matches!(flavor, Flavor::MarlinLegacy | Flavor::Klipper) {
            l.max_acceleration_travel = l.max_acceleration_print;
        }
        if flavor == Flavor::RepRapFirmware {
            l.min_extruding_rate = 0.0;
            l.min_travel_rate = 0.0;
        }
        l.reset_accelerations_to_maxima();
        l
    }
}

/// Starting limits for a file whose last bytes are `tail` (see [`ConfigLimits`]).
pub fn limits_from_tail(tail: &[u8], fallback: &MachineLimits) -> MachineLimits {
    ConfigLimits::scan(tail).starting_limits(fallback)
}
