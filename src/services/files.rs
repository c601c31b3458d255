//! Files and projects: what an upload is, its analysis and preview, registering it, and the
//! metadata calls (`get_projects`, `file_update`, `get_slicer_settings_for_gcode`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use crate::db::models::{
    FileId, FileKind, FileState, NewFile, PrinterType, Project, StoredFile, User,
};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use crate::gcode::{self, MachineLimits};
use crate::mesh::{self, MeshFormat};
use crate::render::{self, RenderOptions, ToolpathPreview};
use crate::services::auth::random_token;
use crate::services::jobs;

/// `upload_type_id` when the client gives none ("Website Upload" in 3DPrinterOS terms).
pub const WEBSITE_UPLOAD: i32 = 1;
pub const DEFAULT_PROJECT: &str = "Default";
pub const DEFAULT_COLOR: &str = "#3b82f6";
const ACCEPTED: &str = "accepted: .gcode, .gco, .g (also zipped), .stl, .3mf, .obj";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gcode,
    Mesh(MeshFormat),
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gcode => "gcode",
            Kind::Mesh(f) => f.extension(),
        }
    }
}

impl From<Kind> for FileKind {
    fn from(k: Kind) -> FileKind {
        match k {
            Kind::Gcode => FileKind::Gcode,
            Kind::Mesh(MeshFormat::Stl) => FileKind::Stl,
            Kind::Mesh(MeshFormat::ThreeMf) => FileKind::ThreeMf,
            Kind::Mesh(MeshFormat::Obj) => FileKind::Obj,
        }
    }
}

fn is_gcode_ext(ext: &str) -> bool {
    matches!(ext, "gcode" | "gco" | "g")
}

/// The kind a file name announces, and whether it is a zip around a G-code file.
pub fn kind_from_filename(name: &str, zip_flag: bool) -> Result<(Kind, bool)> {
    let lower = name.to_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if ext == "zip" {
        return Ok((Kind::Gcode, true));
    }
    if is_gcode_ext(ext) {
        return Ok((Kind::Gcode, zip_flag));
    }
    if let Some(f) = MeshFormat::from_extension(ext) {
        return Ok((Kind::Mesh(f), false));
    }
    Err(Error::invalid(format!(
        "unsupported file type '{}'; {ACCEPTED}",
        if ext.is_empty() { name } else { ext }
    )))
}

/// A file name safe to store and show: the last path component, no control characters.
pub fn clean_filename(name: &str) -> Result<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    // Bidi controls can make `evil\u{202E}edoc.exe` display as `evilexe.gcode`; drop them
    // with the other control characters.
    let cleaned: String = base
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return Err(Error::invalid("the uploaded file has no usable name"));
    }
    Ok(cleaned.chars().take(255).collect())
}

