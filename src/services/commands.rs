//! The per-printer command queue the agent channel delivers from: numbered commands, in
//! commit order. Below both the job queue (which enqueues) and the agent channel (which
//! delivers).

use serde_json::{Map, Value};

use crate::db::models::{JobId, Printer, PrinterCommand, PrinterId};
use crate::db::{self, DbConn};
use crate::error::Result;

/// Queues a command for a printer's agent (numbered per printer, in commit order). A waiting
/// agent is woken after the transaction commits (`db::wake_after_commit`: on this instance by
/// `AppState::db`, on other Postgres instances by the NOTIFY sent here).
pub fn enqueue(
    conn: &mut DbConn,
    printer_id: PrinterId,
    command: &str,
    extra: Map<String, Value>,
    job_id: Option<JobId>,
) -> Result<PrinterCommand> {
    db::write_transaction(conn, |c| {
        let number = Printer::take_command_number(c, printer_id)?;
        let payload = (!extra.is_empty()).then(|| Value::Object(extra.clone()).to_string());
        let cmd =
            PrinterCommand::insert(c, printer_id, number, command, payload.as_deref(), job_id)?;
        db::notify_printer(c, printer_id)?;
        db::wake_after_commit(printer_id.0);
        Ok(cmd)
    })
}
