use std::io::{Cursor, Write};

use super::*;

fn fixtures_dir() -> std::path::PathBuf {
    std::env::var_os("PRINTFARM_FIXTURES")
        .map(Into::into)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures").into())
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn read(format: MeshFormat, bytes: &[u8]) -> Result<Mesh, MeshError> {
    read_mesh(format, Cursor::new(bytes))
}

fn read_ok(format: MeshFormat, bytes: &[u8]) -> MeshAnalysis {
    let mesh = read(format, bytes).unwrap_or_else(|e| panic!("{format:?}: {e}"));
    analyse(format, &mesh)
}

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} is not {expected} ± {tolerance}"
    );
}

fn assert_vec_close(actual: [f64; 3], expected: [f64; 3], what: &str) {
    for k in 0..3 {
        assert_close(actual[k], expected[k], 1e-4, what);
    }
}

/// Corner indices (bit 0 = x, bit 1 = y, bit 2 = z) of the six faces of a unit cube, each
/// counter-clockwise seen from outside.
const CUBE_QUADS: [[usize; 4]; 6] = [
    [0, 2, 3, 1], // z = 0
    [4, 5, 7, 6], // z = 1
    [0, 1, 5, 4], // y = 0
    [2, 6, 7, 3], // y = 1
    [0, 4, 6, 2], // x = 0
    [1, 3, 7, 5], // x = 1
];

fn corner(i: usize, side: f32, offset: [f32; 3]) -> [f32; 3] {
    [
        offset[0] + side * (i & 1) as f32,
        offset[1] + side * ((i >> 1) & 1) as f32,
        offset[2] + side * ((i >> 2) & 1) as f32,
    ]
}

/// The 12 triangles of an axis-aligned cube, outward and counter-clockwise.
fn cube_triangles(side: f32, offset: [f32; 3]) -> Vec<[[f32; 3]; 3]> {
    let mut out = Vec::new();
    for q in CUBE_QUADS {
        let p = q.map(|i| corner(i, side, offset));
        out.push([p[0], p[1], p[2]]);
        out.push([p[0], p[2], p[3]]);
    }
    out
}

