//! The typed allow-list of PrusaSlicer 2.5 options a slice profile may set: plain numbers,
//! percentages, per-extruder number lists, booleans and enums (kinds and enum values read
//! from `prusa-slicer --help-fff` and probed with `--load`/`--save`). Every option that names a
//! program, a path, a file name format, free text or a G-code template (`post_process`,
//! `*_gcode`, `output_filename_format`, `notes`, …) is absent on purpose: PrusaSlicer runs
//! `post_process` as a shell command and expands macros in templates. An allow-list, never a
//! deny-list, so an option added by a newer PrusaSlicer stays refused until reviewed.

/// What a value of an option may look like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// `0` or `1`.
    Bool,
    /// A comma list of `0`/`1` (one per extruder).
    Bools,
    /// A whole number.
    Int,
    /// A comma list of whole numbers (one per extruder).
    Ints,
    /// A number.
    Float,
    /// A comma list of numbers (per extruder, or normal/stealth machine limits).
    Floats,
    /// A number, or a number followed by `%`.
    FloatOrPercent,
    /// A percentage (the `%` may be left out).
    Percent,
    /// A comma list of `XxY` points (bed shape, extruder offsets).
    Points,
    /// One of these exact words.
    Enum(&'static [&'static str]),
}

/// Longest value accepted (the longest legitimate one is a bed shape of a few points).
const MAX_VALUE_LEN: usize = 200;
/// Most items in a list value (PrusaSlicer supports at most 16 extruders).
const MAX_ITEMS: usize = 32;

