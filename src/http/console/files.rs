//! The person's files: upload (with a progress bar when scripts run), the list, and one file's
//! page with its preview, its analysis and the printers it can go to. `/quickprint?file_id=N`
//! is that page: slicers open it after "upload and print" (OrcaSlicer) and the Cura plugin's
//! "go to cloud" lands on `/myfiles`. Printing goes through the same `print_file` rule as the
//! Global API; the page only offers what it would accept.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{posted, refused, render, to_login, Chrome, NoticePage, Stamp};
use crate::db::models::{FileId, PrinterId, Project, SliceJob, SliceStatus, StoredFile};
use crate::error::Error;
use crate::gcode::GcodeAnalysis;
use crate::http::apiglobal::Form;
use crate::http::browser::{browser_user, csrf_token, see_other};
use crate::http::routes::Routes;
use crate::http::upload;
use crate::mesh::MeshAnalysis;
use crate::services::auth;
use crate::services::files::UploadMeta;
use crate::services::{jobs, quickprint, slicing};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/myfiles").get(files_page).post(upload_file);
    r.at("/quickprint").get(file_page).post(print);
    r.at("/myfiles/{file_id}/slice").post(slice);
}

/// What the file picker offers; the server decides by name and content all the same.
const ACCEPT: &str = ".gcode,.gco,.g,.gcode.zip,.stl,.3mf,.obj";

/// A file as the list and its page show it.
struct FileView {
    id: i64,
    name: String,
    kind: String,
    size: String,
    uploaded: Stamp,
    picture: Option<String>,
    printable: bool,
    is_model: bool,
    /// One line: time and filament of a G-code, size of a model.
    summary: String,
    project: Option<ProjectView>,
}

/// A project as the files page shows it (its colour only when it is a plain hex colour).
#[derive(Clone)]
struct ProjectView {
    id: i64,
    name: String,
    color: Option<String>,
}

fn project_view(p: &Project) -> ProjectView {
    ProjectView {
        id: p.id,
        name: p.name.clone(),
        color: crate::material::hex_color(&p.color),
    }
}

fn file_view(f: &StoredFile, projects: &[ProjectView]) -> FileView {
    FileView {
        project: f
            .project_id
            .and_then(|id| projects.iter().find(|p| p.id == id))
            .cloned(),
        id: f.id.0,
        name: f.filename.clone(),
        kind: f.kind.as_str().to_uppercase(),
        size: human_size(f.size),
        uploaded: Stamp::new(f.created_at),
        picture: f.picture.clone().filter(|p| !p.is_empty()),
        printable: f.is_printable(),
        is_model: f.kind.is_model(),
        summary: match analysis(f) {
            Some(Analysis::Gcode(g)) => {
                let mut parts = vec![hours_minutes(print_seconds(&g))];
                if g.filament_weight_g > 0.0 {
                    parts.push(format!("{:.1} g", g.filament_weight_g));
                }
                parts.extend(g.filament_type.clone());
                parts.join(" · ")
            }
            Some(Analysis::Mesh(m)) => dimensions(m.size),
            None => String::new(),
        },
    }
}

enum Analysis {
    Gcode(Box<GcodeAnalysis>),
    Mesh(Box<MeshAnalysis>),
}

fn analysis(f: &StoredFile) -> Option<Analysis> {
    let text = f.analysis.as_deref()?;
    if f.kind.is_model() {
        serde_json::from_str(text)
            .ok()
            .map(|m| Analysis::Mesh(Box::new(m)))
    } else {
        serde_json::from_str(text)
            .ok()
            .map(|g| Analysis::Gcode(Box::new(g)))
    }
}

/// The slicer's own estimate when it wrote one (what people compare with), else ours.
fn print_seconds(g: &GcodeAnalysis) -> f64 {
    g.slicer_estimated_time_s.unwrap_or(g.estimated_time_s)
}

fn hours_minutes(seconds: f64) -> String {
    let m = (seconds.max(0.0) / 60.0).round() as i64;
    match m {
        0 => "under a minute".into(),
        1..=59 => format!("{m} min"),
        _ => format!("{} h {:02} min", m / 60, m % 60),
    }
}

