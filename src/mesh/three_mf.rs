//! 3MF: a streaming reader of the model XML (`quick-xml`) inside the OPC zip (`zip`).
//!
//! Why not the `threemf` crate: `threemf::read` returns every `*.model` part of the package
//! without its path, so it cannot tell the root model from the others and cannot resolve
//! Production-extension components (`<component p:path="/3D/Objects/object_1.model" …>`), as
//! found in Bambu Studio and OrcaSlicer project files. It also builds a serde tree of the whole
//! XML first. Here the root part comes from `_rels/.rels`, parts named by `p:path` are loaded on
//! demand, and the XML is parsed as a stream (no document tree is kept).
//!
//! Applied: the model `unit` (micron … meter), each build item's 3×4 `transform`, nested
//! `components` with their own transforms (any depth up to [`MAX_DEPTH`], cycles refused), and
//! mirrored transforms (triangle winding flipped so volumes stay positive).
//!
//! Guards against hostile packages: at most [`MAX_TRIANGLES`] triangles (parsed and after
//! instancing), [`MAX_INSTANCES`] expanded object instances and 1 GiB of XML per model part.
//! Objects of every `type` are included; materials, colours, slices, beam lattices and other
//! extension data are ignored.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read, Seek};

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::{NsReader, Reader};
use zip::ZipArchive;

use super::{Mesh, MeshError, MAX_TRIANGLES};

const CORE_NS_PREFIX: &str = "http://schemas.microsoft.com/3dmanufacturing/core/";
const DEFAULT_ROOT: &str = "3D/3dmodel.model";
/// Deepest component nesting we follow; deeper means a cycle or an abusive file.
pub(super) const MAX_DEPTH: usize = 32;
/// Most object instances (build items and components, recursively) we expand: a few objects
/// nested a few levels deep with many components each would otherwise take forever.
const MAX_INSTANCES: usize = 1_000_000;
/// Most triangles the build may expand to once components are instanced, counted before any
/// is copied, so a few kilobytes of nested components cannot make us allocate gigabytes
/// (about 40 bytes per instanced triangle). Real multi-plate prints stay well below.
pub(super) const MAX_INSTANCED_TRIANGLES: u64 = 10_000_000;
/// Largest uncompressed model part we parse (about 15 million triangles of XML).
const MAX_PART_BYTES: u64 = 1 << 30;
/// Most vertices we accept across all parsed parts.
const MAX_VERTICES: usize = MAX_TRIANGLES;

/// A 3MF affine transform in file order `m00 m01 m02 m10 m11 m12 m20 m21 m22 m30 m31 m32`
/// (row vectors: `p' = [x y z 1] · M`).
type Affine = [f64; 12];

const IDENTITY: Affine = [1., 0., 0., 0., 1., 0., 0., 0., 1., 0., 0., 0.];

fn apply(m: &Affine, p: [f64; 3]) -> [f64; 3] {
    let [x, y, z] = p;
    [
        x * m[0] + y * m[3] + z * m[6] + m[9],
        x * m[1] + y * m[4] + z * m[7] + m[10],
        x * m[2] + y * m[5] + z * m[8] + m[11],
    ]
}

/// The transform that applies `first`, then `then`.
fn compose(first: &Affine, then: &Affine) -> Affine {
    let mut out = [0.0; 12];
    for row in 0..4 {
        for col in 0..3 {
            let mut v = if row == 3 { then[9 + col] } else { 0.0 };
            for k in 0..3 {
                v += first[row * 3 + k] * then[k * 3 + col];
            }
            out[row * 3 + col] = v;
        }
    }
    out
}

fn determinant(m: &Affine) -> f64 {
    m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
        + m[2] * (m[3] * m[7] - m[4] * m[6])
}

fn scale(s: f64) -> Affine {
    [s, 0., 0., 0., s, 0., 0., 0., s, 0., 0., 0.]
}

fn unit_scale(unit: &str) -> Option<f64> {
    Some(match unit {
        "micron" => 0.001,
        "millimeter" => 1.0,
        "centimeter" => 10.0,
        "inch" => 25.4,
        "foot" => 304.8,
        "meter" => 1000.0,
        _ => return None,
    })
}

