use std::collections::HashSet;

use super::*;
use crate::mesh::{read_mesh, Mesh, MeshFormat};

struct Decoded {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

fn decode(png_bytes: &[u8]) -> Decoded {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a buffer size")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    Decoded {
        width: info.width,
        height: info.height,
        pixels,
    }
}

fn cube_mesh() -> Mesh {
    let path = std::env::var_os("PRINTFARM_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures").into())
        .join("cube_20mm.stl");
    read_mesh(MeshFormat::Stl, std::fs::File::open(path).unwrap()).unwrap()
}

/// Orange-ish: red clearly above green, green clearly above blue.
fn is_orange(p: [u8; 3]) -> bool {
    p[0] as i32 > p[1] as i32 + 40 && p[1] as i32 > p[2] as i32 + 20
}

#[test]
fn cube_render_is_a_shaded_orange_cube() {
    let png_bytes = render_mesh_png(&cube_mesh(), &RenderOptions::default());
    if let Some(dir) = std::env::var_os("PRINTFARM_RENDER_OUT") {
        std::fs::write(std::path::Path::new(&dir).join("cube.png"), &png_bytes).unwrap();
    }
    let img = decode(&png_bytes);
    assert_eq!((img.width, img.height), (512, 512));
    let distinct: HashSet<[u8; 3]> = img.pixels.iter().copied().collect();
    assert!(distinct.len() > 3, "only {} colours", distinct.len());

    // Background in the corners, model in the centre.
    let at = |x: u32, y: u32| img.pixels[(y * img.width + x) as usize];
    for p in [at(0, 0), at(511, 0), at(0, 511), at(511, 511)] {
        assert!(
            p.iter().all(|&c| c > 200),
            "corner {p:?} is not light background"
        );
    }
    assert!(is_orange(at(256, 256)), "centre {:?}", at(256, 256));

    // Three visible faces, three distinct orange shades (top brightest).
    let shades: HashSet<[u8; 3]> = img
        .pixels
        .iter()
        .copied()
        .filter(|&p| is_orange(p))
        .collect();
    assert!(shades.len() >= 3, "{shades:?}");
    let orange = img.pixels.iter().filter(|&&p| is_orange(p)).count();
    let share = orange as f64 / img.pixels.len() as f64;
    assert!(
        (0.3..0.9).contains(&share),
        "model covers {share:.2} of the image"
    );
    let top = at(256, 120);
    let front_left = at(200, 330);
    assert!(
        is_orange(top) && is_orange(front_left),
        "{top:?} {front_left:?}"
    );
    assert!(
        top[0] >= front_left[0] && top[1] > front_left[1],
        "{top:?} {front_left:?}"
    );
}

#[test]
fn requested_sizes_are_honoured() {
    for (w, h) in [(300, 200), (64, 256), (1, 1)] {
        let img = decode(&render_mesh_png(
            &cube_mesh(),
            &RenderOptions {
                width: w,
                height: h,
            },
        ));
        assert_eq!((img.width, img.height), (w, h));
    }
    // Zero and huge sizes are clamped instead of failing.
    let img = decode(&render_mesh_png(
        &cube_mesh(),
        &RenderOptions {
            width: 0,
            height: 9000,
        },
    ));
    assert_eq!((img.width, img.height), (1, 4096));
}

#[test]
fn empty_and_broken_meshes_render_the_background() {
    let img = decode(&render_mesh_png(
        &Mesh::default(),
        &RenderOptions::default(),
    ));
    assert_eq!((img.width, img.height), (512, 512));
    assert!(!img.pixels.iter().any(|&p| is_orange(p)));
    let broken = Mesh {
        vertices: vec![[0.0; 3], [1.0, 0.0, f32::NAN], [0.0, 1.0, 0.0]],
        triangles: vec![[0, 1, 2], [0, 2, 7]],
    };
    let img = decode(&render_mesh_png(&broken, &RenderOptions::default()));
    assert!(!img.pixels.iter().any(|&p| is_orange(p)));
}

#[test]
fn flipped_normals_still_render_lit() {
    let mut mesh = cube_mesh();
    for t in &mut mesh.triangles {
        t.swap(1, 2);
    }
    let a = decode(&render_mesh_png(&mesh, &RenderOptions::default()));
    let b = decode(&render_mesh_png(&cube_mesh(), &RenderOptions::default()));
    assert_eq!(a.pixels, b.pixels);
}

