//! Calls 22 (`get_custom_report`) and 27 (`get_finished_jobs_report`).
//!
//! The custom report streams: a blocking task reads the rows in keyset-paginated batches
//! (each batch on a connection borrowed from the pool only for that query), encodes them as
//! CSV or JSON into chunks of about 64 KiB, and pushes the chunks through a bounded channel
//! into the response body. A slow client therefore holds back the reader instead of filling
//! memory, and memory stays flat however many rows a report has. Everything that can be
//! refused (session, role, parameters) and the first batch's query are checked before the
//! response starts, so those failures still answer the JSON envelope; a failure later can
//! only cut the transfer short (the body then ends without its final chunk).

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use chrono::Utc;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::decode::NameList;
use super::envelope::{ok, Envelope, Failures};
use super::{forms, Signed};
use crate::db::Pool;
use crate::error::{Error, Result};
use crate::services::reports::{self, Cell, CustomReport, CustomReportRequest};
use crate::AppState;

/// Rows read per query.
const BATCH_ROWS: i64 = 5_000;
/// Encoded bytes per body chunk.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks buffered between the reader and the client.
const CHANNEL_CHUNKS: usize = 4;
/// Excel only reads a CSV file as UTF-8 when it starts with a byte-order mark.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Format {
    #[default]
    Csv,
    Json,
}

/// `type`: `CSV` or `json`, in any case.
impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let t = String::deserialize(d)?;
        if t.eq_ignore_ascii_case("csv") {
            Ok(Format::Csv)
        } else if t.eq_ignore_ascii_case("json") {
            Ok(Format::Json)
        } else {
            Err(serde::de::Error::custom(format!(
                "parameter 'type' must be json or CSV (got '{t}')"
            )))
        }
    }
}

/// Encodes rows as CSV (BOM, header row, RFC 4180 quoting, CRLF) or as the JSON envelope
/// `{"result": true, "message": [headers, types, row, …]}`.
enum Encoder {
    Csv(Box<csv::Writer<Vec<u8>>>),
    Json(Vec<u8>),
}

/// RFC 4180: fields quoted when they hold a comma, quote or line break; CRLF line ends.
fn csv_writer(buf: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(buf)
}

fn csv_text(c: &Cell) -> String {
    match c {
        Cell::Null => String::new(),
        Cell::Int(i) => i.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::Text(t) => formula_safe(t),
    }
}

/// Spreadsheets run a cell that starts with `=`, `+`, `-`, `@` (or a tab or carriage return
/// before one) as a formula; user-written text (file names, cancel reasons, feedback) must not
/// become one in an admin's Excel. A leading apostrophe makes it text, as OWASP advises. Only
/// the CSV is changed: `type=json` keeps the text as written, and numbers are never text cells.
fn formula_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

fn json_value(c: &Cell) -> Value {
    match c {
        Cell::Null => Value::Null,
        Cell::Int(i) => json!(i),
        Cell::Float(f) => json!(f),
        Cell::Text(t) => json!(t),
    }
}

impl Encoder {
    fn new(format: Format, report: &CustomReport) -> Result<Encoder> {
        match format {
            Format::Csv => {
                let mut buf = Vec::with_capacity(CHUNK_BYTES * 2);
                buf.extend_from_slice(UTF8_BOM);
                let mut w = csv_writer(buf);
                w.write_record(report.headers()).map_err(Error::internal)?;
                Ok(Encoder::Csv(Box::new(w)))
            }
            Format::Json => {
                let mut buf = Vec::with_capacity(CHUNK_BYTES * 2);
                buf.extend_from_slice(br#"{"result":true,"message":["#);
                serde_json::to_writer(&mut buf, &report.headers()).map_err(Error::internal)?;
                buf.push(b',');
                serde_json::to_writer(&mut buf, &report.types()).map_err(Error::internal)?;
                Ok(Encoder::Json(buf))
            }
        }
    }

    fn row(&mut self, cells: &[Cell]) -> Result<()> {
        match self {
            Encoder::Csv(w) => w
                .write_record(cells.iter().map(csv_text))
                .map_err(Error::internal),
            Encoder::Json(buf) => {
                buf.push(b',');
                let row: Vec<Value> = cells.iter().map(json_value).collect();
                serde_json::to_writer(buf, &row).map_err(Error::internal)
            }
        }
    }

    /// Bytes ready to send (for CSV, without the writer's small internal buffer).
    fn buffered(&self) -> usize {
        match self {
            Encoder::Csv(w) => w.get_ref().len(),
            Encoder::Json(buf) => buf.len(),
        }
    }

    fn take(&mut self) -> Result<Bytes> {
        let fresh = Vec::with_capacity(CHUNK_BYTES * 2);
        let bytes = match self {
            Encoder::Csv(w) => std::mem::replace(w.as_mut(), csv_writer(fresh))
                .into_inner()
                .map_err(|e| Error::internal(e.error()))?,
            Encoder::Json(buf) => std::mem::replace(buf, fresh),
        };
        Ok(Bytes::from(bytes))
    }

    fn finish(&mut self) -> Result<Bytes> {
        if let Encoder::Json(buf) = self {
            buf.extend_from_slice(b"]}");
        }
        self.take()
    }
}

/// The blocking reader: batches → encoder → channel. Stops quietly when the client is gone
/// (the receiver was dropped); sends the error when a query fails.
fn produce(pool: Pool, report: CustomReport, format: Format, tx: mpsc::Sender<Result<Bytes>>) {
    let run = || -> Result<()> {
        let now = crate::db::now();
        let mut enc = Encoder::new(format, &report)?;
        let mut after = 0i64;
        loop {
            let rows = {
                let mut conn = pool.get()?;
                report.batch(&mut conn, after, BATCH_ROWS, now)?
            };
            // Chunks go out only after a batch was read, so the first query's failure still
            // becomes the JSON error answer.
            for (_, cells) in &rows {
                enc.row(cells)?;
                if enc.buffered() >= CHUNK_BYTES && tx.blocking_send(Ok(enc.take()?)).is_err() {
                    return Ok(()); // the client went away
                }
            }
            match rows.last() {
                Some((id, _)) if rows.len() as i64 == BATCH_ROWS => after = *id,
                _ => break,
            }
        }
        let _ = tx.blocking_send(Ok(enc.finish()?));
        Ok(())
    };
    if let Err(e) = run() {
        tracing::warn!(error = %e, "custom report failed");
        let _ = tx.blocking_send(Err(e));
    }
}

/// `get_custom_report`: `from`, `to` (Y-m-d), `type` (CSV default, or json), `fields`,
/// `all_fields`, `workgroups`. Organization admins and workgroup admins.
#[utoipa::path(post, path = "/apiglobal/get_custom_report", tag = "Reports",
    request_body(content = forms::CustomReport, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`type=CSV` (default): a `text/csv` attachment with a byte-order mark. \
`type=json`: `[header names, type names, row, …]`, numbers as numbers, missing values null. \
Fields: job_id, printer_id, printer_name, printer_type, file_id, file_name, print_date, email, \
fname, lname, filament, cost, status, print_time, real_print_time, cancel_reason, \
cancel_details, started_by_email, feedback.",
        content(
            (String = "text/csv"),
            (Envelope<ReportTable> = "application/json"),
        )), Failures))]