/// A reference to an object: a build item or a component.
struct ObjRef {
    /// Normalised part name (no leading slash) when it lives in another model part.
    path: Option<String>,
    objectid: u32,
    transform: Affine,
}

enum Object {
    Mesh {
        vertices: Vec<[f64; 3]>,
        triangles: Vec<[u32; 3]>,
    },
    Components(Vec<ObjRef>),
}

struct Part {
    unit: f64,
    objects: HashMap<u32, Object>,
    build: Vec<ObjRef>,
}

fn bad(msg: impl Into<String>) -> MeshError {
    MeshError::Unreadable(msg.into())
}

pub(super) fn read<R: Read + Seek>(reader: R) -> Result<Mesh, MeshError> {
    let mut zip = ZipArchive::new(reader)
        .map_err(|e| bad(format!("not a 3MF file (not a readable zip archive): {e}")))?;
    let root = root_part_name(&mut zip)?;

    let mut budget = Budget::default();
    let mut parts: HashMap<String, Part> = HashMap::new();
    let root_part = parse_part(&mut zip, &root, &mut budget)?;
    if root_part.build.is_empty() {
        return Err(MeshError::Empty);
    }
    let unit = root_part.unit;
    parts.insert(root.clone(), root_part);

    // Load every part that components or items name, transitively.
    let mut pending: Vec<String> = referenced_parts(&parts[&root]);
    let mut seen: HashSet<String> = HashSet::from([root.clone()]);
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let part = parse_part(&mut zip, &name, &mut budget)?;
        pending.extend(referenced_parts(&part));
        parts.insert(name, part);
    }

    // Count what the build would expand to before expanding it.
    let mut memo = HashMap::new();
    let mut total: u64 = 0;
    for item in &parts[&root].build {
        let part = item.path.as_deref().unwrap_or(&root);
        total = total.saturating_add(instanced_triangles(
            &parts,
            part,
            item.objectid,
            0,
            &mut memo,
        )?);
    }
    if total > MAX_INSTANCED_TRIANGLES {
        return Err(bad(format!(
            "3MF: the build instances {total} triangles, more than this server's limit of \
             {MAX_INSTANCED_TRIANGLES} instanced triangles"
        )));
    }

    let mut out = Mesh::default();
    let mut instances = 0;
    let to_mm = scale(unit);
    for item in &parts[&root].build {
        let part = item.path.as_deref().unwrap_or(&root);
        let transform = compose(&item.transform, &to_mm);
        emit(
            &parts,
            part,
            item.objectid,
            &transform,
            0,
            &mut instances,
            &mut out,
        )?;
    }
    Ok(out)
}

fn referenced_parts(part: &Part) -> Vec<String> {
    let components = part.objects.values().flat_map(|o| match o {
        Object::Components(c) => c.as_slice(),
        Object::Mesh { .. } => &[],
    });
    components
        .chain(part.build.iter())
        .filter_map(|r| r.path.clone())
        .collect()
}

/// Triangles an object expands to with its components instanced (memoised per object, so
/// shared sub-assemblies are counted once; saturating, so nesting cannot overflow).
fn instanced_triangles(
    parts: &HashMap<String, Part>,
    part_name: &str,
    objectid: u32,
    depth: usize,
    memo: &mut HashMap<(String, u32), u64>,
) -> Result<u64, MeshError> {
    if depth > MAX_DEPTH {
        return Err(bad(format!(
            "3MF components are nested deeper than {MAX_DEPTH} levels (or form a cycle)"
        )));
    }
    if let Some(&n) = memo.get(&(part_name.to_string(), objectid)) {
        return Ok(n);
    }
    let part = parts
        .get(part_name)
        .ok_or_else(|| bad(format!("3MF: model part {part_name:?} is missing")))?;
    let object = part.objects.get(&objectid).ok_or_else(|| {
        bad(format!(
            "3MF: object {objectid} is referenced but not defined in {part_name:?}"
        ))
    })?;
    let n = match object {
        Object::Mesh { triangles, .. } => triangles.len() as u64,
        Object::Components(components) => {
            let mut sum: u64 = 0;
            for c in components {
                let target = c.path.as_deref().unwrap_or(part_name);
                sum = sum.saturating_add(instanced_triangles(
                    parts,
                    target,
                    c.objectid,
                    depth + 1,
                    memo,
                )?);
            }
            sum
        }
    };
    memo.insert((part_name.to_string(), objectid), n);
    Ok(n)
}