fn dimensions(size: [f64; 3]) -> String {
    format!("{:.1} × {:.1} × {:.1} mm", size[0], size[1], size[2])
}

/// Bytes as people read them: `684 B`, `166.8 kB`, `12.4 MB`.
fn human_size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b < 1000.0 {
        format!("{bytes} B")
    } else if b < 1_000_000.0 {
        format!("{:.1} kB", b / 1000.0)
    } else {
        format!("{:.1} MB", b / 1_000_000.0)
    }
}

/// A configured limit, in the binary units it is usually set in: `1 GiB`, `200 MiB`.
fn limit_label(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= 1024 * MIB && bytes.is_multiple_of(1024 * MIB) {
        format!("{} GiB", bytes / (1024 * MIB))
    } else if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The analysis as labelled facts, in the order people look for them.
fn facts(f: &StoredFile) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match analysis(f) {
        Some(Analysis::Gcode(g)) => {
            let mut time = hours_minutes(print_seconds(&g));
            if g.slicer_estimated_time_s.is_some() {
                time.push_str(" (slicer's estimate)");
            }
            out.push(("Print time", time));
            if g.filament_used_mm > 0.0 {
                let mut filament = format!(
                    "{:.1} g · {:.2} m",
                    g.filament_weight_g,
                    g.filament_used_mm / 1000.0
                );
                if let Some(t) = &g.filament_type {
                    filament.push_str(&format!(" of {t}"));
                }
                out.push(("Filament", filament));
            }
            if let Some(h) = g.layer_height {
                out.push(("Layers", format!("{} × {h:.2} mm", g.layer_count)));
            }
            let nozzle = g
                .nozzle_temperatures
                .iter()
                .filter(|t| **t > 0.0)
                .map(|t| format!("{t:.0} °C"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut temps = Vec::new();
            if !nozzle.is_empty() {
                temps.push(format!("nozzle {nozzle}"));
            }
            if let Some(b) = g.bed_temperature.filter(|b| *b > 0.0) {
                temps.push(format!("bed {b:.0} °C"));
            }
            if !temps.is_empty() {
                out.push(("Temperatures", temps.join(" · ")));
            }
            if let Some(size) = quickprint::extent(f) {
                out.push(("Print size", dimensions(size)));
            }
            let mut slicer = g.slicer.clone().unwrap_or_default();
            if let Some(v) = &g.slicer_version {
                slicer = format!("{slicer} {v}").trim().to_string();
            }
            if !slicer.is_empty() {
                out.push(("Sliced with", slicer));
            }
            if g.supports {
                out.push(("Supports", "yes".into()));
            }
        }
        Some(Analysis::Mesh(m)) => {
            out.push(("Size", dimensions(m.size)));
            out.push(("Volume", format!("{:.1} cm³", m.volume_mm3 / 1000.0)));
            out.push(("Triangles", m.triangles.to_string()));
            out.push(("Parts", m.objects.to_string()));
            out.push((
                "Closed surface",
                if m.watertight {
                    "yes".into()
                } else {
                    format!(
                        "no ({} open edges): the slicer may repair or refuse it",
                        m.boundary_edges
                    )
                },
            ));
        }
        None => {}
    }
    out
}

#[derive(Template)]
#[template(path = "console/files.html")]
struct FilesPage {
    chrome: Chrome,
    csrf: String,
    files: Vec<FileView>,
    projects: Vec<ProjectView>,
    /// The project the list is narrowed to.
    shown: Option<i64>,
    accept: &'static str,
    max_bytes: u64,
    max_label: String,
}

/// `/myfiles`: upload, and the person's files, newest first.
async fn files_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some((user, session)) = browser_user(&state, &req).await else {
        return to_login(&req);
    };
    let chrome = Chrome::new(Some((&user, &session)), "files");
    let shown = super::query(&req, "project").and_then(|p| p.parse::<i64>().ok());
    let loaded = state
        .db(move |c| {
            let files = quickprint::recent_files(c, &user)?;
            let projects = crate::services::files::projects(c, &user)?;
            Ok((files, projects))
        })
        .await;
    let (files, projects) = match loaded {
        Ok(x) => x,
        Err(e) => return refused(&state, &req, e).await,
    };
    let projects: Vec<ProjectView> = projects.iter().map(project_view).collect();
    let max_bytes = state.storage.max_upload_bytes;
    render(
        StatusCode::OK,
        &FilesPage {
            chrome,
            csrf: csrf_token(&session),
            files: files
                .iter()
                .filter(|f| shown.is_none() || f.project_id == shown)
                .map(|f| file_view(f, &projects))
                .collect(),
            projects,
            shown,
            accept: ACCEPT,
            max_bytes,
            max_label: limit_label(max_bytes),
        },
    )
}

/// An upload from the files page (multipart, the same checks and analysis as `upload_file`);
/// then the file's own page.
async fn upload_file(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let outcome = async {
        // The session first: nobody's bytes are staged for an anonymous request.
        let (user, session) = browser_user(&state, &req)
            .await
            .ok_or_else(|| Error::Unauthenticated("Sign in first (your session ended)".into()))?;
        let (params, staged) = upload::receive(&state, &req, payload.into_inner()).await?;
        // Checked before anything is stored: the staged file removes itself on refusal.
        if !auth::same_secret(
            params.str("csrf").unwrap_or_default(),
            &csrf_token(&session),
        ) {
            return Err(Error::denied(
                "This form did not come from this page; reload it and try again",
            ));
        }
        let project_id = match params.str("project") {
            None => None,
            Some(p) => Some(
                p.parse::<i64>()
                    .map_err(|_| Error::invalid("Choose one of your projects"))?,
            ),
        };
        let meta = UploadMeta {
            upload_soft_name: Some("printfarm console".into()),
            project_id,
            ..UploadMeta::default()
        };
        let (file, _) = upload::store(&state, &user, &meta, staged, false).await?;
        Ok(file.id)
    }
    .await;
    match outcome {
        Ok(id) => see_other(&format!("/quickprint?file_id={id}")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// A printer the file can go to, for the radio list.
struct ChoiceView {
    id: i64,
    type_id: Option<i64>,
    name: String,
    type_name: String,
    state: String,
    tone: &'static str,
    may_start: bool,
}

#[derive(Template)]
#[template(path = "console/file.html")]
struct FilePage {
    chrome: Chrome,
    csrf: String,
    file: FileView,
    facts: Vec<(&'static str, String)>,
    fits: Vec<String>,
    /// How many printer types the catalogue has.
    types: usize,
    choices: Vec<ChoiceView>,
    /// For a model: the types it can be sliced for (id, name), the one chosen first, and
    /// the slices made of it.
    slice_types: Vec<(i64, String)>,
    default_type: i64,
    layer_heights: &'static [(&'static str, &'static str)],
    infills: &'static [u32],
    materials: Vec<&'static str>,
    slices: Vec<SliceView>,
    /// A slice is under way: the page reloads itself until it is done.
    slicing: bool,
    /// The types of the printers the person may print on (id, name): the farm queue's targets.
    farm_types: Vec<(i64, String)>,
}

/// One slice of a model, as its page lists them.
struct SliceView {
    status: &'static str,
    tone: &'static str,
    started: Stamp,
    settings: String,
    error: Option<String>,
    output: Option<i64>,
    print_job: Option<i64>,
}

fn slice_view(j: &SliceJob) -> SliceView {
    let keys: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&j.profile).unwrap_or_default();
    let key = |k: &str| keys.get(k).cloned().unwrap_or_default();
    let (status, tone) = match j.status {
        SliceStatus::Pending => ("Waiting for a slicer", "warn"),
        SliceStatus::Running => ("Slicing", "busy"),
        SliceStatus::Done => ("Sliced", "ready"),
        SliceStatus::Failed => ("Failed", "bad"),
    };
    SliceView {
        status,
        tone,
        started: Stamp::new(j.created_at),
        settings: format!(
            "{} mm layers · {} infill · {}{}",
            key("layer_height"),
            key("fill_density"),
            slicing::MATERIALS
                .iter()
                .find(|m| m.slicer_type == key("filament_type"))
                .map_or_else(|| key("filament_type"), |m| m.name.to_string()),
            if key("support_material") == "1" {
                " · supports"
            } else {
                ""
            }
        ),
        error: j.error.clone(),
        output: (j.status == SliceStatus::Done)
            .then_some(j.output_file_id)
            .flatten()
            .map(|f| f.0),
        print_job: j.print_job_id.map(|p| p.0),
    }
}

const LAYER_HEIGHTS: &[(&str, &str)] = &[
    ("0.1", "0.10 mm, fine"),
    ("0.15", "0.15 mm, detailed"),
    ("0.2", "0.20 mm, standard"),
    ("0.28", "0.28 mm, draft"),
];
const INFILLS: &[u32] = &[10, 15, 20, 30, 50, 100];

fn file_id_of(raw: Option<&str>) -> Result<FileId, Error> {
    raw.and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|id| *id > 0)
        .map(FileId)
        .ok_or_else(|| Error::invalid("file_id must be a file id (a positive number)"))
}

/// `/quickprint?file_id=N`: the file, what it is, and where it can print.
async fn file_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let file_id = match file_id_of(super::query(&req, "file_id").as_deref()) {
        Ok(id) => id,
        Err(e) => return refused(&state, &req, e).await,
    };
    let Some((user, session)) = browser_user(&state, &req).await else {
        return to_login(&req);
    };
    let chrome = Chrome::new(Some((&user, &session)), "files");
    let offline = chrono::Duration::seconds(state.config.printers.offline_after_secs);
    let loaded = state
        .db(move |c| {
            let offer = quickprint::offer(c, &user, file_id, offline, crate::db::now())?;
            let (fits, types) = quickprint::fitting_types(c, &offer.file)?;
            let projects = crate::services::files::projects(c, &user)?;
            let slices = if offer.file.kind.is_model() {
                slicing::slices_of_file(c, &user, file_id)?
            } else {
                Vec::new()
            };
            Ok((offer, fits, types, slices, projects))
        })
        .await;
    let (offer, fits, types, slices, projects) = match loaded {
        Ok(x) => x,
        Err(e) => return refused(&state, &req, e).await,
    };
    let choices = offer
        .choices
        .into_iter()
        .map(|c| {
            let (state, tone) = super::state_badge(&c.state);
            ChoiceView {
                id: c.printer.id.0,
                type_id: c.printer.printer_type_id,
                name: c.printer.name,
                type_name: c.type_name.unwrap_or_default(),
                state,
                tone,
                may_start: c.may_start,
            }
        })
        .collect();
    let choices: Vec<ChoiceView> = choices;
    // First offered: the type of the first printer the person may use that the model fits.
    let default_type = choices
        .iter()
        .filter_map(|c| c.type_id)
        .find(|t| fits.iter().any(|f| f.id == *t))
        .or_else(|| fits.first().map(|f| f.id))
        .unwrap_or_default();
    let slicing = slices
        .iter()
        .any(|j| matches!(j.status, SliceStatus::Pending | SliceStatus::Running));
    let mut farm_types: Vec<(i64, String)> = Vec::new();
    for c in choices.iter().filter(|c| c.may_start) {
        if let Some(t) = c
            .type_id
            .filter(|t| !farm_types.iter().any(|(id, _)| id == t))
        {
            farm_types.push((t, c.type_name.clone()));
        }
    }
    let slices: Vec<SliceView> = slices.iter().map(slice_view).collect();
    render(
        StatusCode::OK,
        &FilePage {
            chrome,
            csrf: csrf_token(&session),
            facts: facts(&offer.file),
            file: file_view(
                &offer.file,
                &projects.iter().map(project_view).collect::<Vec<_>>(),
            ),
            slice_types: fits.iter().map(|t| (t.id, t.description.clone())).collect(),
            fits: fits.into_iter().map(|t| t.description).collect(),
            types,
            choices,
            default_type,
            layer_heights: LAYER_HEIGHTS,
            infills: INFILLS,
            materials: slicing::MATERIALS.iter().map(|m| m.name).collect(),
            slicing,
            slices,
            farm_types,
        },
    )
}

/// Prints or queues the file on the chosen printer (`print_file`), then says which.
async fn print(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let (p, user, session) = posted(&state, &req, form).await?;
        let file_id = file_id_of(p.str("file_id"))?;
        let printer_id = p
            .str("printer_id")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(PrinterId)
            .ok_or_else(|| Error::invalid("Choose a printer"))?;
        let only_queue = match p.str("action") {
            Some("print") => false,
            Some("queue") => true,
            _ => return Err(Error::invalid("action must be \"print\" or \"queue\"")),
        };
        let ctx = state.job_context();
        let me = user.clone();
        let (created, printer, filename) = state
            .db(move |c| {
                let created = jobs::print_file(c, &me, file_id, printer_id, only_queue, &ctx)?;
                let (printer, _) = crate::services::printers::visible(c, &me, printer_id)?;
                let name = StoredFile::find_owned(c, me.id, file_id)?
                    .map(|f| f.filename)
                    .unwrap_or_default();
                Ok((created, printer, name))
            })
            .await?;
        Ok((user, session, created, printer, filename))
    }
    .await;
    match outcome {
        Ok((user, session, created, printer, filename)) => {
            let (title, message) = if created.started {
                (
                    "Printing".to_string(),
                    format!(
                        "{} is starting on {} (job {}).",
                        filename, printer.name, created.job.id
                    ),
                )
            } else {
                (
                    "Queued".to_string(),
                    format!(
                        "{} is in the queue of {} (job {}).",
                        filename, printer.name, created.job.id
                    ),
                )
            };
            render(
                StatusCode::OK,
                &NoticePage {
                    chrome: Chrome::new(Some((&user, &session)), "files"),
                    title,
                    message,
                    links: vec![("/", "See the printers"), ("/myfiles", "Your files")],
                },
            )
        }
        Err(e) => refused(&state, &req, e).await,
    }
}

/// Slices a model for a printer type from its page (`slice`, with the profile made from the
/// catalogue), and queues the G-code on a printer when one is chosen; back to the page, which
/// follows the slice.
async fn slice(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let file_id = FileId(path.into_inner());
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let number = |k: &str, what: &str| -> Result<f64, Error> {
            p.str(k)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(|| Error::invalid(format!("Choose {what}")))
        };
        let spec = slicing::TypeSlice {
            printer_type_id: number("printer_type_id", "a printer type")? as i64,
            layer_height: number("layer_height", "a layer height")?,
            infill_percent: number("infill", "an infill")?.clamp(0.0, 1000.0) as u32,
            supports: p.str("supports").is_some(),
            material: p.str("material").unwrap_or_default().to_string(),
        };
        let printer = match p.str("then").map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => {
                Some(PrinterId(v.parse::<i64>().map_err(|_| {
                    Error::invalid("Choose a printer to queue on, or none")
                })?))
            }
        };
        state
            .db(move |c| slicing::request_for_type(c, &user, file_id, &spec, printer, None))
            .await?;
        state.slice_wake.notify_waiters();
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => see_other(&format!("/quickprint?file_id={file_id}#slices")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(human_size(684), "684 B");
        assert_eq!(human_size(166_800), "166.8 kB");
        assert_eq!(hours_minutes(20.0), "under a minute");
        assert_eq!(hours_minutes(23.0 * 60.0), "23 min");
        assert_eq!(hours_minutes(3600.0 + 5.0 * 60.0), "1 h 05 min");
        assert_eq!(limit_label(1 << 30), "1 GiB");
        assert_eq!(limit_label(200 << 20), "200 MiB");
        assert_eq!(dimensions([20.0, 20.0, 5.26]), "20.0 × 20.0 × 5.3 mm");
    }
}