/// A 20 mm square tube printed in `layers` layers of 0.2 mm, with travel moves between layers.
fn square_layers(preview: &mut ToolpathPreview, layers: usize) {
    let corners = [
        [0.0, 0.0],
        [20.0, 0.0],
        [20.0, 20.0],
        [0.0, 20.0],
        [0.0, 0.0],
    ];
    for layer in 0..layers {
        let z = 0.2 * (layer + 1) as f64;
        preview.add_segment([0.0, 0.0, z - 0.2], [0.0, 0.0, z], false);
        for w in corners.windows(2) {
            preview.add_segment([w[0][0], w[0][1], z], [w[1][0], w[1][1], z], true);
        }
        // Some infill, as many short collinear pieces.
        for i in 0..20 {
            let x = i as f64;
            preview.add_segment([x, 10.0, z], [x + 1.0, 10.0, z], true);
        }
        preview.add_segment([20.0, 10.0, z], [30.0, 30.0, z + 1.0], false);
    }
}

#[test]
fn toolpath_render_of_square_layers() {
    let mut preview = ToolpathPreview::new();
    assert!(preview.is_empty());
    square_layers(&mut preview, 25);
    assert_eq!(preview.segments_added(), 25 * 24);
    // Per layer: 4 sides + one merged infill line.
    assert_eq!(preview.len(), 25 * 5);
    let png_bytes = preview.render_png(&RenderOptions {
        width: 400,
        height: 300,
    });
    if let Some(dir) = std::env::var_os("PRINTFARM_RENDER_OUT") {
        std::fs::write(std::path::Path::new(&dir).join("toolpath.png"), &png_bytes).unwrap();
    }
    let img = decode(&png_bytes);
    assert_eq!((img.width, img.height), (400, 300));
    let distinct: HashSet<[u8; 3]> = img.pixels.iter().copied().collect();
    assert!(distinct.len() > 10, "only {} colours", distinct.len());
    // Coloured by height: both the bottom (blue) and the top (red) are visible.
    let bluish = img
        .pixels
        .iter()
        .filter(|p| p[2] as i32 > p[0] as i32 + 60)
        .count();
    let reddish = img
        .pixels
        .iter()
        .filter(|p| p[0] as i32 > p[2] as i32 + 80)
        .count();
    assert!(bluish > 50 && reddish > 50, "blue {bluish}, red {reddish}");
}

#[test]
fn travel_only_preview_is_background() {
    let mut preview = ToolpathPreview::default();
    preview.add_segment([0.0; 3], [10.0, 10.0, 0.0], false);
    preview.add_segment([0.0; 3], [f64::NAN, 0.0, 0.0], true);
    assert!(preview.is_empty());
    let img = decode(&preview.render_png(&RenderOptions::default()));
    let distinct: HashSet<[u8; 3]> = img.pixels.iter().copied().collect();
    // Only the background gradient (grey levels).
    assert!(distinct.iter().all(|p| p.iter().all(|&c| c > 200)));
}

#[test]
fn toolpath_memory_stays_bounded() {
    let max = 10_000;
    let mut preview = ToolpathPreview::with_max_segments(max);
    // 400 layers of a 64-gon (not collinear, so nothing merges losslessly) = 25,600 segments,
    // plus disconnected short infill strokes.
    let mut offered = 0u64;
    for layer in 0..400 {
        let z = 0.2 * (layer + 1) as f64;
        for i in 0..64 {
            let a = i as f64 / 64.0 * std::f64::consts::TAU;
            let b = (i + 1) as f64 / 64.0 * std::f64::consts::TAU;
            preview.add_segment(
                [10.0 * a.cos(), 10.0 * a.sin(), z],
                [10.0 * b.cos(), 10.0 * b.sin(), z],
                true,
            );
            offered += 1;
        }
        for i in 0..10 {
            let y = i as f64 - 5.0;
            preview.add_segment([-5.0, y, z], [5.0, y, z], false);
            preview.add_segment([-5.0, y, z], [5.0, y + 0.5, z], true);
            offered += 1;
        }
    }
    assert_eq!(preview.segments_added(), offered);
    assert!(preview.len() <= max, "{} stored", preview.len());
    assert!(preview.len() > max / 8, "{} stored", preview.len());
    let img = decode(&preview.render_png(&RenderOptions::default()));
    assert_eq!((img.width, img.height), (512, 512));
}

