//! Workgroups, their rights and members.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = workgroups, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Workgroup {
    pub id: i64,
    pub organization_id: OrgId,
    pub name: String,
    pub join_password: String,
    #[diesel(deserialize_as = Stamp)]
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
        org: OrgId,
        name: &str,
        join_password: &str,
    ) -> QResult<Workgroup> {
        diesel::insert_into(workgroups::table)
            .values((
                workgroups::organization_id.eq(org),
                workgroups::name.eq(name),
                workgroups::join_password.eq(join_password),
                workgroups::created_at.eq(crate::db::now()),
            ))
            .get_result(conn)
    }

    /// Only within the caller's organization: another organization's ids look absent.
    pub fn find_in_org(conn: &mut DbConn, org: OrgId, id: i64) -> QResult<Option<Workgroup>> {
        workgroups::table
            .filter(workgroups::id.eq(id))
            .filter(workgroups::organization_id.eq(org))
            .first(conn)
            .optional()
    }

    pub fn all_in_org(conn: &mut DbConn, org: OrgId) -> QResult<Vec<Workgroup>> {
        workgroups::table
            .filter(workgroups::organization_id.eq(org))
            .order(workgroups::id.asc())
            .load(conn)
    }

    /// The user's workgroups with their rights in each.
    pub fn of_user(conn: &mut DbConn, user_id: UserId) -> QResult<Vec<(Workgroup, i32)>> {
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
    pub user_id: UserId,
    pub rights: i32,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
}

impl WorkgroupMember {
    pub fn find(
        conn: &mut DbConn,
        workgroup_id: i64,
        user_id: UserId,
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
        user_id: UserId,
        rights: i32,
    ) -> QResult<usize> {
        diesel::insert_into(workgroup_members::table)
            .values((
                workgroup_members::workgroup_id.eq(workgroup_id),
                workgroup_members::user_id.eq(user_id),
                workgroup_members::rights.eq(rights),
                workgroup_members::created_at.eq(crate::db::now()),
            ))
            .execute(conn)
    }

    pub fn set_rights(conn: &mut DbConn, id: i64, rights: i32) -> QResult<usize> {
        diesel::update(workgroup_members::table.find(id))
            .set(workgroup_members::rights.eq(rights))
            .execute(conn)
    }

    pub fn delete(conn: &mut DbConn, workgroup_id: i64, user_id: UserId) -> QResult<usize> {
        diesel::delete(
            workgroup_members::table
                .filter(workgroup_members::workgroup_id.eq(workgroup_id))
                .filter(workgroup_members::user_id.eq(user_id)),
        )
        .execute(conn)
    }

    /// How many members each of these workgroups has (workgroups without any are left out).
    pub fn counts(conn: &mut DbConn, workgroup_ids: &[i64]) -> QResult<Vec<(i64, i64)>> {
        workgroup_members::table
            .filter(workgroup_members::workgroup_id.eq_any(workgroup_ids))
            .group_by(workgroup_members::workgroup_id)
            .select((workgroup_members::workgroup_id, diesel::dsl::count_star()))
            .load(conn)
    }

    /// Members of a workgroup with their rights, by email.
    pub fn members_of(conn: &mut DbConn, workgroup_id: i64) -> QResult<Vec<(User, i32)>> {
        users::table
            .inner_join(workgroup_members::table)
            .filter(workgroup_members::workgroup_id.eq(workgroup_id))
            .order(users::email.asc())
            .select((User::as_select(), workgroup_members::rights))
            .load(conn)
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