fn emit(
    parts: &HashMap<String, Part>,
    part_name: &str,
    objectid: u32,
    transform: &Affine,
    depth: usize,
    instances: &mut usize,
    out: &mut Mesh,
) -> Result<(), MeshError> {
    *instances += 1;
    if *instances > MAX_INSTANCES {
        return Err(bad(format!(
            "3MF: the build expands to more than {MAX_INSTANCES} object instances"
        )));
    }
    if depth > MAX_DEPTH {
        return Err(bad(format!(
            "3MF components are nested deeper than {MAX_DEPTH} levels (or form a cycle)"
        )));
    }
    let part = parts
        .get(part_name)
        .ok_or_else(|| bad(format!("3MF: model part {part_name:?} is missing")))?;
    let object = part.objects.get(&objectid).ok_or_else(|| {
        bad(format!(
            "3MF: object {objectid} is referenced but not defined in {part_name:?}"
        ))
    })?;
    match object {
        Object::Components(components) => {
            for c in components {
                let target = c.path.as_deref().unwrap_or(part_name);
                let t = compose(&c.transform, transform);
                emit(parts, target, c.objectid, &t, depth + 1, instances, out)?;
            }
        }
        Object::Mesh {
            vertices,
            triangles,
        } => {
            if out.triangles.len() + triangles.len() > MAX_TRIANGLES
                || out.vertices.len() + vertices.len() > u32::MAX as usize
            {
                return Err(bad(format!(
                    "3MF: the build has more than {MAX_TRIANGLES} triangles"
                )));
            }
            let base = out.vertices.len() as u32;
            let mirrored = determinant(transform) < 0.0;
            out.vertices.reserve(vertices.len());
            for &p in vertices {
                let q = apply(transform, p);
                let q = [q[0] as f32, q[1] as f32, q[2] as f32];
                if q.iter().any(|c| !c.is_finite()) {
                    return Err(bad("3MF: a transformed vertex is not finite"));
                }
                out.vertices.push(q);
            }
            out.triangles.reserve(triangles.len());
            for &[a, b, c] in triangles {
                out.triangles.push(if mirrored {
                    [base + a, base + c, base + b]
                } else {
                    [base + a, base + b, base + c]
                });
            }
        }
    }
    Ok(())
}

/// Normalises an OPC part name (`/3D/x.model` → `3D/x.model`).
fn part_name(target: &str) -> String {
    target.trim().trim_start_matches('/').to_string()
}

/// The zip entry name for a part, matching case-insensitively as OPC part names are.
fn zip_entry<R: Read + Seek>(zip: &ZipArchive<R>, name: &str) -> Option<String> {
    if zip.index_for_name(name).is_some() {
        return Some(name.to_string());
    }
    zip.file_names()
        .filter_map(Result::ok)
        .find(|n| n.eq_ignore_ascii_case(name))
        .map(|n| n.into_owned())
}

