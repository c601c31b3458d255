//! Quotes: instant prices computed from a slice.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::*;
use crate::db::schema::*;
use crate::db::DbConn;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = quotes, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct Quote {
    pub id: i64,
    pub uuid: String,
    pub user_id: UserId,
    pub file_id: FileId,
    pub slice_job_id: Option<i64>,
    /// The request's `printer_config` and `quote_config`, as given (JSON).
    pub printer_config: String,
    pub quote_config: String,
    pub status: QuoteStatus,
    pub error: Option<String>,
    pub gcode_file_id: Option<FileId>,
    pub estimated_time_seconds: Option<i64>,
    pub filament_used_mm: Option<f64>,
    pub filament_weight: Option<f64>,
    pub filament_cost: Option<f64>,
    pub time_cost: Option<f64>,
    pub total_price: Option<f64>,
    pub currency: String,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub finished_at: Option<NaiveDateTime>,
}

/// A quote to make (pending until its slice ends).
#[derive(Debug, Insertable)]
#[diesel(table_name = quotes)]
pub struct NewQuote<'a> {
    pub uuid: &'a str,
    pub user_id: UserId,
    pub file_id: FileId,
    pub slice_job_id: Option<i64>,
    pub printer_config: &'a str,
    pub quote_config: &'a str,
    pub status: QuoteStatus,
    pub currency: &'a str,
    pub created_at: NaiveDateTime,
}

/// A quote's figures once its slice succeeded.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = quotes)]
pub struct QuotePriced {
    pub gcode_file_id: Option<FileId>,
    pub estimated_time_seconds: Option<i64>,
    pub filament_used_mm: Option<f64>,
    pub filament_weight: Option<f64>,
    pub filament_cost: Option<f64>,
    pub time_cost: Option<f64>,
    pub total_price: Option<f64>,
    pub finished_at: Option<NaiveDateTime>,
}

impl Quote {
    /// Inserts the quote and counts it in the user's month (older months are forgotten:
    /// quotes made count, not quotes kept).
    pub fn insert(conn: &mut DbConn, new: &NewQuote, month_start: NaiveDateTime) -> QResult<Quote> {
        let q: Quote = diesel::insert_into(quotes::table)
            .values(new)
            .get_result(conn)?;
        diesel::insert_into(quote_usage::table)
            .values((
                quote_usage::user_id.eq(new.user_id),
                quote_usage::created_at.eq(q.created_at),
            ))
            .execute(conn)?;
        diesel::delete(
            quote_usage::table
                .filter(quote_usage::user_id.eq(new.user_id))
                .filter(quote_usage::created_at.lt(month_start)),
        )
        .execute(conn)?;
        Ok(q)
    }

    /// Quotes the user made since `since`.
    pub fn made_since(conn: &mut DbConn, user_id: UserId, since: NaiveDateTime) -> QResult<i64> {
        quote_usage::table
            .filter(quote_usage::user_id.eq(user_id))
            .filter(quote_usage::created_at.ge(since))
            .count()
            .get_result(conn)
    }

    pub fn find(conn: &mut DbConn, id: i64) -> QResult<Quote> {
        quotes::table.find(id).first(conn)
    }

    pub fn find_owned(conn: &mut DbConn, user_id: UserId, uuid: &str) -> QResult<Option<Quote>> {
        quotes::table
            .filter(quotes::uuid.eq(uuid))
            .filter(quotes::user_id.eq(user_id))
            .first(conn)
            .optional()
    }

    pub fn of_file(conn: &mut DbConn, file_id: FileId) -> QResult<Vec<Quote>> {
        quotes::table.filter(quotes::file_id.eq(file_id)).load(conn)
    }

    pub fn priced(conn: &mut DbConn, id: i64, figures: &QuotePriced) -> QResult<()> {
        diesel::update(quotes::table.find(id))
            .set((quotes::status.eq(QuoteStatus::Success), figures))
            .execute(conn)?;
        Ok(())
    }

    pub fn failed(
        conn: &mut DbConn,
        id: i64,
        error: Option<&str>,
        now: NaiveDateTime,
    ) -> QResult<()> {
        diesel::update(quotes::table.find(id))
            .set((
                quotes::status.eq(QuoteStatus::Error),
                quotes::error.eq(error),
                quotes::finished_at.eq(Some(now)),
            ))
            .execute(conn)?;
        Ok(())
    }

    pub fn delete(conn: &mut DbConn, id: i64) -> QResult<()> {
        diesel::delete(quotes::table.find(id)).execute(conn)?;
        Ok(())
    }
}