/// Unicode bidirectional formatting characters (embeddings, overrides, isolates, marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Reads through a decompressing reader and fails once more than `limit` bytes came out, so a
/// small zip cannot expand into unbounded work or disk use. `exceeded` tells the caller why a
/// read failed, since parsers wrap the I/O error in their own.
struct LimitedReader<R> {
    inner: R,
    left: u64,
    exceeded: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded.set(true);
            return Err(std::io::Error::other("decompressed size limit exceeded"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn unzipped_too_large(limit: u64) -> Error {
    Error::TooLarge(format!(
        "the zipped G-code expands beyond this server's limit of {} MiB \
         (storage.max_unzipped_mb)",
        limit / (1024 * 1024)
    ))
}

/// The one entry of a G-code zip that is analysed, priced, stored and unzipped: the only file
/// entry named `.gcode/.gco/.g`. Zips with none or several are refused, so what was checked is
/// always what a printer gets.
fn gcode_entry<R: Read + Seek>(archive: &mut zip::ZipArchive<R>, limit: u64) -> Result<usize> {
    let mut found = None;
    for i in 0..archive.len() {
        let f = archive.by_index(i).map_err(|e| refuse("zip file", e))?;
        let is_gcode = f.is_file()
            && f.name()
                .ok()
                .and_then(|n| n.rsplit_once('.').map(|(_, e)| e.to_lowercase()))
                .is_some_and(|e| is_gcode_ext(&e));
        if !is_gcode {
            continue;
        }
        if found.is_some() {
            return Err(refuse(
                "zipped G-code",
                "the zip holds more than one G-code file; upload one per zip",
            ));
        }
        // The declared size may lie (the reader below is what counts), but an honest
        // oversized entry is refused before any work.
        if f.size() > limit {
            return Err(unzipped_too_large(limit));
        }
        found = Some(i);
    }
    found.ok_or_else(|| refuse("zipped G-code", "the zip holds no .gcode file"))
}

/// What the analysis of an upload found.
pub struct Analysed {
    pub kind: Kind,
    pub zipped: bool,
    pub analysis: Value,
    pub settings: Option<BTreeMap<String, String>>,
    pub slicer: Option<String>,
    pub preview_png: Vec<u8>,
}

fn refuse(what: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("the file is not a valid {what}: {why}"))
}

/// Checks that the content matches the announced kind, measures it and renders a preview.
/// Blocking (runs on the blocking pool); reads the staged file, never the whole into memory
/// for G-code.
pub fn analyse_staged(path: &Path, size: u64, kind: Kind, zipped: bool) -> Result<Analysed> {
    analyse_staged_limited(path, size, kind, zipped, u64::MAX)
}

/// [`analyse_staged`] with a bound on the decompressed size of a zipped G-code entry.
pub fn analyse_staged_limited(
    path: &Path,
    size: u64,
    kind: Kind,
    zipped: bool,
    max_unzipped: u64,
) -> Result<Analysed> {
    let open = || File::open(path).map_err(|e| Error::internal(format!("staged upload: {e}")));
    let mut head = vec![0u8; mesh::SNIFF_LEN.max(64 * 1024)];
    let n = read_head(&mut open()?, &mut head)?;
    head.truncate(n);
    if size == 0 {
        return Err(Error::invalid("the uploaded file is empty"));
    }
    match kind {
        Kind::Gcode if zipped => {
            let mut archive =
                zip::ZipArchive::new(BufReader::new(open()?)).map_err(|e| refuse("zip file", e))?;
            let index = gcode_entry(&mut archive, max_unzipped)?;
            let mut entry = archive.by_index(index).map_err(|e| refuse("zip file", e))?;
            let mut entry_head = vec![0u8; 64 * 1024];
            let n = read_head(&mut entry, &mut entry_head)?;
            entry_head.truncate(n);
            if !gcode::looks_like_gcode(&entry_head) {
                return Err(refuse(
                    "zipped G-code",
                    "its content does not look like G-code",
                ));
            }
            drop(entry);
            // The slicer's configuration block (machine limits) is at the end: a first,
            // bounded pass keeps only the tail.
            let entry = archive.by_index(index).map_err(|e| refuse("zip file", e))?;
            let tail = gcode::read_tail(
                LimitedReader {
                    inner: entry,
                    left: max_unzipped,
                    exceeded: std::rc::Rc::new(std::cell::Cell::new(false)),
                },
                gcode::TAIL_BYTES,
            )
            .map_err(|e| refuse("zip file", e))?;
            let entry = archive.by_index(index).map_err(|e| refuse("zip file", e))?;
            let exceeded = std::rc::Rc::new(std::cell::Cell::new(false));
            let limited = LimitedReader {
                inner: entry,
                left: max_unzipped,
                exceeded: exceeded.clone(),
            };
            let r = gcode_analysis(BufReader::new(limited), &tail, true);
            if exceeded.get() {
                return Err(unzipped_too_large(max_unzipped));
            }
            r
        }
        Kind::Gcode => {
            if !gcode::looks_like_gcode(&head) {
                return Err(refuse(
                    "G-code file",
                    "its content does not look like G-code",
                ));
            }
            let tail = read_file_tail(&mut open()?, size)?;
            gcode_analysis(BufReader::with_capacity(256 * 1024, open()?), &tail, false)
        }
        Kind::Mesh(format) => {
            if mesh::sniff(&head, size) != Some(format) {
                return Err(refuse(
                    &format.extension().to_uppercase(),
                    "its content does not match the file type",
                ));
            }
            let m = mesh::read_mesh(format, BufReader::new(open()?)).map_err(|e| match e {
                mesh::MeshError::Io(e) => Error::internal(format!("staged upload: {e}")),
                other => refuse(&format.extension().to_uppercase(), other),
            })?;
            let analysis = mesh::analyse(format, &m);
            let preview_png = render::render_mesh_png(&m, &RenderOptions::default());
            Ok(Analysed {
                kind,
                zipped: false,
                analysis: serde_json::to_value(&analysis).map_err(Error::internal)?,
                settings: None,
                slicer: None,
                preview_png,
            })
        }
    }
}

fn read_head(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(refuse("file", e)),
        }
    }
    Ok(n)
}