/// The root model part: the `3dmodel` relationship target in `_rels/.rels`, else
/// `3D/3dmodel.model`, else the only `*.model` entry.
fn root_part_name<R: Read + Seek>(zip: &mut ZipArchive<R>) -> Result<String, MeshError> {
    if let Some(rels) = zip_entry(zip, "_rels/.rels") {
        let file = zip
            .by_name(&rels)
            .map_err(|e| bad(format!("3MF: cannot open _rels/.rels: {e}")))?;
        if let Some(target) = root_relationship_target(file)? {
            let name = part_name(&target);
            return zip_entry(zip, &name).ok_or_else(|| {
                bad(format!(
                    "3MF: the root model part {name:?} named in _rels/.rels is missing"
                ))
            });
        }
    }
    if let Some(name) = zip_entry(zip, DEFAULT_ROOT) {
        return Ok(name);
    }
    let models: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n.to_ascii_lowercase().ends_with(".model"))
        .map(|n| n.into_owned())
        .collect();
    match models.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(bad(
            "not a 3MF file: the zip archive has no 3D model part (3D/3dmodel.model)",
        )),
        _ => Err(bad(
            "3MF: several model parts and no _rels/.rels naming the root one",
        )),
    }
}

/// The `Target` of the first relationship of type `…/3dmodel` in a `.rels` part.
fn root_relationship_target(rels: impl Read) -> Result<Option<String>, MeshError> {
    let mut reader = Reader::from_reader(BufReader::new(limited(rels, 1 << 20, "_rels/.rels")));
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "Relationship" => {
                let ty = attr(&e, "Type")?;
                if ty.is_some_and(|t| t.ends_with("/3dmodel")) {
                    if let Some(target) = attr(&e, "Target")? {
                        return Ok(Some(target));
                    }
                }
            }
            Ok(Event::Eof) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(bad(format!("3MF: _rels/.rels is not valid XML: {e}"))),
        }
        buf.clear();
    }
}

/// A reader that fails once more than `limit` bytes were read.
struct Limited<R> {
    inner: R,
    left: u64,
    what: String,
}

fn limited<R: Read>(inner: R, limit: u64, what: &str) -> Limited<R> {
    Limited {
        inner,
        left: limit,
        what: what.to_string(),
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // Only an error if there really is more.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is too large to parse", self.what),
                )),
            };
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Vertices and triangles parsed so far across all parts.
#[derive(Default)]
struct Budget {
    vertices: usize,
    triangles: usize,
}

/// The element kinds we care about, by position in the model tree.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Node {
    Model,
    Resources,
    Object,
    Mesh,
    Vertices,
    Vertex,
    Triangles,
    Triangle,
    Components,
    Component,
    Build,
    Item,
    Other,
}

fn classify(parent: Option<Node>, local: &str, core: bool) -> Node {
    if !core {
        return Node::Other;
    }
    match (parent, local) {
        (None, "model") => Node::Model,
        (Some(Node::Model), "resources") => Node::Resources,
        (Some(Node::Model), "build") => Node::Build,
        (Some(Node::Resources), "object") => Node::Object,
        (Some(Node::Object), "mesh") => Node::Mesh,
        (Some(Node::Object), "components") => Node::Components,
        (Some(Node::Mesh), "vertices") => Node::Vertices,
        (Some(Node::Mesh), "triangles") => Node::Triangles,
        (Some(Node::Vertices), "vertex") => Node::Vertex,
        (Some(Node::Triangles), "triangle") => Node::Triangle,
        (Some(Node::Components), "component") => Node::Component,
        (Some(Node::Build), "item") => Node::Item,
        _ => Node::Other,
    }
}

/// The object being parsed.
struct OpenObject {
    id: u32,
    vertices: Vec<[f64; 3]>,
    triangles: Vec<[u32; 3]>,
    components: Vec<ObjRef>,
    has_mesh: bool,
}