pub async fn get_custom_report(
    state: web::Data<AppState>,
    call: Signed<forms::CustomReport>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let format = p.r#type.unwrap_or_default();
    let req = CustomReportRequest {
        from: p.from,
        to: p.to,
        fields: p.fields.map(|NameList(names)| names).unwrap_or_default(),
        all_fields: p.all_fields.unwrap_or(false),
        workgroups: p.workgroups.unwrap_or(false),
    };
    let today = Utc::now().date_naive();
    let report = caller
        .db(&state, move |c, me| {
            reports::custom_report(c, me, &req, today)
        })
        .await?;
    stream(&state, report, format).await
}

/// Streams a checked report as a CSV attachment or the JSON table, reading it in batches on a
/// blocking thread (memory stays flat); a failure of the first query is still an error answer.
pub(crate) async fn stream(
    state: &AppState,
    report: CustomReport,
    format: Format,
) -> Result<HttpResponse> {
    let filename = format!("report_{}_{}.csv", report.range.from, report.range.to);

    let (tx, mut rx) = mpsc::channel::<Result<Bytes>>(CHANNEL_CHUNKS);
    let pool = state.pool.clone();
    actix_web::rt::task::spawn_blocking(move || produce(pool, report, format, tx));
    let first = match rx.recv().await {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => return Err(e),
        None => return Err(Error::internal("the report reader stopped without output")),
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = futures_util::stream::once(async move { Ok::<_, Error>(first) }).chain(rest);

    let mut res = HttpResponse::Ok();
    res.insert_header(("Cache-Control", "no-store"));
    match format {
        Format::Csv => res.content_type("text/csv; charset=utf-8").insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{filename}\""),
        )),
        Format::Json => res.content_type("application/json"),
    };
    Ok(res.streaming(body))
}

/// `get_custom_report` with `type=json`: `[header names, type names, row, …]`; cells are
/// strings, numbers or null.
pub struct ReportTable;

impl utoipa::PartialSchema for ReportTable {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::ArrayBuilder;
        ArrayBuilder::new()
            .items(ArrayBuilder::new().items(Value::schema()))
            .into()
    }
}

impl ToSchema for ReportTable {}

#[derive(Serialize, ToSchema)]
pub struct FinishedJobItem {
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub filename: String,
    #[schema(example = "2021-07-18 14:31:05")]
    pub endtime: String,
}

/// `get_finished_jobs_report`: `[{email, firstname, lastname, filename, endtime}]` for the
/// jobs finished between `from` and `to` (by end time).
#[utoipa::path(post, path = "/apiglobal/get_finished_jobs_report", tag = "Reports",
    request_body(content = forms::FinishedJobsReport, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The jobs finished in the range (by end time)", body = Envelope<Vec<FinishedJobItem>>), Failures))]
pub async fn get_finished_jobs_report(
    state: web::Data<AppState>,
    call: Signed<forms::FinishedJobsReport>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let from = p.from;
    let to = p.to;
    let today = Utc::now().date_naive();
    let rows = caller
        .db(&state, move |c, me| {
            reports::finished_jobs(c, me, from.as_deref(), to.as_deref(), today)
        })
        .await?;
    let list: Vec<FinishedJobItem> = rows
        .iter()
        .map(|r| FinishedJobItem {
            email: r.email.clone(),
            firstname: r.firstname.clone(),
            lastname: r.lastname.clone(),
            filename: r.filename.clone(),
            endtime: r.endtime(),
        })
        .collect();
    Ok(ok(list))
}
