//! Organizations: the tenants; everything else belongs to one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = organizations, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub auto_start_queue: bool,
    pub actual_jobs_hours: i32,
    pub report_fields: Option<String>,
    pub material_prices: Option<String>,
    pub currency: String,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = organizations)]
pub struct NewOrganization<'a> {
    pub name: &'a str,
    pub auto_start_queue: bool,
    pub actual_jobs_hours: i32,
    pub currency: &'a str,
    pub created_at: NaiveDateTime,
}

/// Organization settings to change; `None` leaves one as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = organizations)]
pub struct OrgSettingsChange {
    pub report_fields: Option<Option<String>>,
    pub auto_start_queue: Option<bool>,
    pub actual_jobs_hours: Option<i32>,
    pub material_prices: Option<Option<String>>,
    pub currency: Option<String>,
}

impl Organization {
    /// Applies the settings `change` names (nothing when it names none).
    pub fn update_settings(
        conn: &mut DbConn,
        id: OrgId,
        change: &OrgSettingsChange,
    ) -> QResult<()> {
        let nothing = change.report_fields.is_none()
            && change.auto_start_queue.is_none()
            && change.actual_jobs_hours.is_none()
            && change.material_prices.is_none()
            && change.currency.is_none();
        if !nothing {
            diesel::update(organizations::table.find(id))
                .set(change)
                .execute(conn)?;
        }
        Ok(())
    }

    pub fn insert(conn: &mut DbConn, name: &str) -> QResult<Organization> {
        diesel::insert_into(organizations::table)
            .values(NewOrganization {
                name,
                auto_start_queue: false,
                actual_jobs_hours: 24,
                currency: "USD",
                created_at: crate::db::now(),
            })
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, id: OrgId) -> QResult<Option<Organization>> {
        organizations::table.find(id).first(conn).optional()
    }

    pub fn first(conn: &mut DbConn) -> QResult<Option<Organization>> {
        organizations::table
            .order(organizations::id.asc())
            .first(conn)
            .optional()
    }
}
