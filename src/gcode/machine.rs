//! The G-code interpreter: machine state (positions, modes, overrides), statistics, and the
//! hand-off of every move to the planner and the optional toolpath visitor.

use super::lexer::{extended_param, parse_code, split_comment, Command, Words};
use super::limits::Flavor;
use super::meta::Meta;
use super::planner::{MachineLimits, MoveKind, Planner, E, X, Y, Z};
use super::{GcodeAnalysis, ToolpathVisitor};

/// Tool numbers at or above this are ignored (garbage protection).
const MAX_TOOLS: usize = 64;
/// Maximum deviation of the arc linearisation from the true arc, mm.
const ARC_TOLERANCE: f64 = 0.005;
/// Maximum segment length of the arc linearisation, mm (Marlin's `MM_PER_ARC_SEGMENT`).
const ARC_MAX_SEGMENT: f64 = 1.0;
/// At most this many chords per arc (half a degree each for a full circle: a chord error of
/// 0.001 % of the radius), whatever the radius.
const ARC_MAX_SEGMENTS: usize = 720;
/// Total work bound: the chords all arcs may use are an allowance per arc command plus a start
/// amount. Real arc-welded G-code uses a few chords per arc and never runs out; a file of huge
/// full circles does, and its later arcs get [`ARC_MIN_SEGMENTS`] per turn, so analysis time
/// stays linear in the input.
const ARC_ALLOWANCE_PER_ARC: u64 = 64;
const ARC_BUDGET_START: u64 = 100_000;
/// Chords per full turn once the budget is spent (length within 0.7 % of the true arc).
const ARC_MIN_SEGMENTS: f64 = 32.0;
/// Z change that counts as a new layer in the measured layer count, mm.
const LAYER_EPS: f64 = 0.01;

#[derive(Debug, Clone, Copy, Default)]
struct ToolUse {
    /// Net E (after flow override) since the start of counting.
    cumulative: f64,
    /// Maximum of `cumulative`: the filament actually consumed (a final retraction is not
    /// given back, which is what PrusaSlicer reports).
    max: f64,
    extruded: bool,
}

/// Extent, layers and filament of the extruding moves, kept twice: for the whole file and
/// from the first layer marker on (see [`Meta::print_started`]).
#[derive(Debug, Clone, Default)]
struct Stats {
    tools: Vec<ToolUse>,
    any: bool,
    min: [f64; 3],
    max: [f64; 3],
    first_z: f64,
    second_z: Option<f64>,
    layer_z: f64,
    layers: u32,
}

impl Stats {
    fn extrude(&mut self, tool: usize, de: f64) {
        if self.tools.len() <= tool {
            self.tools.resize(tool + 1, ToolUse::default());
        }
        let t = &mut self.tools[tool];
        t.cumulative += de;
        if t.cumulative > t.max {
            t.max = t.cumulative;
        }
        if de > 0.0 {
            t.extruded = true;
        }
    }

    fn extent(&mut self, from: [f64; 3], to: [f64; 3]) {
        if !self.any {
            self.any = true;
            self.min = from;
            self.max = from;
            self.first_z = to[2];
            self.layer_z = to[2];
            self.layers = 1;
        }
        for p in [from, to] {
            for ((lo, hi), v) in self.min.iter_mut().zip(self.max.iter_mut()).zip(p) {
                *lo = lo.min(v);
                *hi = hi.max(v);
            }
        }
        let z = to[2];
        if z > self.layer_z + LAYER_EPS {
            self.layers += 1;
            self.layer_z = z;
            if self.second_z.is_none() {
                self.second_z = Some(z);
            }
        } else if z < self.layer_z - LAYER_EPS {
            // Sequential printing: the next object starts from the bottom again.
            self.layer_z = z;
        }
    }

