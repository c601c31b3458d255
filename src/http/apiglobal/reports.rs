//! Calls 22 (`get_custom_report`) and 27 (`get_finished_jobs_report`).
//!
//! The custom report streams: a reader thread reads the rows in keyset-paginated batches
//! (each batch on a connection borrowed from the pool only for that query) one batch ahead of
//! a blocking task that encodes them as CSV or JSON into chunks of about 64 KiB and pushes the
//! chunks through a bounded channel into the response body. A slow client therefore holds back the reader instead of filling
//! memory, and memory stays flat however many rows a report has. Everything that can be
//! refused (session, role, parameters) and the first batch's query are checked before the
//! response starts, so those failures still answer the JSON envelope; a failure later can
//! only cut the transfer short (the body then ends without its final chunk).

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use chrono::Utc;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::decode::NameList;
use super::envelope::{ok, Envelope, Failures};
use super::{forms, Signed};
use crate::db::Pool;
use crate::error::{Error, Result};
use std::ops::ControlFlow;
use std::sync::mpsc::{Receiver, SyncSender};

use crate::services::reports::{self, Batch, Cell, CustomReport, CustomReportRequest, Names};
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
    Csv {
        writer: Box<csv::Writer<Vec<u8>>>,
        /// A cell's text, for the cells that are not text already.
        scratch: Vec<u8>,
    },
    Json {
        buf: Vec<u8>,
        scratch: Vec<u8>,
    },
}

/// RFC 4180: fields quoted when they hold a comma, quote or line break; CRLF line ends.
fn csv_writer(buf: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(buf)
}