struct PreviewVisitor(ToolpathPreview);

impl gcode::ToolpathVisitor for PreviewVisitor {
    fn segment(&mut self, from: [f64; 3], to: [f64; 3], extruding: bool) {
        self.0.add_segment(from, to, extruding);
    }
}

/// The last [`gcode::TAIL_BYTES`] of a staged file (where slicers put their configuration).
fn read_file_tail(f: &mut File, size: u64) -> Result<Vec<u8>> {
    let start = size.saturating_sub(gcode::TAIL_BYTES as u64);
    f.seek(SeekFrom::Start(start))
        .map_err(|e| Error::internal(format!("staged upload: {e}")))?;
    let mut tail = Vec::with_capacity((size - start) as usize);
    f.take(gcode::TAIL_BYTES as u64)
        .read_to_end(&mut tail)
        .map_err(|e| Error::internal(format!("staged upload: {e}")))?;
    Ok(tail)
}

fn gcode_analysis(reader: impl std::io::BufRead, tail: &[u8], zipped: bool) -> Result<Analysed> {
    let mut preview = PreviewVisitor(ToolpathPreview::new());
    // Starting limits: the slicer's configuration block at the end of the file, applied the
    // way the slicer's own estimator does (`gcode::limits_from_tail`); Marlin 2 defaults for
    // files that carry none. The file's own M201/M203/M204/M205 override either.
    let limits = gcode::limits_from_tail(tail, &MachineLimits::marlin_defaults());
    let a = gcode::analyse_with(reader, &limits, Some(&mut preview))
        .map_err(|e| refuse("G-code file", e))?;
    if a.moves == 0 {
        return Err(refuse("G-code file", "it contains no moves"));
    }
    let (preview_png, stats) = preview.0.render_png_with_stats(&RenderOptions::default());
    if stats.drawn < stats.segments {
        // Dense G-code is thinned to keep drawing bounded; say so for whoever looks at a preview.
        tracing::debug!(?stats, "toolpath preview thinned to its drawing budget");
    }
    Ok(Analysed {
        kind: Kind::Gcode,
        zipped,
        slicer: a.slicer.clone(),
        settings: Some(a.settings.clone()),
        analysis: serde_json::to_value(&a).map_err(Error::internal)?,
        preview_png,
    })
}

/// Project parameters of an upload.
#[derive(Debug, Default, Clone)]
pub struct UploadMeta {
    pub project_id: Option<i64>,
    pub project_name: Option<String>,
    pub project_color: Option<String>,
    pub upload_type_id: Option<i32>,
    pub upload_soft_name: Option<String>,
    /// The id promised to this file beforehand (`/v1` upload ids); never from a client.
    pub reserved_id: Option<FileId>,
}

/// Validates the project choice before anything is stored (read only).
pub fn check_project(conn: &mut DbConn, user: &User, meta: &UploadMeta) -> Result<()> {
    if let Some(id) = meta.project_id {
        Project::find_for_user(conn, user.id, id)?
            .ok_or_else(|| Error::not_found(format!("Project {id} not found")))?;
    }
    Ok(())
}

