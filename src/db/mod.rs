//! Database access: one connection type over Postgres and SQLite, pools, migrations, transactions.

pub mod models;
pub mod schema;

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs the same Diesel DSL text against the concrete backend, for the few statements
/// (upserts, batch inserts) the multi-backend type cannot express.
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConn = r2d2::PooledConnection<ConnectionManager>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// The backend is chosen from the URL scheme alone: Diesel's own `establish` tries each variant
/// in turn and would open a stray SQLite file when a Postgres URL cannot connect.
pub fn backend_for_url(url: &str) -> Backend {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("cannot connect to {backend}: {detail}")]
    Connect {
        backend: &'static str,
        detail: diesel::ConnectionError,
    },
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: String,
    backend: Backend,
}

impl ConnectionManager {
    pub fn new(url: &str) -> Self {
        ConnectionManager {
            url: url.to_string(),
            backend: backend_for_url(url),
        }
    }

    pub fn establish(&self) -> Result<DbConn, ConnError> {
        match self.backend {
            Backend::Postgres => {
                let mut c =
                    PgConnection::establish(&self.url).map_err(|detail| ConnError::Connect {
                        backend: "postgres",
                        detail,
                    })?;
                // Timestamps are UTC everywhere; make the session agree so any server-side
                // conversion cannot shift them.
                c.batch_execute("SET TIME ZONE 'UTC'")?;
                Ok(DbConn::Pg(c))
            }
            Backend::Sqlite => {
                let mut c =
                    SqliteConnection::establish(sqlite_path(&self.url)).map_err(|detail| {
                        ConnError::Connect {
                            backend: "sqlite",
                            detail,
                        }
                    })?;
                c.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                )?;
                Ok(DbConn::Sqlite(c))
            }
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = ConnError;

    fn connect(&self) -> Result<DbConn, ConnError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnError> {
        conn.ping().map_err(ConnError::Query)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot build the connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("migrations failed: {0}")]
    Migrations(String),
}

/// Opens the database, applies pending migrations and returns a pool.
pub fn connect(url: &str, pool_size: Option<u32>) -> Result<Pool, SetupError> {
    let manager = ConnectionManager::new(url);
    if manager.backend == Backend::Sqlite {
        let path = std::path::Path::new(sqlite_path(url));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SetupError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    // One direct connection first: it reports the real connection error (not r2d2's timeout),
    // switches SQLite to WAL once (per-connection WAL switching makes the pool's first burst
    // fail with "database is locked") and runs the migrations.
    let mut first = manager.establish()?;
    if let DbConn::Sqlite(c) = &mut first {
        c.batch_execute("PRAGMA journal_mode = WAL;")
            .map_err(ConnError::Query)?;
    }
    run_migrations(&mut first)?;
    drop(first);

    let size = pool_size.unwrap_or(match manager.backend {
        Backend::Postgres => 10,
        Backend::Sqlite => 4,
    });
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(10))
        .build(manager)?;
    Ok(pool)
}

pub fn run_migrations(conn: &mut DbConn) -> Result<Vec<String>, SetupError> {
    let set = match conn {
        DbConn::Pg(_) => PG_MIGRATIONS,
        DbConn::Sqlite(_) => SQLITE_MIGRATIONS,
    };
    let applied = conn
        .run_pending_migrations(set)
        .map_err(|e| SetupError::Migrations(e.to_string()))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

pub fn backend_of(conn: &DbConn) -> Backend {
    match conn {
        DbConn::Pg(_) => Backend::Postgres,
        DbConn::Sqlite(_) => Backend::Sqlite,
    }
}

/// A transaction for work that writes. On SQLite it starts with `BEGIN IMMEDIATE`, so the write
/// lock is taken up front and concurrent writers wait (busy_timeout) instead of failing with
/// "database is locked" when a read has to upgrade to a write. Nested calls become savepoints.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let outermost_sqlite = match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()?
            .is_none(),
        DbConn::Pg(_) => false,
    };
    if !outermost_sqlite {
        return conn.transaction(f);
    }
    if let DbConn::Sqlite(c) = conn {
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
    }
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            <DbConn as Connection>::TransactionManager::rollback_transaction(conn)?;
            Err(err)
        }
    }
}

/// Serialises writers that share `key` until the surrounding transaction ends, so that a
/// check followed by a write (a rate limit, a counter) is one atomic step. Postgres takes a
/// transaction-scoped advisory lock; SQLite needs nothing more, because `write_transaction`
/// already holds the database's single write lock. Callers that take several keys take them
/// in sorted order, so two of them cannot deadlock.
pub fn lock_key(conn: &mut DbConn, key: &str) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    use sha2::{Digest, Sha256};
    if let DbConn::Pg(c) = conn {
        let digest = Sha256::digest(key.as_bytes());
        let id = i64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(id)
            .execute(c)?;
    }
    Ok(())
}

/// Takes the next `files` id without inserting a row. A `/v1` upload id promises its file an id
/// before the upload comes; the upload then inserts with that id. Ids whose upload never comes
/// are skipped, like those of rolled-back inserts. Call inside `write_transaction` (on SQLite
/// the sequence row is then changed under the database's write lock).
pub fn reserve_file_id(conn: &mut DbConn) -> diesel::QueryResult<i64> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Next {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    match conn {
        DbConn::Pg(c) => Ok(diesel::sql_query(
            "SELECT nextval(pg_get_serial_sequence('files', 'id')) AS id",
        )
        .get_result::<Next>(c)?
        .id),
        // AUTOINCREMENT keeps the highest id ever used in sqlite_sequence and never reuses
        // one; raising it reserves the id (the row exists once any file was stored).
        DbConn::Sqlite(c) => {
            diesel::sql_query(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'files', 0 \
                 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'files')",
            )
            .execute(c)?;
            diesel::sql_query(
                "UPDATE sqlite_sequence \
                 SET seq = MAX(seq, (SELECT COALESCE(MAX(id), 0) FROM files)) + 1 \
                 WHERE name = 'files'",
            )
            .execute(c)?;
            Ok(diesel::sql_query(
                "SELECT CAST(seq AS BIGINT) AS id FROM sqlite_sequence WHERE name = 'files'",
            )
            .get_result::<Next>(c)?
            .id)
        }
    }
}

/// Current UTC time truncated to microseconds: Postgres keeps micros and SQLite would keep
/// nanoseconds, so values written and read back compare equal on both.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}
