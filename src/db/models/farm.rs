//! The farm queue: farm jobs (a file, a target, a number of copies), their copies (the
//! ledger of what was printed) and power circuits (staggered starts).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

text_enum! {
    /// What a farm job names instead of one printer.
    pub enum FarmTarget {
        PrinterType = "printer_type",
        Workgroup = "workgroup",
        Printers = "printers",
    }
}

text_enum! {
    /// A copy's progress: waiting → printing → done | failed (→ waiting again on a retry);
    /// waiting or failed → cancelled when its farm job is cancelled.
    pub enum CopyState {
        Waiting = "waiting",
        Printing = "printing",
        Done = "done",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = farm_jobs, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct FarmJob {
    pub id: i64,
    pub organization_id: OrgId,
    pub user_id: UserId,
    pub file_id: FileId,
    pub target_kind: FarmTarget,
    pub printer_type_id: Option<i64>,
    pub workgroup_id: Option<i64>,
    pub copies: i32,
    /// The material that must be loaded (`PETG`), compared without case; None: any.
    pub material: Option<String>,
    /// The colour that must be loaded (`#RRGGBB`, upper case); None: any.
    pub color_hex: Option<String>,
    pub priority: i32,
    #[diesel(deserialize_as = MaybeStamp)]
    pub cancelled_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = farm_jobs)]
pub struct NewFarmJob<'a> {
    pub organization_id: OrgId,
    pub user_id: UserId,
    pub file_id: FileId,
    pub target_kind: FarmTarget,
    pub printer_type_id: Option<i64>,
    pub workgroup_id: Option<i64>,
    pub copies: i32,
    pub material: Option<&'a str>,
    pub color_hex: Option<&'a str>,
    pub priority: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = farm_copies, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct FarmCopy {
    pub id: i64,
    pub farm_job_id: i64,
    pub copy_number: i32,
    pub state: CopyState,
    /// The job printing it now, or the last one that did.
    pub job_id: Option<JobId>,
    /// Jobs made for this copy so far.
    pub attempts: i32,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = power_circuits, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PowerCircuit {
    pub id: i64,
    pub organization_id: OrgId,
    pub name: String,
    pub max_heating: Option<i32>,
    pub max_downloads: Option<i32>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

/// How many copies of a farm job are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyCounts {
    pub waiting: i64,
    pub printing: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl FarmJob {
    pub fn insert(conn: &mut DbConn, new: &NewFarmJob, printers: &[PrinterId]) -> QResult<FarmJob> {
        let job: FarmJob = diesel::insert_into(farm_jobs::table)
            .values(new)
            .get_result(conn)?;
        let rows: Vec<_> = printers
            .iter()
            .map(|p| {
                (
                    farm_job_printers::farm_job_id.eq(job.id),
                    farm_job_printers::printer_id.eq(*p),
                )
            })
            .collect();
        if !rows.is_empty() {
            crate::per_backend!(conn, |c| diesel::insert_into(farm_job_printers::table)
                .values(&rows)
                .execute(c))?;
        }
        let copies: Vec<_> = (1..=new.copies)
            .map(|n| {
                (
                    farm_copies::farm_job_id.eq(job.id),
                    farm_copies::copy_number.eq(n),
                    farm_copies::state.eq(CopyState::Waiting),
                    farm_copies::attempts.eq(0),
                    farm_copies::updated_at.eq(new.created_at),
                )
            })
            .collect();
        // Bounded batches: SQLite allows at most 32,766 bound values per statement.
        for chunk in copies.chunks(1000) {
            crate::per_backend!(conn, |c| diesel::insert_into(farm_copies::table)
                .values(chunk)
                .execute(c))?;
        }
        Ok(job)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<FarmJob>> {
        farm_jobs::table
            .find(id)
            .select(FarmJob::as_select())
            .first(conn)
            .optional()
    }

    /// The printers a `printers` farm job lists.
    pub fn listed_printers(conn: &mut DbConn, id: i64) -> QResult<Vec<PrinterId>> {
        farm_job_printers::table
            .filter(farm_job_printers::farm_job_id.eq(id))
            .order(farm_job_printers::printer_id.asc())
            .select(farm_job_printers::printer_id)
            .load(conn)
    }

    /// The listed printers of several farm jobs: (farm job, printer).
    pub fn listed_printers_of(conn: &mut DbConn, ids: &[i64]) -> QResult<Vec<(i64, PrinterId)>> {
        farm_job_printers::table
            .filter(farm_job_printers::farm_job_id.eq_any(ids))
            .select((
                farm_job_printers::farm_job_id,
                farm_job_printers::printer_id,
            ))
            .load(conn)
    }

    /// Farm jobs of the organizations that have a copy waiting, in dispatch order: higher
    /// priority first, then the older.
    pub fn waiting(conn: &mut DbConn, orgs: Option<&[OrgId]>) -> QResult<Vec<FarmJob>> {
        let waiting_jobs = farm_copies::table
            .filter(farm_copies::state.eq(CopyState::Waiting))
            .select(farm_copies::farm_job_id);
        let mut q = farm_jobs::table
            .filter(farm_jobs::cancelled_at.is_null())
            .filter(farm_jobs::id.eq_any(waiting_jobs))
            .into_boxed();
        if let Some(orgs) = orgs {
            q = q.filter(farm_jobs::organization_id.eq_any(orgs.to_vec()));
        }
        q.order((farm_jobs::priority.desc(), farm_jobs::id.asc()))
            .select(FarmJob::as_select())
            .load(conn)
    }

    /// An organization's farm jobs (all of them, or one person's), newest first.
    pub fn of_org(
        conn: &mut DbConn,
        org: OrgId,
        user: Option<UserId>,
        limit: i64,
    ) -> QResult<Vec<FarmJob>> {
        let mut q = farm_jobs::table
            .filter(farm_jobs::organization_id.eq(org))
            .into_boxed();
        if let Some(u) = user {
            q = q.filter(farm_jobs::user_id.eq(u));
        }
        q.order(farm_jobs::id.desc())
            .limit(limit)
            .select(FarmJob::as_select())
            .load(conn)
    }

    pub fn set_priority(
        conn: &mut DbConn,
        id: i64,
        priority: i32,
        now: NaiveDateTime,
    ) -> QResult<usize> {
        diesel::update(farm_jobs::table.find(id))
            .set((
                farm_jobs::priority.eq(priority),
                farm_jobs::updated_at.eq(now),
            ))
            .execute(conn)
    }

    pub fn cancel(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QResult<usize> {
        diesel::update(farm_jobs::table.find(id))
            .set((
                farm_jobs::cancelled_at.eq(Some(now)),
                farm_jobs::updated_at.eq(now),
            ))
            .execute(conn)
    }

    /// Copy counts per farm job.
    pub fn counts(conn: &mut DbConn, ids: &[i64]) -> QResult<Vec<(i64, CopyCounts)>> {
        let rows: Vec<(i64, CopyState, i64)> = farm_copies::table
            .filter(farm_copies::farm_job_id.eq_any(ids))
            .group_by((farm_copies::farm_job_id, farm_copies::state))
            .select((
                farm_copies::farm_job_id,
                farm_copies::state,
                diesel::dsl::count_star(),
            ))
            .load(conn)?;
        let mut out: Vec<(i64, CopyCounts)> = Vec::new();
        for (job, state, n) in rows {
            let i = match out.iter().position(|(j, _)| *j == job) {
                Some(i) => i,
                None => {
                    out.push((job, CopyCounts::default()));
                    out.len() - 1
                }
            };
            let c = &mut out[i].1;
            match state {
                CopyState::Waiting => c.waiting += n,
                CopyState::Printing => c.printing += n,
                CopyState::Done => c.done += n,
                CopyState::Failed => c.failed += n,
                CopyState::Cancelled => c.cancelled += n,
            }
        }
        Ok(out)
    }
}

impl FarmCopy {
    pub fn of_job(conn: &mut DbConn, farm_job: i64) -> QResult<Vec<FarmCopy>> {
        farm_copies::table
            .filter(farm_copies::farm_job_id.eq(farm_job))
            .order(farm_copies::copy_number.asc())
            .select(FarmCopy::as_select())
            .load(conn)
    }

    /// The copy is printing as `job`; only a waiting copy moves (None: it was not waiting).
    pub fn assign(conn: &mut DbConn, id: i64, job: JobId, now: NaiveDateTime) -> QResult<bool> {
        let n = diesel::update(
            farm_copies::table
                .find(id)
                .filter(farm_copies::state.eq(CopyState::Waiting)),
        )
        .set((
            farm_copies::state.eq(CopyState::Printing),
            farm_copies::job_id.eq(Some(job)),
            farm_copies::attempts.eq(farm_copies::attempts + 1),
            farm_copies::updated_at.eq(now),
        ))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// Moves copies from one state to another (those of `ids`, when in `from`).
    pub fn set_state(
        conn: &mut DbConn,
        ids: &[i64],
        from: &[CopyState],
        to: CopyState,
        now: NaiveDateTime,
    ) -> QResult<usize> {
        diesel::update(
            farm_copies::table
                .filter(farm_copies::id.eq_any(ids))
                .filter(farm_copies::state.eq_any(from.to_vec())),
        )
        .set((farm_copies::state.eq(to), farm_copies::updated_at.eq(now)))
        .execute(conn)
    }

    /// The copy printed by `job` ended: done when the job finished, failed otherwise.
    pub fn job_ended(
        conn: &mut DbConn,
        id: i64,
        job: JobId,
        finished: bool,
        now: NaiveDateTime,
    ) -> QResult<usize> {
        let to = if finished {
            CopyState::Done
        } else {
            CopyState::Failed
        };
        diesel::update(
            farm_copies::table
                .find(id)
                .filter(farm_copies::job_id.eq(Some(job)))
                .filter(farm_copies::state.eq(CopyState::Printing)),
        )
        .set((farm_copies::state.eq(to), farm_copies::updated_at.eq(now)))
        .execute(conn)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = power_circuits)]
pub struct NewPowerCircuit<'a> {
    pub organization_id: OrgId,
    pub name: &'a str,
    pub max_heating: Option<i32>,
    pub max_downloads: Option<i32>,
    pub created_at: NaiveDateTime,
}

impl PowerCircuit {
    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<PowerCircuit>> {
        power_circuits::table
            .find(id)
            .select(PowerCircuit::as_select())
            .first(conn)
            .optional()
    }

    pub fn by_name(conn: &mut DbConn, org: OrgId, name: &str) -> QResult<Option<PowerCircuit>> {
        power_circuits::table
            .filter(power_circuits::organization_id.eq(org))
            .filter(power_circuits::name.eq(name))
            .select(PowerCircuit::as_select())
            .first(conn)
            .optional()
    }

    pub fn of_org(conn: &mut DbConn, org: OrgId) -> QResult<Vec<PowerCircuit>> {
        power_circuits::table
            .filter(power_circuits::organization_id.eq(org))
            .order(power_circuits::name.asc())
            .select(PowerCircuit::as_select())
            .load(conn)
    }

    pub fn insert(conn: &mut DbConn, new: &NewPowerCircuit) -> QResult<PowerCircuit> {
        diesel::insert_into(power_circuits::table)
            .values(new)
            .get_result(conn)
    }

    pub fn set_limits(
        conn: &mut DbConn,
        id: i64,
        max_heating: Option<i32>,
        max_downloads: Option<i32>,
    ) -> QResult<usize> {
        diesel::update(power_circuits::table.find(id))
            .set((
                power_circuits::max_heating.eq(max_heating),
                power_circuits::max_downloads.eq(max_downloads),
            ))
            .execute(conn)
    }

    /// Removes a circuit; its printers no longer belong to one.
    pub fn delete(conn: &mut DbConn, id: i64) -> QResult<usize> {
        diesel::update(printers::table.filter(printers::circuit_id.eq(Some(id))))
            .set(printers::circuit_id.eq(None::<i64>))
            .execute(conn)?;
        diesel::delete(power_circuits::table.find(id)).execute(conn)
    }
}
