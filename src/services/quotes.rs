//! Instant quotes (`/v1`): a quote is a slice (through the durable slice queue) priced from
//! the G-code's own footer: time and grams come from the slicer's figures.
//!
//! Pricing: `filament_cost = grams × cost_per_gram` (or `grams / 1000 × cost_per_kg`),
//! `time_cost = hours × cost_per_hour`, `total_price = max(base_price + filament_cost +
//! time_cost, minimum_price)`; money is rounded once, to cents, at the end.

use chrono::Datelike;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::models::{
    FileId, NewQuote, Quote, QuotePriced, QuoteStatus, SliceJob, SliceStatus, StoredFile, User,
};
use crate::db::{self, DbConn};
use crate::error::{Conflict, Error, Result};
use crate::services::files;
use crate::services::slicing::{self, SliceRequest};

fn default_currency() -> String {
    "USD".into()
}
fn default_per_hour() -> f64 {
    2.5
}
fn default_per_gram() -> f64 {
    0.02
}
fn default_base() -> f64 {
    5.0
}

/// Cloud Slicer's `quote_config`, plus `cost_per_kg` and `minimum_price`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteConfig {
    #[serde(default = "default_currency")]
    #[schema(default = "USD")]
    pub currency: String,
    #[serde(default = "default_per_hour")]
    #[schema(default = 2.5)]
    pub cost_per_hour: f64,
    #[serde(default = "default_per_gram")]
    #[schema(default = 0.02)]
    pub cost_per_gram: f64,
    #[serde(default = "default_base")]
    #[schema(default = 5.0)]
    pub base_price: f64,
    /// printfarm extension: material price per kg, instead of `cost_per_gram`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_kg: Option<f64>,
    /// printfarm extension: the least a quote costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_price: Option<f64>,
}

impl Default for QuoteConfig {
    fn default() -> Self {
        QuoteConfig {
            currency: default_currency(),
            cost_per_hour: default_per_hour(),
            cost_per_gram: default_per_gram(),
            base_price: default_base(),
            cost_per_kg: None,
            minimum_price: None,
        }
    }
}

/// The priced figures of a quote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub filament_cost: f64,
    pub time_cost: f64,
    pub total_price: f64,
}