fn parse_part<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    name: &str,
    budget: &mut Budget,
) -> Result<Part, MeshError> {
    let entry =
        zip_entry(zip, name).ok_or_else(|| bad(format!("3MF: model part {name:?} is missing")))?;
    let file = zip
        .by_name(&entry)
        .map_err(|e| bad(format!("3MF: cannot open {name:?}: {e}")))?;
    let mut reader = NsReader::from_reader(BufReader::with_capacity(
        64 * 1024,
        limited(file, MAX_PART_BYTES, name),
    ));
    let mut buf = Vec::new();
    let mut stack: Vec<Node> = Vec::new();
    let mut part = Part {
        unit: 1.0,
        objects: HashMap::new(),
        build: Vec::new(),
    };
    let mut object: Option<OpenObject> = None;
    let mut saw_model = false;

    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| bad(format!("3MF: {name:?} is not valid XML: {e}")))?;
        let core = match ns {
            ResolveResult::Unbound => true,
            ResolveResult::Bound(ns) => ns.as_ref().starts_with(CORE_NS_PREFIX),
            ResolveResult::Unknown(_) => false,
        };
        match event {
            Event::Start(e) => {
                let node = classify(stack.last().copied(), e.local_name().as_ref(), core);
                saw_model |= node == Node::Model;
                on_open(node, &e, &mut part, &mut object, budget, name)?;
                stack.push(node);
            }
            Event::Empty(e) => {
                let node = classify(stack.last().copied(), e.local_name().as_ref(), core);
                saw_model |= node == Node::Model;
                on_open(node, &e, &mut part, &mut object, budget, name)?;
                on_close(Some(node), &mut part, &mut object, name)?;
            }
            Event::End(_) => {
                let node = stack.pop();
                on_close(node, &mut part, &mut object, name)?;
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(bad(format!(
            "3MF: {name:?} is not valid XML: it ends inside an element (truncated?)"
        )));
    }
    if !saw_model {
        return Err(bad(format!("3MF: {name:?} has no <model> root element")));
    }
    Ok(part)
}

fn on_open(
    node: Node,
    e: &BytesStart<'_>,
    part: &mut Part,
    object: &mut Option<OpenObject>,
    budget: &mut Budget,
    name: &str,
) -> Result<(), MeshError> {
    match node {
        Node::Model => {
            if let Some(unit) = attr(e, "unit")? {
                part.unit = unit_scale(unit.trim()).ok_or_else(|| {
                    bad(format!(
                        "3MF: unsupported unit {unit:?} (expected micron, millimeter, centimeter, inch, foot or meter)"
                    ))
                })?;
            }
        }
        Node::Object => {
            let id = required_u32(e, "id", "object")?;
            *object = Some(OpenObject {
                id,
                vertices: Vec::new(),
                triangles: Vec::new(),
                components: Vec::new(),
                has_mesh: false,
            });
        }
        Node::Mesh => {
            if let Some(o) = object.as_mut() {
                o.has_mesh = true;
            }
        }
        Node::Vertex => {
            let o = object
                .as_mut()
                .ok_or_else(|| bad("3MF: vertex outside an object"))?;
            budget.vertices += 1;
            if budget.vertices > MAX_VERTICES {
                return Err(bad(format!(
                    "3MF: more than {MAX_VERTICES} vertices in {name:?}"
                )));
            }
            o.vertices.push([
                required_f64(e, "x", "vertex")?,
                required_f64(e, "y", "vertex")?,
                required_f64(e, "z", "vertex")?,
            ]);
        }
        Node::Triangle => {
            let o = object
                .as_mut()
                .ok_or_else(|| bad("3MF: triangle outside an object"))?;
            budget.triangles += 1;
            if budget.triangles > MAX_TRIANGLES {
                return Err(bad(format!(
                    "3MF: more than {MAX_TRIANGLES} triangles in {name:?}"
                )));
            }
            o.triangles.push([
                required_u32(e, "v1", "triangle")?,
                required_u32(e, "v2", "triangle")?,
                required_u32(e, "v3", "triangle")?,
            ]);
        }
        Node::Component => {
            let o = object
                .as_mut()
                .ok_or_else(|| bad("3MF: component outside an object"))?;
            o.components.push(object_ref(e, "component")?);
        }
        Node::Item => part.build.push(object_ref(e, "item")?),
        Node::Resources
        | Node::Vertices
        | Node::Triangles
        | Node::Components
        | Node::Build
        | Node::Other => {}
    }
    Ok(())
}