/// Share of the image covered by coloured (non-grey) pixels, and their horizontal extent.
fn coverage(img: &Decoded) -> (f64, u32, u32) {
    let coloured = |p: &[u8; 3]| {
        let (lo, hi) = (p.iter().min().unwrap(), p.iter().max().unwrap());
        hi - lo > 30
    };
    let mut count = 0usize;
    let (mut x_min, mut x_max) = (u32::MAX, 0);
    for (i, p) in img.pixels.iter().enumerate() {
        if coloured(p) {
            count += 1;
            let x = i as u32 % img.width;
            x_min = x_min.min(x);
            x_max = x_max.max(x);
        }
    }
    (count as f64 / img.pixels.len() as f64, x_min, x_max)
}

#[test]
fn toolpath_fit_ignores_a_far_purge_line() {
    let mut plain = ToolpathPreview::new();
    square_layers(&mut plain, 25);
    let mut with_purge = ToolpathPreview::new();
    // A start G-code purge line in front of the bed, far from the print.
    with_purge.add_segment([-150.0, -120.0, 0.3], [-90.0, -120.0, 0.3], true);
    with_purge.add_segment([-90.0, -120.0, 0.3], [-50.0, -120.0, 0.3], true);
    square_layers(&mut with_purge, 25);
    let opts = RenderOptions::default();
    let (plain_share, ..) = coverage(&decode(&plain.render_png(&opts)));
    let (purge_share, ..) = coverage(&decode(&with_purge.render_png(&opts)));
    assert!(plain_share > 0.15, "{plain_share}");
    assert!(
        (purge_share - plain_share).abs() < 0.2 * plain_share,
        "with purge line {purge_share}, without {plain_share}"
    );
}

#[test]
fn toolpath_fit_keeps_two_real_objects() {
    let mut preview = ToolpathPreview::new();
    square_layers(&mut preview, 25);
    // A second, smaller tower 200 mm away: a real object, so it stays in view.
    for layer in 0..25 {
        let z = 0.2 * (layer + 1) as f64;
        let c = [
            [200.0, 0.0],
            [205.0, 0.0],
            [205.0, 5.0],
            [200.0, 5.0],
            [200.0, 0.0],
        ];
        preview.add_segment([0.0, 0.0, z], [200.0, 0.0, z], false);
        for w in c.windows(2) {
            preview.add_segment([w[0][0], w[0][1], z], [w[1][0], w[1][1], z], true);
        }
    }
    let img = decode(&preview.render_png(&RenderOptions::default()));
    let (_, x_min, x_max) = coverage(&img);
    assert!(x_max - x_min > 400, "coloured span {x_min}..{x_max}");
}

