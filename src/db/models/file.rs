//! Files: uploads and generated G-code, with their analysis.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

/// An uploaded or generated file (`files` table).
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct StoredFile {
    pub id: FileId,
    pub user_id: UserId,
    pub organization_id: OrgId,
    pub project_id: Option<i64>,
    /// "ready", or "reserved" for a slicer output id handed out before the slice ends.
    pub state: FileState,
    pub filename: String,
    /// "gcode", "stl", "3mf" or "obj".
    pub kind: FileKind,
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
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = files)]
pub struct NewFile<'a> {
    pub user_id: UserId,
    pub organization_id: OrgId,
    pub project_id: Option<i64>,
    pub state: FileState,
    pub filename: &'a str,
    pub kind: FileKind,
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
    /// (count, total bytes) of the user's files.
    pub fn usage_of(conn: &mut DbConn, user_id: UserId) -> QResult<(i64, i64)> {
        let sizes: Vec<i64> = files::table
            .filter(files::user_id.eq(user_id))
            .select(files::size)
            .load(conn)?;
        Ok((sizes.len() as i64, sizes.iter().sum()))
    }

    /// Whether a job printed (or prints) this file.
    /// A job or a farm job prints it (the job history and the farm queue keep it).
    pub fn used_by_jobs(conn: &mut DbConn, id: FileId) -> QResult<bool> {
        let n: i64 = jobs::table
            .filter(jobs::file_id.eq(id))
            .count()
            .get_result(conn)?;
        let farm: i64 = farm_jobs::table
            .filter(farm_jobs::file_id.eq(id))
            .count()
            .get_result(conn)?;
        Ok(n + farm > 0)
    }

    pub fn delete(conn: &mut DbConn, id: FileId) -> QResult<()> {
        diesel::delete(files::table.find(id)).execute(conn)?;
        Ok(())
    }

    /// The user's ready uploads, newest first: G-code made by slicing (quotes, `slice`) is not
    /// an upload.
    pub fn uploads_of(conn: &mut DbConn, user_id: UserId) -> QResult<Vec<StoredFile>> {
        let sliced = slice_jobs::table
            .filter(slice_jobs::user_id.eq(user_id))
            .filter(slice_jobs::output_file_id.is_not_null())
            .select(slice_jobs::output_file_id.assume_not_null());
        let quoted = quotes::table
            .filter(quotes::user_id.eq(user_id))
            .filter(quotes::gcode_file_id.is_not_null())
            .select(quotes::gcode_file_id.assume_not_null());
        files::table
            .filter(files::user_id.eq(user_id))
            .filter(files::state.eq(FileState::Ready))
            .filter(diesel::dsl::not(files::id.eq_any(sliced)))
            .filter(diesel::dsl::not(files::id.eq_any(quoted)))
            .order(files::id.desc())
            .load(conn)
    }

    /// Ready G-code: what a printer can be sent.
    pub fn is_printable(&self) -> bool {
        self.kind == FileKind::Gcode && self.state == FileState::Ready
    }

    /// (id, storage key, picture) of the files made before `before`, after id `after`, in id
    /// order: a page of what the object store must hold.
    pub fn stored_objects_page(
        conn: &mut DbConn,
        after: i64,
        before: NaiveDateTime,
        limit: i64,
    ) -> QResult<Vec<(i64, String, Option<String>)>> {
        files::table
            .filter(files::id.gt(after))
            .filter(files::created_at.lt(before))
            .order(files::id)
            .limit(limit)
            .select((files::id, files::storage_key, files::picture))
            .load(conn)
    }

    /// Of these storage keys and picture names, the ones a file row names.
    pub fn naming(
        conn: &mut DbConn,
        keys: &[String],
        pictures: &[String],
    ) -> QResult<(Vec<String>, Vec<String>)> {
        let found = files::table
            .filter(files::storage_key.eq_any(keys))
            .select(files::storage_key)
            .load(conn)?;
        let pics: Vec<Option<String>> = files::table
            .filter(files::picture.eq_any(pictures))
            .select(files::picture)
            .load(conn)?;
        Ok((found, pics.into_iter().flatten().collect()))
    }

    /// A user's own files, newest first.
    pub fn recent_of(conn: &mut DbConn, user_id: UserId, limit: i64) -> QResult<Vec<StoredFile>> {
        files::table
            .filter(files::user_id.eq(user_id))
            .order(files::id.desc())
            .limit(limit)
            .select(StoredFile::as_select())
            .load(conn)
    }

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
    pub fn insert_with_id(conn: &mut DbConn, id: FileId, new: &NewFile) -> QResult<StoredFile> {
        diesel::insert_into(files::table)
            .values((files::id.eq(id), new))
            .get_result(conn)
    }

    /// The caller's own file: anybody else's id looks absent.
    pub fn find_owned(
        conn: &mut DbConn,
        user_id: UserId,
        id: FileId,
    ) -> QResult<Option<StoredFile>> {
        files::table
            .filter(files::id.eq(id))
            .filter(files::user_id.eq(user_id))
            .first(conn)
            .optional()
    }

    pub fn find(conn: &mut DbConn, id: FileId) -> QResult<Option<StoredFile>> {
        files::table.find(id).first(conn).optional()
    }

    /// The files whose preview is this picture (normally one).
    pub fn with_picture(conn: &mut DbConn, picture: &str) -> QResult<Vec<StoredFile>> {
        files::table
            .filter(files::picture.eq(picture))
            .order(files::id.asc())
            .load(conn)
    }

    pub fn set_printer_type(conn: &mut DbConn, id: FileId, ptype: Option<i64>) -> QResult<usize> {
        diesel::update(files::table.find(id))
            .set((
                files::printer_type_id.eq(ptype),
                files::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    pub fn set_slicer(conn: &mut DbConn, id: FileId, slicer: &str) -> QResult<usize> {
        diesel::update(files::table.find(id))
            .set((
                files::slicer.eq(Some(slicer)),
                files::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    pub fn set_content(
        conn: &mut DbConn,
        id: FileId,
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
                files::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }
}