fn on_close(
    node: Option<Node>,
    part: &mut Part,
    object: &mut Option<OpenObject>,
    name: &str,
) -> Result<(), MeshError> {
    if node != Some(Node::Object) {
        return Ok(());
    }
    let Some(o) = object.take() else {
        return Ok(());
    };
    let count = o.vertices.len() as u64;
    if let Some(t) = o
        .triangles
        .iter()
        .find(|t| t.iter().any(|&i| u64::from(i) >= count))
    {
        return Err(bad(format!(
            "3MF: object {} in {name:?} has a triangle {t:?} indexing past its {count} vertices",
            o.id
        )));
    }
    let value = if o.has_mesh {
        Object::Mesh {
            vertices: o.vertices,
            triangles: o.triangles,
        }
    } else {
        Object::Components(o.components)
    };
    if part.objects.insert(o.id, value).is_some() {
        return Err(bad(format!(
            "3MF: object id {} is defined twice in {name:?}",
            o.id
        )));
    }
    Ok(())
}

/// An attribute value by local name (any prefix), or `None`.
fn attr(e: &BytesStart<'_>, local: &str) -> Result<Option<String>, MeshError> {
    let mut attrs = e.attributes();
    attrs.with_checks(false);
    for a in attrs {
        let a = a.map_err(|err| bad(format!("3MF: malformed XML attribute: {err}")))?;
        if a.key.local_name().as_ref() == local {
            return Ok(Some(a.value.into_owned()));
        }
    }
    Ok(None)
}

/// The same as [`attr`] but only for an attribute with a namespace prefix (`p:path`).
fn prefixed_attr(e: &BytesStart<'_>, local: &str) -> Result<Option<String>, MeshError> {
    let mut attrs = e.attributes();
    attrs.with_checks(false);
    for a in attrs {
        let a = a.map_err(|err| bad(format!("3MF: malformed XML attribute: {err}")))?;
        if a.key.prefix().is_some() && a.key.local_name().as_ref() == local {
            return Ok(Some(a.value.into_owned()));
        }
    }
    Ok(None)
}

fn required_f64(e: &BytesStart<'_>, key: &str, element: &str) -> Result<f64, MeshError> {
    let value =
        attr_unprefixed(e, key)?.ok_or_else(|| bad(format!("3MF: <{element}> without {key}")))?;
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(bad(format!(
            "3MF: <{element}> {key}={value:?} is not a number"
        ))),
    }
}

fn required_u32(e: &BytesStart<'_>, key: &str, element: &str) -> Result<u32, MeshError> {
    let value =
        attr_unprefixed(e, key)?.ok_or_else(|| bad(format!("3MF: <{element}> without {key}")))?;
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| bad(format!("3MF: <{element}> {key}={value:?} is not an index")))
}

/// An unprefixed attribute (the core ones), without allocating for the common case.
fn attr_unprefixed<'a>(
    e: &'a BytesStart<'_>,
    key: &str,
) -> Result<Option<std::borrow::Cow<'a, str>>, MeshError> {
    let mut attrs = e.attributes();
    attrs.with_checks(false);
    for a in attrs {
        let a = a.map_err(|err| bad(format!("3MF: malformed XML attribute: {err}")))?;
        if a.key.as_ref() == key {
            return Ok(Some(a.value));
        }
    }
    Ok(None)
}

fn object_ref(e: &BytesStart<'_>, element: &str) -> Result<ObjRef, MeshError> {
    let objectid = required_u32(e, "objectid", element)?;
    let transform = match attr_unprefixed(e, "transform")? {
        None => IDENTITY,
        Some(text) => parse_transform(&text).ok_or_else(|| {
            bad(format!(
                "3MF: <{element}> transform {text:?} is not 12 numbers"
            ))
        })?,
    };
    let path = prefixed_attr(e, "path")?
        .map(|p| part_name(&p))
        .filter(|p| !p.is_empty());
    Ok(ObjRef {
        path,
        objectid,
        transform,
    })
}

fn parse_transform(text: &str) -> Option<Affine> {
    let mut m = [0.0; 12];
    let mut numbers = text.split_ascii_whitespace();
    for slot in &mut m {
        let v: f64 = numbers.next()?.parse().ok()?;
        if !v.is_finite() {
            return None;
        }
        *slot = v;
    }
    numbers.next().is_none().then_some(m)
}
