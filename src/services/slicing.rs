//! The durable slice queue. A request is a row (pending → running → done | failed); workers
//! claim rows under a lease (`FOR UPDATE SKIP LOCKED` on Postgres, `BEGIN IMMEDIATE` on
//! SQLite), so a slice survives a restart and never runs twice at once; results are committed
//! only by the lease holder.

use chrono::Duration;
use serde_json::Value;

use crate::db::models::{
    FileId, FileKind, FileState, NewFile, NewSliceJob, PrinterId, PrinterType, SliceJob,
    SliceOutput, SliceStatus, StoredFile, User,
};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use crate::mesh::MeshAnalysis;
use crate::services::farm::{self, FarmRequest};
use crate::services::jobs;
use crate::services::printers::{self, Access};
use crate::slicer::{Profile, DEFAULT_SLICER, SLICERS};

pub struct SliceRequest {
    pub file_id: FileId,
    pub slicer_id: Option<i64>,
    pub profile: Value,
    pub printer_id: Option<PrinterId>,
    pub start_print: bool,
    /// The catalogue type the profile was made for: the G-code is then offered for printers
    /// of that type only.
    pub printer_type_id: Option<i64>,
    /// A farm job to make of the G-code when the slice is done (its `file_id` is set to the
    /// slice's output); instead of `printer_id`.
    pub farm: Option<FarmRequest>,
}

pub struct Requested {
    pub job: SliceJob,
    pub waiting: bool,
}

/// `slice`: checks everything that can be checked before slicing (the file, the slicer, every
/// profile key, the printer, the model's size against the bed in X, Y **and** Z), reserves the
/// output file id, and queues the slice.
pub fn request(conn: &mut DbConn, user: &User, req: &SliceRequest) -> Result<Requested> {
    let slicer = req.slicer_id.unwrap_or(DEFAULT_SLICER);
    if !SLICERS.contains(&slicer) {
        return Err(Error::invalid(format!(
            "slicer_id {slicer} is not available on this server; it slices with {} (PrusaSlicer)",
            SLICERS.map(|s| s.to_string()).join(", ")
        )));
    }
    let profile =
        Profile::from_json(&req.profile).map_err(|e| Error::invalid(format!("profile: {e}")))?;
    db::write_transaction(conn, |c| {
        let file = StoredFile::find_owned(c, user.id, req.file_id)?
            .ok_or_else(|| Error::not_found(format!("File {} not found", req.file_id)))?;
        if !file.kind.is_model() || file.state != FileState::Ready {
            return Err(Error::invalid(format!(
                "File {} is not a model (STL, 3MF or OBJ) to slice",
                file.id
            )));
        }
        if let Some(plan) = &req.farm {
            if req.printer_id.is_some() {
                return Err(Error::invalid(
                    "Name one target: a printer, or a farm target (printer type, workgroup or printers)",
                ));
            }
            farm::check_request(c, user, plan, req.printer_type_id)?;
        }
        if let Some(p) = req.printer_id {
            let (_, access) = printers::visible(c, user, p)?;
            if req.start_print && access < Access::Print {
                return Err(Error::denied("You may only queue jobs on this printer"));
            }
        }
        let analysis: MeshAnalysis = file
            .analysis
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok())
            .ok_or_else(|| Error::internal("model without analysis"))?;
        // PrusaSlicer has nothing to slice in a flat sheet, and then reports it as not
        // fitting the bed; say what is wrong instead.
        if analysis.size.iter().any(|&d| d <= 0.0) {
            return Err(Error::invalid(format!(
                "the model is flat ({:.1} × {:.1} × {:.1} mm): a surface without thickness cannot be printed",
                analysis.size[0], analysis.size[1], analysis.size[2]
            )));
        }
        let bed = profile.build_volume();
        if !crate::mesh::fits(&analysis, bed) {
            return Err(Error::invalid(format!(
                "the model ({:.1} × {:.1} × {:.1} mm) does not fit the printer ({} × {} × {} mm)",
                analysis.size[0], analysis.size[1], analysis.size[2], bed[0], bed[1], bed[2]
            )));
        }
        let now = db::now();
        let stem = file
            .filename
            .rsplit_once('.')
            .map_or(file.filename.as_str(), |(s, _)| s);
        let name = format!("{stem}.gcode");
        let output = StoredFile::insert(
            c,
            &NewFile {
                user_id: user.id,
                organization_id: user.organization_id,
                project_id: file.project_id,
                state: FileState::Reserved,
                filename: &name,
                kind: FileKind::Gcode,
                size: 0,
                sha256: "",
                storage_key: "",
                upload_type_id: crate::services::files::WEBSITE_UPLOAD,
                upload_soft_name: Some("printfarm slicer"),
                printer_type_id: req.printer_type_id,
                slicer: Some("PrusaSlicer"),
                zip: false,
                analysis: None,
                slicer_settings: None,
                picture: None,
                created_at: now,
                updated_at: now,
            },
        )?;
        let profile_json = serde_json::to_string(&profile.keys).map_err(Error::internal)?;
        let farm_json = req
            .farm
            .clone()
            .map(|plan| {
                serde_json::to_string(&FarmRequest {
                    file_id: output.id,
                    ..plan
                })
            })
            .transpose()
            .map_err(Error::internal)?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let job = SliceJob::insert(
            c,
            &NewSliceJob {
                uuid: &uuid,
                user_id: user.id,
                file_id: file.id,
                output_file_id: Some(output.id),
                slicer_id: slicer as i32,
                profile: &profile_json,
                printer_id: req.printer_id,
                start_print: req.start_print,
                status: SliceStatus::Pending,
                attempts: 0,
                created_at: now,
                farm_request: farm_json.as_deref(),
            },
        )?;
        let waiting = SliceJob::ahead_of(c, job.id)? > 0;
        Ok(Requested { job, waiting })
    })
}

