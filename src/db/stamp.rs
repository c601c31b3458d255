//! Timestamps as the models read them (`#[diesel(deserialize_as = Stamp)]`).
//!
//! SQLite keeps a timestamp as text. Diesel reads it by trying chrono format strings in turn,
//! and chrono reads the format string again for every value: a page of 20 jobs parses its
//! format 120 times, a twentieth of the CPU of `get_printer_jobs`. `Stamp` parses the format
//! Diesel writes (`%F %T%.f`) with chrono's items prepared once, and hands any other text to
//! Diesel's own reading, so it accepts exactly what Diesel accepts. Postgres sends timestamps
//! as binary and is read by Diesel as before.

use std::sync::LazyLock;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::Pg;
use diesel::sql_types::{Nullable, Timestamp};
use diesel::sqlite::Sqlite;

use super::MultiBackend;

/// A timestamp column read into a `NaiveDateTime` field.
#[derive(FromSqlRow)]
pub struct Stamp(NaiveDateTime);

/// A nullable timestamp column read into an `Option<NaiveDateTime>` field.
#[derive(FromSqlRow)]
pub struct MaybeStamp(Option<NaiveDateTime>);

impl From<Stamp> for NaiveDateTime {
    fn from(stamp: Stamp) -> Self {
        stamp.0
    }
}

impl From<MaybeStamp> for Option<NaiveDateTime> {
    fn from(stamp: MaybeStamp) -> Self {
        stamp.0
    }
}

/// The format Diesel writes SQLite timestamps in (the fraction is optional when parsing, so
/// SQLite's own `datetime('now')` text matches too).
static STORED_FORMAT: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| {
    StrftimeItems::new("%F %T%.f")
        .parse_to_owned()
        .expect("a valid chrono format")
});

/// `NaiveDateTime::parse_from_str(text, "%F %T%.f")` without reading the format again.
fn parse_stored(text: &str) -> Option<NaiveDateTime> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, STORED_FORMAT.iter()).ok()?;
    parsed.to_naive_datetime_with_offset(0).ok()
}

impl FromSql<Timestamp, Sqlite> for Stamp {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        if let Some(time) = parse_stored(value.read_text()) {
            return Ok(Stamp(time));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Stamp)
    }
}

impl FromSql<Timestamp, Pg> for Stamp {
    fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Stamp)
    }
}

impl FromSql<Timestamp, MultiBackend> for Stamp {
    fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Stamp, Timestamp>()
    }
}

impl<DB> FromSql<Nullable<Timestamp>, DB> for MaybeStamp
where
    DB: Backend,
    Stamp: FromSql<Timestamp, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Stamp::from_sql(value).map(|s| MaybeStamp(Some(s.0)))
    }

    fn from_nullable_sql(value: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        match value {
            Some(value) => Self::from_sql(value),
            None => Ok(MaybeStamp(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_parses_as_diesel_parses_it() {
        for text in [
            "2026-12-05 19:30:00.123456",
            "2026-12-05 19:30:00.123",
            "2026-12-05 19:30:00",
            "2024-02-29 23:59:59.999999999",
        ] {
            let expected = NaiveDateTime::parse_from_str(text, "%F %T%.f").unwrap();
            assert_eq!(parse_stored(text), Some(expected), "{text}");
        }
        // Other forms Diesel accepts (an offset, a `T`, minutes only) go to Diesel's reading.
        for text in [
            "2026-12-05T19:30:00",
            "2026-12-05 19:30",
            "2026-12-05 19:30:00+01:00",
            "x",
        ] {
            assert_eq!(parse_stored(text), None, "{text}");
        }
    }

    /// What the prepared format does not read still loads as Diesel loads it; NULL loads as
    /// `None`; text that is no time at all is an error, not a made-up time.
    #[test]
    fn other_forms_null_and_garbage_load_as_diesel_loads_them() {
        use diesel::dsl::sql;
        use diesel::{Connection, RunQueryDsl, SqliteConnection};

        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        for text in [
            "2026-12-05T19:30:00",
            "2026-12-05 19:30",
            "2026-12-05 19:30:00+01:00",
            "2461014.5",
        ] {
            let query = || diesel::select(sql::<Timestamp>(&format!("'{text}'")));
            let ours = query().get_result::<Stamp>(&mut conn).unwrap();
            let diesels = query().get_result::<NaiveDateTime>(&mut conn).unwrap();
            assert_eq!(NaiveDateTime::from(ours), diesels, "{text}");
        }
        let garbage = diesel::select(sql::<Timestamp>("'not a time'"));
        assert!(garbage.get_result::<Stamp>(&mut conn).is_err());

        let null = diesel::select(sql::<Nullable<Timestamp>>("NULL"))
            .get_result::<MaybeStamp>(&mut conn)
            .unwrap();
        assert_eq!(Option::<NaiveDateTime>::from(null), None);
    }
}
