//! Printers, their agent state and their workgroups.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = printers, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Printer {
    pub id: PrinterId,
    pub organization_id: OrgId,
    pub owner_user_id: Option<UserId>,
    pub printer_type_id: Option<i64>,
    pub name: String,
    pub snr: String,
    pub host_num: String,
    pub local_ip: String,
    pub vid: String,
    pub pid: String,
    pub mac: String,
    pub agent_version: Option<String>,
    pub auth_token_hash: Option<String>,
    /// The agent's own state string (`ready`, `printing`, …) as last reported.
    pub state: PrinterState,
    pub percent: f64,
    /// JSON arrays of numbers.
    pub temps: Option<String>,
    pub target_temps: Option<String>,
    /// The last report, merged (agents omit unchanged fields).
    pub report: Option<String>,
    /// The latest error the agent sent (JSON).
    pub last_error: Option<String>,
    pub current_job_id: Option<JobId>,
    pub tray_clear: bool,
    pub filaments: Option<String>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub camera_watched_until: Option<NaiveDateTime>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_seen_at: Option<NaiveDateTime>,
    pub next_command_number: i64,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// The location or power circuit whose staggered-start limits the printer counts in.
    pub circuit_id: Option<i64>,
    /// Set while the printer is in maintenance (it takes no jobs): why, and since when.
    pub maintenance_note: Option<String>,
    #[diesel(deserialize_as = MaybeStamp)]
    pub maintenance_since: Option<NaiveDateTime>,
    /// The end of the last maintenance; the maintenance counters count from here.
    #[diesel(deserialize_as = MaybeStamp)]
    pub maintained_at: Option<NaiveDateTime>,
    pub maintenance_hours_limit: Option<f64>,
    pub maintenance_filament_limit_g: Option<f64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = printers)]
pub struct NewPrinter<'a> {
    pub organization_id: OrgId,
    pub owner_user_id: Option<UserId>,
    pub printer_type_id: Option<i64>,
    pub name: &'a str,
    pub snr: &'a str,
    pub host_num: &'a str,
    pub local_ip: &'a str,
    pub vid: &'a str,
    pub pid: &'a str,
    pub mac: &'a str,
    pub agent_version: Option<&'a str>,
    pub auth_token_hash: Option<&'a str>,
    pub state: PrinterState,
    pub percent: f64,
    pub tray_clear: bool,
    pub next_command_number: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// An agent's volatile state (temperatures, progress, the merged report) as of `seen_at`,
/// written with others in one go.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub printer: PrinterId,
    pub percent: f64,
    pub temps: Option<String>,
    pub target_temps: Option<String>,
    pub report: String,
    pub seen_at: NaiveDateTime,
}

/// What an agent's report writes on its printer.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = printers, treat_none_as_null = true)]
pub struct PrinterReport<'a> {
    pub state: &'a PrinterState,
    pub percent: f64,
    pub temps: Option<&'a str>,
    pub target_temps: Option<&'a str>,
    pub local_ip: &'a str,
    pub filaments: Option<&'a str>,
    pub report: Option<String>,
    pub last_error: Option<&'a str>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