    fn filament_mm(&self) -> f64 {
        self.tools.iter().map(|t| t.max).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plane {
    XY,
    ZX,
    YZ,
}

pub(crate) struct Machine<'v> {
    planner: Planner,
    pub meta: Meta,
    visitor: Option<&'v mut dyn ToolpathVisitor>,
    /// Logical position X, Y, Z, E (mm).
    pos: [f64; 4],
    relative_xyz: bool,
    /// `M83` given (E relative regardless of G90).
    e_relative_mode: bool,
    /// mm per G-code unit (25.4 after G20).
    unit: f64,
    /// Requested feedrate, mm/s.
    feed: f64,
    feed_override: f64,
    flow: f64,
    tool: usize,
    plane: Plane,
    all: Stats,
    print: Stats,
    seen_motion: bool,
    nozzle: Vec<Option<f64>>,
    bed: Option<f64>,
    moves: u64,
    lines: u64,
    /// Arc chords still available (see [`ARC_ALLOWANCE_PER_ARC`]).
    arc_budget: u64,
}

impl<'v> Machine<'v> {
    pub fn new(limits: MachineLimits, visitor: Option<&'v mut dyn ToolpathVisitor>) -> Self {
        Machine {
            planner: Planner::new(limits),
            meta: Meta::default(),
            visitor,
            pos: [0.0; 4],
            relative_xyz: false,
            e_relative_mode: false,
            unit: 1.0,
            // Marlin's power-on feedrate (1500 mm/min).
            feed: 25.0,
            feed_override: 1.0,
            flow: 1.0,
            tool: 0,
            plane: Plane::XY,
            all: Stats::default(),
            print: Stats::default(),
            seen_motion: false,
            nozzle: Vec::new(),
            bed: None,
            moves: 0,
            lines: 0,
            arc_budget: ARC_BUDGET_START,
        }
    }

    /// Processes one line (without the line terminator).
    pub fn line(&mut self, line: &[u8], w: &mut Words) {
        self.lines += 1;
        let (code, comment) = split_comment(line);
        if let Some(c) = comment {
            self.meta.on_comment(c, !self.seen_motion);
        }
        match parse_code(code, w) {
            Command::G(g, sub) => self.g(g, sub, w),
            Command::M(m) => self.m(m, w),
            Command::T(n) => {
                if (n as usize) < MAX_TOOLS {
                    self.tool = n as usize;
                }
            }
            Command::Extended(cmd) => self.extended(cmd),
            Command::None | Command::TOther | Command::Unknown => {}
        }
    }

    fn e_relative(&self) -> bool {
        self.e_relative_mode || self.relative_xyz
    }

    fn g(&mut self, g: u32, sub: u32, w: &Words) {
        match (g, sub) {
            (0 | 1, _) => {
                self.moves += 1;
                self.set_feed(w);
                let target = self.target(w);
                let de = self.e_delta(w);
                self.linear(target, de);
            }
            (2 | 3, _) => {
                self.moves += 1;
                self.set_feed(w);
                self.arc(w, g == 2);
            }
            (4, _) => {
                let secs = match (w.get(b'S'), w.get(b'P')) {
                    (Some(s), _) => s,
                    (None, Some(ms)) => ms / 1000.0,
                    _ => 0.0,
                };
                self.planner.dwell(secs);
            }
            (17, 0) => self.plane = Plane::XY,
            (18, 0) => self.plane = Plane::ZX,
            (19, 0) => self.plane = Plane::YZ,
            (20, 0) => self.unit = 25.4,
            (21, 0) => self.unit = 1.0,
            (28, 0) => {
                // Homing: no time (as in the slicers' estimators), named axes (or all) to 0.
                let named = w.any(b"XYZ");
                for (a, l) in [(X, b'X'), (Y, b'Y'), (Z, b'Z')] {
                    if !named || w.has(l) {
                        self.pos[a] = 0.0;
                    }
                }
            }
            (90, 0) => self.relative_xyz = false,
            (91, 0) => self.relative_xyz = true,
            (92, 0) => {
                if w.any(b"XYZE") || w.has(self.planner.limits.flavor.extrusion_letter()) {
                    let e = self.planner.limits.flavor.extrusion_letter();
                    for (a, l) in [(X, b'X'), (Y, b'Y'), (Z, b'Z'), (E, e)] {
                        if let Some(v) = w.get(l) {
                            self.pos[a] = v * self.unit;
                        }
                    }
                } else {
                    self.pos = [0.0; 4];
                }
            }
            _ => {}
        }
    }