fn cents(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn price(cfg: &QuoteConfig, seconds: f64, grams: f64) -> Price {
    let filament = match cfg.cost_per_kg {
        Some(per_kg) => grams / 1000.0 * per_kg,
        None => grams * cfg.cost_per_gram,
    };
    let time = seconds / 3600.0 * cfg.cost_per_hour;
    let total = (cfg.base_price + filament + time).max(cfg.minimum_price.unwrap_or(0.0));
    Price {
        filament_cost: cents(filament),
        time_cost: cents(time),
        total_price: cents(total),
    }
}

fn month_start(now: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    now.date()
        .with_day(1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(now)
}

pub struct Usage {
    pub quotes_used: i64,
    pub storage_used: i64,
    pub files: i64,
}

pub fn usage(conn: &mut DbConn, user: &User) -> Result<Usage> {
    let since = month_start(db::now());
    // Quotes made, not quotes kept: deleting quotes does not give the month's quota back.
    let quotes_used = Quote::made_since(conn, user.id, since)?;
    let (files, storage_used) = StoredFile::usage_of(conn, user.id)?;
    Ok(Usage {
        quotes_used,
        storage_used,
        files,
    })
}

/// Refuses (413) an upload of `incoming` bytes that would take `user` past `limit_mb` MiB of
/// stored files; no limit when `limit_mb` is 0.
pub fn check_storage(conn: &mut DbConn, user: &User, incoming: u64, limit_mb: u64) -> Result<()> {
    if limit_mb == 0 {
        return Ok(());
    }
    let used = usage(conn, user)?.storage_used.max(0) as u64;
    if used.saturating_add(incoming) > limit_mb.saturating_mul(1024 * 1024) {
        return Err(Error::TooLarge(
            "Your storage limit is reached; delete files first".into(),
        ));
    }
    Ok(())
}

/// Starts a quote: validates, queues the slice, records the quote (pending).
pub fn create(
    conn: &mut DbConn,
    user: &User,
    file_id: FileId,
    printer_config: &Value,
    quote_config: &QuoteConfig,
    quotes_per_month: i64,
) -> Result<Quote> {
    for (name, v) in [
        ("cost_per_hour", Some(quote_config.cost_per_hour)),
        ("cost_per_gram", Some(quote_config.cost_per_gram)),
        ("base_price", Some(quote_config.base_price)),
        ("cost_per_kg", quote_config.cost_per_kg),
        ("minimum_price", quote_config.minimum_price),
    ] {
        if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(Error::invalid(format!(
                "quote_config.{name} must not be negative"
            )));
        }
    }
    db::write_transaction(conn, |c| {
        // One quota check at a time per user, so parallel requests cannot all pass it.
        db::lock_key(c, &format!("quotes:user:{}", user.id))?;
        if quotes_per_month > 0 && usage(c, user)?.quotes_used >= quotes_per_month {
            return Err(Error::RateLimited(format!(
                "Monthly quote limit of {quotes_per_month} reached"
            )));
        }
        let requested = slicing::request(
            c,
            user,
            &SliceRequest {
                file_id,
                slicer_id: None,
                profile: printer_config.clone(),
                printer_id: None,
                start_print: false,
                printer_type_id: None,
                farm: None,
            },
        )?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let quote_json = serde_json::to_string(quote_config).map_err(Error::internal)?;
        let now = db::now();
        let q = Quote::insert(
            c,
            &NewQuote {
                uuid: &uuid,
                user_id: user.id,
                file_id,
                slice_job_id: Some(requested.job.id),
                printer_config: &printer_config.to_string(),
                quote_config: &quote_json,
                status: QuoteStatus::Pending,
                currency: &quote_config.currency,
                created_at: now,
            },
            // Earlier months no longer count.
            month_start(now),
        )?;
        Ok(q)
    })
}

/// The caller's quote, brought up to date with its slice.
pub fn get(conn: &mut DbConn, user: &User, uuid: &str) -> Result<Quote> {
    let q = Quote::find_owned(conn, user.id, uuid)?
        .ok_or_else(|| Error::not_found(format!("Quote {uuid} not found")))?;
    refresh(conn, q)
}

fn refresh(conn: &mut DbConn, q: Quote) -> Result<Quote> {
    if q.status != QuoteStatus::Pending {
        return Ok(q);
    }
    let Some(job) = q
        .slice_job_id
        .map(|id| SliceJob::find(conn, id))
        .transpose()?
        .flatten()
    else {
        return Ok(q);
    };
    let now = db::now();
    match job.status {
        SliceStatus::Done => {
            let file = job
                .output_file_id
                .map(|id| StoredFile::find(conn, id))
                .transpose()?
                .flatten()
                .ok_or_else(|| Error::internal("finished slice without output"))?;
            let a = file.analysis_json();
            let f = |k: &str| a.get(k).and_then(Value::as_f64);
            // The G-code is the source of truth: the slicer's own footer figures first.
            let seconds = f("slicer_estimated_time_s")
                .or(f("estimated_time_s"))
                .unwrap_or(0.0);
            let grams = f("slicer_filament_g")
                .or(f("filament_weight_g"))
                .unwrap_or(0.0);
            let mm = f("slicer_filament_mm")
                .or(f("filament_used_mm"))
                .unwrap_or(0.0);
            let cfg: QuoteConfig = serde_json::from_str(&q.quote_config).unwrap_or_default();
            let p = price(&cfg, seconds, grams);
            Quote::priced(
                conn,
                q.id,
                &QuotePriced {
                    gcode_file_id: Some(file.id),
                    estimated_time_seconds: Some(seconds.round() as i64),
                    filament_used_mm: Some(mm),
                    filament_weight: Some(grams),
                    filament_cost: Some(p.filament_cost),
                    time_cost: Some(p.time_cost),
                    total_price: Some(p.total_price),
                    finished_at: Some(now),
                },
            )?;
        }
        SliceStatus::Failed => Quote::failed(conn, q.id, job.error.as_deref(), now)?,
        _ => return Ok(q),
    }
    Ok(Quote::find(conn, q.id)?)
}

/// Storage keys to remove once the deleting transaction committed.
pub type Removed = Vec<String>;

fn delete_quote_rows(conn: &mut DbConn, q: &Quote) -> Result<Removed> {
    let mut removed = Vec::new();
    Quote::delete(conn, q.id)?;
    if let Some(gid) = q.gcode_file_id {
        // A quote's G-code that became a print job stays with the job's history.
        if !StoredFile::used_by_jobs(conn, gid)? {
            if let Some(f) = StoredFile::find(conn, gid)? {
                SliceJob::delete_making(conn, gid)?;
                StoredFile::delete(conn, gid)?;
                removed.extend(files::stored_keys(&f));
            }
        }
    }
    Ok(removed)
}

/// Deletes the caller's quote and its G-code; answers the quote, its G-code file as it was
/// (for the path the quote had answered) and the storage keys to remove.
pub fn delete_quote(
    conn: &mut DbConn,
    user: &User,
    uuid: &str,
) -> Result<(Quote, Option<StoredFile>, Removed)> {
    db::write_transaction(conn, |c| {
        let q = Quote::find_owned(c, user.id, uuid)?
            .ok_or_else(|| Error::not_found(format!("Quote {uuid} not found")))?;
        let gcode = match q.gcode_file_id {
            Some(id) => StoredFile::find(c, id)?,
            None => None,
        };
        let removed = delete_quote_rows(c, &q)?;
        Ok((q, gcode, removed))
    })
}

/// `GET /v1/user/uploads`: the files the user uploaded, newest first; G-code made by slicing
/// (quotes, `slice`) is not an upload.
pub fn uploads(conn: &mut DbConn, user: &User) -> Result<Vec<StoredFile>> {
    Ok(StoredFile::uploads_of(conn, user.id)?)
}

/// Cloud Slicer's `printer_config` defaults (and ours for the extension fields).
const PRINTER_CONFIG_DEFAULTS: &str = r#"{"bed_size_x": 210, "bed_size_y": 210,
  "bed_size_z": 250, "print_speed": 100, "first_layer_speed": 50, "nozzle_diameter": 0.4,
  "layer_height": 0.2, "perimeters": 3, "top_solid_layers": 3, "bottom_solid_layers": 3,
  "fill_density": 20, "support_material": false, "color": "white", "filament_type": "PLA",
  "temperature": 210, "bed_temperature": 60, "filament_diameter": 1.75,
  "filament_density": 1.24}"#;

