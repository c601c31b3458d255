//! Wavefront OBJ through `tobj` (triangulated, single index; material libraries ignored).

use std::io::{BufReader, Read, Seek};

use super::{Mesh, MeshError, MAX_TRIANGLES};

pub(super) fn read<R: Read + Seek>(reader: R) -> Result<Mesh, MeshError> {
    // `..Default::default()` covers the fields that tobj's optional cargo features add.
    #[allow(clippy::needless_update)]
    let options = tobj::LoadOptions {
        triangulate: true,
        single_index: true,
        ignore_points: true,
        ignore_lines: true,
        ..Default::default()
    };
    let mut reader = BufReader::new(reader);
    // tobj is a large hand-written parser; an upload must never take the server down with it.
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tobj::load_obj_buf(&mut reader, &options, |_| {
            Err(tobj::LoadError::OpenFileFailed)
        })
    }))
    .map_err(|_| MeshError::Unreadable("OBJ: the parser failed on this file".into()))?;
    let (models, _materials) = match loaded {
        Ok(v) => v,
        Err(tobj::LoadError::ReadError) => {
            return Err(MeshError::Unreadable(
                "OBJ: not a text file (a line is not valid UTF-8) or it could not be read".into(),
            ))
        }
        Err(e) => return Err(MeshError::Unreadable(format!("OBJ: {e}"))),
    };

    let total_vertices: usize = models.iter().map(|m| m.mesh.positions.len() / 3).sum();
    let total_triangles: usize = models.iter().map(|m| m.mesh.indices.len() / 3).sum();
    if total_triangles > MAX_TRIANGLES || total_vertices > u32::MAX as usize {
        return Err(MeshError::Unreadable(format!(
            "OBJ with {total_triangles} triangles is larger than the limit of {MAX_TRIANGLES}"
        )));
    }
    let mut mesh = Mesh {
        vertices: Vec::with_capacity(total_vertices),
        triangles: Vec::with_capacity(total_triangles),
    };
    for model in &models {
        let m = &model.mesh;
        let base = mesh.vertices.len() as u32;
        let count = (m.positions.len() / 3) as u32;
        for p in m.positions.chunks_exact(3) {
            let p = [p[0], p[1], p[2]];
            if p.iter().any(|c| !c.is_finite()) {
                return Err(MeshError::Unreadable(format!(
                    "OBJ: object {:?} has a non-finite vertex coordinate",
                    model.name
                )));
            }
            mesh.vertices.push(p);
        }
        for t in m.indices.chunks_exact(3) {
            if t.iter().any(|&i| i >= count) {
                return Err(MeshError::Unreadable(format!(
                    "OBJ: object {:?} has a face index out of range",
                    model.name
                )));
            }
            mesh.triangles.push([base + t[0], base + t[1], base + t[2]]);
        }
    }
    Ok(mesh)
}