/// The moves of fixtures/cube_20mm.gcode, as the G-code analyser reports them.
fn cube_gcode_moves() -> Vec<([f64; 3], [f64; 3], bool)> {
    struct Moves(Vec<([f64; 3], [f64; 3], bool)>);
    impl crate::gcode::ToolpathVisitor for Moves {
        fn segment(&mut self, from: [f64; 3], to: [f64; 3], extruding: bool) {
            self.0.push((from, to, extruding));
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/cube_20mm.gcode");
    let mut moves = Moves(Vec::new());
    crate::gcode::analyse_with(
        std::io::BufReader::new(std::fs::File::open(path).unwrap()),
        &crate::gcode::MachineLimits::marlin_defaults(),
        Some(&mut moves),
    )
    .unwrap();
    moves.0
}

/// The cube's moves offered `copies` times, printed in place (a dense part).
fn cube_in_place(copies: usize) -> ToolpathPreview {
    let moves = cube_gcode_moves();
    let mut preview = ToolpathPreview::new();
    for _ in 0..copies {
        for &(a, b, e) in &moves {
            preview.add_segment(a, b, e);
        }
    }
    preview
}

#[test]
fn an_ordinary_print_is_drawn_whole() {
    let preview = cube_in_place(1);
    let (png_bytes, stats) = preview.render_png_with_stats(&RenderOptions::default());
    assert_eq!(stats.segments, preview.len() as u64);
    assert_eq!(stats.drawn, stats.segments, "{stats:?}");
    assert_eq!(
        (stats.duplicates, stats.layers_left_out, stats.over_budget),
        (0, 0, 0)
    );
    assert!(stats.work <= stats.budget, "{stats:?}");
    assert_eq!(stats.budget, WORK_PER_SAMPLE * 1024 * 1024);
    // The same image as with no budget at all.
    let (unbounded, _) = preview.render_with_budget(&RenderOptions::default(), Some(u64::MAX));
    assert_eq!(png_bytes, unbounded);
    let (share, ..) = coverage(&decode(&png_bytes));
    assert!(share > 0.2, "{share}");
}

const SMALL: RenderOptions = RenderOptions {
    width: 128,
    height: 128,
};

#[test]
fn a_part_printed_over_and_over_in_place_costs_no_more_than_once() {
    let once = cube_in_place(1);
    let dense = cube_in_place(60);
    let (single_png, single) = once.render_png_with_stats(&SMALL);
    let (dense_png, stats) = dense.render_png_with_stats(&SMALL);
    // Drawn whole, this input costs several times the budget (what the preview used to do).
    let (_, unbounded) = dense.render_with_budget(&SMALL, Some(u64::MAX));
    assert!(unbounded.work > 4 * stats.budget, "{unbounded:?}");
    assert!(stats.work <= stats.budget, "{stats:?}");
    // Only exact duplicates were left out: the picture and the work are those of one copy.
    assert_eq!(
        stats.duplicates,
        stats.segments - single.segments,
        "{stats:?}"
    );
    assert_eq!((stats.layers_left_out, stats.over_budget), (0, 0));
    assert_eq!(stats.work, single.work);
    assert_eq!(decode(&dense_png).pixels, decode(&single_png).pixels);
}

/// A 20 mm square filled with lines 0.45 mm apart, in `layers` layers `dz` mm high.
fn filled_block(layers: usize, dz: f64) -> ToolpathPreview {
    let mut preview = ToolpathPreview::new();
    for layer in 0..layers {
        let z = dz * (layer + 1) as f64;
        for i in 0..45 {
            let y = i as f64 * 0.45;
            let (x0, x1) = if i % 2 == 0 { (0.0, 20.0) } else { (20.0, 0.0) };
            preview.add_segment([x0, y, z], [x1, y, z], true);
            preview.add_segment([x1, y, z], [x1, y + 0.45, z], true);
        }
        preview.add_segment([0.0, 20.0, z], [0.0, 0.0, z + dz], false);
    }
    preview
}

#[test]
fn many_thin_layers_are_thinned_evenly_within_the_budget() {
    let block = filled_block(1500, 0.02);
    let (png_bytes, stats) = block.render_png_with_stats(&SMALL);
    let (full_png, unbounded) = block.render_with_budget(&SMALL, Some(u64::MAX));
    assert!(unbounded.work > 2 * stats.budget, "{unbounded:?}");
    assert!(stats.work <= stats.budget, "{stats:?}");
    assert!(stats.layers_left_out > 0, "{stats:?}");
    assert_eq!(stats.over_budget, 0, "{stats:?}");
    // Layers close enough to overlap on screen: the picture barely changes.
    let (thinned, full) = (decode(&png_bytes), decode(&full_png));
    let differing = thinned
        .pixels
        .iter()
        .zip(&full.pixels)
        .filter(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.abs_diff(*y) > 40))
        .count();
    assert!(
        differing * 20 < full.pixels.len(),
        "{differing} of {} pixels differ",
        full.pixels.len()
    );
    let ((a, ..), (b, ..)) = (coverage(&thinned), coverage(&full));
    assert!((a - b).abs() < 0.02, "coverage {a} vs {b}");
}

#[test]
fn one_overcrowded_layer_still_stays_within_the_budget() {
    // Thousands of distinct long strokes crossing one spot, all in one layer.
    let mut preview = ToolpathPreview::new();
    for i in 0..16000 {
        let a = i as f64 / 16000.0 * std::f64::consts::PI;
        let (dx, dy) = (10.0 * a.cos(), 10.0 * a.sin());
        preview.add_segment([-dx, -dy, 0.2], [dx, dy, 0.2], true);
        preview.add_segment([dx, dy, 0.2], [0.0, 0.0, 1.0], false);
    }
    let (png_bytes, stats) = preview.render_png_with_stats(&SMALL);
    assert!(stats.over_budget > 0, "{stats:?}");
    assert!(stats.work <= stats.budget, "{stats:?}");
    assert!(stats.drawn > 100, "{stats:?}");
    // Strokes spread over the whole fan, not its first part only.
    let (unbounded, _) = preview.render_with_budget(&SMALL, Some(u64::MAX));
    let (full, ..) = coverage(&decode(&unbounded));
    let (share, ..) = coverage(&decode(&png_bytes));
    assert!(share > 0.9 * full, "coverage {share} vs {full} unbounded");
}
