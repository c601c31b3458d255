//! The durable slice queue. A request is a row (pending → running → done | failed); workers
//! claim rows under a lease (`FOR UPDATE SKIP LOCKED` on Postgres, `BEGIN IMMEDIATE` on
//! SQLite), so a slice survives a restart and never runs twice at once; results are committed
//! only by the lease holder.

use chrono::Duration;
use serde_json::Value;

use crate::db::models::{
    FileId, FileKind, FileState, NewFile, NewSliceJob, PrinterId, SliceJob, SliceOutput,
    SliceStatus, StoredFile, User,
};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use crate::mesh::MeshAnalysis;
use crate::services::jobs;
use crate::services::printers::{self, Access};
use crate::slicer::{Profile, DEFAULT_SLICER, SLICERS};

pub struct SliceRequest {
    pub file_id: FileId,
    pub slicer_id: Option<i64>,
    pub profile: Value,
    pub printer_id: Option<PrinterId>,
    pub start_print: bool,
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
                printer_type_id: None,
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

/// The caller's own slice, by its UUID.
pub fn status(conn: &mut DbConn, user: &User, uuid: &str) -> Result<SliceJob> {
    SliceJob::find_by_uuid(conn, uuid)?
        .filter(|j| j.user_id == user.id)
        .ok_or_else(|| Error::not_found(format!("Slice job {uuid} not found")))
}
