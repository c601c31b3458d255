//! The printer-type catalogue as the Global API serves it (non-industrial types only).

use crate::db::models::PrinterType;
use crate::db::DbConn;
use crate::error::Result;

/// Lower-case words of a model name between spaces, so "Prusa  MK4S" and "prusa mk4s"
/// compare equal and containment is by whole words ("Prusa MK4" is not in "Prusa MK4S").
fn words(text: &str) -> String {
    let joined = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ");
    if joined.is_empty() {
        joined
    } else {
        format!(" {joined} ")
    }
}

/// Non-industrial types. `description` is the calling slicer's printer model: the types whose
/// description contains it (or is contained in it, as "Prusa MK4S HF0.4" holds "Prusa MK4S")
/// are answered, and every type when none matches, so the slicer's dialog can still offer
/// a choice. `software_version` names the calling application (OrcaSlicer sends its own
/// name), so it never filters.
pub fn list(conn: &mut DbConn, description: Option<&str>) -> Result<Vec<PrinterType>> {
    let all: Vec<PrinterType> = PrinterType::all(conn)?
        .into_iter()
        .filter(|t| !t.industrial)
        .collect();
    let query = description.map(words).unwrap_or_default();
    if query.is_empty() {
        return Ok(all);
    }
    let matching: Vec<PrinterType> = all
        .iter()
        .filter(|t| {
            let d = words(&t.description);
            d.contains(&query) || query.contains(&d)
        })
        .cloned()
        .collect();
    Ok(if matching.is_empty() { all } else { matching })
}