/// Claims the oldest pending slice, or a running one whose lease ran out (its worker died).
pub fn claim(conn: &mut DbConn, owner: &str, lease: Duration) -> Result<Option<SliceJob>> {
    let now = db::now();
    db::write_transaction(conn, |c| Ok(SliceJob::claim(c, owner, now, now + lease)?))
}

/// Extends the lease of a slice this worker still holds.
pub fn renew(conn: &mut DbConn, id: i64, owner: &str, lease: Duration) -> Result<bool> {
    Ok(SliceJob::renew(conn, id, owner, db::now() + lease)?)
}

fn holds(c: &mut DbConn, id: i64, owner: &str) -> Result<bool> {
    let job = SliceJob::find(c, id)?;
    Ok(job.is_some_and(|j| {
        j.status == SliceStatus::Running && j.lease_owner.as_deref() == Some(owner)
    }))
}

/// The G-code a worker produced, stored and analysed.
pub struct Output<'a> {
    pub storage_key: &'a str,
    pub picture: &'a str,
    pub size: i64,
    pub sha256: &'a str,
    pub analysis: &'a str,
    pub settings: &'a str,
}

/// How committing a finished slice went.
pub enum Finished {
    /// Another worker holds the lease now: its result stands, nothing was written.
    LeaseLost,
    /// Done; no print job was asked for.
    Done,
    /// Done, and the print job asked for is queued (or started).
    PrintQueued,
    /// Done, but the print job asked for was refused (printer offline, rights gone, …).
    PrintRefused(Error),
}

/// Commits a finished slice and, when the slice asked for one, queues its print job in the
/// same transaction, so a client never sees the slice done without the job it will get; a
/// refused print job (printer offline, rights gone) rolls back only its own savepoint.
pub fn finish(
    conn: &mut DbConn,
    job: &SliceJob,
    owner: &str,
    out: &Output,
    log: &str,
    ctx: &jobs::JobContext,
) -> Result<Finished> {
    db::write_transaction(conn, |c| {
        if !complete(c, job, owner, out, log)? {
            return Ok(Finished::LeaseLost);
        }
        if let Some(plan) = &job.farm_request {
            let plan: FarmRequest = serde_json::from_str(plan).map_err(Error::internal)?;
            let made = db::write_transaction(c, |c| {
                let user =
                    User::find(c, job.user_id)?.ok_or_else(|| Error::not_found("user gone"))?;
                let fj = farm::create(c, &user, plan.clone(), ctx)?;
                SliceJob::set_farm_job(c, job.id, fj.id)?;
                Ok::<_, Error>(())
            });
            return Ok(match made {
                Ok(()) => Finished::PrintQueued,
                Err(e) => Finished::PrintRefused(e),
            });
        }
        let (Some(printer), Some(output_id)) = (job.printer_id, job.output_file_id) else {
            return Ok(Finished::Done);
        };
        let queued = db::write_transaction(c, |c| {
            let user = User::find(c, job.user_id)?.ok_or_else(|| Error::not_found("user gone"))?;
            let created = jobs::print_file(c, &user, output_id, printer, !job.start_print, ctx)?;
            SliceJob::set_print_job(c, job.id, created.job.id)?;
            Ok::<_, Error>(())
        });
        Ok(match queued {
            Ok(()) => Finished::PrintQueued,
            Err(e) => Finished::PrintRefused(e),
        })
    })
}

