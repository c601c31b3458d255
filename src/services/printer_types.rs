//! The printer-type catalogue as the Global API serves it (non-industrial types only).

use crate::db::models::PrinterType;
use crate::db::DbConn;
use crate::error::Result;

/// Non-industrial types, optionally filtered by case-insensitive substrings of the
/// description and of the firmware family (`software_version`).
pub fn list(
    conn: &mut DbConn,
    description: Option<&str>,
    software_version: Option<&str>,
) -> Result<Vec<PrinterType>> {
    let contains = |hay: &str, needle: Option<&str>| {
        needle.is_none_or(|n| hay.to_lowercase().contains(&n.trim().to_lowercase()))
    };
    Ok(PrinterType::all(conn)?
        .into_iter()
        .filter(|t| !t.industrial)
        .filter(|t| contains(&t.description, description))
        .filter(|t| contains(&t.software_version, software_version))
        .collect())
}