/// The `printer_config` a quote was made with: the defaults with what the request gave on
/// top (its own extra keys included), so a client sees every value used, not `{}`.
pub fn printer_config_used(given: &Value) -> Value {
    let mut used: Value =
        serde_json::from_str(PRINTER_CONFIG_DEFAULTS).expect("static printer_config defaults");
    if let (Some(out), Some(given)) = (used.as_object_mut(), given.as_object()) {
        for (k, v) in given {
            out.insert(k.clone(), v.clone());
        }
    }
    used
}

/// The `quote_config` a quote was priced with (defaults filled in).
pub fn quote_config_used(given: &Value) -> Value {
    serde_json::from_value::<QuoteConfig>(given.clone())
        .ok()
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or_else(|| given.clone())
}

/// Deletes the caller's file with its quotes (and their G-code). A file printed by a job
/// cannot be deleted (409): the job history needs it.
pub fn delete_file(
    conn: &mut DbConn,
    user: &User,
    file_id: FileId,
) -> Result<(StoredFile, Removed)> {
    db::write_transaction(conn, |c| {
        let f = StoredFile::find_owned(c, user.id, file_id)?
            .ok_or_else(|| Error::not_found(format!("File {file_id} not found")))?;
        if StoredFile::used_by_jobs(c, f.id)? {
            return Err(Error::conflict(
                Conflict::InUse,
                format!("File {file_id} was printed or is in the farm queue; it stays for the job history"),
            ));
        }
        let mut removed = Vec::new();
        let qs = Quote::of_file(c, f.id)?;
        for q in &qs {
            removed.extend(delete_quote_rows(c, q)?);
        }
        // Slices of this model that are not quotes lose their input; their outputs stay.
        SliceJob::delete_reading(c, f.id)?;
        StoredFile::delete(c, f.id)?;
        removed.extend(files::stored_keys(&f));
        Ok((f, removed))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults a quote reports are the ones it was sliced with: spelling them all out
    /// gives the very profile an empty `printer_config` gives.
    #[test]
    fn reported_defaults_are_the_slicing_defaults() {
        use crate::slicer::Profile;
        let reported = printer_config_used(&serde_json::json!({}));
        let mut spelled_out = reported.clone();
        // Metadata only: not a slicer setting.
        spelled_out.as_object_mut().unwrap().remove("color");
        assert_eq!(
            Profile::from_json(&spelled_out).unwrap().keys,
            Profile::from_json(&serde_json::json!({})).unwrap().keys
        );
        assert_eq!(
            quote_config_used(&serde_json::json!({})),
            serde_json::to_value(QuoteConfig::default()).unwrap()
        );
    }

    #[test]
    fn pricing_rounds_once() {
        let cfg = QuoteConfig::default();
        // 1 h, 10 g: 5.00 + 0.20 + 2.50
        assert_eq!(price(&cfg, 3600.0, 10.0).total_price, 7.7);
        let per_kg = QuoteConfig {
            cost_per_kg: Some(25.0),
            minimum_price: Some(20.0),
            ..QuoteConfig::default()
        };
        let p = price(&per_kg, 1800.0, 4.0);
        assert_eq!(
            (p.filament_cost, p.time_cost, p.total_price),
            (0.1, 1.25, 20.0)
        );
        // Parts that round down individually do not make the total drift.
        let tiny = QuoteConfig {
            base_price: 0.0,
            cost_per_hour: 0.0,
            cost_per_gram: 0.004,
            ..QuoteConfig::default()
        };
        assert_eq!(price(&tiny, 0.0, 1.0).total_price, 0.0);
        assert_eq!(price(&tiny, 0.0, 3.0).total_price, 0.01);
    }
}