fn resolve_project(conn: &mut DbConn, user: &User, meta: &UploadMeta) -> Result<Project> {
    if let Some(id) = meta.project_id {
        return Project::find_for_user(conn, user.id, id)?
            .ok_or_else(|| Error::not_found(format!("Project {id} not found")));
    }
    let name = meta
        .project_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_PROJECT);
    if let Some(p) = Project::find_by_name(conn, user.id, name)? {
        return Ok(p);
    }
    let color = meta
        .project_color
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or(DEFAULT_COLOR);
    Ok(Project::insert(conn, user.id, name, color)?)
}

/// A complete file in staging, before analysis.
pub struct StagedContent<'a> {
    pub path: &'a Path,
    /// Already cleaned (`clean_filename`).
    pub filename: &'a str,
    pub size: u64,
    pub sha256: &'a str,
}

/// Everything known about a stored upload, ready to register.
pub struct Upload<'a> {
    pub filename: &'a str,
    pub size: u64,
    pub sha256: &'a str,
    pub storage_key: &'a str,
    pub picture: &'a str,
    pub analysed: &'a Analysed,
}

/// Registers a completely stored upload in one transaction.
pub fn register(
    conn: &mut DbConn,
    user: &User,
    meta: &UploadMeta,
    up: &Upload,
) -> Result<(StoredFile, Project)> {
    let analysis = up.analysed.analysis.to_string();
    let settings = up
        .analysed
        .settings
        .as_ref()
        .map(|s| serde_json::to_string(s).map_err(Error::internal))
        .transpose()?;
    db::write_transaction(conn, |c| {
        let project = resolve_project(c, user, meta)?;
        let now = db::now();
        let new = NewFile {
            user_id: user.id,
            organization_id: user.organization_id,
            project_id: Some(project.id),
            state: FileState::Ready,
            filename: up.filename,
            kind: up.analysed.kind.into(),
            size: i64::try_from(up.size).map_err(Error::internal)?,
            sha256: up.sha256,
            storage_key: up.storage_key,
            upload_type_id: meta.upload_type_id.unwrap_or(WEBSITE_UPLOAD),
            upload_soft_name: meta.upload_soft_name.as_deref(),
            printer_type_id: None,
            slicer: up.analysed.slicer.as_deref(),
            zip: up.analysed.zipped,
            analysis: Some(&analysis),
            slicer_settings: settings.as_deref(),
            picture: Some(up.picture),
            created_at: now,
            updated_at: now,
        };
        let file = match meta.reserved_id {
            Some(id) => StoredFile::insert_with_id(c, id, &new)?,
            None => StoredFile::insert(c, &new)?,
        };
        Ok((file, project))
    })
}

pub fn projects(conn: &mut DbConn, user: &User) -> Result<Vec<Project>> {
    Ok(Project::of_user(conn, user.id)?)
}

/// The caller's G-code file and the settings embedded in it, as a flat map of strings.
pub fn slicer_settings(
    conn: &mut DbConn,
    user: &User,
    file_id: FileId,
) -> Result<BTreeMap<String, String>> {
    let file = StoredFile::find_owned(conn, user.id, file_id)?
        .ok_or_else(|| Error::not_found(format!("File {file_id} not found")))?;
    if file.kind != FileKind::Gcode {
        return Err(Error::invalid(format!(
            "File {file_id} is not a G-code file"
        )));
    }
    let mut out: BTreeMap<String, String> = file
        .slicer_settings
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(Error::internal)?
        .unwrap_or_default();
    out.insert("file_id".into(), file.id.to_string());
    if let Some(t) = file.printer_type_id {
        out.insert("printer_type_id".into(), t.to_string());
    }
    if let Some(s) = &file.slicer {
        out.insert("slicer".into(), s.clone());
    }
    Ok(out)
}

