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
    /// Records one failure (or one attempt not yet known to succeed) and returns its id.
    pub fn record(conn: &mut DbConn, key: &str, at: NaiveDateTime) -> QResult<i64> {
        diesel::insert_into(login_failures::table)
            .values((
                login_failures::throttle_key.eq(key),
                login_failures::failed_at.eq(at),
            ))
            .returning(login_failures::id)
            .get_result(conn)
    }

    pub fn delete_ids(conn: &mut DbConn, ids: &[i64]) -> QResult<usize> {
        diesel::delete(login_failures::table.filter(login_failures::id.eq_any(ids))).execute(conn)
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

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = workgroups, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Workgroup {
    pub id: i64,
    pub organization_id: i64,
    pub name: String,
    pub join_password: String,
    pub created_at: NaiveDateTime,
}

/// Workgroup rights as the Global API numbers them.
pub mod rights {
    pub const CAN_PRINT: i32 = 2;
    pub const CAN_QUEUE: i32 = 3;

    pub fn is_valid(r: i32) -> bool {
        r == CAN_PRINT || r == CAN_QUEUE
    }
}

impl Workgroup {
    pub fn insert(
        conn: &mut DbConn,
        org: i64,
        name: &str,
        join_password: &str,
    ) -> QResult<Workgroup> {
        diesel::insert_into(workgroups::table)
            .values((
                workgroups::organization_id.eq(org),
                workgroups::name.eq(name),
                workgroups::join_password.eq(join_password),
                workgroups::created_at.eq(super::now()),
            ))
            .get_result(conn)
    }

    /// Only within the caller's organization: another organization's ids look absent.
    pub fn find_in_org(conn: &mut DbConn, org: i64, id: i64) -> QResult<Option<Workgroup>> {
        workgroups::table
            .filter(workgroups::id.eq(id))
            .filter(workgroups::organization_id.eq(org))
            .first(conn)
            .optional()
    }

    pub fn all_in_org(conn: &mut DbConn, org: i64) -> QResult<Vec<Workgroup>> {
        workgroups::table
            .filter(workgroups::organization_id.eq(org))
            .order(workgroups::id.asc())
            .load(conn)
    }

    /// The user's workgroups with their rights in each.
    pub fn of_user(conn: &mut DbConn, user_id: i64) -> QResult<Vec<(Workgroup, i32)>> {
        workgroups::table
            .inner_join(workgroup_members::table)
            .filter(workgroup_members::user_id.eq(user_id))
            .order(workgroups::id.asc())
            .select((Workgroup::as_select(), workgroup_members::rights))
            .load(conn)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = workgroup_members, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct WorkgroupMember {
    pub id: i64,
    pub workgroup_id: i64,
    pub user_id: i64,
    pub rights: i32,
    pub created_at: NaiveDateTime,
}

impl WorkgroupMember {
    pub fn find(
        conn: &mut DbConn,
        workgroup_id: i64,
        user_id: i64,
    ) -> QResult<Option<WorkgroupMember>> {
        workgroup_members::table
            .filter(workgroup_members::workgroup_id.eq(workgroup_id))
            .filter(workgroup_members::user_id.eq(user_id))
            .first(conn)
            .optional()
    }

    pub fn insert(
        conn: &mut DbConn,
        workgroup_id: i64,
        user_id: i64,
        rights: i32,
    ) -> QResult<usize> {
        diesel::insert_into(workgroup_members::table)
            .values((
                workgroup_members::workgroup_id.eq(workgroup_id),
                workgroup_members::user_id.eq(user_id),
                workgroup_members::rights.eq(rights),
                workgroup_members::created_at.eq(super::now()),
            ))
            .execute(conn)
    }

    pub fn set_rights(conn: &mut DbConn, id: i64, rights: i32) -> QResult<usize> {
        diesel::update(workgroup_members::table.find(id))
            .set(workgroup_members::rights.eq(rights))
            .execute(conn)
    }

    pub fn delete(conn: &mut DbConn, workgroup_id: i64, user_id: i64) -> QResult<usize> {
        diesel::delete(
            workgroup_members::table
                .filter(workgroup_members::workgroup_id.eq(workgroup_id))
                .filter(workgroup_members::user_id.eq(user_id)),
        )
        .execute(conn)
    }

    /// Users of a workgroup, by id.
    pub fn users_of(conn: &mut DbConn, workgroup_id: i64) -> QResult<Vec<User>> {
        users::table
            .inner_join(workgroup_members::table)
            .filter(workgroup_members::workgroup_id.eq(workgroup_id))
            .order(users::id.asc())
            .select(User::as_select())
            .load(conn)
    }
}

/// Single-use tokens tied to a user: set-password invitations and slicer sign-in tokens.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = user_tokens, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct UserToken {
    pub id: i64,
    pub purpose: String,
    pub token_hash: String,
    pub user_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub confirmed_at: Option<NaiveDateTime>,
    pub used_at: Option<NaiveDateTime>,
}

impl UserToken {
    /// Expired sign-in, set-password and unconfirmed slicer-login tokens: never usable again.
    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QResult<usize> {
        diesel::delete(user_tokens::table.filter(user_tokens::expires_at.le(before))).execute(conn)
    }

    pub fn insert(
        conn: &mut DbConn,
        purpose: &str,
        hash: &str,
        user_id: Option<i64>,
        expires_at: NaiveDateTime,
    ) -> QResult<UserToken> {
        diesel::insert_into(user_tokens::table)
            .values((
                user_tokens::purpose.eq(purpose),
                user_tokens::token_hash.eq(hash),
                user_tokens::user_id.eq(user_id),
                user_tokens::created_at.eq(super::now()),
                user_tokens::expires_at.eq(expires_at),
            ))
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, purpose: &str, hash: &str) -> QResult<Option<UserToken>> {
        user_tokens::table
            .filter(user_tokens::purpose.eq(purpose))
            .filter(user_tokens::token_hash.eq(hash))
            .first(conn)
            .optional()
    }

    pub fn delete_unused_for_user(
        conn: &mut DbConn,
        purpose: &str,
        user_id: i64,
    ) -> QResult<usize> {
        diesel::delete(
            user_tokens::table
                .filter(user_tokens::purpose.eq(purpose))
                .filter(user_tokens::user_id.eq(user_id))
                .filter(user_tokens::used_at.is_null()),
        )
        .execute(conn)
    }

    /// Marks the token used, only if it still is unused: a second redeemer updates nothing.
    pub fn mark_used(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QResult<bool> {
        let n = diesel::update(
            user_tokens::table
                .filter(user_tokens::id.eq(id))
                .filter(user_tokens::used_at.is_null()),
        )
        .set(user_tokens::used_at.eq(now))
        .execute(conn)?;
        Ok(n == 1)
    }

    pub fn confirm(conn: &mut DbConn, id: i64, user_id: i64, now: NaiveDateTime) -> QResult<bool> {
        let n = diesel::update(
            user_tokens::table
                .filter(user_tokens::id.eq(id))
                .filter(user_tokens::confirmed_at.is_null()),
        )
        .set((
            user_tokens::user_id.eq(Some(user_id)),
            user_tokens::confirmed_at.eq(now),
        ))
        .execute(conn)?;
        Ok(n == 1)
    }
}

impl User {
    pub fn find_in_org(conn: &mut DbConn, org: i64, id: i64) -> QResult<Option<User>> {
        users::table
            .filter(users::id.eq(id))
            .filter(users::organization_id.eq(org))
            .first(conn)
            .optional()
    }

    pub fn find_by_google_sub(conn: &mut DbConn, sub: &str) -> QResult<Option<User>> {
        users::table
            .filter(users::google_sub.eq(sub))
            .first(conn)
            .optional()
    }

    pub fn set_google_sub(conn: &mut DbConn, id: i64, sub: &str) -> QResult<usize> {
        diesel::update(users::table.find(id))
            .set((
                users::google_sub.eq(Some(sub)),
                users::updated_at.eq(super::now()),
            ))
            .execute(conn)
    }

    pub fn set_balance_and_quota(
        conn: &mut DbConn,
        id: i64,
        balance: Option<Option<f64>>,
        quota: Option<Option<i32>>,
    ) -> QResult<usize> {
        let now = super::now();
        let mut n = 0;
        if let Some(b) = balance {
            n += diesel::update(users::table.find(id))
                .set((users::balance.eq(b), users::updated_at.eq(now)))
                .execute(conn)?;
        }
        if let Some(q) = quota {
            n += diesel::update(users::table.find(id))
                .set((users::monthly_quota.eq(q), users::updated_at.eq(now)))
                .execute(conn)?;
        }
        Ok(n)
    }
}

impl Session {
    /// Turns a GDPR-pending session into a normal one for the newly registered user.
    pub fn attach_user(conn: &mut DbConn, id: i64, user_id: i64) -> QResult<usize> {
        diesel::update(sessions::table.find(id))
            .set((
                sessions::user_id.eq(Some(user_id)),
                sessions::gdpr_pending.eq(None::<String>),
            ))
            .execute(conn)
    }
}

impl Organization {
    pub fn first(conn: &mut DbConn) -> QResult<Option<Organization>> {
        organizations::table
            .order(organizations::id.asc())
            .first(conn)
            .optional()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = projects, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Project {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub color: String,
    pub created_at: NaiveDateTime,
}

impl Project {
    pub fn insert(conn: &mut DbConn, user_id: i64, name: &str, color: &str) -> QResult<Project> {
        diesel::insert_into(projects::table)
            .values((
                projects::user_id.eq(user_id),
                projects::name.eq(name),
                projects::color.eq(color),
                projects::created_at.eq(super::now()),
            ))
            .get_result(conn)
    }

    pub fn find_for_user(conn: &mut DbConn, user_id: i64, id: i64) -> QResult<Option<Project>> {
        projects::table
            .filter(projects::id.eq(id))
            .filter(projects::user_id.eq(user_id))
            .first(conn)
            .optional()
    }

    pub fn find_by_name(conn: &mut DbConn, user_id: i64, name: &str) -> QResult<Option<Project>> {
        projects::table
            .filter(projects::user_id.eq(user_id))
            .filter(projects::name.eq(name))
            .order(projects::id.asc())
            .first(conn)
            .optional()
    }

    pub fn of_user(conn: &mut DbConn, user_id: i64) -> QResult<Vec<Project>> {
        projects::table
            .filter(projects::user_id.eq(user_id))
            .order(projects::id.asc())
            .load(conn)
    }
}

/// An uploaded or generated file (`files` table).
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct StoredFile {
    pub id: i64,
    pub user_id: i64,
    pub organization_id: i64,
    pub project_id: Option<i64>,
    /// "ready", or "reserved" for a slicer output id handed out before the slice ends.
    pub state: String,
    pub filename: String,
    /// "gcode", "stl", "3mf" or "obj".
    pub kind: String,
    pub size: i64,
    pub sha256: String,
    pub storage_key: String,
    pub upload_type_id: i32,
    pub upload_soft_name: Option<String>,
    pub printer_type_id: Option<i64>,
    pub slicer: Option<String>,
    pub zip: bool,
    /// JSON of the G-code or mesh analysis.
    pub analysis: Option<String>,
    /// JSON object of the slicer settings embedded in a G-code file.
    pub slicer_settings: Option<String>,
    /// Preview image name, served at `/render/<picture>`.
    pub picture: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = files)]
pub struct NewFile<'a> {
    pub user_id: i64,
    pub organization_id: i64,
    pub project_id: Option<i64>,
    pub state: &'a str,
    pub filename: &'a str,
    pub kind: &'a str,
    pub size: i64,
    pub sha256: &'a str,
    pub storage_key: &'a str,
    pub upload_type_id: i32,
    pub upload_soft_name: Option<&'a str>,
    pub printer_type_id: Option<i64>,
    pub slicer: Option<&'a str>,
    pub zip: bool,
    pub analysis: Option<&'a str>,
    pub slicer_settings: Option<&'a str>,
    pub picture: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl StoredFile {
    /// The stored analysis as JSON (null when there is none).
    pub fn analysis_json(&self) -> serde_json::Value {
        self.analysis
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn insert(conn: &mut DbConn, new: &NewFile) -> QResult<StoredFile> {
        diesel::insert_into(files::table)
            .values(new)
            .get_result(conn)
    }

    /// Inserts with an id taken before by `db::reserve_file_id`.
    pub fn insert_with_id(conn: &mut DbConn, id: i64, new: &NewFile) -> QResult<StoredFile> {
        diesel::insert_into(files::table)
            .values((files::id.eq(id), new))
            .get_result(conn)
    }

    /// The caller's own file: anybody else's id looks absent.
    pub fn find_owned(conn: &mut DbConn, user_id: i64, id: i64) -> QResult<Option<StoredFile>> {
        files::table
            .filter(files::id.eq(id))
            .filter(files::user_id.eq(user_id))
            .first(conn)
            .optional()
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<StoredFile>> {
        files::table.find(id).first(conn).optional()
    }

    /// The files whose preview is this picture (normally one).
    pub fn with_picture(conn: &mut DbConn, picture: &str) -> QResult<Vec<StoredFile>> {
        files::table
            .filter(files::picture.eq(picture))
            .order(files::id.asc())
            .load(conn)
    }

    pub fn set_printer_type(conn: &mut DbConn, id: i64, ptype: Option<i64>) -> QResult<usize> {
        diesel::update(files::table.find(id))
            .set((
                files::printer_type_id.eq(ptype),
                files::updated_at.eq(super::now()),
            ))
            .execute(conn)
    }

    pub fn set_slicer(conn: &mut DbConn, id: i64, slicer: &str) -> QResult<usize> {
        diesel::update(files::table.find(id))
            .set((
                files::slicer.eq(Some(slicer)),
                files::updated_at.eq(super::now()),
            ))
            .execute(conn)
    }

    pub fn set_content(
        conn: &mut DbConn,
        id: i64,
        storage_key: &str,
        size: i64,
        sha256: &str,
        zip: bool,
    ) -> QResult<usize> {
        diesel::update(files::table.find(id))
            .set((
                files::storage_key.eq(storage_key),
                files::size.eq(size),
                files::sha256.eq(sha256),
                files::zip.eq(zip),
                files::updated_at.eq(super::now()),
            ))
            .execute(conn)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = printers, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Printer {
    pub id: i64,
    pub organization_id: i64,
    pub owner_user_id: Option<i64>,
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
    pub state: String,
    pub percent: f64,
    /// JSON arrays of numbers.
    pub temps: Option<String>,
    pub target_temps: Option<String>,
    /// The last report, merged (agents omit unchanged fields).
    pub report: Option<String>,
    /// The latest error the agent sent (JSON).
    pub last_error: Option<String>,
    pub current_job_id: Option<i64>,
    pub tray_clear: bool,
    pub filaments: Option<String>,
    pub camera_watched_until: Option<NaiveDateTime>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub next_command_number: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = printers)]
pub struct NewPrinter<'a> {
    pub organization_id: i64,
    pub owner_user_id: Option<i64>,
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
    pub state: &'a str,
    pub percent: f64,
    pub tray_clear: bool,
    pub next_command_number: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Printer {
    pub fn insert(conn: &mut DbConn, new: &NewPrinter) -> QResult<Printer> {
        diesel::insert_into(printers::table)
            .values(new)
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<Printer>> {
        printers::table.find(id).first(conn).optional()
    }

    pub fn find_by_token_hash(conn: &mut DbConn, hash: &str) -> QResult<Option<Printer>> {
        printers::table
            .filter(printers::auth_token_hash.eq(hash))
            .first(conn)
            .optional()
    }

    pub fn find_device(
        conn: &mut DbConn,
        org: i64,
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

    pub fn in_org(conn: &mut DbConn, org: i64) -> QResult<Vec<Printer>> {
        printers::table
            .filter(printers::organization_id.eq(org))
            .order(printers::id.asc())
            .load(conn)
    }

    pub fn by_ids(conn: &mut DbConn, ids: &[i64]) -> QResult<Vec<Printer>> {
        printers::table
            .filter(printers::id.eq_any(ids))
            .order(printers::id.asc())
            .load(conn)
    }

    pub fn set_token_hash(conn: &mut DbConn, id: i64, hash: &str) -> QResult<usize> {
        diesel::update(printers::table.find(id))
            .set((
                printers::auth_token_hash.eq(Some(hash)),
                printers::updated_at.eq(super::now()),
            ))
            .execute(conn)
    }

    pub fn set_tray_clear(conn: &mut DbConn, id: i64, clear: bool) -> QResult<usize> {
        diesel::update(printers::table.find(id))
            .set((
                printers::tray_clear.eq(clear),
                printers::updated_at.eq(super::now()),
            ))
            .execute(conn)
    }

    /// Takes the next per-printer command number. The update locks the printer row, so
    /// numbers are handed out in commit order.
    pub fn take_command_number(conn: &mut DbConn, id: i64) -> QResult<i64> {
        diesel::update(printers::table.find(id))
            .set(printers::next_command_number.eq(printers::next_command_number + 1))
            .returning(printers::next_command_number)
            .get_result::<i64>(conn)
            .map(|next| next - 1)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = registration_codes, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct RegistrationCode {
    pub id: i64,
    pub code: String,
    /// `VID:PID:SNR` of the agent's printer: only that device may collect the token.
    pub device_key: String,
    pub agent_info: String,
    pub printer_type_alias: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub redeemed_by_user_id: Option<i64>,
    pub redeemed_at: Option<NaiveDateTime>,
    pub printer_id: Option<i64>,
    /// The printer's auth token, kept only until the agent first uses it.
    pub pending_auth_token: Option<String>,
    pub delivered_at: Option<NaiveDateTime>,
}

impl RegistrationCode {
    pub fn insert(
        conn: &mut DbConn,
        code: &str,
        device_key: &str,
        agent_info: &str,
        alias: Option<&str>,
        expires_at: NaiveDateTime,
    ) -> QResult<RegistrationCode> {
        diesel::insert_into(registration_codes::table)
            .values((
                registration_codes::code.eq(code),
                registration_codes::device_key.eq(device_key),
                registration_codes::agent_info.eq(agent_info),
                registration_codes::printer_type_alias.eq(alias),
                registration_codes::created_at.eq(super::now()),
                registration_codes::expires_at.eq(expires_at),
            ))
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, code: &str) -> QResult<Option<RegistrationCode>> {
        registration_codes::table
            .filter(registration_codes::code.eq(code))
            .first(conn)
            .optional()
    }

    /// Marks the code redeemed unless someone else did first.
    pub fn redeem(
        conn: &mut DbConn,
        id: i64,
        user: i64,
        printer: i64,
        token: &str,
    ) -> QResult<bool> {
        let n = diesel::update(
            registration_codes::table
                .filter(registration_codes::id.eq(id))
                .filter(registration_codes::redeemed_at.is_null()),
        )
        .set((
            registration_codes::redeemed_by_user_id.eq(Some(user)),
            registration_codes::redeemed_at.eq(super::now()),
            registration_codes::printer_id.eq(Some(printer)),
            registration_codes::pending_auth_token.eq(Some(token)),
        ))
        .execute(conn)?;
        Ok(n == 1)
    }

    /// The agent has used its token: forget the plain copy.
    pub fn forget_token(conn: &mut DbConn, printer: i64) -> QResult<usize> {
        diesel::update(
            registration_codes::table
                .filter(registration_codes::printer_id.eq(printer))
                .filter(registration_codes::pending_auth_token.is_not_null()),
        )
        .set((
            registration_codes::pending_auth_token.eq(None::<String>),
            registration_codes::delivered_at.eq(Some(super::now())),
        ))
        .execute(conn)
    }

    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QResult<usize> {
        diesel::delete(
            registration_codes::table
                .filter(registration_codes::expires_at.le(before))
                .filter(registration_codes::pending_auth_token.is_null()),
        )
        .execute(conn)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = printer_shares, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PrinterShare {
    pub id: i64,
    pub printer_id: i64,
    /// Shares are by email, so a share to someone without an account yet takes effect when
    /// that account is created.
    pub email: String,
    pub user_id: Option<i64>,
    /// 2 can print, 5 can queue.
    pub role_id: i32,
    pub number_of_prints: Option<i32>,
    pub prints_used: i32,
    pub created_by_user_id: Option<i64>,
    pub created_at: NaiveDateTime,
}

pub mod share_role {
    pub const CAN_PRINT: i32 = 2;
    pub const CAN_QUEUE: i32 = 5;
}

impl PrinterShare {
    pub fn of_printer(conn: &mut DbConn, printer: i64) -> QResult<Vec<PrinterShare>> {
        printer_shares::table
            .filter(printer_shares::printer_id.eq(printer))
            .order(printer_shares::id.asc())
            .load(conn)
    }

    pub fn for_email(conn: &mut DbConn, email: &str) -> QResult<Vec<PrinterShare>> {
        printer_shares::table
            .filter(printer_shares::email.eq(email))
            .load(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<PrinterShare>> {
        printer_shares::table.find(id).first(conn).optional()
    }

    pub fn find_for(conn: &mut DbConn, printer: i64, email: &str) -> QResult<Option<PrinterShare>> {
        printer_shares::table
            .filter(printer_shares::printer_id.eq(printer))
            .filter(printer_shares::email.eq(email))
            .first(conn)
            .optional()
    }

    pub fn insert(
        conn: &mut DbConn,
        printer: i64,
        email: &str,
        role: i32,
        prints: Option<i32>,
        by: i64,
    ) -> QResult<PrinterShare> {
        diesel::insert_into(printer_shares::table)
            .values((
                printer_shares::printer_id.eq(printer),
                printer_shares::email.eq(email),
                printer_shares::role_id.eq(role),
                printer_shares::number_of_prints.eq(prints),
                printer_shares::prints_used.eq(0),
                printer_shares::created_by_user_id.eq(Some(by)),
                printer_shares::created_at.eq(super::now()),
            ))
            .get_result(conn)
    }

    pub fn update_terms(
        conn: &mut DbConn,
        id: i64,
        role: i32,
        prints: Option<i32>,
    ) -> QResult<usize> {
        diesel::update(printer_shares::table.find(id))
            .set((
                printer_shares::role_id.eq(role),
                printer_shares::number_of_prints.eq(prints),
            ))
            .execute(conn)
    }

    pub fn delete(conn: &mut DbConn, id: i64) -> QResult<usize> {
        diesel::delete(printer_shares::table.find(id)).execute(conn)
    }
}

pub struct PrinterWorkgroups;

impl PrinterWorkgroups {
    /// Workgroup ids per printer, for the given printers.
    pub fn of(conn: &mut DbConn, printer_ids: &[i64]) -> QResult<Vec<(i64, i64)>> {
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

    /// Printers in any of the workgroups, with the workgroup they are reached through.
    pub fn printers_in(conn: &mut DbConn, workgroup_ids: &[i64]) -> QResult<Vec<(i64, i64)>> {
        printer_workgroups::table
            .filter(printer_workgroups::workgroup_id.eq_any(workgroup_ids))
            .select((
                printer_workgroups::printer_id,
                printer_workgroups::workgroup_id,
            ))
            .load(conn)
    }

    pub fn set(conn: &mut DbConn, printer: i64, workgroups: &[i64]) -> QResult<()> {
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

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = printer_commands, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct PrinterCommand {
    pub id: i64,
    pub printer_id: i64,
    pub number: i64,
    pub command: String,
    /// JSON object of the extra keys sent with the command (`payload`, `filename`, …).
    pub payload: Option<String>,
    pub job_id: Option<i64>,
    /// pending → sent → acked | failed
    pub status: String,
    pub result: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
}

impl PrinterCommand {
    pub fn insert(
        conn: &mut DbConn,
        printer: i64,
        number: i64,
        command: &str,
        payload: Option<&str>,
        job: Option<i64>,
    ) -> QResult<PrinterCommand> {
        diesel::insert_into(printer_commands::table)
            .values((
                printer_commands::printer_id.eq(printer),
                printer_commands::number.eq(number),
                printer_commands::command.eq(command),
                printer_commands::payload.eq(payload),
                printer_commands::job_id.eq(job),
                printer_commands::status.eq("pending"),
                printer_commands::created_at.eq(super::now()),
            ))
            .get_result(conn)
    }

    /// The oldest command the agent has not acknowledged yet.
    pub fn next_unacked(conn: &mut DbConn, printer: i64) -> QResult<Option<PrinterCommand>> {
        printer_commands::table
            .filter(printer_commands::printer_id.eq(printer))
            .filter(printer_commands::status.eq_any(["pending", "sent"]))
            .order(printer_commands::number.asc())
            .first(conn)
            .optional()
    }

    pub fn mark_sent(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> QResult<usize> {
        diesel::update(printer_commands::table.find(id))
            .set((
                printer_commands::status.eq("sent"),
                printer_commands::sent_at.eq(Some(now)),
            ))
            .execute(conn)
    }

    /// Records the agent's acknowledgement of a delivered command (only once).
    pub fn ack(
        conn: &mut DbConn,
        printer: i64,
        number: i64,
        ok: bool,
        now: NaiveDateTime,
    ) -> QResult<Option<PrinterCommand>> {
        let cmd: Option<PrinterCommand> = printer_commands::table
            .filter(printer_commands::printer_id.eq(printer))
            .filter(printer_commands::number.eq(number))
            .filter(printer_commands::status.eq("sent"))
            .first(conn)
            .optional()?;
        if let Some(c) = &cmd {
            diesel::update(printer_commands::table.find(c.id))
                .set((
                    printer_commands::status.eq(if ok { "acked" } else { "failed" }),
                    printer_commands::result.eq(Some(if ok { "ok" } else { "failed" })),
                    printer_commands::finished_at.eq(Some(now)),
                ))
                .execute(conn)?;
        }
        Ok(cmd)
    }

    pub fn of_printer(conn: &mut DbConn, printer: i64) -> QResult<Vec<PrinterCommand>> {
        printer_commands::table
            .filter(printer_commands::printer_id.eq(printer))
            .order(printer_commands::number.asc())
            .load(conn)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = camera_tokens, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct CameraToken {
    pub id: i64,
    pub token_hash: String,
    pub user_id: i64,
    pub printer_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl CameraToken {
    pub fn insert(
        conn: &mut DbConn,
        hash: &str,
        user: i64,
        printer: Option<i64>,
        expires_at: NaiveDateTime,
    ) -> QResult<usize> {
        diesel::insert_into(camera_tokens::table)
            .values((
                camera_tokens::token_hash.eq(hash),
                camera_tokens::user_id.eq(user),
                camera_tokens::printer_id.eq(printer),
                camera_tokens::created_at.eq(super::now()),
                camera_tokens::expires_at.eq(expires_at),
            ))
            .execute(conn)
    }

    pub fn find(conn: &mut DbConn, hash: &str) -> QResult<Option<CameraToken>> {
        camera_tokens::table
            .filter(camera_tokens::token_hash.eq(hash))
            .first(conn)
            .optional()
    }

    pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QResult<usize> {
        diesel::delete(camera_tokens::table.filter(camera_tokens::expires_at.le(before)))
            .execute(conn)
    }
}

pub struct CameraFrame;

impl CameraFrame {
    /// Keeps only the latest frame per printer.
    pub fn store(
        conn: &mut DbConn,
        printer: i64,
        jpeg: &[u8],
        now: NaiveDateTime,
    ) -> QResult<usize> {
        crate::per_backend!(conn, |c| diesel::insert_into(camera_frames::table)
            .values((
                camera_frames::printer_id.eq(printer),
                camera_frames::jpeg.eq(jpeg),
                camera_frames::received_at.eq(now),
            ))
            .on_conflict(camera_frames::printer_id)
            .do_update()
            .set((
                camera_frames::jpeg.eq(jpeg),
                camera_frames::received_at.eq(now)
            ))
            .execute(c))
    }

    pub fn latest(conn: &mut DbConn, printer: i64) -> QResult<Option<(Vec<u8>, NaiveDateTime)>> {
        camera_frames::table
            .find(printer)
            .select((camera_frames::jpeg, camera_frames::received_at))
            .first(conn)
            .optional()
    }
}

/// Job status ids as the Global API numbers them.
pub mod job_status {
    pub const QUEUED: i32 = 11;
    pub const IN_PROGRESS: i32 = 21;
    pub const FAILED: i32 = 43;
    pub const ABORTED: i32 = 45;
    pub const FINISHED: i32 = 77;

    pub fn is_active(s: i32) -> bool {
        s == QUEUED || s == IN_PROGRESS
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Job {
    pub id: i64,
    pub organization_id: i64,
    pub printer_id: i64,
    pub file_id: i64,
    pub user_id: i64,
    pub share_id: Option<i64>,
    pub status_id: i32,
    /// Value of the `job_changes` counter at the job's last change (the live-update cursor).
    pub change_seq: i64,
    pub notes: Option<String>,
    pub percent: f64,
    /// Real print time, seconds.
    pub print_time: i32,
    /// Estimated print time, seconds.
    pub printing_duration: i32,
    pub material_type: String,
    pub layer_height: f64,
    pub color_numbers: i32,
    /// JSON text of target extruder temperatures, as the Global API serves it.
    pub extruders: String,
    pub weight: f64,
    pub heated_bed: bool,
    pub heated_bed_temperature: i32,
    pub raft: bool,
    pub supports: bool,
    pub file_cost: Option<f64>,
    pub cost: Option<f64>,
    /// Balance, quota and share prints were charged (exactly once, at start).
    pub charged: bool,
    /// The reason a person chose when cancelling: a `services::job_states::CancelReason` code.
    pub cancel_reason: Option<String>,
    /// Free text given with the cancel (bounded).
    pub cancel_details: Option<String>,
    pub cancelled_by_user_id: Option<i64>,
    pub started_by_user_id: Option<i64>,
    pub feedback: Option<String>,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    pub download_token_hash: Option<String>,
    /// Who or what ended the job early: a `services::job_states::cancel_source` code.
    pub cancel_source: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob<'a> {
    pub organization_id: i64,
    pub printer_id: i64,
    pub file_id: i64,
    pub user_id: i64,
    pub share_id: Option<i64>,
    pub status_id: i32,
    pub change_seq: i64,
    pub notes: Option<&'a str>,
    pub percent: f64,
    pub print_time: i32,
    pub printing_duration: i32,
    pub material_type: &'a str,
    pub layer_height: f64,
    pub color_numbers: i32,
    pub extruders: &'a str,
    pub weight: f64,
    pub heated_bed: bool,
    pub heated_bed_temperature: i32,
    pub raft: bool,
    pub supports: bool,
    pub file_cost: Option<f64>,
    pub charged: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Job {
    pub fn insert(conn: &mut DbConn, new: &NewJob) -> QResult<Job> {
        diesel::insert_into(jobs::table)
            .values(new)
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<Job>> {
        jobs::table.find(id).first(conn).optional()
    }

    /// Every job printing a file.
    pub fn of_file(conn: &mut DbConn, file_id: i64) -> QResult<Vec<Job>> {
        jobs::table
            .filter(jobs::file_id.eq(file_id))
            .order(jobs::id.asc())
            .load(conn)
    }

    /// The next value of the job change counter. Updating the counter row locks it until the
    /// transaction ends, so values are committed in order and a reader that sees value N has
    /// every change up to N.
    pub fn next_change(conn: &mut DbConn) -> QResult<i64> {
        diesel::update(counters::table.filter(counters::name.eq("job_changes")))
            .set(counters::value.eq(counters::value + 1))
            .returning(counters::value)
            .get_result(conn)
    }

    pub fn current_change(conn: &mut DbConn) -> QResult<i64> {
        counters::table
            .filter(counters::name.eq("job_changes"))
            .select(counters::value)
            .first(conn)
    }

    /// The oldest queued job of a printer.
    pub fn next_queued(conn: &mut DbConn, printer: i64) -> QResult<Option<Job>> {
        jobs::table
            .filter(jobs::printer_id.eq(printer))
            .filter(jobs::status_id.eq(job_status::QUEUED))
            .order(jobs::id.asc())
            .first(conn)
            .optional()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = slice_jobs, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct SliceJob {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
    pub file_id: i64,
    /// The G-code file id reserved when the slice was requested.
    pub output_file_id: Option<i64>,
    pub slicer_id: i32,
    /// The complete PrusaSlicer profile (JSON object of keys).
    pub profile: String,
    pub printer_id: Option<i64>,
    pub start_print: bool,
    /// pending → running → done | failed
    pub status: String,
    pub error: Option<String>,
    pub stderr: Option<String>,
    pub attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub print_job_id: Option<i64>,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
}

impl SliceJob {
    pub fn find_by_uuid(conn: &mut DbConn, uuid: &str) -> QResult<Option<SliceJob>> {
        slice_jobs::table
            .filter(slice_jobs::uuid.eq(uuid))
            .first(conn)
            .optional()
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Option<SliceJob>> {
        slice_jobs::table.find(id).first(conn).optional()
    }

    /// Slices waiting or running ahead of this one.
    pub fn ahead_of(conn: &mut DbConn, id: i64) -> QResult<i64> {
        slice_jobs::table
            .filter(slice_jobs::id.lt(id))
            .filter(slice_jobs::status.eq_any(["pending", "running"]))
            .count()
            .get_result(conn)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = quotes, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Quote {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
    pub file_id: i64,
    pub slice_job_id: Option<i64>,
    /// The request's `printer_config` and `quote_config`, as given (JSON).
    pub printer_config: String,
    pub quote_config: String,
    /// pending → success | error
    pub status: String,
    pub error: Option<String>,
    pub gcode_file_id: Option<i64>,
    pub estimated_time_seconds: Option<i64>,
    pub filament_used_mm: Option<f64>,
    pub filament_weight: Option<f64>,
    pub filament_cost: Option<f64>,
    pub time_cost: Option<f64>,
    pub total_price: Option<f64>,
    pub currency: String,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}
