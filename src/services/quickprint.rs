//! What a slicer's "upload and print" leads to: the person picks one of the printers they may
//! use for the file they just uploaded, and prints it there or queues it. The page only
//! offers what `print_file` would accept; `print_file` itself decides.

use chrono::{Duration, NaiveDateTime};

use crate::db::models::{FileId, Printer, PrinterId, PrinterType, StoredFile, User};
use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::services::printers::{self, Access};

/// One printer the file can go to.
pub struct Choice {
    pub printer: Printer,
    pub type_name: Option<String>,
    /// The state clients see (`ready`, `printing`, `notconnected`, …).
    pub state: String,
    /// False when the user may only queue there.
    pub may_start: bool,
}

pub struct Offer {
    pub file: StoredFile,
    pub choices: Vec<Choice>,
}

/// The caller's own printable G-code file and the printers it may be sent to (same printer
/// type when both are known), best access first, then by name.
pub fn offer(
    conn: &mut DbConn,
    user: &User,
    file_id: FileId,
    offline_after: Duration,
    now: NaiveDateTime,
) -> Result<Offer> {
    let file = StoredFile::find_owned(conn, user.id, file_id)?
        .ok_or_else(|| Error::not_found(format!("File {file_id} not found")))?;
    if !file.is_printable() {
        return Err(Error::invalid(format!(
            "File {file_id} is not a printable G-code file"
        )));
    }
    let reach = printers::reachable(conn, user)?;
    let ids: Vec<PrinterId> = reach.keys().copied().collect();
    let types = PrinterType::all(conn)?;
    let mut choices: Vec<Choice> = Printer::by_ids(conn, &ids)?
        .into_iter()
        .filter(|p| match (file.printer_type_id, p.printer_type_id) {
            (Some(f), Some(t)) => f == t,
            _ => true,
        })
        .map(|p| Choice {
            may_start: reach.get(&p.id).is_some_and(|a| *a >= Access::Print),
            type_name: p
                .printer_type_id
                .and_then(|t| types.iter().find(|pt| pt.id == t))
                .map(|pt| pt.description.clone()),
            state: printers::display_state(&p, offline_after, now).to_string(),
            printer: p,
        })
        .collect();
    choices.sort_by(|a, b| {
        b.may_start
            .cmp(&a.may_start)
            .then_with(|| a.printer.name.cmp(&b.printer.name))
    });
    Ok(Offer { file, choices })
}

/// The person's most recent files (their own only), newest first.
pub fn recent_files(conn: &mut DbConn, user: &User) -> Result<Vec<StoredFile>> {
    Ok(StoredFile::recent_of(conn, user.id, 200)?)
}
