//! Mesh input (STL, 3MF, OBJ), mesh metrics and upload content sniffing.
//!
//! * [`read_mesh`] turns a file into one indexed triangle mesh in millimetres.
//! * [`analyse`] computes the figures a print farm needs before slicing: bounding box, volume,
//!   surface area, watertightness (edge topology after welding equal positions), part count.
//! * [`sniff`] tells which mesh format some bytes really are, to refuse uploads whose content
//!   does not match their extension.
//! * [`fits`] checks a model against a printer's build volume.
//!
//! Readers: binary and ASCII STL through `stl_io` (binary vs ASCII is decided by the binary
//! size check, not by the header), OBJ through `tobj`, and 3MF with a streaming `quick-xml`
//! parser of our own over the `zip` archive (see [`three_mf`] for why not the `threemf` crate).

mod analysis;
mod obj;
mod sniff;
mod stl;
mod three_mf;
mod weld;

#[cfg(test)]
mod tests;

use std::io::{Read, Seek};

pub use analysis::analyse;
pub use sniff::{sniff, SNIFF_LEN};

/// The mesh file formats we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MeshFormat {
    Stl,
    ThreeMf,
    Obj,
}

impl MeshFormat {
    /// The format for a file extension (`"stl"`, `".3MF"`, `"obj"`; case-insensitive, leading dot
    /// optional).
    pub fn from_extension(ext: &str) -> Option<MeshFormat> {
        let ext = ext.strip_prefix('.').unwrap_or(ext);
        if ext.eq_ignore_ascii_case("stl") {
            Some(MeshFormat::Stl)
        } else if ext.eq_ignore_ascii_case("3mf") {
            Some(MeshFormat::ThreeMf)
        } else if ext.eq_ignore_ascii_case("obj") {
            Some(MeshFormat::Obj)
        } else {
            None
        }
    }

    /// The usual lower-case file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            MeshFormat::Stl => "stl",
            MeshFormat::ThreeMf => "3mf",
            MeshFormat::Obj => "obj",
        }
    }
}

/// Why a mesh file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Not a valid file of that kind: wrong content, truncated, malformed, out-of-range indices,
    /// non-finite coordinates, unsupported unit, too large, …
    #[error("unreadable mesh file: {0}")]
    Unreadable(String),
    /// The file is valid but holds no triangles.
    #[error("the mesh file holds no triangles")]
    Empty,
    /// Reading the underlying stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An indexed triangle mesh in millimetres (3MF build transforms and units already applied;
/// 3MF components resolved; all objects of the build merged).
///
/// STL input is welded while reading (exactly equal positions share one vertex); OBJ and 3MF
/// keep the file's own indexing, which may repeat positions. [`analyse`] welds again by
/// position, so its figures do not depend on that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub vertices: Vec<[f32; 3]>,
    pub triangles: Vec<[u32; 3]>,
}

/// Figures of a mesh, see [`analyse`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeshAnalysis {
    pub format: MeshFormat,
    pub triangles: u64,
    /// Distinct vertex positions used by the triangles (after welding).
    pub vertices: u64,
    pub bbox_min: [f64; 3],
    pub bbox_max: [f64; 3],
    pub size: [f64; 3],
    /// Absolute value of the signed-tetrahedra sum (meaningful for closed meshes).
    pub volume_mm3: f64,
    pub area_mm2: f64,
    /// Every edge is shared by exactly 2 triangles.
    pub watertight: bool,
    /// Edges used by exactly one triangle.
    pub boundary_edges: u64,
    /// Edges used by more than two triangles.
    pub non_manifold_edges: u64,
    /// Edges shared by two triangles that both run it in the same direction (one of the two
    /// triangles is flipped).
    pub inconsistent_orientation_edges: u64,
    /// Triangles with two equal (welded) corners or with no area.
    pub degenerate_triangles: u64,
    /// Separate parts: connected components of the welded mesh (shells).
    pub objects: u32,
}

/// Refuse meshes larger than this (a guard against instancing/zip bombs in 3MF files).
pub const MAX_TRIANGLES: usize = 50_000_000;

/// Reads a mesh file of the given format from the start of `reader`.
///
/// Never panics on bad input: anything that is not a valid file of that kind is
/// [`MeshError::Unreadable`], a valid file without triangles is [`MeshError::Empty`].
pub fn read_mesh<R: Read + Seek>(format: MeshFormat, reader: R) -> Result<Mesh, MeshError> {
    let mesh = match format {
        MeshFormat::Stl => stl::read(reader)?,
        MeshFormat::ThreeMf => three_mf::read(reader)?,
        MeshFormat::Obj => obj::read(reader)?,
    };
    if mesh.triangles.is_empty() {
        return Err(MeshError::Empty);
    }
    Ok(mesh)
}

/// Tolerance of [`fits`], in mm (float rounding of coordinates read as `f32`).
const FIT_TOLERANCE_MM: f64 = 1e-3;

/// Fits a mesh in a build volume (x, y, z in mm), trying the model as is and rotated 90° about Z.
pub fn fits(analysis: &MeshAnalysis, volume: [f64; 3]) -> bool {
    fits_size(analysis.size, volume)
}

/// Fits an extent (x, y, z in mm) in a build volume, as is or rotated 90° about Z.
pub fn fits_size(size: [f64; 3], volume: [f64; 3]) -> bool {
    let [sx, sy, sz] = size;
    let [vx, vy, vz] = volume;
    let le = |a: f64, b: f64| a <= b + FIT_TOLERANCE_MM;
    if !le(sz, vz) {
        return false;
    }
    (le(sx, vx) && le(sy, vy)) || (le(sy, vx) && le(sx, vy))
}

/// Maps an I/O error of a parser to our error: malformed data is `Unreadable`, anything else
/// (a failing disk, a closed socket) stays `Io`.
fn parse_io_error(context: &str, e: std::io::Error) -> MeshError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidData | ErrorKind::UnexpectedEof | ErrorKind::InvalidInput => {
            MeshError::Unreadable(format!("{context}: {e}"))
        }
        _ => MeshError::Io(e),
    }
}

/// Total length of a seekable stream; leaves it at the start.
fn stream_len<R: Seek>(reader: &mut R) -> std::io::Result<u64> {
    let len = reader.seek(std::io::SeekFrom::End(0))?;
    reader.seek(std::io::SeekFrom::Start(0))?;
    Ok(len)
}
