//! Printer types: the models a printer can be and a slice can target.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = printer_types, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PrinterType {
    pub id: i64,
    pub short_name: String,
    pub description: String,
    pub vendor: String,
    pub industrial: bool,
    pub software_version: String,
    /// JSON object of strings, served as is by `get_printer_types_detailed`.
    pub printer_parameters: String,
    /// The whole catalogue entry (kinematics, nozzle, flavour) as JSON.
    pub profile: String,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

impl PrinterType {
    /// A positive number of `printer_parameters` (the catalogue writes them as text).
    pub fn parameter(&self, key: &str) -> Option<f64> {
        let params: serde_json::Value = serde_json::from_str(&self.printer_parameters).ok()?;
        let v = params.get(key)?;
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|d| *d > 0.0)
    }

    /// The build volume (x, y, z in mm), when the catalogue gives one.
    pub fn build_volume(&self) -> Option<[f64; 3]> {
        Some([
            self.parameter("x")?,
            self.parameter("y")?,
            self.parameter("z")?,
        ])
    }

    pub fn count(conn: &mut DbConn) -> QResult<i64> {
        printer_types::table.count().get_result(conn)
    }

    pub fn insert(conn: &mut DbConn, row: &PrinterType) -> QResult<usize> {
        diesel::insert_into(printer_types::table)
            .values(row)
            .execute(conn)
    }

    pub fn all(conn: &mut DbConn) -> QResult<Vec<PrinterType>> {
        printer_types::table
            .order(printer_types::id.asc())
            .load(conn)
    }

    /// Every type's id and short name: what printer lists show, without the profiles.
    pub fn short_names(conn: &mut DbConn) -> QResult<Vec<(i64, String)>> {
        printer_types::table
            .select((printer_types::id, printer_types::short_name))
            .load(conn)
    }
}