fn binary_stl(header: &[u8], triangles: &[[[f32; 3]; 3]]) -> Vec<u8> {
    let mut out = vec![b' '; 80];
    out[..header.len()].copy_from_slice(header);
    out.extend_from_slice(&(triangles.len() as u32).to_le_bytes());
    for t in triangles {
        out.extend_from_slice(&[0u8; 12]); // normal: readers must not rely on it
        for p in t {
            for c in p {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
    out
}

fn mesh_from(triangles: &[[[f32; 3]; 3]]) -> Mesh {
    let mut mesh = Mesh::default();
    for t in triangles {
        let base = mesh.vertices.len() as u32;
        mesh.vertices.extend_from_slice(t);
        mesh.triangles.push([base, base + 1, base + 2]);
    }
    mesh
}

fn zip_bytes(files: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    for (name, content) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    buf.into_inner()
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>"#;

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>"#;

/// `<object>` XML of an indexed cube.
fn cube_object_xml(id: u32, side: f64) -> String {
    let mut xml = format!("<object id=\"{id}\" type=\"model\"><mesh><vertices>");
    for i in 0..8 {
        let c = corner(i, 1.0, [0.0; 3]).map(|v| f64::from(v) * side);
        xml += &format!("<vertex x=\"{}\" y=\"{}\" z=\"{}\"/>", c[0], c[1], c[2]);
    }
    xml += "</vertices><triangles>";
    for q in CUBE_QUADS {
        xml += &format!(
            "<triangle v1=\"{}\" v2=\"{}\" v3=\"{}\"/><triangle v1=\"{}\" v2=\"{}\" v3=\"{}\"/>",
            q[0], q[1], q[2], q[0], q[2], q[3]
        );
    }
    xml + "</triangles></mesh></object>"
}

fn model_xml(unit: &str, resources: &str, build: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<model unit="{unit}" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:p="http://schemas.microsoft.com/3dmanufacturing/production/2015/06">
<metadata name="Application">printfarm tests</metadata>
<resources>{resources}</resources>
<build>{build}</build>
</model>"#
    )
}

fn three_mf(model: &str) -> Vec<u8> {
    zip_bytes(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", RELS),
        ("3D/3dmodel.model", model),
    ])
}

/// A small xorshift generator, so tests need no extra crate and are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn assert_cube_20(a: &MeshAnalysis) {
    assert_eq!(a.triangles, 12);
    assert_eq!(a.vertices, 8);
    assert_close(a.volume_mm3, 8000.0, 0.01, "volume");
    assert_close(a.area_mm2, 2400.0, 0.01, "area");
    assert_vec_close(a.bbox_min, [0.0; 3], "bbox_min");
    assert_vec_close(a.bbox_max, [20.0; 3], "bbox_max");
    assert_vec_close(a.size, [20.0; 3], "size");
    assert!(a.watertight);
    assert_eq!(a.boundary_edges, 0);
    assert_eq!(a.non_manifold_edges, 0);
    assert_eq!(a.inconsistent_orientation_edges, 0);
    assert_eq!(a.degenerate_triangles, 0);
    assert_eq!(a.objects, 1);
}

// ---------------------------------------------------------------- STL

#[test]
fn fixture_binary_cube() {
    let bytes = fixture("cube_20mm.stl");
    let a = read_ok(MeshFormat::Stl, &bytes);
    assert_eq!(a.format, MeshFormat::Stl);
    assert_cube_20(&a);
    // STL is welded on read: 8 shared corners, not 36 copies.
    let mesh = read(MeshFormat::Stl, &bytes).unwrap();
    assert_eq!(mesh.vertices.len(), 8);
}

#[test]
fn fixture_ascii_cube() {
    let a = read_ok(MeshFormat::Stl, &fixture("cube_20mm_ascii.stl"));
    assert_cube_20(&a);
}

#[test]
fn binary_and_ascii_fixtures_give_the_same_mesh() {
    let b = read(MeshFormat::Stl, &fixture("cube_20mm.stl")).unwrap();
    let a = read(MeshFormat::Stl, &fixture("cube_20mm_ascii.stl")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn binary_stl_whose_header_starts_with_solid() {
    let bytes = binary_stl(
        b"solid cube exported by a CAD tool",
        &cube_triangles(20.0, [0.0; 3]),
    );
    assert!(bytes.starts_with(b"solid "));
    assert_cube_20(&read_ok(MeshFormat::Stl, &bytes));
    // Even "solid" followed by a newline, which stl_io alone would take for ASCII.
    let bytes = binary_stl(b"solid\nfacet", &cube_triangles(20.0, [0.0; 3]));
    assert_cube_20(&read_ok(MeshFormat::Stl, &bytes));
}

#[test]
fn truncated_binary_stl_is_refused() {
    let full = binary_stl(b"binary", &cube_triangles(20.0, [0.0; 3]));
    for cut in [full.len() - 1, full.len() - 50, 84 + 25, 84] {
        match read(MeshFormat::Stl, &full[..cut]) {
            Err(MeshError::Unreadable(msg)) => {
                assert!(msg.contains("truncated"), "{msg}");
                assert!(msg.contains("12 triangles"), "{msg}");
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // Same with a "solid" header: neither a valid ASCII nor a complete binary STL.
    let full = binary_stl(b"solid x", &cube_triangles(20.0, [0.0; 3]));
    match read(MeshFormat::Stl, &full[..full.len() - 10]) {
        Err(MeshError::Unreadable(msg)) => assert!(msg.contains("binary STL"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // Trailing bytes are a size mismatch too.
    let mut long = binary_stl(b"binary", &cube_triangles(20.0, [0.0; 3]));
    long.extend_from_slice(&[0; 7]);
    assert!(matches!(
        read(MeshFormat::Stl, &long),
        Err(MeshError::Unreadable(_))
    ));
}

#[test]
fn empty_stls() {
    let binary = binary_stl(b"nothing", &[]);
    assert!(matches!(
        read(MeshFormat::Stl, &binary),
        Err(MeshError::Empty)
    ));
    let ascii = b"solid empty\nendsolid empty\n";
    assert!(matches!(
        read(MeshFormat::Stl, ascii),
        Err(MeshError::Empty)
    ));
    assert!(matches!(
        read(MeshFormat::Stl, b""),
        Err(MeshError::Unreadable(_))
    ));
}

#[test]
fn ascii_stl_variants() {
    let facets: String = cube_triangles(20.0, [0.0; 3])
        .iter()
        .map(|t| {
            let v: String = t
                .iter()
                .map(|p| format!("      vertex {} {} {}\r\n", p[0], p[1], p[2]))
                .collect();
            format!("  facet normal 0 0 0\r\n    outer loop\r\n{v}    endloop\r\n  endfacet\r\n")
        })
        .collect();
    // A bare "solid" line (no name), CRLF line endings, a byte-order mark, leading blank lines.
    for first in [
        "solid",
        "solid\t",
        "\u{feff}solid name",
        "\n\n  solid  x y z",
    ] {
        let text = format!("{first}\r\n{facets}endsolid\r\n");
        assert_cube_20(&read_ok(MeshFormat::Stl, text.as_bytes()));
    }
    let broken = format!("solid x\n{}", &facets[..facets.len() / 2]);
    assert!(matches!(
        read(MeshFormat::Stl, broken.as_bytes()),
        Err(MeshError::Unreadable(_))
    ));
}

#[test]
fn non_finite_binary_stl_is_refused() {
    let mut t = cube_triangles(20.0, [0.0; 3]);
    t[3][1][2] = f32::NAN;
    assert!(matches!(
        read(MeshFormat::Stl, &binary_stl(b"nan", &t)),
        Err(MeshError::Unreadable(_))
    ));
}

// ---------------------------------------------------------------- analysis

#[test]
fn cube_with_one_triangle_removed_is_open() {
    let mut t = cube_triangles(20.0, [0.0; 3]);
    t.remove(5);
    let a = read_ok(MeshFormat::Stl, &binary_stl(b"open", &t));
    assert_eq!(a.triangles, 11);
    assert!(!a.watertight);
    assert_eq!(a.boundary_edges, 3);
    assert_eq!(a.non_manifold_edges, 0);
    assert_eq!(a.inconsistent_orientation_edges, 0);
    assert_close(a.area_mm2, 2200.0, 0.01, "area");
}

#[test]
fn flipped_triangle_is_inconsistently_oriented_but_closed() {
    let mut t = cube_triangles(20.0, [0.0; 3]);
    t[7].swap(1, 2);
    let a = analyse(MeshFormat::Stl, &mesh_from(&t));
    assert!(a.watertight);
    assert_eq!(a.inconsistent_orientation_edges, 3);
    assert_eq!(a.boundary_edges, 0);
}

#[test]
fn duplicated_triangle_is_non_manifold() {
    let mut t = cube_triangles(20.0, [0.0; 3]);
    t.push(t[0]);
    let a = analyse(MeshFormat::Stl, &mesh_from(&t));
    assert!(!a.watertight);
    assert_eq!(a.non_manifold_edges, 3);
}

#[test]
fn degenerate_triangles_are_counted() {
    let mut t = cube_triangles(20.0, [0.0; 3]);
    t.push([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [20.0, 0.0, 0.0]]); // repeated corner
    t.push([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [20.0, 0.0, 0.0]]); // collinear
    let a = analyse(MeshFormat::Stl, &mesh_from(&t));
    assert_eq!(a.degenerate_triangles, 2);
    assert_close(a.volume_mm3, 8000.0, 0.01, "volume");
}

#[test]
fn separate_parts_are_counted_and_negative_zero_welds() {
    let mut t = cube_triangles(20.0, [0.0; 3]);
    t.extend(cube_triangles(10.0, [30.0, 0.0, 0.0]));
    // -0.0 and 0.0 are the same position.
    for tri in &mut t[..2] {
        for p in tri.iter_mut() {
            for c in p.iter_mut() {
                if *c == 0.0 {
                    *c = -0.0;
                }
            }
        }
    }
    let a = analyse(MeshFormat::Stl, &mesh_from(&t));
    assert_eq!(a.objects, 2);
    assert_eq!(a.vertices, 16);
    assert!(a.watertight);
    assert_close(a.volume_mm3, 9000.0, 0.01, "volume");
    assert_vec_close(a.bbox_max, [40.0, 20.0, 20.0], "bbox_max");
}

#[test]
fn inside_out_cube_still_has_positive_volume() {
    let t: Vec<_> = cube_triangles(20.0, [0.0; 3])
        .into_iter()
        .map(|[a, b, c]| [a, c, b])
        .collect();
    let a = analyse(MeshFormat::Stl, &mesh_from(&t));
    assert_close(a.volume_mm3, 8000.0, 0.01, "volume");
    assert_eq!(a.inconsistent_orientation_edges, 0);
}

#[test]
fn far_from_origin_volume_is_accurate() {
    let a = analyse(
        MeshFormat::Stl,
        &mesh_from(&cube_triangles(20.0, [10_000.0, -20_000.0, 500.0])),
    );
    assert_close(a.volume_mm3, 8000.0, 0.01, "volume");
}

#[test]
fn empty_and_invalid_meshes_do_not_panic() {
    let a = analyse(MeshFormat::Obj, &Mesh::default());
    assert_eq!(a.triangles, 0);
    assert!(!a.watertight);
    assert_eq!(a.objects, 0);
    assert_eq!(a.bbox_min, [0.0; 3]);
    let bad = Mesh {
        vertices: vec![[0.0; 3]],
        triangles: vec![[0, 1, 2]],
    };
    assert_eq!(analyse(MeshFormat::Obj, &bad).triangles, 0);
}

#[test]
fn analysis_serialises() {
    let a = read_ok(MeshFormat::Stl, &fixture("cube_20mm.stl"));
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["format"], "Stl");
    assert_eq!(json["watertight"], true);
    let back: MeshAnalysis = serde_json::from_value(json).unwrap();
    assert_eq!(back, a);
}

// ---------------------------------------------------------------- fits

#[test]
fn fits_build_volumes() {
    let mut a = read_ok(MeshFormat::Stl, &fixture("cube_20mm.stl"));
    assert!(fits(&a, [250.0, 210.0, 220.0]));
    assert!(fits(&a, [20.0, 20.0, 20.0]));
    assert!(!fits(&a, [19.9, 250.0, 250.0]));
    a.size = [200.0, 30.0, 10.0];
    assert!(fits(&a, [210.0, 40.0, 10.0]));
    assert!(fits(&a, [40.0, 210.0, 10.0])); // only rotated 90° about Z
    assert!(!fits(&a, [40.0, 190.0, 10.0]));
    assert!(!fits(&a, [250.0, 250.0, 9.0])); // too tall
}

#[test]
fn format_extensions() {
    assert_eq!(MeshFormat::from_extension("STL"), Some(MeshFormat::Stl));
    assert_eq!(
        MeshFormat::from_extension(".3mf"),
        Some(MeshFormat::ThreeMf)
    );
    assert_eq!(MeshFormat::from_extension("obj"), Some(MeshFormat::Obj));
    assert_eq!(MeshFormat::from_extension("gcode"), None);
    assert_eq!(MeshFormat::ThreeMf.extension(), "3mf");
}

// ---------------------------------------------------------------- 3MF

#[test]
fn three_mf_units_and_build_transform() {
    // A 1 cm cube in centimetres, scaled ×2 and moved +1 cm (= +10 mm) along X by the item.
    let model = model_xml(
        "centimeter",
        &cube_object_xml(1, 1.0),
        r#"<item objectid="1" transform="2 0 0 0 2 0 0 0 2 1 0 0"/>"#,
    );
    let a = read_ok(MeshFormat::ThreeMf, &three_mf(&model));
    assert_eq!(a.format, MeshFormat::ThreeMf);
    assert_eq!(a.triangles, 12);
    assert_close(a.volume_mm3, 8000.0, 0.01, "volume");
    assert_close(a.area_mm2, 2400.0, 0.01, "area");
    assert_vec_close(a.bbox_min, [10.0, 0.0, 0.0], "bbox_min");
    assert_vec_close(a.bbox_max, [30.0, 20.0, 20.0], "bbox_max");
    assert!(a.watertight);
}

#[test]
fn three_mf_all_units() {
    for (unit, side, expected) in [
        ("micron", 20_000.0, 20.0),
        ("millimeter", 20.0, 20.0),
        ("centimeter", 2.0, 20.0),
        ("inch", 1.0, 25.4),
        ("foot", 0.1, 30.48),
        ("meter", 0.02, 20.0),
    ] {
        let model = model_xml(unit, &cube_object_xml(1, side), r#"<item objectid="1"/>"#);
        let a = read_ok(MeshFormat::ThreeMf, &three_mf(&model));
        assert_vec_close(a.size, [expected; 3], unit);
        assert_close(a.volume_mm3, expected.powi(3), 0.05, unit);
    }
    // No unit attribute means millimetres.
    let model = model_xml(
        "millimeter",
        &cube_object_xml(1, 20.0),
        r#"<item objectid="1"/>"#,
    )
    .replace(r#"unit="millimeter" "#, "");
    assert_cube_20(&read_ok(MeshFormat::ThreeMf, &three_mf(&model)));
}

#[test]
fn three_mf_components_nested_and_mirrored() {
    // Object 2 = two 10 mm cubes (at x 0 and x +20); object 3 = object 2 mirrored in X;
    // the build item moves object 3 by (100, 0, 5).
    let resources = format!(
        r#"{}
<object id="2" type="model"><components>
  <component objectid="1"/>
  <component objectid="1" transform="1 0 0 0 1 0 0 0 1 20 0 0"/>
</components></object>
<object id="3" type="model"><components>
  <component objectid="2" transform="-1 0 0 0 1 0 0 0 1 0 0 0"/>
</components></object>"#,
        cube_object_xml(1, 10.0)
    );
    let model = model_xml(
        "millimeter",
        &resources,
        r#"<item objectid="3" transform="1 0 0 0 1 0 0 0 1 100 0 5"/>"#,
    );
    let mesh = read(MeshFormat::ThreeMf, &three_mf(&model)).unwrap();
    let a = analyse(MeshFormat::ThreeMf, &mesh);
    assert_eq!(a.triangles, 24);
    assert_eq!(a.objects, 2);
    assert_close(a.volume_mm3, 2000.0, 0.01, "volume");
    assert_vec_close(a.bbox_min, [70.0, 0.0, 5.0], "bbox_min");
    assert_vec_close(a.bbox_max, [100.0, 10.0, 15.0], "bbox_max");
    assert!(a.watertight);
    assert_eq!(a.inconsistent_orientation_edges, 0);
    // Winding was flipped with the mirror: the signed volume is positive (outward normals).
    let signed: f64 = mesh
        .triangles
        .iter()
        .map(|t| {
            let p = t.map(|i| mesh.vertices[i as usize].map(f64::from));
            let c = [
                p[1][1] * p[2][2] - p[1][2] * p[2][1],
                p[1][2] * p[2][0] - p[1][0] * p[2][2],
                p[1][0] * p[2][1] - p[1][1] * p[2][0],
            ];
            (p[0][0] * c[0] + p[0][1] * c[1] + p[0][2] * c[2]) / 6.0
        })
        .sum();
    assert_close(signed, 2000.0, 0.01, "signed volume");
}

#[test]
fn three_mf_multiple_build_items_are_merged() {
    let model = model_xml(
        "millimeter",
        &cube_object_xml(1, 20.0),
        r#"<item objectid="1"/><item objectid="1" transform="1 0 0 0 1 0 0 0 1 50 50 0"/>"#,
    );
    let a = read_ok(MeshFormat::ThreeMf, &three_mf(&model));
    assert_eq!(a.triangles, 24);
    assert_eq!(a.objects, 2);
    assert_close(a.volume_mm3, 16000.0, 0.01, "volume");
    assert_vec_close(a.size, [70.0, 70.0, 20.0], "size");
}

#[test]
fn three_mf_production_extension_paths() {
    // Bambu Studio / OrcaSlicer layout: the root object's component points into another part,
    // which has its own id space (its object 1 is not the root's object 1).
    let root = model_xml(
        "millimeter",
        &format!(
            r#"{}<object id="5" type="model"><components><component p:path="/3D/Objects/object_1.model" objectid="1" transform="1 0 0 0 1 0 0 0 1 0 0 1"/></components></object>"#,
            cube_object_xml(1, 5.0)
        ),
        r#"<item objectid="5" transform="1 0 0 0 1 0 0 0 1 10 10 0"/>"#,
    );
    let part = model_xml("millimeter", &cube_object_xml(1, 20.0), "");
    let bytes = zip_bytes(&[
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", RELS),
        ("3D/3dmodel.model", &root),
        ("3D/Objects/object_1.model", &part),
        ("Metadata/model_settings.config", "<config/>"),
    ]);
    let a = read_ok(MeshFormat::ThreeMf, &bytes);
    assert_eq!(a.triangles, 12);
    assert_close(a.volume_mm3, 8000.0, 0.01, "volume");
    assert_vec_close(a.bbox_min, [10.0, 10.0, 1.0], "bbox_min");
    assert_vec_close(a.bbox_max, [30.0, 30.0, 21.0], "bbox_max");
}

#[test]
fn three_mf_written_by_the_threemf_crate() {
    use threemf::model::{Triangle, Triangles, Vertex, Vertices};
    let vertices = (0..8)
        .map(|i| {
            let c = corner(i, 20.0, [0.0; 3]);
            Vertex {
                x: f64::from(c[0]),
                y: f64::from(c[1]),
                z: f64::from(c[2]),
            }
        })
        .collect();
    let triangle = |a: usize, b: usize, c: usize| Triangle {
        v1: a,
        v2: b,
        v3: c,
    };
    let triangles = CUBE_QUADS
        .iter()
        .flat_map(|q| [triangle(q[0], q[1], q[2]), triangle(q[0], q[2], q[3])])
        .collect();
    let mesh = threemf::Mesh {
        vertices: Vertices { vertex: vertices },
        triangles: Triangles {
            triangle: triangles,
        },
    };
    let mut buf = Cursor::new(Vec::new());
    threemf::write(&mut buf, mesh).unwrap();
    let bytes = buf.into_inner();
    // It names its model part 3D/model.model (found through _rels/.rels).
    assert_eq!(sniff(&bytes, bytes.len() as u64), Some(MeshFormat::ThreeMf));
    assert_cube_20(&read_ok(MeshFormat::ThreeMf, &bytes));
}

#[test]
fn three_mf_without_rels_uses_the_default_part() {
    let model = model_xml(
        "millimeter",
        &cube_object_xml(1, 20.0),
        r#"<item objectid="1"/>"#,
    );
    let bytes = zip_bytes(&[("3D/3dmodel.model", &model)]);
    assert_cube_20(&read_ok(MeshFormat::ThreeMf, &bytes));
}

#[test]
fn three_mf_errors() {
    let unreadable = |bytes: &[u8], needle: &str| match read(MeshFormat::ThreeMf, bytes) {
        Err(MeshError::Unreadable(msg)) => assert!(msg.contains(needle), "{msg:?} vs {needle:?}"),
        other => panic!("expected Unreadable({needle}), got {other:?}"),
    };
    let cube = cube_object_xml(1, 20.0);
    unreadable(
        &three_mf(&model_xml("furlong", &cube, r#"<item objectid="1"/>"#)),
        "unit",
    );
    unreadable(
        &three_mf(&model_xml("millimeter", &cube, r#"<item objectid="9"/>"#)),
        "object 9",
    );
    unreadable(
        &three_mf(&model_xml(
            "millimeter",
            r#"<object id="1"><components><component objectid="2"/></components></object>
               <object id="2"><components><component objectid="1"/></components></object>"#,
            r#"<item objectid="1"/>"#,
        )),
        "nested",
    );
    unreadable(
        &three_mf(&model_xml(
            "millimeter",
            &cube.replace(r#"v3="3""#, r#"v3="30""#),
            r#"<item objectid="1"/>"#,
        )),
        "indexing past",
    );
    unreadable(
        &three_mf(&model_xml(
            "millimeter",
            &cube,
            r#"<item objectid="1" transform="1 0 0"/>"#,
        )),
        "transform",
    );
    unreadable(
        &three_mf(&model_xml(
            "millimeter",
            &cube.replace(r#"x="20""#, r#"x="abc""#),
            r#"<item objectid="1"/>"#,
        )),
        "not a number",
    );
    unreadable(&three_mf("<model><resources>"), "XML");
    unreadable(&zip_bytes(&[("readme.txt", "hello")]), "no 3D model part");
    unreadable(b"PK\x03\x04 not really a zip", "zip");
    unreadable(&fixture("cube_20mm.stl"), "zip");
    assert!(matches!(
        read(
            MeshFormat::ThreeMf,
            &three_mf(&model_xml("millimeter", &cube, ""))
        ),
        Err(MeshError::Empty)
    ));
}

// ---------------------------------------------------------------- OBJ

fn obj_cube(side: f32) -> String {
    let mut text = String::from("# cube with quads\nmtllib cube.mtl\no cube\n");
    for i in 0..8 {
        let c = corner(i, side, [0.0; 3]);
        text += &format!("v {} {} {}\n", c[0], c[1], c[2]);
    }
    text += "vn 0 0 -1\nvn 0 0 1\nvn 0 -1 0\nvn 0 1 0\nvn -1 0 0\nvn 1 0 0\nusemtl orange\ns off\n";
    for (n, q) in CUBE_QUADS.iter().enumerate() {
        text += &format!(
            "f {}//{n1} {}//{n1} {}//{n1} {}//{n1}\n",
            q[0] + 1,
            q[1] + 1,
            q[2] + 1,
            q[3] + 1,
            n1 = n + 1
        );
    }
    text
}

#[test]
fn obj_cube_with_quads() {
    let text = obj_cube(20.0);
    let mesh = read(MeshFormat::Obj, text.as_bytes()).unwrap();
    assert_eq!(mesh.triangles.len(), 12);
    // single_index splits corners by normal; analysis welds them back.
    assert!(mesh.vertices.len() > 8);
    let a = analyse(MeshFormat::Obj, &mesh);
    assert_eq!(a.format, MeshFormat::Obj);
    assert_cube_20(&a);
}

#[test]
fn obj_errors() {
    assert!(matches!(
        read(MeshFormat::Obj, b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n"),
        Err(MeshError::Unreadable(_))
    ));
    assert!(matches!(
        read(MeshFormat::Obj, b"v 0 0 zero\nf 1 2 3\n"),
        Err(MeshError::Unreadable(_))
    ));
    assert!(matches!(
        read(MeshFormat::Obj, b"# nothing here\nv 0 0 0\n"),
        Err(MeshError::Empty)
    ));
    assert!(matches!(
        read(MeshFormat::Obj, b"\xff\xfe\x00garbage\x80\x81\n"),
        Err(MeshError::Unreadable(_))
    ));
}

// ---------------------------------------------------------------- garbage

#[test]
fn garbage_is_unreadable_for_every_format() {
    let garbage: Vec<u8> = Rng(0x5eed).bytes(1000);
    for format in [MeshFormat::Stl, MeshFormat::ThreeMf, MeshFormat::Obj] {
        match read(format, &garbage) {
            Err(MeshError::Unreadable(_)) => {}
            other => panic!("{format:?}: {other:?}"),
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let valid = [
        fixture("cube_20mm.stl"),
        fixture("cube_20mm_ascii.stl"),
        three_mf(&model_xml(
            "millimeter",
            &cube_object_xml(1, 20.0),
            r#"<item objectid="1"/>"#,
        )),
        obj_cube(20.0).into_bytes(),
    ];
    let prefixes: [&[u8]; 5] = [b"", b"solid x\n", b"PK\x03\x04", b"v 1 2 3\nf ", b"solid"];
    // PRINTFARM_FUZZ_ROUNDS=100000 for a longer run.
    let rounds = std::env::var("PRINTFARM_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    for round in 0..rounds {
        let len = (rng.next() % 2048) as usize;
        let mut bytes = prefixes[round % prefixes.len()].to_vec();
        bytes.extend(rng.bytes(len));
        for format in [MeshFormat::Stl, MeshFormat::ThreeMf, MeshFormat::Obj] {
            match read(format, &bytes) {
                Err(MeshError::Unreadable(_)) | Err(MeshError::Empty) => {}
                other => panic!("{format:?} on random bytes (round {round}): {other:?}"),
            }
        }
        // (An OBJ statement followed by a few random but valid UTF-8 bytes may well be OBJ.)
        if round % prefixes.len() != 3 {
            assert_eq!(sniff(&bytes, bytes.len() as u64), None, "round {round}");
        }

        // Mutated and truncated valid files: any answer but a panic or an I/O error.
        let mut mutated = valid[round % valid.len()].clone();
        for _ in 0..1 + rng.next() % 8 {
            let at = (rng.next() as usize) % mutated.len();
            mutated[at] = rng.next() as u8;
        }
        let cut = (rng.next() as usize) % (mutated.len() + 1);
        for bytes in [&mutated[..], &mutated[..cut]] {
            for format in [MeshFormat::Stl, MeshFormat::ThreeMf, MeshFormat::Obj] {
                if let Err(MeshError::Io(e)) = read(format, bytes) {
                    panic!("{format:?}: I/O error on in-memory data: {e}");
                }
            }
            let _ = sniff(bytes, bytes.len() as u64);
        }
    }
}

// ---------------------------------------------------------------- sniff

fn sniff_all(bytes: &[u8]) -> Option<MeshFormat> {
    let head = &bytes[..bytes.len().min(SNIFF_LEN)];
    sniff(head, bytes.len() as u64)
}

#[test]
fn sniff_each_kind() {
    let stl = fixture("cube_20mm.stl");
    assert_eq!(sniff_all(&stl), Some(MeshFormat::Stl));
    assert_eq!(
        sniff_all(&fixture("cube_20mm_ascii.stl")),
        Some(MeshFormat::Stl)
    );
    let solid_header = binary_stl(b"solid by CAD", &cube_triangles(20.0, [0.0; 3]));
    assert_eq!(sniff_all(&solid_header), Some(MeshFormat::Stl));
    // Only the first 100 bytes of a binary STL are enough.
    assert_eq!(sniff(&stl[..100], stl.len() as u64), Some(MeshFormat::Stl));

    let tmf = three_mf(&model_xml(
        "millimeter",
        &cube_object_xml(1, 20.0),
        r#"<item objectid="1"/>"#,
    ));
    assert_eq!(sniff_all(&tmf), Some(MeshFormat::ThreeMf));
    assert_eq!(sniff_all(obj_cube(20.0).as_bytes()), Some(MeshFormat::Obj));
    let cut = obj_cube(20.0);
    assert_eq!(
        sniff(&cut.as_bytes()[..120], 100_000),
        Some(MeshFormat::Obj)
    );
}

#[test]
fn sniff_refuses_other_content() {
    let gcode = fixture("cube_20mm.gcode");
    assert_eq!(sniff_all(&gcode), None);
    assert_eq!(sniff_all(b"G28\nG1 X10 Y10 F3000\n; comment\n"), None);
    assert_eq!(sniff_all(b""), None);
    assert_eq!(sniff_all(&Rng(42).bytes(5000)), None);
    assert_eq!(sniff_all(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), None);
    assert_eq!(
        sniff_all(&zip_bytes(&[("word/document.xml", "<w/>")])),
        None
    );
    // A truncated binary STL fails the size check.
    let stl = fixture("cube_20mm.stl");
    assert_eq!(sniff_all(&stl[..stl.len() - 1]), None);
    assert_eq!(sniff_all(b"solid x\nthis is not an STL\n"), None);
    assert_eq!(sniff_all(b"# only comments\n\n"), None);
}

#[test]
fn mutated_3mf_xml_never_panics() {
    let resources = format!(
        r#"{}<object id="2"><components><component objectid="1" transform="1 0 0 0 1 0 0 0 1 5 0 0"/><component p:path="/3D/other.model" objectid="1"/></components></object>"#,
        cube_object_xml(1, 20.0)
    );
    let model = model_xml(
        "millimeter",
        &resources,
        r#"<item objectid="2" transform="-1 0 0 0 1 0 0 0 1 0 0 0"/>"#,
    );
    let other = model_xml("inch", &cube_object_xml(1, 1.0), "");
    let alphabet = b"<>/=\" 019-.eE:abcdimnoptvxyz";
    let mut rng = Rng(0xfeed_beef);
    let rounds = std::env::var("PRINTFARM_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut ok = 0;
    for _ in 0..rounds {
        let mut bytes = model.clone().into_bytes();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % bytes.len();
            match rng.next() % 3 {
                0 => bytes[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let zip = zip_bytes(&[
            ("_rels/.rels", RELS),
            ("3D/3dmodel.model", &text),
            ("3D/other.model", &other),
        ]);
        match read(MeshFormat::ThreeMf, &zip) {
            Ok(mesh) => {
                ok += 1;
                let _ = analyse(MeshFormat::ThreeMf, &mesh);
            }
            Err(MeshError::Io(e)) => panic!("I/O error on in-memory data: {e}"),
            Err(_) => {}
        }
    }
    assert!(
        ok > 0,
        "no mutation was harmless: the test input itself must be broken"
    );
}

#[test]
fn three_mf_component_explosion_is_refused() {
    // 20 levels of objects with 10 components each would be 10^20 instances.
    let mut resources = String::from(r#"<object id="1"><components></components></object>"#);
    for id in 2..=21 {
        resources += &format!("<object id=\"{id}\"><components>");
        for _ in 0..10 {
            resources += &format!("<component objectid=\"{}\"/>", id - 1);
        }
        resources += "</components></object>";
    }
    let model = model_xml("millimeter", &resources, r#"<item objectid="21"/>"#);
    let started = std::time::Instant::now();
    match read(MeshFormat::ThreeMf, &three_mf(&model)) {
        Err(MeshError::Unreadable(msg)) => assert!(msg.contains("instances"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed().as_secs() < 10);
}