pub const KEYS: &[(&str, Kind)] = &[
    ("avoid_crossing_perimeters", Kind::Bool),
    ("avoid_crossing_perimeters_max_detour", Kind::FloatOrPercent),
    ("bed_shape", Kind::Points),
    ("bed_temperature", Kind::Ints),
    (
        "bottom_fill_pattern",
        Kind::Enum(&[
            "rectilinear",
            "monotonic",
            "alignedrectilinear",
            "concentric",
            "hilbertcurve",
            "archimedeanchords",
            "octagramspiral",
        ]),
    ),
    ("bottom_solid_layers", Kind::Int),
    ("bottom_solid_min_thickness", Kind::Float),
    ("bridge_acceleration", Kind::Float),
    ("bridge_angle", Kind::Float),
    ("bridge_fan_speed", Kind::Ints),
    ("bridge_flow_ratio", Kind::Float),
    ("bridge_speed", Kind::Float),
    ("brim_separation", Kind::Float),
    (
        "brim_type",
        Kind::Enum(&["no_brim", "outer_only", "inner_only", "outer_and_inner"]),
    ),
    ("brim_width", Kind::Float),
    ("clip_multipart_objects", Kind::Bool),
    ("complete_objects", Kind::Bool),
    ("cooling", Kind::Bools),
    ("cooling_tube_length", Kind::Float),
    ("cooling_tube_retraction", Kind::Float),
    ("default_acceleration", Kind::Float),
    ("deretract_speed", Kind::Floats),
    ("disable_fan_first_layers", Kind::Ints),
    ("dont_support_bridges", Kind::Bool),
    (
        "draft_shield",
        Kind::Enum(&["disabled", "limited", "enabled"]),
    ),
    ("duplicate_distance", Kind::Float),
    ("elefant_foot_compensation", Kind::Float),
    ("ensure_vertical_shell_thickness", Kind::Bool),
    ("external_perimeter_extrusion_width", Kind::FloatOrPercent),
    ("external_perimeter_speed", Kind::FloatOrPercent),
    ("external_perimeters_first", Kind::Bool),
    ("extra_loading_move", Kind::Float),
    ("extra_perimeters", Kind::Bool),
    ("extruder_clearance_height", Kind::Float),
    ("extruder_clearance_radius", Kind::Float),
    ("extruder_offset", Kind::Points),
    ("extrusion_multiplier", Kind::Float),
    ("extrusion_width", Kind::FloatOrPercent),
    ("fan_always_on", Kind::Bools),
    ("fan_below_layer_time", Kind::Ints),
    ("filament_cooling_final_speed", Kind::Floats),
    ("filament_cooling_initial_speed", Kind::Floats),
    ("filament_cooling_moves", Kind::Ints),
    ("filament_cost", Kind::Floats),
    ("filament_density", Kind::Floats),
    ("filament_diameter", Kind::Float),
    ("filament_load_time", Kind::Floats),
    ("filament_loading_speed", Kind::Floats),
    ("filament_loading_speed_start", Kind::Floats),
    ("filament_max_volumetric_speed", Kind::Floats),
    ("filament_minimal_purge_on_wipe_tower", Kind::Floats),
    ("filament_soluble", Kind::Bools),
    ("filament_spool_weight", Kind::Floats),
    ("filament_toolchange_delay", Kind::Floats),
    (
        "filament_type",
        Kind::Enum(&[
            "PLA", "PET", "ABS", "ASA", "FLEX", "HIPS", "EDGE", "NGEN", "PA", "NYLON", "PVA", "PC",
            "PP", "PEI", "PEEK", "PEKK", "POM", "PSU", "PVDF", "SCAFF",
        ]),
    ),
    ("filament_unload_time", Kind::Floats),
    ("filament_unloading_speed", Kind::Floats),
    ("filament_unloading_speed_start", Kind::Floats),
    ("fill_angle", Kind::Float),
    ("fill_density", Kind::Percent),
    (
        "fill_pattern",
        Kind::Enum(&[
            "rectilinear",
            "alignedrectilinear",
            "grid",
            "triangles",
            "stars",
            "cubic",
            "line",
            "concentric",
            "honeycomb",
            "3dhoneycomb",
            "gyroid",
            "hilbertcurve",
            "archimedeanchords",
            "octagramspiral",
            "adaptivecubic",
            "supportcubic",
            "lightning",
        ]),
    ),
    ("first_layer_acceleration", Kind::Float),
    ("first_layer_acceleration_over_raft", Kind::Float),
    ("first_layer_bed_temperature", Kind::Ints),
    ("first_layer_extrusion_width", Kind::FloatOrPercent),
    ("first_layer_height", Kind::FloatOrPercent),
    ("first_layer_speed", Kind::FloatOrPercent),
    ("first_layer_speed_over_raft", Kind::FloatOrPercent),
    ("first_layer_temperature", Kind::Ints),
    ("full_fan_speed_layer", Kind::Ints),
    ("fuzzy_skin", Kind::Enum(&["none", "external", "all"])),
    ("fuzzy_skin_point_dist", Kind::Float),
    ("fuzzy_skin_thickness", Kind::Float),
    ("gap_fill_enabled", Kind::Bool),
    ("gap_fill_speed", Kind::Float),
    ("gcode_comments", Kind::Bool),
    (
        "gcode_flavor",
        Kind::Enum(&[
            "reprap",
            "reprapfirmware",
            "repetier",
            "teacup",
            "makerware",
            "marlin",
            "marlin2",
            "sailfish",
            "mach3",
            "machinekit",
            "smoothie",
            "no-extrusion",
        ]),
    ),
    ("gcode_label_objects", Kind::Bool),
    ("gcode_resolution", Kind::Float),
    ("high_current_on_filament_swap", Kind::Bool),
    ("infill_acceleration", Kind::Float),
    ("infill_anchor", Kind::FloatOrPercent),
    ("infill_anchor_max", Kind::FloatOrPercent),
    ("infill_every_layers", Kind::Int),
    ("infill_extruder", Kind::Int),
    ("infill_extrusion_width", Kind::FloatOrPercent),
    ("infill_first", Kind::Bool),
    ("infill_only_where_needed", Kind::Bool),
    ("infill_overlap", Kind::FloatOrPercent),
    ("infill_speed", Kind::Float),
    ("interface_shells", Kind::Bool),
    ("ironing", Kind::Bool),
    ("ironing_flowrate", Kind::Percent),
    ("ironing_spacing", Kind::Float),
    ("ironing_speed", Kind::Float),
    ("ironing_type", Kind::Enum(&["top", "topmost", "solid"])),
    ("layer_height", Kind::Float),
    (
        "machine_limits_usage",
        Kind::Enum(&["emit_to_gcode", "time_estimate_only", "ignore"]),
    ),
    ("machine_max_acceleration_e", Kind::Floats),
    ("machine_max_acceleration_extruding", Kind::Floats),
    ("machine_max_acceleration_retracting", Kind::Floats),
    ("machine_max_acceleration_travel", Kind::Floats),
    ("machine_max_acceleration_x", Kind::Floats),
    ("machine_max_acceleration_y", Kind::Floats),
    ("machine_max_acceleration_z", Kind::Floats),
    ("machine_max_feedrate_e", Kind::Floats),
    ("machine_max_feedrate_x", Kind::Floats),
    ("machine_max_feedrate_y", Kind::Floats),
    ("machine_max_feedrate_z", Kind::Floats),
    ("machine_max_jerk_e", Kind::Floats),
    ("machine_max_jerk_x", Kind::Floats),
    ("machine_max_jerk_y", Kind::Floats),
    ("machine_max_jerk_z", Kind::Floats),
    ("machine_min_extruding_rate", Kind::Floats),
    ("machine_min_travel_rate", Kind::Floats),
    ("max_fan_speed", Kind::Ints),
    ("max_layer_height", Kind::Floats),
    ("max_print_height", Kind::Float),
    ("max_print_speed", Kind::Float),
    ("max_volumetric_extrusion_rate_slope_negative", Kind::Float),
    ("max_volumetric_extrusion_rate_slope_positive", Kind::Float),
    ("max_volumetric_speed", Kind::Float),
    ("min_bead_width", Kind::FloatOrPercent),
    ("min_fan_speed", Kind::Ints),
    ("min_feature_size", Kind::FloatOrPercent),
    ("min_layer_height", Kind::Floats),
    ("min_print_speed", Kind::Floats),
    ("min_skirt_length", Kind::Float),
    ("mmu_segmented_region_max_width", Kind::Float),
    ("nozzle_diameter", Kind::Float),
    ("only_retract_when_crossing_perimeters", Kind::Bool),
    ("ooze_prevention", Kind::Bool),
    ("overhangs", Kind::Bool),
    ("parking_pos_retraction", Kind::Float),
    ("perimeter_acceleration", Kind::Float),
    ("perimeter_extruder", Kind::Int),
    ("perimeter_extrusion_width", Kind::FloatOrPercent),
    ("perimeter_generator", Kind::Enum(&["classic", "arachne"])),
    ("perimeter_speed", Kind::Float),
    ("perimeters", Kind::Int),
    ("raft_contact_distance", Kind::Float),
    ("raft_expansion", Kind::Float),
    ("raft_first_layer_density", Kind::Percent),
    ("raft_first_layer_expansion", Kind::Float),
    ("raft_layers", Kind::Int),
    ("remaining_times", Kind::Bool),
    ("resolution", Kind::Float),
    ("retract_before_travel", Kind::Floats),
    ("retract_before_wipe", Kind::Percent),
    ("retract_layer_change", Kind::Bools),
    ("retract_length", Kind::Floats),
    ("retract_length_toolchange", Kind::Floats),
    ("retract_lift", Kind::Floats),
    ("retract_lift_above", Kind::Floats),
    ("retract_lift_below", Kind::Floats),
    ("retract_restart_extra", Kind::Floats),
    ("retract_restart_extra_toolchange", Kind::Floats),
    ("retract_speed", Kind::Floats),
    (
        "seam_position",
        Kind::Enum(&["random", "nearest", "aligned", "rear"]),
    ),
    ("silent_mode", Kind::Bool),
    ("single_extruder_multi_material", Kind::Bool),
    ("single_extruder_multi_material_priming", Kind::Bool),
    ("skirt_distance", Kind::Float),
    ("skirt_height", Kind::Int),
    ("skirts", Kind::Int),
    ("slice_closing_radius", Kind::Float),
    (
        "slicing_mode",
        Kind::Enum(&["regular", "even_odd", "close_holes"]),
    ),
    ("slowdown_below_layer_time", Kind::Ints),
    ("small_perimeter_speed", Kind::FloatOrPercent),
    ("solid_infill_below_area", Kind::Float),
    ("solid_infill_every_layers", Kind::Int),
    ("solid_infill_extruder", Kind::Int),
    ("solid_infill_extrusion_width", Kind::FloatOrPercent),
    ("solid_infill_speed", Kind::FloatOrPercent),
    ("spiral_vase", Kind::Bool),
    ("standby_temperature_delta", Kind::Int),
    ("support_material", Kind::Bool),
    ("support_material_angle", Kind::Float),
    ("support_material_auto", Kind::Bool),
    ("support_material_bottom_contact_distance", Kind::Float),
    ("support_material_bottom_interface_layers", Kind::Int),
    ("support_material_buildplate_only", Kind::Bool),
    ("support_material_closing_radius", Kind::Float),
    ("support_material_contact_distance", Kind::Float),
    ("support_material_enforce_layers", Kind::Int),
    ("support_material_extruder", Kind::Int),
    ("support_material_extrusion_width", Kind::FloatOrPercent),
    ("support_material_interface_contact_loops", Kind::Bool),
    ("support_material_interface_extruder", Kind::Int),
    ("support_material_interface_layers", Kind::Int),
    (
        "support_material_interface_pattern",
        Kind::Enum(&["auto", "rectilinear", "concentric"]),
    ),
    ("support_material_interface_spacing", Kind::Float),
    ("support_material_interface_speed", Kind::FloatOrPercent),
    (
        "support_material_pattern",
        Kind::Enum(&["rectilinear", "rectilinear-grid", "honeycomb"]),
    ),
    ("support_material_spacing", Kind::Float),
    ("support_material_speed", Kind::Float),
    ("support_material_style", Kind::Enum(&["grid", "snug"])),
    ("support_material_synchronize_layers", Kind::Bool),
    ("support_material_threshold", Kind::Int),
    ("support_material_with_sheath", Kind::Bool),
    ("support_material_xy_spacing", Kind::FloatOrPercent),
    ("temperature", Kind::Ints),
    ("thick_bridges", Kind::Bool),
    ("thin_walls", Kind::Bool),
    ("thumbnails_format", Kind::Enum(&["PNG", "JPG", "QOI"])),
    (
        "top_fill_pattern",
        Kind::Enum(&[
            "rectilinear",
            "monotonic",
            "alignedrectilinear",
            "concentric",
            "hilbertcurve",
            "archimedeanchords",
            "octagramspiral",
        ]),
    ),
    ("top_infill_extrusion_width", Kind::FloatOrPercent),
    ("top_solid_infill_speed", Kind::FloatOrPercent),
    ("top_solid_layers", Kind::Int),
    ("top_solid_min_thickness", Kind::Float),
    ("travel_speed", Kind::Float),
    ("travel_speed_z", Kind::Float),
    ("use_firmware_retraction", Kind::Bool),
    ("use_relative_e_distances", Kind::Bool),
    ("use_volumetric_e", Kind::Bool),
    ("variable_layer_height", Kind::Bool),
    ("wall_distribution_count", Kind::Int),
    ("wall_transition_angle", Kind::Float),
    ("wall_transition_filter_deviation", Kind::FloatOrPercent),
    ("wall_transition_length", Kind::FloatOrPercent),
    ("wipe", Kind::Bools),
    ("wipe_into_infill", Kind::Bool),
    ("wipe_into_objects", Kind::Bool),
    ("wipe_tower", Kind::Bool),
    ("wipe_tower_bridging", Kind::Float),
    ("wipe_tower_brim_width", Kind::Float),
    ("wipe_tower_no_sparse_layers", Kind::Bool),
    ("wipe_tower_rotation_angle", Kind::Float),
    ("wipe_tower_width", Kind::Float),
    ("wipe_tower_x", Kind::Float),
    ("wipe_tower_y", Kind::Float),
    ("wiping_volumes_extruders", Kind::Floats),
    ("wiping_volumes_matrix", Kind::Floats),
    ("xy_size_compensation", Kind::Float),
    ("z_offset", Kind::Float),
];