/// Commits a finished slice: the reserved file becomes a normal G-code file. Returns false
/// (and changes nothing) when this worker no longer holds the lease.
pub fn complete(
    conn: &mut DbConn,
    job: &SliceJob,
    owner: &str,
    out: &Output,
    log: &str,
) -> Result<bool> {
    db::write_transaction(conn, |c| {
        if !holds(c, job.id, owner)? {
            return Ok(false);
        }
        let now = db::now();
        let output = SliceOutput {
            state: FileState::Ready,
            storage_key: out.storage_key,
            size: out.size,
            sha256: out.sha256,
            analysis: Some(out.analysis),
            slicer_settings: Some(out.settings),
            picture: Some(out.picture),
            updated_at: now,
        };
        SliceJob::complete(c, job, &output, log, now)?;
        Ok(true)
    })
}

/// Records a failed slice (the reserved output file is removed).
pub fn fail(
    conn: &mut DbConn,
    job: &SliceJob,
    owner: &str,
    error: &str,
    log: &str,
) -> Result<bool> {
    db::write_transaction(conn, |c| {
        if !holds(c, job.id, owner)? {
            return Ok(false);
        }
        SliceJob::fail(c, job, error, log, db::now())?;
        Ok(true)
    })
}

/// A material people pick when slicing for a printer type.
pub struct Material {
    pub name: &'static str,
    /// PrusaSlicer's `filament_type` for it (2.5 calls PETG `PET` and TPU `FLEX`).
    pub slicer_type: &'static str,
    pub nozzle: u32,
    pub bed: u32,
}

const fn material(
    name: &'static str,
    slicer_type: &'static str,
    nozzle: u32,
    bed: u32,
) -> Material {
    Material {
        name,
        slicer_type,
        nozzle,
        bed,
    }
}

/// The materials offered, with the nozzle and bed temperatures they usually print at.
pub const MATERIALS: [Material; 5] = [
    material("PLA", "PLA", 210, 60),
    material("PETG", "PET", 240, 80),
    material("ABS", "ABS", 250, 100),
    material("ASA", "ASA", 255, 100),
    material("TPU", "FLEX", 225, 50),
];

/// A slice for a catalogue printer type, as the console asks for one.
pub struct TypeSlice {
    pub printer_type_id: i64,
    pub layer_height: f64,
    pub infill_percent: u32,
    pub supports: bool,
    pub material: String,
}

/// The slicing profile for a printer type: its bed, height and nozzle from the catalogue, the
/// person's choices, and the material's usual temperatures.
pub fn profile_for_type(t: &PrinterType, s: &TypeSlice) -> Result<Value> {
    let Some([x, y, z]) = t.build_volume() else {
        return Err(Error::invalid(format!(
            "{} has no build volume in the catalogue to slice for",
            t.description
        )));
    };
    let profile: Value = serde_json::from_str(&t.profile).unwrap_or(Value::Null);
    let nozzle = profile
        .get("nozzle_diameter")
        .and_then(Value::as_f64)
        .unwrap_or(0.4);
    if !(0.05..=0.4).contains(&s.layer_height) || s.layer_height > nozzle * 0.8 {
        return Err(Error::invalid(format!(
            "layer height must be between 0.05 mm and {:.2} mm for a {nozzle} mm nozzle",
            (nozzle * 0.8).min(0.4)
        )));
    }
    if s.infill_percent > 100 {
        return Err(Error::invalid("infill must be between 0 and 100 %"));
    }
    let material = MATERIALS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(s.material.trim()))
        .ok_or_else(|| {
            Error::invalid(format!(
                "material must be one of {}",
                MATERIALS.map(|m| m.name).join(", ")
            ))
        })?;
    let heated_bed = profile
        .get("heated_bed")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut out = serde_json::json!({
        "bed_size_x": x,
        "bed_size_y": y,
        "bed_size_z": z,
        "nozzle_diameter": nozzle,
        "layer_height": s.layer_height,
        "fill_density": s.infill_percent,
        "support_material": s.supports,
        "filament_type": material.slicer_type,
        "temperature": material.nozzle,
        "bed_temperature": if heated_bed { material.bed } else { 0 },
    });
    if let Some(d) = t.parameter("filament_diameter") {
        out["filament_diameter"] = serde_json::json!(d);
    }
    Ok(out)
}

