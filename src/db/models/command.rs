//! Printer commands: the durable queue an agent polls.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = printer_commands, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PrinterCommand {
    pub id: i64,
    pub printer_id: PrinterId,
    pub number: i64,
    pub command: String,
    /// JSON object of the extra keys sent with the command (`payload`, `filename`, …).
    pub payload: Option<String>,
    pub job_id: Option<JobId>,
    /// pending → sent → acked | failed
    pub status: CommandStatus,
    pub result: Option<String>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub sent_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub finished_at: Option<NaiveDateTime>,
}

impl PrinterCommand {
    pub fn insert(
        conn: &mut DbConn,
        printer: PrinterId,
        number: i64,
        command: &str,
        payload: Option<&str>,
        job: Option<JobId>,
    ) -> QResult<PrinterCommand> {
        diesel::insert_into(printer_commands::table)
            .values((
                printer_commands::printer_id.eq(printer),
                printer_commands::number.eq(number),
                printer_commands::command.eq(command),
                printer_commands::payload.eq(payload),
                printer_commands::job_id.eq(job),
                printer_commands::status.eq(CommandStatus::Pending),
                printer_commands::created_at.eq(crate::db::now()),
            ))
            .get_result(conn)
    }

    /// The oldest command the agent has not acknowledged yet.
    pub fn next_unacked(conn: &mut DbConn, printer: PrinterId) -> QResult<Option<PrinterCommand>> {
        printer_commands::table
            .filter(printer_commands::printer_id.eq(printer))
            .filter(unacknowledged())
            .order(printer_commands::number.asc())
            .first(conn)
            .optional()
    }

    pub fn mark_sent(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QResult<usize> {
        diesel::update(printer_commands::table.find(id))
            .set((
                printer_commands::status.eq(CommandStatus::Sent),
                printer_commands::sent_at.eq(Some(now)),
            ))
            .execute(conn)
    }

    /// Records the agent's acknowledgement of a delivered command (only once).
    pub fn ack(
        conn: &mut DbConn,
        printer: PrinterId,
        number: i64,
        ok: bool,
        now: NaiveDateTime,
    ) -> QResult<Option<PrinterCommand>> {
        let cmd: Option<PrinterCommand> = printer_commands::table
            .filter(printer_commands::printer_id.eq(printer))
            .filter(printer_commands::number.eq(number))
            .filter(printer_commands::status.eq(CommandStatus::Sent))
            .first(conn)
            .optional()?;
        if let Some(c) = &cmd {
            diesel::update(printer_commands::table.find(c.id))
                .set((
                    printer_commands::status.eq(if ok {
                        CommandStatus::Acked
                    } else {
                        CommandStatus::Failed
                    }),
                    printer_commands::result.eq(Some(if ok { "ok" } else { "failed" })),
                    printer_commands::finished_at.eq(Some(now)),
                ))
                .execute(conn)?;
        }
        Ok(cmd)
    }

    pub fn of_printer(conn: &mut DbConn, printer: PrinterId) -> QResult<Vec<PrinterCommand>> {
        printer_commands::table
            .filter(printer_commands::printer_id.eq(printer))
            .order(printer_commands::number.asc())
            .load(conn)
    }
}

/// Pending or sent, not acknowledged: the commands an agent still has to be given. Not
/// `eq_any`: its SQLite form is prepared anew for every call (a poll each).
pub type Unacknowledged = diesel::dsl::Or<
    diesel::dsl::Eq<printer_commands::status, CommandStatus>,
    diesel::dsl::Eq<printer_commands::status, CommandStatus>,
>;

pub fn unacknowledged() -> Unacknowledged {
    printer_commands::status
        .eq(CommandStatus::Pending)
        .or(printer_commands::status.eq(CommandStatus::Sent))
}
