//! Projects: a user's folders of files.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = projects, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Project {
    pub id: i64,
    pub user_id: UserId,
    pub name: String,
    pub color: String,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

impl Project {
    pub fn insert(conn: &mut DbConn, user_id: UserId, name: &str, color: &str) -> QResult<Project> {
        diesel::insert_into(projects::table)
            .values((
                projects::user_id.eq(user_id),
                projects::name.eq(name),
                projects::color.eq(color),
                projects::created_at.eq(crate::db::now()),
            ))
            .get_result(conn)
    }

    pub fn find_for_user(conn: &mut DbConn, user_id: UserId, id: i64) -> QResult<Option<Project>> {
        projects::table
            .filter(projects::id.eq(id))
            .filter(projects::user_id.eq(user_id))
            .first(conn)
            .optional()
    }

    pub fn find_by_name(
        conn: &mut DbConn,
        user_id: UserId,
        name: &str,
    ) -> QResult<Option<Project>> {
        projects::table
            .filter(projects::user_id.eq(user_id))
            .filter(projects::name.eq(name))
            .order(projects::id.asc())
            .first(conn)
            .optional()
    }

    pub fn of_user(conn: &mut DbConn, user_id: UserId) -> QResult<Vec<Project>> {
        projects::table
            .filter(projects::user_id.eq(user_id))
            .order(projects::id.asc())
            .load(conn)
    }
}
