//! Quotes: instant prices computed from a slice.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = quotes, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Quote {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
    pub file_id: i64,
    pub slice_job_id: Option<i64>,
    /// The request's `printer_config` and `quote_config`, as given (JSON).
    pub printer_config: String,
    pub quote_config: String,
    /// pending → success | error
    pub status: String,
    pub error: Option<String>,
    pub gcode_file_id: Option<i64>,
    pub estimated_time_seconds: Option<i64>,
    pub filament_used_mm: Option<f64>,
    pub filament_weight: Option<f64>,
    pub filament_cost: Option<f64>,
    pub time_cost: Option<f64>,
    pub total_price: Option<f64>,
    pub currency: String,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}