/// One entry of `file_update`'s `updates`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileChange {
    pub file_id: FileId,
    pub ptype: Option<i64>,
    pub gtype: Option<String>,
    pub zip: Option<bool>,
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "on" | "yes" | "t" => Some(true),
            "0" | "false" | "off" | "no" | "f" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Reads `updates` (`{file_id: {ptype, gtype, zip}}`, from JSON or nested form keys).
pub fn parse_updates(updates: &Value) -> Result<Vec<FileChange>> {
    let bad = |m: String| Error::invalid(format!("updates: {m}"));
    let map = updates
        .as_object()
        .ok_or_else(|| bad("must be an object keyed by file id".into()))?;
    if map.is_empty() {
        return Err(bad("no files given".into()));
    }
    map.iter()
        .map(|(key, v)| {
            let file_id = key
                .trim()
                .parse::<i64>()
                .map_err(|_| bad(format!("'{key}' is not a file id")))?;
            let obj = v
                .as_object()
                .ok_or_else(|| bad(format!("the entry for file {file_id} must be an object")))?;
            let ptype =
                match obj.get("ptype") {
                    None | Some(Value::Null) => None,
                    Some(p) => Some(as_i64(p).ok_or_else(|| {
                        bad(format!("ptype of file {file_id} must be an integer"))
                    })?),
                };
            let gtype = match obj.get("gtype") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Some(_) => {
                    return Err(bad(format!(
                        "gtype of file {file_id} must be a slicer name"
                    )))
                }
            };
            let zip =
                match obj.get("zip") {
                    None | Some(Value::Null) => None,
                    Some(z) => Some(as_bool(z).ok_or_else(|| {
                        bad(format!("zip of file {file_id} must be true or false"))
                    })?),
                };
            Ok(FileChange {
                file_id: FileId(file_id),
                ptype,
                gtype,
                zip,
            })
        })
        .collect()
}

/// Checks every change before any is applied: the files are the caller's, printer types exist,
/// only G-code is zipped. Returns the files in the order of the changes.
pub fn check_changes(
    conn: &mut DbConn,
    user: &User,
    changes: &[FileChange],
) -> Result<Vec<StoredFile>> {
    let types: Vec<i64> = PrinterType::all(conn)?.iter().map(|t| t.id).collect();
    changes
        .iter()
        .map(|ch| {
            let file = StoredFile::find_owned(conn, user.id, ch.file_id)?
                .ok_or_else(|| Error::not_found(format!("File {} not found", ch.file_id)))?;
            if let Some(t) = ch.ptype {
                if !types.contains(&t) {
                    return Err(Error::invalid(format!("updates: unknown printer type {t}")));
                }
            }
            if ch.zip.is_some() && file.kind != FileKind::Gcode {
                return Err(Error::invalid(format!(
                    "updates: file {} is not G-code; only G-code can be zipped",
                    ch.file_id
                )));
            }
            Ok(file)
        })
        .collect()
}

/// Applies checked metadata changes (and new content keys for re-zipped files) in one transaction.
pub fn apply_changes(
    conn: &mut DbConn,
    user: &User,
    changes: &[FileChange],
    new_content: &[(FileId, String, i64, String, bool)],
) -> Result<()> {
    db::write_transaction(conn, |c| {
        check_changes(c, user, changes)?;
        for ch in changes {
            if ch.ptype.is_some() {
                StoredFile::set_printer_type(c, ch.file_id, ch.ptype)?;
            }
            if let Some(g) = &ch.gtype {
                StoredFile::set_slicer(c, ch.file_id, g)?;
            }
        }
        for (id, key, size, sha, zip) in new_content {
            StoredFile::set_content(c, *id, key, *size, sha, *zip)?;
        }
        Ok(())
    })
}