/// Slices the caller's model for a catalogue printer type, and queues the G-code on
/// `printer_id` when one is given (a printer of that type the caller may use).
pub fn request_for_type(
    conn: &mut DbConn,
    user: &User,
    file_id: FileId,
    s: &TypeSlice,
    printer_id: Option<PrinterId>,
    farm: Option<FarmRequest>,
) -> Result<Requested> {
    let t = PrinterType::all(conn)?
        .into_iter()
        .find(|t| t.id == s.printer_type_id && !t.industrial)
        .ok_or_else(|| Error::not_found(format!("Printer type {} not found", s.printer_type_id)))?;
    if let Some(p) = printer_id {
        let (printer, _) = printers::visible(conn, user, p)?;
        if printer.printer_type_id.is_some_and(|pt| pt != t.id) {
            return Err(Error::invalid(format!(
                "{} is not a {}: slice for its own type to print there",
                printer.name, t.description
            )));
        }
    }
    let profile = profile_for_type(&t, s)?;
    request(
        conn,
        user,
        &SliceRequest {
            file_id,
            slicer_id: None,
            profile,
            printer_id,
            start_print: false,
            printer_type_id: Some(t.id),
            farm,
        },
    )
}

/// What a farm print of a file became: a farm job (G-code), or a slice for the target's
/// printer type that makes the farm job when it is done (a model).
pub enum FarmQueued {
    Farm(crate::db::models::FarmJob),
    Slicing(SliceJob),
}

/// `print_file` with a farm target: G-code goes to the farm queue at once; a model is first
/// sliced for the printer type named (the catalogue's profile for it, the material asked for
/// when the slicer knows it, else PLA).
pub fn farm_print(
    conn: &mut DbConn,
    user: &User,
    req: FarmRequest,
    ctx: &jobs::JobContext,
) -> Result<FarmQueued> {
    let file = StoredFile::find_owned(conn, user.id, req.file_id)?
        .ok_or_else(|| Error::not_found(format!("File {} not found", req.file_id)))?;
    if !file.kind.is_model() {
        return Ok(FarmQueued::Farm(farm::create(conn, user, req, ctx)?));
    }
    let farm::Target::PrinterType(printer_type_id) = req.target else {
        return Err(Error::invalid(
            "A model is sliced for one printer type: name printer_type_id (or slice it first)",
        ));
    };
    let material = req
        .material
        .as_deref()
        .and_then(|m| {
            MATERIALS
                .iter()
                .find(|x| x.name.eq_ignore_ascii_case(m.trim()))
        })
        .map_or("PLA", |m| m.name);
    let slice = TypeSlice {
        printer_type_id,
        layer_height: 0.2,
        infill_percent: 15,
        supports: false,
        material: material.to_string(),
    };
    let requested = request_for_type(conn, user, file.id, &slice, None, Some(req))?;
    Ok(FarmQueued::Slicing(requested.job))
}

/// The caller's slices of one file, newest first.
pub fn slices_of_file(conn: &mut DbConn, user: &User, file_id: FileId) -> Result<Vec<SliceJob>> {
    Ok(SliceJob::of_file(conn, user.id, file_id, 20)?)
}

/// The caller's own slice, by its UUID.
pub fn status(conn: &mut DbConn, user: &User, uuid: &str) -> Result<SliceJob> {
    SliceJob::find_by_uuid(conn, uuid)?
        .filter(|j| j.user_id == user.id)
        .ok_or_else(|| Error::not_found(format!("Slice job {uuid} not found")))
}
