//! The demo farm: which user owns it (and with it the virtual printers, sample files and jobs).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = demo_farm, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct DemoFarm {
    pub id: i32,
    pub user_id: UserId,
    pub organization_id: OrgId,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

/// How much the demo farm holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemoCounts {
    pub printers: i64,
    pub files: i64,
    pub jobs: i64,
}

impl DemoFarm {
    /// The demo farm, if there is one (at most one per database).
    pub fn get(conn: &mut DbConn) -> QResult<Option<DemoFarm>> {
        demo_farm::table
            .select(DemoFarm::as_select())
            .first(conn)
            .optional()
    }

    pub fn insert(conn: &mut DbConn, user: UserId, org: OrgId) -> QResult<DemoFarm> {
        diesel::insert_into(demo_farm::table)
            .values((
                demo_farm::id.eq(1),
                demo_farm::user_id.eq(user),
                demo_farm::organization_id.eq(org),
                demo_farm::created_at.eq(crate::db::now()),
            ))
            .execute(conn)?;
        demo_farm::table.select(DemoFarm::as_select()).first(conn)
    }

    /// The virtual printers: the demo user's.
    pub fn printers(&self, conn: &mut DbConn) -> QResult<Vec<Printer>> {
        printers::table
            .filter(printers::owner_user_id.eq(self.user_id))
            .order(printers::id)
            .select(Printer::as_select())
            .load(conn)
    }

    /// The sample files (and anything else the demo user stored), oldest first.
    pub fn files(&self, conn: &mut DbConn) -> QResult<Vec<StoredFile>> {
        files::table
            .filter(files::user_id.eq(self.user_id))
            .order(files::id)
            .select(StoredFile::as_select())
            .load(conn)
    }

    pub fn counts(&self, conn: &mut DbConn) -> QResult<DemoCounts> {
        let printers = printers::table
            .filter(printers::owner_user_id.eq(self.user_id))
            .count()
            .get_result(conn)?;
        let files = files::table
            .filter(files::user_id.eq(self.user_id))
            .count()
            .get_result(conn)?;
        let jobs = jobs::table
            .filter(jobs::user_id.eq(self.user_id))
            .count()
            .get_result(conn)?;
        Ok(DemoCounts {
            printers,
            files,
            jobs,
        })
    }

    /// Deletes everything the demo made, the user last (its files, projects, farm jobs and
    /// this row go with it): jobs on the virtual printers or of the sample files, whoever
    /// queued them, then the printers, then the codes the virtual printers asked for.
    /// Answers the files that were deleted (their stored objects are the caller's to remove).
    pub fn delete_all(
        &self,
        conn: &mut DbConn,
        device_keys: &[String],
    ) -> QResult<Vec<StoredFile>> {
        let user = self.user_id;
        let demo_files = move || {
            files::table
                .filter(files::user_id.eq(user))
                .select(files::id)
        };
        let removed = self.files(conn)?;
        // Jobs of the demo: on its printers, of its files, or its user's.
        let demo_jobs: Vec<i64> = jobs::table
            .filter(
                jobs::printer_id
                    .eq_any(
                        printers::table
                            .filter(printers::owner_user_id.eq(user))
                            .select(printers::id),
                    )
                    .or(jobs::file_id.eq_any(demo_files()))
                    .or(jobs::user_id.eq(user)),
            )
            .select(jobs::id)
            .load(conn)?;
        // (in slices: both backends bound the number of parameters of one statement)
        for ids in demo_jobs.chunks(500) {
            // Someone else's farm copy that a virtual printer was printing never printed: it
            // waits for a real printer again; finished copies just lose the link.
            diesel::update(
                farm_copies::table
                    .filter(farm_copies::job_id.eq_any(ids))
                    .filter(farm_copies::state.eq(CopyState::Printing)),
            )
            .set((
                farm_copies::state.eq(CopyState::Waiting),
                farm_copies::job_id.eq(None::<i64>),
            ))
            .execute(conn)?;
            diesel::update(farm_copies::table.filter(farm_copies::job_id.eq_any(ids)))
                .set(farm_copies::job_id.eq(None::<i64>))
                .execute(conn)?;
            diesel::update(printers::table.filter(printers::current_job_id.eq_any(ids)))
                .set(printers::current_job_id.eq(None::<i64>))
                .execute(conn)?;
            diesel::delete(jobs::table.filter(jobs::id.eq_any(ids))).execute(conn)?;
        }
        diesel::delete(farm_jobs::table.filter(farm_jobs::file_id.eq_any(demo_files())))
            .execute(conn)?;
        diesel::delete(printers::table.filter(printers::owner_user_id.eq(self.user_id)))
            .execute(conn)?;
        RegistrationCode::delete_for_devices(conn, device_keys)?;
        diesel::delete(users::table.filter(users::id.eq(self.user_id))).execute(conn)?;
        Ok(removed)
    }
}

impl RegistrationCode {
    /// The newest code a device asked for that nobody redeemed yet and that still holds.
    pub fn waiting_for_device(
        conn: &mut DbConn,
        device_key: &str,
    ) -> QResult<Option<RegistrationCode>> {
        registration_codes::table
            .filter(registration_codes::device_key.eq(device_key))
            .filter(registration_codes::redeemed_at.is_null())
            .filter(registration_codes::expires_at.gt(crate::db::now()))
            .order(registration_codes::id.desc())
            .select(RegistrationCode::as_select())
            .first(conn)
            .optional()
    }

    pub fn delete_for_devices(conn: &mut DbConn, device_keys: &[String]) -> QResult<usize> {
        diesel::delete(
            registration_codes::table.filter(registration_codes::device_key.eq_any(device_keys)),
        )
        .execute(conn)
    }
}