/// Writes the zipped (or unzipped) form of a G-code file to a new staging file; returns it with
/// its size and sha256. Blocking.
pub fn rezip(
    source: &Path,
    filename: &str,
    to_zip: bool,
    max_unzipped: u64,
    out: &mut tempfile::NamedTempFile,
) -> Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Write;
    let io = |e: std::io::Error| Error::io("re-zipping", e);
    let mut src = BufReader::new(File::open(source).map_err(io)?);
    if to_zip {
        let mut zip = zip::ZipWriter::new(out.as_file_mut());
        let inner = filename.strip_suffix(".zip").unwrap_or(filename);
        zip.start_file(inner, zip::write::SimpleFileOptions::default())
            .map_err(Error::internal)?;
        std::io::copy(&mut src, &mut zip).map_err(io)?;
        zip.finish().map_err(Error::internal)?;
    } else {
        let mut archive = zip::ZipArchive::new(src).map_err(|e| refuse("zip file", e))?;
        // The same entry the upload analysed, under the same bound.
        let index = gcode_entry(&mut archive, max_unzipped)?;
        let entry = archive.by_index(index).map_err(|e| refuse("zip file", e))?;
        let exceeded = std::rc::Rc::new(std::cell::Cell::new(false));
        let mut limited = LimitedReader {
            inner: entry,
            left: max_unzipped,
            exceeded: exceeded.clone(),
        };
        if let Err(e) = std::io::copy(&mut limited, out.as_file_mut()) {
            return Err(if exceeded.get() {
                unzipped_too_large(max_unzipped)
            } else {
                refuse("zip file", e)
            });
        }
    }
    let f = out.as_file_mut();
    f.flush().map_err(io)?;
    let size = f.seek(SeekFrom::End(0)).map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut BufReader::new(&*f), &mut hasher).map_err(io)?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// `/render/<picture>`: the preview may be seen by whoever may see a file or a job using it
/// (the file's owner, or anyone `jobs::visible_job` lets see a job printing that file).
/// Anything else looks absent.
pub fn visible_picture(conn: &mut DbConn, user: &User, picture: &str) -> Result<()> {
    use crate::db::models::Job;
    for file in StoredFile::with_picture(conn, picture)? {
        if file.user_id == user.id {
            return Ok(());
        }
        for job in Job::of_file(conn, file.id)? {
            match jobs::visible_job(conn, user, job.id) {
                Ok(_) => return Ok(()),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Err(Error::not_found("No such picture"))
}

/// The storage keys of a file's content and its preview (what deleting it must remove).
pub fn stored_keys(f: &StoredFile) -> Vec<String> {
    let mut keys = Vec::new();
    if !f.storage_key.is_empty() {
        keys.push(f.storage_key.clone());
    }
    if let Some(p) = &f.picture {
        keys.push(format!("render/{p}"));
    }
    keys
}

/// Where a stored file and its preview are: `storage_key` (`files/<token>`) and `picture`
/// (stored as `render/<picture>`).
pub struct StoredObjects {
    pub storage_key: String,
    pub picture: String,
}

/// Stores a file's content and its preview under fresh keys, then lets `register` write the
/// rows that name them. What does not end up registered is deleted again: both objects when
/// storing the preview fails, when `register` fails, or when it declines them (`Ok(None)`,
/// e.g. a slice whose lease another worker took over). The one copy of "store, register,
/// undo" that uploads and slice workers share.
pub async fn store_and_register<T, F, Fut>(
    storage: &crate::storage::Storage,
    content: &Path,
    preview_png: Vec<u8>,
    register: F,
) -> Result<Option<T>>
where
    F: FnOnce(StoredObjects) -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let storage_key = format!("files/{}", random_token());
    let picture = format!("{}.png", random_token());
    let picture_key = format!("render/{picture}");
    storage.put_file(&storage_key, content).await?;
    if let Err(e) = storage.put_bytes(&picture_key, preview_png).await {
        let _ = storage.delete(&storage_key).await;
        return Err(e);
    }
    let registered = register(StoredObjects {
        storage_key: storage_key.clone(),
        picture,
    })
    .await;
    if !matches!(registered, Ok(Some(_))) {
        let _ = storage.delete(&storage_key).await;
        let _ = storage.delete(&picture_key).await;
    }
    registered
}
