//! Row structs and the queries that belong to them. Every query takes `&mut DbConn` and uses
//! only DSL that compiles for both backends.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::*;
use super::DbConn;

type QResult<T> = Result<T, diesel::result::Error>;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = organizations, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Organization {
    pub id: i64,
    pub name: String,
    pub auto_start_queue: bool,
    pub actual_jobs_hours: i32,
    pub report_fields: Option<String>,
    pub material_prices: Option<String>,
    pub currency: String,
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

impl Organization {
    pub fn insert(conn: &mut DbConn, name: &str) -> QResult<Organization> {
        diesel::insert_into(organizations::table)
            .values(NewOrganization {
                name,
                auto_start_queue: false,
                actual_jobs_hours: 24,
                currency: "USD",
                created_at: super::now(),
            })
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<Organization>> {
        organizations::table.find(id).first(conn).optional()
    }
}

/// Organization access roles as the Global API numbers them.
pub mod access_role {
    pub const MEMBER: i32 = 0;
    pub const ADMIN: i32 = 1;
    pub const WORKGROUP_ADMIN: i32 = 2;

    pub fn is_valid(role: i32) -> bool {
        (0..=2).contains(&role)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct User {
    pub id: i64,
    pub organization_id: i64,
    pub email: String,
    pub password_hash: Option<String>,
    pub firstname: String,
    pub lastname: String,
    pub company: String,
    pub access_role: i32,
    pub gdpr: i32,
    pub google_sub: Option<String>,
    pub balance: Option<f64>,
    pub monthly_quota: Option<i32>,
    pub quota_used: i32,
    pub quota_period: Option<String>,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub organization_id: i64,
    pub email: &'a str,
    pub password_hash: Option<&'a str>,
    pub firstname: &'a str,
    pub lastname: &'a str,
    pub company: &'a str,
    pub access_role: i32,
    pub gdpr: i32,
    pub quota_used: i32,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Emails are stored trimmed and lower-cased, so lookups need no case-insensitive SQL
/// (LIKE differs between the backends).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl User {
    pub fn insert(conn: &mut DbConn, new: &NewUser) -> QResult<User> {
        diesel::insert_into(users::table)
            .values(new)
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<User>> {
        users::table.find(id).first(conn).optional()
    }

    pub fn find_by_email(conn: &mut DbConn, email: &str) -> QResult<Option<User>> {
        users::table
            .filter(users::email.eq(normalize_email(email)))
            .first(conn)
            .optional()
    }

    pub fn count(conn: &mut DbConn) -> QResult<i64> {
        users::table.count().get_result(conn)
    }

    pub fn set_password_hash(conn: &mut DbConn, id: i64, hash: &str) -> QResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(Some(hash)),
                users::updated_at.eq(super::now()),
            ))
            .execute(conn)
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.firstname, self.lastname)
            .trim()
            .to_string()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Session {
    pub id: i64,
    pub user_id: Option<i64>,
    pub token_hash: String,
    /// Set while a Google sign-up waits for GDPR consent (JSON of the verified identity).
    pub gdpr_pending: Option<String>,
    pub client_addr: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub user_id: Option<i64>,
    pub token_hash: &'a str,
    pub gdpr_pending: Option<&'a str>,
    pub client_addr: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl Session {
    pub fn insert(conn: &mut DbConn, new: &NewSession) -> QResult<Session> {
        diesel::insert_into(sessions::table)
            .values(new)
            .get_result(conn)
    }

    pub fn find_by_hash(conn: &mut DbConn, hash: &str) -> QResult<Option<Session>> {
        sessions::table
            .filter(sessions::token_hash.eq(hash))
            .first(conn)
            .optional()
    }

    pub fn delete(conn: &mut DbConn, id: i64) -> QResult<usize> {
        diesel::delete(sessions::table.find(id)).execute(conn)
    }

    pub fn delete_for_user(conn: &mut DbConn, user_id: i64) -> QResult<usize> {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
    }

    pub fn delete_expired(conn: &mut DbConn, now: NaiveDateTime) -> QResult<usize> {
        diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)
    }

    pub fn touch(
        conn: &mut DbConn,
        id: i64,
        now: NaiveDateTime,
        expires_at: NaiveDateTime,
    ) -> QResult<usize> {
        diesel::update(sessions::table.find(id))
            .set((
                sessions::last_seen_at.eq(now),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(conn)
    }
}

pub struct LoginFailure;

impl LoginFailure {
    pub fn record(conn: &mut DbConn, key: &str, at: NaiveDateTime) -> QResult<usize> {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::throttle_key.eq(key),
                login_failures::failed_at.eq(at),
            ))
            .execute(conn)
    }

    pub fn count_since(conn: &mut DbConn, key: &str, since: NaiveDateTime) -> QResult<i64> {
        login_failures::table
            .filter(login_failures::throttle_key.eq(key))
            .filter(login_failures::failed_at.gt(since))
            .count()
            .get_result(conn)
    }

    /// The oldest failure still inside the window decides when the lock lifts.
    pub fn oldest_since(
        conn: &mut DbConn,
        key: &str,
        since: NaiveDateTime,
    ) -> QResult<Option<NaiveDateTime>> {
        login_failures::table
            .filter(login_failures::throttle_key.eq(key))
            .filter(login_failures::failed_at.gt(since))
            .select(diesel::dsl::min(login_failures::failed_at))
            .first(conn)
    }

    pub fn clear(conn: &mut DbConn, key: &str) -> QResult<usize> {
        diesel::delete(login_failures::table.filter(login_failures::throttle_key.eq(key)))
            .execute(conn)
    }

    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QResult<usize> {
        diesel::delete(login_failures::table.filter(login_failures::failed_at.le(before)))
            .execute(conn)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = printer_types, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PrinterType {
    pub id: i64,
    pub short_name: String,
    pub description: String,
    pub vendor: String,
    pub industrial: bool,
    pub software_version: String,
    /// JSON object of strings, served as is by `get_printer_types_detailed`.
    pub printer_parameters: String,
    /// The whole catalogue entry (kinematics, nozzle, flavour) as JSON.
    pub profile: String,
    pub created_at: NaiveDateTime,
}

impl PrinterType {
    pub fn count(conn: &mut DbConn) -> QResult<i64> {
        printer_types::table.count().get_result(conn)
    }

    pub fn insert(conn: &mut DbConn, row: &PrinterType) -> QResult<usize> {
        diesel::insert_into(printer_types::table)
            .values(row)
            .execute(conn)
    }

    pub fn all(conn: &mut DbConn) -> QResult<Vec<PrinterType>> {
        printer_types::table
            .order(printer_types::id.asc())
            .load(conn)
    }
}