    fn m(&mut self, m: u32, w: &Words) {
        let l = &mut self.planner.limits;
        let positive = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0);
        let non_negative = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0);
        match m {
            82 => self.e_relative_mode = false,
            83 => self.e_relative_mode = true,
            104 | 109 => {
                let t = match w.get(b'T') {
                    Some(t) if t >= 0.0 && (t as usize) < MAX_TOOLS => t as usize,
                    Some(_) => return,
                    None => self.tool,
                };
                if let Some(v) = positive(w.get(b'S').or(w.get(b'R'))) {
                    if self.nozzle.len() <= t {
                        self.nozzle.resize(t + 1, None);
                    }
                    self.nozzle[t].get_or_insert(v);
                }
            }
            140 | 190 => {
                if let Some(v) = positive(w.get(b'S').or(w.get(b'R'))) {
                    self.bed.get_or_insert(v);
                }
            }
            201 => {
                for (a, c) in [(X, b'X'), (Y, b'Y'), (Z, b'Z'), (E, b'E')] {
                    if let Some(v) = positive(w.get(c)) {
                        l.max_acceleration[a] = v;
                    }
                }
            }
            203 => {
                // Repetier uses M203 for something else; RepRap-style firmwares take mm/min.
                if l.flavor == Flavor::Repetier {
                    return;
                }
                let factor = if l.flavor.m203_per_second() {
                    1.0
                } else {
                    1.0 / 60.0
                };
                for (a, c) in [(X, b'X'), (Y, b'Y'), (Z, b'Z'), (E, b'E')] {
                    if let Some(v) = positive(w.get(c)) {
                        l.max_feedrate[a] = v * factor;
                    }
                }
            }
            204 => {
                // As PrusaSlicer's estimator reads it: S (legacy Marlin / MK3) sets print and
                // travel, with T then meaning retract; otherwise P print, R retract, T travel.
                // Each is clamped to its configured ceiling (`machine_max_acceleration_*`).
                let clamp = |v: f64, max: f64| if max > 0.0 { v.min(max) } else { v };
                if let Some(s) = positive(w.get(b'S')) {
                    l.acceleration_print = clamp(s, l.max_acceleration_print);
                    l.acceleration_travel = clamp(s, l.max_acceleration_travel);
                    if let Some(t) = positive(w.get(b'T')) {
                        l.acceleration_retract = clamp(t, l.max_acceleration_retract);
                    }
                } else {
                    if let Some(p) = positive(w.get(b'P')) {
                        l.acceleration_print = clamp(p, l.max_acceleration_print);
                    }
                    if let Some(r) = positive(w.get(b'R')) {
                        l.acceleration_retract = clamp(r, l.max_acceleration_retract);
                    }
                    if let Some(t) = positive(w.get(b'T')) {
                        l.acceleration_travel = clamp(t, l.max_acceleration_travel);
                    }
                }
            }
            205 => {
                if let Some(v) = non_negative(w.get(b'X')) {
                    l.max_jerk[X] = v;
                    l.max_jerk[Y] = v;
                }
                if let Some(v) = non_negative(w.get(b'Y')) {
                    l.max_jerk[Y] = v;
                }
                if let Some(v) = non_negative(w.get(b'Z')) {
                    l.max_jerk[Z] = v;
                }
                if let Some(v) = non_negative(w.get(b'E')) {
                    l.max_jerk[E] = v;
                }
                if let Some(v) = non_negative(w.get(b'S')) {
                    l.min_extruding_rate = v;
                }
                if let Some(v) = non_negative(w.get(b'T')) {
                    l.min_travel_rate = v;
                }
            }
            566 => {
                // RepRapFirmware jerk, mm/min.
                for (a, c) in [(X, b'X'), (Y, b'Y'), (Z, b'Z'), (E, b'E')] {
                    if let Some(v) = non_negative(w.get(c)) {
                        l.max_jerk[a] = v / 60.0;
                    }
                }
            }
            220 => {
                if let Some(v) = positive(w.get(b'S')) {
                    self.feed_override = v / 100.0;
                }
            }
            221 => {
                if let Some(v) = non_negative(w.get(b'S')) {
                    self.flow = v / 100.0;
                }
            }
            _ => {}
        }
    }

    /// Klipper `SET_VELOCITY_LIMIT ACCEL=… VELOCITY=…`.
    fn extended(&mut self, cmd: &[u8]) {
        const SVL: &[u8] = b"SET_VELOCITY_LIMIT";
        if cmd.len() >= SVL.len() && cmd[..SVL.len()].eq_ignore_ascii_case(SVL) {
            let l = &mut self.planner.limits;
            if let Some(a) = extended_param(cmd, b"ACCEL").filter(|a| *a > 0.0) {
                l.acceleration_print = a;
                l.acceleration_travel = a;
            }
            if let Some(v) = extended_param(cmd, b"VELOCITY").filter(|v| *v > 0.0) {
                l.max_feedrate[X] = v;
                l.max_feedrate[Y] = v;
            }
        }
    }

    fn set_feed(&mut self, w: &Words) {
        if let Some(f) = w.get(b'F') {
            if f > 0.0 {
                self.feed = f * self.unit / 60.0;
            }
        }
    }

    /// Target XYZ of a move (absolute or relative coordinates).
    fn target(&self, w: &Words) -> [f64; 3] {
        let mut t = [self.pos[X], self.pos[Y], self.pos[Z]];
        for (a, l) in [(X, b'X'), (Y, b'Y'), (Z, b'Z')] {
            if let Some(v) = w.get(l) {
                let v = v * self.unit;
                t[a] = if self.relative_xyz { t[a] + v } else { v };
            }
        }
        t
    }

    /// E delta of a move (before the flow override); updates the logical E position.
    fn e_delta(&mut self, w: &Words) -> f64 {
        match w.get(self.planner.limits.flavor.extrusion_letter()) {
            Some(v) => {
                let v = v * self.unit;
                let de = if self.e_relative() {
                    v
                } else {
                    v - self.pos[E]
                };
                self.pos[E] += de;
                de
            }
            None => 0.0,
        }
    }

    /// One straight move to `target` with E delta `de` (before flow).
    fn linear(&mut self, target: [f64; 3], de: f64) {
        let from = [self.pos[X], self.pos[Y], self.pos[Z]];
        let d = [
            target[0] - from[0],
            target[1] - from[1],
            target[2] - from[2],
        ];
        let moved = d[0] != 0.0 || d[1] != 0.0 || d[2] != 0.0;
        let de = de * self.flow;
        if !moved && de == 0.0 {
            return;
        }
        self.seen_motion = true;
        let kind = if !moved {
            MoveKind::Retract
        } else if de > 0.0 || self.meta.wiping {
            MoveKind::Print
        } else {
            MoveKind::Travel
        };
        self.planner
            .add_move([d[0], d[1], d[2], de], self.feed * self.feed_override, kind);
        let extruding = moved && de > 0.0;
        if moved {
            if let Some(v) = self.visitor.as_deref_mut() {
                v.segment(from, target, extruding);
            }
        }
        if de != 0.0 {
            self.all.extrude(self.tool, de);
            if self.meta.print_started {
                self.print.extrude(self.tool, de);
            }
        }
        if extruding {
            self.all.extent(from, target);
            if self.meta.print_started {
                self.print.extent(from, target);
            }
        }
        self.pos[X] = target[0];
        self.pos[Y] = target[1];
        self.pos[Z] = target[2];
    }

    /// G2 (clockwise) / G3 arc, linearised into short straight moves.
    fn arc(&mut self, w: &Words, clockwise: bool) {
        let target = self.target(w);
        let de = self.e_delta(w);
        // Plane axes (first, second, linear) and the centre-offset letters.
        let (a0, a1, al, o0, o1) = match self.plane {
            Plane::XY => (X, Y, Z, b'I', b'J'),
            Plane::ZX => (Z, X, Y, b'K', b'I'),
            Plane::YZ => (Y, Z, X, b'J', b'K'),
        };
        let (sx, sy) = (self.pos[a0], self.pos[a1]);
        let (ex, ey) = (target[a0], target[a1]);
        let centre = if let Some(r) = w.get(b'R').filter(|_| !w.any(&[o0, o1])) {
            let r = r * self.unit;
            let (dx, dy) = (ex - sx, ey - sy);
            let chord = (dx * dx + dy * dy).sqrt();
            if r == 0.0 || chord == 0.0 {
                None
            } else {
                let h = (r * r - chord * chord / 4.0).max(0.0).sqrt();
                // Centre left of the chord for a short counter-clockwise arc; flip for
                // clockwise and for a negative radius (the long way round).
                let side = if clockwise { -1.0 } else { 1.0 } * r.signum();
                let (nx, ny) = (-dy / chord, dx / chord);
                Some((
                    (sx + ex) / 2.0 + side * h * nx,
                    (sy + ey) / 2.0 + side * h * ny,
                ))
            }
        } else {
            let i = w.get(o0).unwrap_or(0.0) * self.unit;
            let j = w.get(o1).unwrap_or(0.0) * self.unit;
            (i != 0.0 || j != 0.0).then_some((sx + i, sy + j))
        };
        let Some((cx, cy)) = centre else {
            self.linear(target, de);
            return;
        };
        let r0 = (sx - cx).hypot(sy - cy);
        let r1 = (ex - cx).hypot(ey - cy);
        let start_angle = (sy - cy).atan2(sx - cx);
        let mut sweep = (ey - cy).atan2(ex - cx) - start_angle;
        let same_point = (ex - sx).abs() < 1e-9 && (ey - sy).abs() < 1e-9;
        if clockwise {
            if sweep > 0.0 || (same_point && sweep.abs() < 1e-9) {
                sweep -= std::f64::consts::TAU;
            }
        } else if sweep < 0.0 || (same_point && sweep.abs() < 1e-9) {
            sweep += std::f64::consts::TAU;
        }
        let r = r0.max(r1);
        // Angular step from the chord tolerance and the maximum segment length.
        let step_tol = if r > ARC_TOLERANCE {
            2.0 * (1.0 - ARC_TOLERANCE / r).acos()
        } else {
            std::f64::consts::PI
        };
        let step = step_tol.min(ARC_MAX_SEGMENT / r.max(1e-9));
        let n = if step > 0.0 && step.is_finite() {
            ((sweep.abs() / step).ceil() as usize).clamp(1, ARC_MAX_SEGMENTS)
        } else {
            1
        };
        self.arc_budget = self.arc_budget.saturating_add(ARC_ALLOWANCE_PER_ARC);
        let floor =
            ((ARC_MIN_SEGMENTS * sweep.abs() / std::f64::consts::TAU).ceil() as usize).max(1);
        let n = n.min(
            usize::try_from(self.arc_budget)
                .unwrap_or(usize::MAX)
                .max(floor),
        );
        self.arc_budget = self.arc_budget.saturating_sub(n as u64);
        let start_lin = self.pos[al];
        let de_step = de / n as f64;
        for k in 1..=n {
            let mut p = [0.0; 3];
            if k == n {
                p = target;
            } else {
                let f = k as f64 / n as f64;
                let ang = start_angle + sweep * f;
                let rad = r0 + (r1 - r0) * f;
                p[a0] = cx + rad * ang.cos();
                p[a1] = cy + rad * ang.sin();
                p[al] = start_lin + (target[al] - start_lin) * f;
            }
            self.linear(p, de_step);
        }
    }

    /// Final figures.
    pub fn finish(mut self) -> GcodeAnalysis {
        let estimated = self.planner.finish();
        let mut meta = std::mem::take(&mut self.meta);
        meta.finish_settings();
        let stats = if meta.print_started {
            &self.print
        } else {
            &self.all
        };

        let layer_height = meta
            .setting_number(&["layer_height", "layerHeight"])
            .filter(|v| *v > 0.0)
            .or_else(|| {
                stats
                    .second_z
                    .map(|z| z - stats.first_z)
                    .filter(|v| *v > 0.0)
            });
        let first_layer_height = match meta.setting(&[
            "first_layer_height",
            "initial_layer_print_height",
            "layer_height_0",
        ]) {
            Some(v) if v.ends_with('%') => super::meta::first_number(v.as_bytes())
                .zip(layer_height)
                .map(|(p, lh)| p * lh / 100.0),
            Some(v) => super::meta::first_number(v.as_bytes()),
            None => meta
                .setting_number(&["firstLayerHeightPercentage"])
                .zip(layer_height)
                .map(|(p, lh)| p * lh / 100.0),
        }
        .filter(|v| *v > 0.0)
        .or_else(|| stats.any.then_some(stats.first_z).filter(|z| *z > 0.0));

        let layer_count = meta
            .header_layers
            .filter(|n| *n > 0)
            .or_else(|| {
                [
                    meta.layer_change,
                    meta.change_layer,
                    meta.cura_layers,
                    meta.s3d_layers,
                ]
                .into_iter()
                .find(|n| *n > 0)
            })
            .unwrap_or(stats.layers);

        let mut nozzle: Vec<f64> = self.nozzle.iter().map(|t| t.unwrap_or(0.0)).collect();
        if nozzle.is_empty() {
            nozzle = meta.setting_numbers(&[
                "first_layer_temperature",
                "nozzle_temperature_initial_layer",
                "material_print_temperature_layer_0",
                "temperature",
                "nozzle_temperature",
                "material_print_temperature",
            ]);
        }
        let bed = self.bed.or_else(|| {
            meta.setting_number(&[
                "first_layer_bed_temperature",
                "bed_temperature",
                "material_bed_temperature_layer_0",
                "material_bed_temperature",
                "hot_plate_temp_initial_layer",
                "hot_plate_temp",
            ])
        });
        let filament_diameter = meta
            .setting_number(&[
                "filament_diameter",
                "material_diameter",
                "filamentDiameters",
            ])
            .filter(|d| *d > 0.0);
        let filament_density = meta
            .setting_number(&["filament_density", "material_density", "filamentDensities"])
            .filter(|d| *d > 0.0);
        let filament_type = meta
            .setting(&["filament_type", "material_type", "printMaterial"])
            .and_then(|v| v.split([';', ',']).map(str::trim).find(|s| !s.is_empty()))
            .map(str::to_string);

        let filament_used_mm = finite(stats.filament_mm());
        let d = filament_diameter.unwrap_or(1.75);
        let filament_used_cm3 =
            filament_used_mm * std::f64::consts::PI * (d / 2.0).powi(2) / 1000.0;
        let density = filament_density.unwrap_or_else(|| default_density(filament_type.as_deref()));

        let supports = meta.support_feature
            || meta.setting_true(&[
                "support_material",
                "enable_support",
                "support_enable",
                "generateSupport",
            ]);
        let raft = meta
            .setting_number(&["raft_layers"])
            .is_some_and(|n| n > 0.0)
            || meta
                .setting(&["adhesion_type"])
                .is_some_and(|v| v.eq_ignore_ascii_case("raft"))
            || meta.setting_true(&["useRaft"]);

        let (bounds_min, bounds_max) = if stats.any {
            (stats.min, stats.max)
        } else {
            ([0.0; 3], [0.0; 3])
        };

        GcodeAnalysis {
            slicer: meta.slicer.clone(),
            slicer_version: meta.version.clone(),
            layer_height,
            first_layer_height,
            layer_count,
            max_z: bounds_max[2],
            nozzle_temperatures: nozzle,
            bed_temperature: bed,
            heated_bed: bed.is_some_and(|b| b > 0.0),
            filament_diameter,
            filament_density,
            filament_type,
            filament_used_mm,
            filament_used_cm3: finite(filament_used_cm3),
            filament_weight_g: finite(filament_used_cm3 * density),
            estimated_time_s: finite(estimated),
            slicer_estimated_time_s: meta.slicer_time(),
            slicer_filament_mm: meta.slicer_filament_mm,
            slicer_filament_g: meta.slicer_filament_g(),
            bounds_min,
            bounds_max,
            extruders_used: stats.tools.iter().filter(|t| t.extruded).count() as u32,
            supports,
            raft,
            moves: self.moves,
            lines: self.lines,
            settings: std::mem::take(&mut meta.settings),
        }
    }
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// Typical densities (g/cm³) used for the weight when the file does not state one.
fn default_density(filament_type: Option<&str>) -> f64 {
    let t = filament_type.unwrap_or("").to_ascii_uppercase();
    match t.as_str() {
        "PETG" | "PET" => 1.27,
        "ABS" => 1.04,
        "ASA" => 1.07,
        "TPU" | "FLEX" => 1.21,
        "PC" => 1.20,
        "PA" | "NYLON" | "PA6" | "PA12" => 1.14,
        "HIPS" => 1.04,
        "PVA" => 1.23,
        "PP" => 0.90,
        _ => 1.24, // PLA and unknown
    }
}
