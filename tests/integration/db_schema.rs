//! The two migration folders must define the same schema, and backend selection must never
//! fall back to SQLite.

use crate::common;

use std::collections::BTreeSet;

use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use printfarm::db::{self, DbConn, PG_MIGRATIONS, SQLITE_MIGRATIONS};

#[derive(QueryableByName)]
struct Col {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = BigInt)]
    not_null: i64,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

/// (table, column, logical type, not null) for every application table.
type Shape = BTreeSet<(String, String, String, bool)>;

fn logical(data_type: &str, pk: bool) -> String {
    let t = data_type.to_lowercase();
    let t = match t.as_str() {
        // SQLite rowid primary keys must be declared INTEGER; they hold 64-bit values.
        "integer" if pk => "bigint",
        "bigint" | "bigserial" => "bigint",
        "integer" | "int" => "integer",
        "text" => "text",
        "boolean" => "boolean",
        "double" | "double precision" => "double",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "bytea" | "blob" => "binary",
        other => panic!("unexpected column type {other}"),
    };
    t.to_string()
}

fn shape(conn: &mut DbConn) -> Shape {
    let query = match conn {
        DbConn::Pg(_) => {
            "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, \
             c.data_type::text AS data_type, \
             CASE WHEN c.is_nullable = 'NO' THEN 1 ELSE 0 END::bigint AS not_null, \
             CASE WHEN EXISTS (SELECT 1 FROM information_schema.key_column_usage k \
               JOIN information_schema.table_constraints t ON t.constraint_name = k.constraint_name \
               WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_name = c.table_name \
               AND k.column_name = c.column_name) THEN 1 ELSE 0 END::bigint AS pk \
             FROM information_schema.columns c WHERE c.table_schema = 'public' \
             AND c.table_name NOT LIKE '__diesel%'"
        }
        DbConn::Sqlite(_) => {
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
             CAST(p.\"notnull\" AS BIGINT) AS not_null, CAST(p.pk AS BIGINT) AS pk \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '__diesel%'"
        }
    };
    let cols: Vec<Col> = diesel::sql_query(query)
        .load(conn)
        .expect("introspect schema");
    cols.into_iter()
        .map(|c| {
            let pk = c.pk > 0;
            (
                c.table_name,
                c.column_name,
                logical(&c.data_type, pk),
                c.not_null > 0 || pk,
            )
        })
        .collect()
}

#[test]
fn migration_folders_have_the_same_versions() {
    let names = |set: &dyn MigrationSource<diesel::pg::Pg>| -> Vec<String> {
        set.migrations()
            .unwrap()
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    };
    let pg = names(&PG_MIGRATIONS);
    let sqlite: Vec<String> =
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .unwrap()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
    assert!(!pg.is_empty());
    assert_eq!(pg, sqlite);
}

#[test]
fn both_backends_define_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = dir.path().join("schema.db").display().to_string();
    let sqlite_pool = db::connect(&sqlite_url, Some(1)).unwrap();
    let sqlite_shape = shape(&mut sqlite_pool.get().unwrap());
    assert!(sqlite_shape.iter().any(|(t, ..)| t == "jobs"));

    let Some(pg) = common::PgDatabase::create() else {
        return;
    };
    let pg_pool = db::connect(&pg.url, Some(1)).unwrap();
    let pg_shape = shape(&mut pg_pool.get().unwrap());
    drop(pg_pool);

    let only_pg: Vec<_> = pg_shape.difference(&sqlite_shape).collect();
    let only_sqlite: Vec<_> = sqlite_shape.difference(&pg_shape).collect();
    assert!(
        only_pg.is_empty() && only_sqlite.is_empty(),
        "schemas differ\nonly in postgres: {only_pg:#?}\nonly in sqlite: {only_sqlite:#?}"
    );
}

#[test]
fn unreachable_postgres_is_an_error_not_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let before: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let err = match db::connect("postgres://nobody@127.0.0.1:1/nope", Some(1)) {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("postgres"), "{err}");
    let after: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "no file may appear in the working directory");
    drop(dir);
}

#[test]
fn sqlite_url_forms_and_missing_folders() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/pf.db");
    let pool = db::connect(&format!("sqlite://{}", nested.display()), Some(1)).unwrap();
    let mut c = pool.get().unwrap();
    assert_eq!(db::backend_of(&c), db::Backend::Sqlite);
    let n: i64 = printfarm::db::schema::counters::table
        .count()
        .get_result(&mut *c)
        .unwrap();
    assert_eq!(n, 1);
    assert!(nested.exists());
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    on: bool,
}

/// The libpq the binary carries (built with OpenSSL, `postgres-bundled`) talks TLS: a pool on
/// `sslmode=require` connects, migrates and its connections are encrypted as Postgres sees them.
#[test]
fn postgres_over_tls() {
    let Some(pg) = common::PgDatabase::create() else {
        return;
    };
    let mut url = url::Url::parse(&pg.url).unwrap();
    let mut plain = diesel::PgConnection::establish(url.as_str()).unwrap();
    let ssl: Vec<Flag> = diesel::sql_query("SELECT current_setting('ssl') = 'on' AS on")
        .load(&mut plain)
        .unwrap();
    if !ssl[0].on {
        // Not this build's doing: the server was set up without certificates.
        eprintln!(
            "!!! SKIPPING the TLS check: the Postgres at {} has ssl = off",
            pg.url
        );
        return;
    }
    url.query_pairs_mut().append_pair("sslmode", "require");
    let pool = db::connect(url.as_str(), Some(1)).expect("connect with sslmode=require");
    let mut c = pool.get().unwrap();
    let DbConn::Pg(pg_conn) = &mut *c else {
        panic!("a Postgres URL gave another backend");
    };
    let encrypted: Vec<Flag> =
        diesel::sql_query("SELECT ssl AS on FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .load(pg_conn)
            .unwrap();
    assert!(encrypted[0].on, "the connection is not encrypted");
}