pub fn kind(key: &str) -> Option<Kind> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// A plain decimal number: digits with an optional sign and point (no exponent, `inf` or
/// `nan`, which PrusaSlicer would read differently or not at all).
fn is_number(s: &str, int: bool) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, frac) = match digits.split_once('.') {
        Some(_) if int => return false,
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    (!whole.is_empty() || frac.is_some_and(|f| !f.is_empty()))
        && all_digits(whole)
        && frac.is_none_or(|f| all_digits(f) && !(whole.is_empty() && f.is_empty()))
}

fn list(s: &str, item: impl Fn(&str) -> bool) -> bool {
    let items: Vec<&str> = s.split(',').collect();
    items.len() <= MAX_ITEMS && items.iter().all(|i| item(i))
}

/// Checks `value` against the kind of `key`; the error says what is wrong, naming the key.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let Some(kind) = kind(key) else {
        return Err(format!("'{key}' cannot be set"));
    };
    // Exact text, no trimming: whitespace is never part of a valid value (and a newline
    // would start a new line of the slicer's config).
    let v = value;
    let ok = v.len() <= MAX_VALUE_LEN
        && match kind {
            Kind::Bool => matches!(v, "0" | "1"),
            Kind::Bools => list(v, |i| matches!(i, "0" | "1")),
            Kind::Int => is_number(v, true),
            Kind::Ints => list(v, |i| is_number(i, true)),
            Kind::Float => is_number(v, false),
            Kind::Floats => list(v, |i| is_number(i, false)),
            Kind::FloatOrPercent | Kind::Percent => {
                is_number(v.strip_suffix('%').unwrap_or(v), false)
            }
            Kind::Points => list(v, |p| {
                p.split_once('x')
                    .is_some_and(|(x, y)| is_number(x, false) && is_number(y, false))
            }),
            Kind::Enum(values) => values.contains(&v),
        };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::Bool => format!("'{key}' must be 0 or 1"),
        Kind::Bools => format!("'{key}' must be 0 or 1, or a comma list of them"),
        Kind::Int => format!("'{key}' must be a whole number"),
        Kind::Ints => format!("'{key}' must be a whole number, or a comma list of them"),
        Kind::Float => format!("'{key}' must be a number"),
        Kind::Floats => format!("'{key}' must be a number, or a comma list of them"),
        Kind::FloatOrPercent => format!("'{key}' must be a number or a percentage"),
        Kind::Percent => format!("'{key}' must be a percentage"),
        Kind::Points => format!("'{key}' must be a comma list of XxY points"),
        Kind::Enum(values) => format!("'{key}' must be one of: {}", values.join(", ")),
    })
}