/// Spreadsheets run a cell that starts with `=`, `+`, `-`, `@` (or a tab or carriage return
/// before one) as a formula; user-written text (file names, cancel reasons, feedback) must not
/// become one in an admin's Excel. A leading apostrophe makes it text, as OWASP advises. Only
/// the CSV is changed: `type=json` keeps the text as written, and numbers are never text cells.
fn formula_like(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// A cell as JSON: numbers as numbers, null as null, everything else as a string.
fn write_json_cell(c: &Cell, buf: &mut Vec<u8>, scratch: &mut Vec<u8>) -> serde_json::Result<()> {
    match *c {
        Cell::Null => serde_json::to_writer(buf, &()),
        Cell::Int(i) => serde_json::to_writer(buf, &i),
        Cell::Float(f) => serde_json::to_writer(buf, &f),
        Cell::Text(t) => serde_json::to_writer(buf, t),
        Cell::DateTime(_) | Cell::Hms(_) => {
            scratch.clear();
            c.write_text(scratch);
            // Digits, dashes, colons and a space: nothing to escape.
            buf.push(b'"');
            buf.extend_from_slice(scratch);
            buf.push(b'"');
            Ok(())
        }
    }
}

impl Encoder {
    fn new(format: Format, report: &CustomReport) -> Result<Encoder> {
        let mut buf = Vec::with_capacity(CHUNK_BYTES * 2);
        match format {
            Format::Csv => {
                buf.extend_from_slice(UTF8_BOM);
                let mut w = csv_writer(buf);
                w.write_record(report.headers()).map_err(Error::internal)?;
                Ok(Encoder::Csv {
                    writer: Box::new(w),
                    scratch: Vec::new(),
                })
            }
            Format::Json => {
                buf.extend_from_slice(br#"{"result":true,"message":["#);
                serde_json::to_writer(&mut buf, &report.headers()).map_err(Error::internal)?;
                buf.push(b',');
                serde_json::to_writer(&mut buf, &report.types()).map_err(Error::internal)?;
                Ok(Encoder::Json {
                    buf,
                    scratch: Vec::new(),
                })
            }
        }
    }

    fn row(&mut self, cells: &[Cell]) -> Result<()> {
        match self {
            Encoder::Csv { writer, scratch } => {
                for c in cells {
                    let field: &[u8] = match *c {
                        Cell::Text(t) if !formula_like(t) => t.as_bytes(),
                        Cell::Text(t) => {
                            scratch.clear();
                            scratch.push(b'\'');
                            scratch.extend_from_slice(t.as_bytes());
                            scratch
                        }
                        _ => {
                            scratch.clear();
                            c.write_text(scratch);
                            scratch
                        }
                    };
                    writer.write_field(field).map_err(Error::internal)?;
                }
                writer.write_record(None::<&[u8]>).map_err(Error::internal)
            }
            Encoder::Json { buf, scratch } => {
                buf.extend_from_slice(b",[");
                for (i, c) in cells.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    write_json_cell(c, buf, scratch).map_err(Error::internal)?;
                }
                buf.push(b']');
                Ok(())
            }
        }
    }

    /// Bytes ready to send (for CSV, without the writer's small internal buffer).
    fn buffered(&self) -> usize {
        match self {
            Encoder::Csv { writer, .. } => writer.get_ref().len(),
            Encoder::Json { buf, .. } => buf.len(),
        }
    }

    fn take(&mut self) -> Result<Bytes> {
        let fresh = Vec::with_capacity(CHUNK_BYTES * 2);
        let bytes = match self {
            Encoder::Csv { writer, .. } => std::mem::replace(writer.as_mut(), csv_writer(fresh))
                .into_inner()
                .map_err(|e| Error::internal(e.error()))?,
            Encoder::Json { buf, .. } => std::mem::replace(buf, fresh),
        };
        Ok(Bytes::from(bytes))
    }

    fn finish(&mut self) -> Result<Bytes> {
        if let Encoder::Json { buf, .. } = self {
            buf.extend_from_slice(b"]}");
        }
        self.take()
    }
}

/// Batches read ahead of the encoder: while one batch is encoded, the database answers the
/// next query (on two cores that halves an export's time), and memory stays at two batches.
const BATCHES_AHEAD: usize = 1;

/// The blocking producer: a reader thread queries batch after batch while this thread encodes
/// them and pushes the chunks into the channel. Stops quietly when the client is gone (the
/// receiver was dropped); sends the error when a query fails.
fn produce(pool: Pool, report: CustomReport, format: Format, tx: mpsc::Sender<Result<Bytes>>) {
    let (batches_tx, batches_rx) = std::sync::mpsc::sync_channel(BATCHES_AHEAD);
    std::thread::scope(|s| {
        let report = &report;
        s.spawn(move || read_batches(&pool, report, batches_tx));
        if let Err(e) = encode(report, format, batches_rx, &tx) {
            tracing::warn!(error = %e, "custom report failed");
            let _ = tx.blocking_send(Err(e));
        }
    });
}

/// Reads the report batch after batch (each on a connection borrowed only for its query) until
/// a short batch, a failure, or the encoder has stopped listening.
fn read_batches(pool: &Pool, report: &CustomReport, out: SyncSender<Result<Batch>>) {
    let mut after = 0i64;
    let mut names = Names::for_report(report);
    loop {
        let batch = pool
            .get()
            .map_err(Error::from)
            .and_then(|mut conn| report.batch(&mut conn, &mut names, after, BATCH_ROWS));
        let next = match &batch {
            Ok(b) if b.len() as i64 == BATCH_ROWS => b.last_id(),
            _ => None,
        };
        if out.send(batch).is_err() {
            return;
        }
        match next {
            Some(id) => after = id,
            None => return,
        }
    }
}

/// Encodes the batches as they arrive. Returns (dropping `batches`, which stops the reader)
/// when the last batch is out or the client went away.
fn encode(
    report: &CustomReport,
    format: Format,
    batches: Receiver<Result<Batch>>,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    let now = crate::db::now();
    let mut enc = Encoder::new(format, report)?;
    // Chunks go out only after a batch was read, so the first query's failure still becomes
    // the JSON error answer.
    for batch in batches {
        let sent = report.each_row(&batch?, now, |cells| {
            enc.row(cells)?;
            if enc.buffered() >= CHUNK_BYTES && tx.blocking_send(Ok(enc.take()?)).is_err() {
                return Ok(ControlFlow::Break(())); // the client went away
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if sent.is_break() {
            return Ok(());
        }
    }
    let _ = tx.blocking_send(Ok(enc.finish()?));
    Ok(())
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