impl Printer {
    /// The printer starts `job`: it is busy and its build tray is no longer clear.
    pub fn take_job(
        conn: &mut DbConn,
        id: PrinterId,
        job: JobId,
        now: NaiveDateTime,
    ) -> QResult<()> {
        diesel::update(printers::table.find(id))
            .set((
                printers::current_job_id.eq(Some(job)),
                printers::tray_clear.eq(false),
                printers::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// The printer is no longer busy with `job` (when it still was).
    pub fn release_job(conn: &mut DbConn, id: PrinterId, job: JobId) -> QResult<()> {
        diesel::update(
            printers::table
                .find(id)
                .filter(printers::current_job_id.eq(Some(job))),
        )
        .set(printers::current_job_id.eq(None::<JobId>))
        .execute(conn)?;
        Ok(())
    }

    pub fn apply_report(conn: &mut DbConn, id: PrinterId, report: &PrinterReport) -> QResult<()> {
        diesel::update(printers::table.find(id))
            .set(report)
            .execute(conn)?;
        Ok(())
    }

    /// Writes agents' volatile state, each row unless it was written after its heartbeat
    /// (`updated_at` later). Postgres: one statement for all; SQLite: one each (no round
    /// trips there). Returns the rows written.
    pub fn write_heartbeats(conn: &mut DbConn, beats: &[Heartbeat]) -> QResult<usize> {
        use diesel::sql_types::{Array, BigInt, Double, Nullable, Text, Timestamp};
        match conn {
            DbConn::Pg(pg) => diesel::sql_query(
                "UPDATE printers AS p SET percent = v.percent, temps = v.temps, \
                 target_temps = v.target_temps, report = v.report, last_seen_at = v.seen_at, \
                 updated_at = v.seen_at \
                 FROM unnest($1::bigint[], $2::float8[], $3::text[], $4::text[], $5::text[], \
                 $6::timestamp[]) AS v(id, percent, temps, target_temps, report, seen_at) \
                 WHERE p.id = v.id AND p.updated_at < v.seen_at",
            )
            .bind::<Array<BigInt>, _>(beats.iter().map(|b| b.printer.0).collect::<Vec<_>>())
            .bind::<Array<Double>, _>(beats.iter().map(|b| b.percent).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                beats.iter().map(|b| b.temps.as_deref()).collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(
                beats
                    .iter()
                    .map(|b| b.target_temps.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(beats.iter().map(|b| b.report.as_str()).collect::<Vec<_>>())
            .bind::<Array<Timestamp>, _>(beats.iter().map(|b| b.seen_at).collect::<Vec<_>>())
            .execute(pg),
            DbConn::Sqlite(_) => {
                let mut written = 0;
                for b in beats {
                    written += diesel::update(
                        printers::table
                            .find(b.printer)
                            .filter(printers::updated_at.lt(b.seen_at)),
                    )
                    .set((
                        printers::percent.eq(b.percent),
                        printers::temps.eq(b.temps.as_deref()),
                        printers::target_temps.eq(b.target_temps.as_deref()),
                        printers::report.eq(b.report.as_str()),
                        printers::last_seen_at.eq(Some(b.seen_at)),
                        printers::updated_at.eq(b.seen_at),
                    ))
                    .execute(conn)?;
                }
                Ok(written)
            }
        }
    }

    /// Keeps a long-polling printer marked as connected.
    pub fn touch(conn: &mut DbConn, id: PrinterId, now: NaiveDateTime) -> QResult<()> {
        diesel::update(printers::table.find(id))
            .set(printers::last_seen_at.eq(Some(now)))
            .execute(conn)?;
        Ok(())
    }

    /// Someone watches the camera until `until`.
    pub fn watched_until(conn: &mut DbConn, id: PrinterId, until: NaiveDateTime) -> QResult<()> {
        diesel::update(printers::table.find(id))
            .set(printers::camera_watched_until.eq(Some(until)))
            .execute(conn)?;
        Ok(())
    }

    pub fn forget_last_seen(conn: &mut DbConn, id: PrinterId) -> QResult<()> {
        diesel::update(printers::table.find(id))
            .set(printers::last_seen_at.eq(None::<NaiveDateTime>))
            .execute(conn)?;
        Ok(())
    }

    pub fn insert(conn: &mut DbConn, new: &NewPrinter) -> QResult<Printer> {
        diesel::insert_into(printers::table)
            .values(new)
            .get_result(conn)
    }

    pub fn set_name(conn: &mut DbConn, id: PrinterId, name: &str) -> QResult<usize> {
        diesel::update(printers::table.find(id))
            .set((
                printers::name.eq(name),
                printers::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    pub fn find(conn: &mut DbConn, id: PrinterId) -> QResult<Option<Printer>> {
        printers::table.find(id).first(conn).optional()
    }

    /// The printer of an agent token, and whether a command waits for it (pending or sent,
    /// not acknowledged): an agent's poll in one statement.
    pub fn find_by_token_hash_for_poll(
        conn: &mut DbConn,
        hash: &str,
    ) -> QResult<Option<(Printer, bool)>> {
        // Every poll runs it: on the concrete connection, so its SQL is not written out again
        // on each execution (see `signed`).
        crate::per_backend!(conn, |c| {
            let waiting = printer_commands::table
                .filter(printer_commands::printer_id.eq(printers::id))
                .filter(super::command::unacknowledged());
            printers::table
                .filter(printers::auth_token_hash.eq(hash))
                .select((Printer::as_select(), diesel::dsl::exists(waiting)))
                .first(c)
                .optional()
        })
    }

    pub fn find_by_token_hash(conn: &mut DbConn, hash: &str) -> QResult<Option<Printer>> {
        crate::per_backend!(conn, |c| printers::table
            .filter(printers::auth_token_hash.eq(hash))
            .select(Printer::as_select())
            .first(c)
            .optional())
    }

    pub fn find_device(
        conn: &mut DbConn,
        org: OrgId,
        vid: &str,
        pid: &str,
        snr: &str,
    ) -> QResult<Option<Printer>> {
        printers::table
            .filter(printers::organization_id.eq(org))
            .filter(printers::vid.eq(vid))
            .filter(printers::pid.eq(pid))
            .filter(printers::snr.eq(snr))
            .first(conn)
            .optional()
    }

    pub fn in_org(conn: &mut DbConn, org: OrgId) -> QResult<Vec<Printer>> {
        printers::table
            .filter(printers::organization_id.eq(org))
            .order(printers::id.asc())
            .load(conn)
    }

    pub fn by_ids(conn: &mut DbConn, ids: &[PrinterId]) -> QResult<Vec<Printer>> {
        printers::table
            .filter(printers::id.eq_any(ids))
            .order(printers::id.asc())
            .load(conn)
    }

    pub fn set_token_hash(conn: &mut DbConn, id: PrinterId, hash: &str) -> QResult<usize> {
        diesel::update(printers::table.find(id))
            .set((
                printers::auth_token_hash.eq(Some(hash)),
                printers::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    pub fn set_tray_clear(conn: &mut DbConn, id: PrinterId, clear: bool) -> QResult<usize> {
        diesel::update(printers::table.find(id))
            .set((
                printers::tray_clear.eq(clear),
                printers::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    /// Puts the printer in maintenance with a note, or (None) ends it: the end restarts the
    /// maintenance counters.
    pub fn set_maintenance(
        conn: &mut DbConn,
        id: PrinterId,
        note: Option<&str>,
        now: NaiveDateTime,
    ) -> QResult<usize> {
        match note {
            Some(note) => diesel::update(printers::table.find(id))
                .set((
                    printers::maintenance_note.eq(Some(note)),
                    printers::maintenance_since.eq(Some(now)),
                    printers::updated_at.eq(now),
                ))
                .execute(conn),
            None => diesel::update(printers::table.find(id))
                .set((
                    printers::maintenance_note.eq(None::<String>),
                    printers::maintenance_since.eq(None::<NaiveDateTime>),
                    printers::maintained_at.eq(Some(now)),
                    printers::updated_at.eq(now),
                ))
                .execute(conn),
        }
    }

    /// The limits past which the printer goes into maintenance by itself (None: never).
    pub fn set_maintenance_limits(
        conn: &mut DbConn,
        id: PrinterId,
        hours: Option<f64>,
        filament_g: Option<f64>,
    ) -> QResult<usize> {
        diesel::update(printers::table.find(id))
            .set((
                printers::maintenance_hours_limit.eq(hours),
                printers::maintenance_filament_limit_g.eq(filament_g),
            ))
            .execute(conn)
    }

    pub fn set_circuit(
        conn: &mut DbConn,
        ids: &[PrinterId],
        circuit: Option<i64>,
    ) -> QResult<usize> {
        diesel::update(printers::table.filter(printers::id.eq_any(ids)))
            .set(printers::circuit_id.eq(circuit))
            .execute(conn)
    }

    pub fn in_circuit(conn: &mut DbConn, circuit: i64) -> QResult<Vec<Printer>> {
        printers::table
            .filter(printers::circuit_id.eq(Some(circuit)))
            .order(printers::id.asc())
            .load(conn)
    }

    /// Printers that may take a job now as far as their own row tells: ready, seen since
    /// `seen_since`, no job, a clear tray, not in maintenance.
    pub fn idle(conn: &mut DbConn, seen_since: NaiveDateTime) -> QResult<Vec<Printer>> {
        printers::table
            .filter(printers::state.eq(PrinterState::Ready))
            .filter(printers::current_job_id.is_null())
            .filter(printers::tray_clear.eq(true))
            .filter(printers::maintenance_note.is_null())
            .filter(printers::last_seen_at.ge(seen_since))
            .order(printers::id.asc())
            .load(conn)
    }

    /// Takes the next per-printer command number. The update locks the printer row, so
    /// numbers are handed out in commit order.
    pub fn take_command_number(conn: &mut DbConn, id: PrinterId) -> QResult<i64> {
        diesel::update(printers::table.find(id))
            .set(printers::next_command_number.eq(printers::next_command_number + 1))
            .returning(printers::next_command_number)
            .get_result::<i64>(conn)
            .map(|next| next - 1)
    }
}

pub struct PrinterWorkgroups;

impl PrinterWorkgroups {
    /// Workgroup ids per printer, for the given printers.
    pub fn of(conn: &mut DbConn, printer_ids: &[PrinterId]) -> QResult<Vec<(PrinterId, i64)>> {
        printer_workgroups::table
            .filter(printer_workgroups::printer_id.eq_any(printer_ids))
            .order((
                printer_workgroups::printer_id,
                printer_workgroups::workgroup_id,
            ))
            .select((
                printer_workgroups::printer_id,
                printer_workgroups::workgroup_id,
            ))
            .load(conn)
    }

    /// Workgroup ids per printer, for the printers of these organizations. Lists ask by
    /// organization rather than by printer: an `IN` list of every listed printer's id is a new
    /// statement to prepare on each request on SQLite.
    pub fn of_orgs(conn: &mut DbConn, orgs: &[OrgId]) -> QResult<Vec<(PrinterId, i64)>> {
        printer_workgroups::table
            .inner_join(printers::table)
            .filter(printers::organization_id.eq_any(orgs))
            .order((
                printer_workgroups::printer_id,
                printer_workgroups::workgroup_id,
            ))
            .select((
                printer_workgroups::printer_id,
                printer_workgroups::workgroup_id,
            ))
            .load(conn)
    }

    /// The printers of the user's workgroups, each with the user's rights in that workgroup
    /// (a printer in several of them comes once for each).
    pub fn member_rights(conn: &mut DbConn, user: UserId) -> QResult<Vec<(PrinterId, i32)>> {
        printer_workgroups::table
            .inner_join(
                workgroup_members::table
                    .on(workgroup_members::workgroup_id.eq(printer_workgroups::workgroup_id)),
            )
            .filter(workgroup_members::user_id.eq(user))
            .select((printer_workgroups::printer_id, workgroup_members::rights))
            .load(conn)
    }

    /// Printers in any of the workgroups, with the workgroup they are reached through.
    pub fn printers_in(conn: &mut DbConn, workgroup_ids: &[i64]) -> QResult<Vec<(PrinterId, i64)>> {
        printer_workgroups::table
            .filter(printer_workgroups::workgroup_id.eq_any(workgroup_ids))
            .select((
                printer_workgroups::printer_id,
                printer_workgroups::workgroup_id,
            ))
            .load(conn)
    }

    pub fn set(conn: &mut DbConn, printer: PrinterId, workgroups: &[i64]) -> QResult<()> {
        diesel::delete(
            printer_workgroups::table.filter(printer_workgroups::printer_id.eq(printer)),
        )
        .execute(conn)?;
        for wg in workgroups {
            diesel::insert_into(printer_workgroups::table)
                .values((
                    printer_workgroups::printer_id.eq(printer),
                    printer_workgroups::workgroup_id.eq(wg),
                ))
                .execute(conn)?;
        }
        Ok(())
    }
}
