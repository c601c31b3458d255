//! Database access: one connection type over Postgres and SQLite, pools, migrations, transactions.

mod backend;
pub mod models;

pub use backend::{
    check_integrity, claim_waiting_copy, claimable_slice, commit_without_flush, lock_key,
    lock_printer, lock_share, lock_user, notify_printer, reserve_file_id, try_lock_printer,
    vacuum_into, NOTIFY_CHANNEL,
};
pub mod schema;
mod stamp;

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

/// A connection of the pool, with what the pool learnt of it in use: connections are not
/// checked with a query at each checkout; one whose query found it closed is dropped on return.
pub struct Pooled {
    conn: DbConn,
    broken: bool,
}

/// A connection checked out of the pool; it goes back when dropped.
pub struct PooledConn(r2d2::PooledConnection<ConnectionManager>);

impl PooledConn {
    /// The connection failed in a way that says it is gone (the server closed it): the pool
    /// opens a fresh one instead of handing it out again.
    pub fn mark_broken(&mut self) {
        self.0.broken = true;
    }
}

impl std::ops::Deref for PooledConn {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.0.conn
    }
}

impl std::ops::DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.0.conn
    }
}

/// Longest wait for a pooled connection when the database is reachable but every connection
/// is busy (ordinary contention).
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);
/// While the database is unreachable, one checkout at a time probes it, at most this often;
/// every other one fails at once.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How long a probe may wait for a connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
/// Slice of a normal checkout's wait, between looks at whether the database went away.
const CHECKOUT_SLICE: Duration = Duration::from_millis(100);
/// Requests waiting for a connection, by default: per connection, and at least in all, beyond
/// which a request is refused at once (503) instead of joining the queue. A waiting request
/// holds no thread, only its few kilobytes; SQLite's 4 connections would otherwise refuse most
/// of 256 concurrent clients.
const WAITING_PER_CONNECTION: usize = 64;
const MIN_WAITING: usize = 1024;

/// Whether the database can be reached: set down by the pool when opening a connection fails,
/// up again when one opens. Requests fail fast while it is down instead of each waiting out
/// the checkout timeout.
#[derive(Debug, Default)]
pub struct Reachability {
    down: std::sync::atomic::AtomicBool,
    /// Milliseconds since `epoch` of the last probe while down.
    last_probe_ms: std::sync::atomic::AtomicU64,
    epoch: std::sync::OnceLock<std::time::Instant>,
    last_error: std::sync::Mutex<String>,
}

impl Reachability {
    fn is_down(&self) -> bool {
        self.down.load(std::sync::atomic::Ordering::Acquire)
    }

    fn mark_down(&self, error: String) {
        if !self.down.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tracing::error!(%error, "the database is unreachable; requests answer 503 until it is back");
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    fn mark_up(&self) {
        if self.down.swap(false, std::sync::atomic::Ordering::AcqRel) {
            tracing::info!("the database is reachable again");
        }
    }

    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True for the one caller that may probe now.
    fn take_probe(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = self
            .epoch
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
            // The first probe may run at once.
            + PROBE_EVERY.as_millis() as u64;
        let last = self.last_probe_ms.load(Ordering::Acquire);
        now.saturating_sub(last) >= PROBE_EVERY.as_millis() as u64
            && self
                .last_probe_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

/// The pool's reports: a connection that cannot be opened marks the database down, one that
/// opens marks it up.
#[derive(Debug)]
struct ReachabilityReports(std::sync::Arc<Reachability>);

impl r2d2::HandleError<ConnError> for ReachabilityReports {
    fn handle_error(&self, error: ConnError) {
        // Only a connection that cannot be opened says the database is gone. A pooled one
        // that fails its check (killed by a failover or `pg_terminate_backend`) is replaced,
        // and the replacement's own connect decides.
        match error {
            ConnError::Connect { .. } => self.0.mark_down(error.to_string()),
            ConnError::Query(e) => {
                tracing::warn!(error = %e, "dropping a broken pooled connection")
            }
        }
    }
}

impl r2d2::CustomizeConnection<Pooled, ConnError> for ReachabilityReports {
    fn on_acquire(&self, _conn: &mut Pooled) -> Result<(), ConnError> {
        self.0.mark_up();
        Ok(())
    }
}

/// How every "the database cannot be used" message starts (the pool's and a lost connection's).
pub const UNAVAILABLE: &str = "Database unavailable";

/// No connection could be had: the database is unreachable, or busy past the checkout timeout.
#[derive(Debug, thiserror::Error)]
#[error("Database unavailable: {0}")]
pub struct Unavailable(String);

/// The threads that run database work: at most one per connection, shared by every HTTP
/// worker. Each worker's own blocking pool would keep up to a pool's worth of threads per
/// worker, and start yet another whenever a request's turn began before the previous
/// request's thread was idle again (37 threads for 4 SQLite connections were seen).
struct DbThreads(Option<tokio::runtime::Runtime>);

impl DbThreads {
    fn new(threads: usize) -> std::io::Result<DbThreads> {
        // Only its blocking pool is used: nothing drives this runtime, and nothing needs to.
        tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(threads)
            .thread_name("printfarm-db")
            .build()
            .map(|rt| DbThreads(Some(rt)))
    }
}

impl Drop for DbThreads {
    fn drop(&mut self) {
        // The last pool handle may go inside an async context, where a blocking shutdown
        // would panic; work still running finishes on its detached thread.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The connection pool, aware of whether the database can be reached.
#[derive(Clone)]
pub struct Pool {
    inner: r2d2::Pool<ConnectionManager>,
    threads: std::sync::Arc<DbThreads>,
    reach: std::sync::Arc<Reachability>,
    /// One permit per connection: requests wait here, without a thread, for their turn.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max_waiting: usize,
    turned_away: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A request's turn at the database: while it is held, a connection is (about to be) its own.
pub struct Turn(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl Pool {
    /// Waits, in a bounded queue and without a thread, until a connection is free for this
    /// request (so threads and connections stay as many as the pool, however many requests
    /// come in); refuses at once when the queue is full, or after the checkout timeout.
    pub async fn turn(&self) -> Result<Turn, Unavailable> {
        use std::sync::atomic::Ordering;
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(Turn(permit));
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.turned_away.fetch_add(1, Ordering::Relaxed);
            return Err(Unavailable(
                "the server is busy: too many requests are waiting for the database".into(),
            ));
        }
        let permit =
            tokio::time::timeout(CHECKOUT_TIMEOUT, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match permit {
            Ok(Ok(permit)) => Ok(Turn(permit)),
            Ok(Err(_)) => Err(Unavailable("the connection pool is closed".into())),
            Err(_) => {
                self.turned_away.fetch_add(1, Ordering::Relaxed);
                Err(Unavailable(
                    "the server is busy: no database connection came free in time".into(),
                ))
            }
        }
    }

    /// Runs blocking database work on the pool's own threads (`DbThreads`); callers hold a
    /// `turn` first, so the work does not queue for a thread behind more than one other.
    pub fn spawn<T, F>(&self, work: F) -> tokio::task::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let rt = self
            .threads
            .0
            .as_ref()
            .expect("runtime lives until the pool drops");
        rt.spawn_blocking(work)
    }

    /// Sets how many requests may wait for a connection (`database.max_waiting`).
    pub fn with_max_waiting(mut self, max_waiting: usize) -> Pool {
        self.max_waiting = max_waiting;
        self
    }

    /// Requests waiting for a connection now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests refused because the wait for a connection was full or too long, since start.
    pub fn turned_away(&self) -> u64 {
        self.turned_away.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A connection: waits for a free one under contention (up to 10 s), but fails within a
    /// fraction of a second when the database cannot be reached.
    pub fn get(&self) -> Result<PooledConn, Unavailable> {
        if self.reach.is_down() {
            if !self.reach.take_probe() {
                return Err(Unavailable(self.reach.last_error()));
            }
            return self
                .inner
                .get_timeout(PROBE_TIMEOUT)
                .map(PooledConn)
                .map_err(|e| Unavailable(format!("{} ({e})", self.reach.last_error())));
        }
        let deadline = std::time::Instant::now() + CHECKOUT_TIMEOUT;
        loop {
            match self.inner.get_timeout(CHECKOUT_SLICE) {
                Ok(conn) => return Ok(PooledConn(conn)),
                Err(e) => {
                    if self.reach.is_down() {
                        return Err(Unavailable(self.reach.last_error()));
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(Unavailable(e.to_string()));
                    }
                }
            }
        }
    }

    /// A connection within `timeout`, or none (readiness checks).
    pub fn get_within(&self, timeout: Duration) -> Result<PooledConn, Unavailable> {
        if self.reach.is_down() && !self.reach.take_probe() {
            return Err(Unavailable(self.reach.last_error()));
        }
        self.inner
            .get_timeout(timeout)
            .map(PooledConn)
            .map_err(|e| {
                if self.reach.is_down() {
                    Unavailable(self.reach.last_error())
                } else {
                    Unavailable(e.to_string())
                }
            })
    }
}

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
                keep_sqlite_plans_cached();
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

/// SQLite (3.47 and later) plans `LIMIT ?` with the value bound, and then prepares the
/// statement again whenever that parameter is bound anew: every `.first()` query, the session
/// check among them, was parsed and planned on every run despite Diesel's statement cache
/// (a third of a request's CPU). The query planner stability guarantee makes plans independent
/// of bound values, so cached statements stay prepared. Diesel does not hand out the raw
/// handle, so it is set for every connection this process opens, before the first one.
fn keep_sqlite_plans_cached() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        unsafe extern "C" fn enable_qpsg(
            db: *mut libsqlite3_sys::sqlite3,
            _err: *mut *mut std::ffi::c_char,
            _api: *const libsqlite3_sys::sqlite3_api_routines,
        ) -> std::ffi::c_int {
            // SAFETY: SQLite calls this with the connection it is opening; the option takes
            // an int and a nullable int pointer for the previous value.
            unsafe {
                libsqlite3_sys::sqlite3_db_config(
                    db,
                    libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
                    1 as std::ffi::c_int,
                    std::ptr::null_mut::<std::ffi::c_int>(),
                );
            }
            libsqlite3_sys::SQLITE_OK
        }
        // SAFETY: registers a function with the signature SQLite calls it with.
        let rc = unsafe { libsqlite3_sys::sqlite3_auto_extension(Some(enable_qpsg)) };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::warn!(rc, "SQLite: could not keep statement plans cached");
        }
    });
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = Pooled;
    type Error = ConnError;

    fn connect(&self) -> Result<Pooled, ConnError> {
        Ok(Pooled {
            conn: self.establish()?,
            broken: false,
        })
    }

    /// Unused while checkouts are not tested (a query per checkout costs a round trip on
    /// every request); a connection found closed in use is dropped instead (`has_broken`).
    fn is_valid(&self, conn: &mut Pooled) -> Result<(), ConnError> {
        conn.conn.ping().map_err(ConnError::Query)
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.broken || conn.conn.is_broken()
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
    #[error("cannot start the database threads: {0}")]
    Threads(std::io::Error),
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
    let reach = std::sync::Arc::new(Reachability::default());
    let inner = r2d2::Pool::builder()
        .max_size(size)
        // Connections open as load asks for them (and close again after r2d2's idle
        // timeout): an idle server holds one, not `size` (each a Postgres backend, and
        // libpq's and TLS's buffers here).
        .min_idle(Some(1))
        .test_on_check_out(false)
        .connection_timeout(CHECKOUT_TIMEOUT)
        .error_handler(Box::new(ReachabilityReports(reach.clone())))
        .connection_customizer(Box::new(ReachabilityReports(reach.clone())))
        .build(manager)?;
    Ok(Pool {
        inner,
        threads: std::sync::Arc::new(DbThreads::new(size as usize).map_err(SetupError::Threads)?),
        reach,
        permits: std::sync::Arc::new(tokio::sync::Semaphore::new(size as usize)),
        waiting: Default::default(),
        max_waiting: (size as usize * WAITING_PER_CONNECTION).max(MIN_WAITING),
        turned_away: Default::default(),
    })
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

/// The migrations this build knows, oldest first (their versions, digits only).
pub fn known_migrations(backend: Backend) -> Vec<String> {
    use diesel::migration::MigrationSource;
    let set = match backend {
        Backend::Postgres => PG_MIGRATIONS,
        Backend::Sqlite => SQLITE_MIGRATIONS,
    };
    let mut versions: Vec<String> = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&set)
        .map(|ms| {
            ms.iter()
                .map(|m| digits(&m.name().version().to_string()))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
}

fn digits(v: &str) -> String {
    v.chars().filter(char::is_ascii_digit).collect()
}

/// The last migration applied to a database (its version, digits only).
pub fn latest_migration(conn: &mut DbConn) -> Result<String, diesel::result::Error> {
    let applied = conn
        .applied_migrations()
        .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
    Ok(applied
        .iter()
        .map(|v| digits(&v.to_string()))
        .max()
        .unwrap_or_default())
}

/// The SQLite database file of a database URL (None for Postgres).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    (backend_for_url(url) == Backend::Sqlite).then(|| std::path::PathBuf::from(sqlite_path(url)))
}

pub fn backend_of(conn: &DbConn) -> Backend {
    match conn {
        DbConn::Pg(_) => Backend::Postgres,
        DbConn::Sqlite(_) => Backend::Sqlite,
    }
}

/// Errors that a write transaction may retry: Postgres aborts one of two transactions that
/// wait on each other (a deadlock) or that cannot both commit under their isolation level.
/// The lock order below keeps deadlocks out of printfarm's own transactions; the retry is the
/// safety net for what it cannot see (an operator's session, a foreign key check's lock).
pub trait TransactionError: From<diesel::result::Error> {
    fn is_transient(&self) -> bool;
}

impl TransactionError for diesel::result::Error {
    fn is_transient(&self) -> bool {
        is_transient(self)
    }
}

/// Postgres reports a deadlock (SQLSTATE 40P01) as an unknown kind: diesel maps only 40001.
pub fn is_transient(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error as D};
    match e {
        D::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        D::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            info.message().starts_with("deadlock detected")
        }
        _ => false,
    }
}

/// How often an outermost write transaction runs again after a transient failure before the
/// caller is told the database is busy (503).
const TRANSIENT_ATTEMPTS: u32 = 5;

static TRANSIENT_RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Write transactions run again after a deadlock or serialization failure, since start.
pub fn transient_retries() -> u64 {
    TRANSIENT_RETRIES.load(std::sync::atomic::Ordering::Relaxed)
}

thread_local! {
    /// Printers whose agents are to be woken once the work that queued them has committed,
    /// in the order they were queued (see [`wake_after_commit`]).
    static WAKE_AFTER_COMMIT: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records that `printer`'s agent must be woken when the current write transaction commits.
/// `write_transaction` forgets what a rolled-back (or retried) transaction recorded, and the
/// one place that runs services (`AppState::db`) wakes what is left after the work returned:
/// so a queued command always wakes its agent, exactly once, and never before it is visible.
pub fn wake_after_commit(printer: i64) {
    WAKE_AFTER_COMMIT.with(|w| w.borrow_mut().push(printer));
}

/// The printers recorded by committed work on this thread since the last call, each once.
pub fn take_committed_wakes() -> Vec<i64> {
    let mut all = WAKE_AFTER_COMMIT.with(|w| std::mem::take(&mut *w.borrow_mut()));
    let mut seen = std::collections::HashSet::new();
    all.retain(|p| seen.insert(*p));
    all
}

fn wakes_mark() -> usize {
    WAKE_AFTER_COMMIT.with(|w| w.borrow().len())
}

fn wakes_forget_since(mark: usize) {
    WAKE_AFTER_COMMIT.with(|w| w.borrow_mut().truncate(mark));
}

/// Runs `f`, forgetting the wake-ups it recorded when it fails (its transaction rolls back).
fn forgetting_wakes_on_error<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let mark = wakes_mark();
    let result = f();
    if result.is_err() {
        wakes_forget_since(mark);
    }
    result
}

/// A transaction for work that writes. On SQLite it starts with `BEGIN IMMEDIATE`, so the write
/// lock is taken up front and concurrent writers wait (busy_timeout) instead of failing with
/// "database is locked" when a read has to upgrade to a write. Nested calls become savepoints.
///
/// On Postgres every writer takes its row locks in one order, so that two of them cannot wait
/// on each other: the printer row(s) first (lowest id first), then the `job_changes` counter,
/// then job rows, then users and shares; a printer's command numbers come from its (already
/// locked) printer row. An outermost transaction that still fails with a deadlock or a
/// serialization failure runs again, up to `TRANSIENT_ATTEMPTS` times, which is why `f` may be
/// called more than once.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, mut f: F) -> Result<T, E>
where
    F: FnMut(&mut DbConn) -> Result<T, E>,
    E: TransactionError,
{
    let outermost_sqlite = match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()?
            .is_none(),
        DbConn::Pg(c) => {
            let outermost = AnsiTransactionManager::transaction_manager_status_mut(c)
                .transaction_depth()?
                .is_none();
            if outermost {
                return pg_retrying(conn, f);
            }
            false
        }
    };
    if !outermost_sqlite {
        return forgetting_wakes_on_error(|| conn.transaction(f));
    }
    if let DbConn::Sqlite(c) = conn {
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
    }
    forgetting_wakes_on_error(|| match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(err) => {
            <DbConn as Connection>::TransactionManager::rollback_transaction(conn)?;
            Err(err)
        }
    })
}

fn pg_retrying<T, E, F>(conn: &mut DbConn, mut f: F) -> Result<T, E>
where
    F: FnMut(&mut DbConn) -> Result<T, E>,
    E: TransactionError,
{
    let mut attempt = 1;
    loop {
        match forgetting_wakes_on_error(|| conn.transaction(&mut f)) {
            Err(e) if e.is_transient() && attempt < TRANSIENT_ATTEMPTS => {
                TRANSIENT_RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    attempt,
                    "write transaction retried after a deadlock or serialization failure"
                );
                // Jittered backoff so the two sides of a conflict do not meet again at once.
                let jitter = u64::from(rand::random::<u8>() % 20);
                std::thread::sleep(std::time::Duration::from_millis(
                    5 * (1 << attempt) + jitter,
                ));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Runs `f` in a savepoint of the current transaction: an error rolls back only what `f`
/// wrote (no retry: the outer `write_transaction` owns that).
pub fn savepoint<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    diesel::Connection::transaction(conn, f)
}

impl Pool {
    /// Whether a connection answers within `within` (readiness probes).
    pub fn ping_within(&self, within: Duration) -> Result<(), Unavailable> {
        use diesel::r2d2::R2D2Connection;
        let mut conn = self.get_within(within)?;
        conn.ping().map_err(|e| Unavailable(e.to_string()))
    }
}

/// Current UTC time truncated to microseconds: Postgres keeps micros and SQLite would keep
/// nanoseconds, so values written and read back compare equal on both.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use libsqlite3_sys as ffi;

    /// How many times SQLite prepared `SELECT ?1 LIMIT ?2` again over three runs with new
    /// bindings, on a fresh in-memory connection with the planner guarantee on or off.
    fn reprepares(qpsg: bool) -> i32 {
        super::keep_sqlite_plans_cached();
        // SAFETY: a private connection and statement, finalized and closed before returning.
        unsafe {
            let mut db = std::ptr::null_mut();
            assert_eq!(
                ffi::sqlite3_open(c":memory:".as_ptr(), &mut db),
                ffi::SQLITE_OK
            );
            let mut on: std::ffi::c_int = -1;
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                -1 as std::ffi::c_int,
                &mut on as *mut std::ffi::c_int,
            );
            assert_eq!(on, 1, "every new connection has the guarantee on");
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                std::ffi::c_int::from(qpsg),
                std::ptr::null_mut::<std::ffi::c_int>(),
            );
            let mut stmt = std::ptr::null_mut();
            let sql = c"SELECT ?1 LIMIT ?2";
            assert_eq!(
                ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut()),
                ffi::SQLITE_OK
            );
            for i in 0..3 {
                ffi::sqlite3_bind_int64(stmt, 1, i);
                ffi::sqlite3_bind_int64(stmt, 2, 1);
                assert_eq!(ffi::sqlite3_step(stmt), ffi::SQLITE_ROW);
                ffi::sqlite3_reset(stmt);
            }
            let n = ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            ffi::sqlite3_finalize(stmt);
            ffi::sqlite3_close(db);
            n
        }
    }

    /// Database work runs on at most one thread per connection however much is queued, and
    /// work that panics fails alone (its caller gets the error; the threads go on).
    #[tokio::test]
    async fn database_threads_are_as_many_as_connections() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("threads.db").display().to_string();
        let pool = super::connect(&url, Some(2)).unwrap();
        let work: Vec<_> = (0..16)
            .map(|_| {
                pool.spawn(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    std::thread::current().id()
                })
            })
            .collect();
        let mut threads = std::collections::BTreeSet::new();
        for w in work {
            threads.insert(format!("{:?}", w.await.unwrap()));
        }
        assert!(threads.len() <= 2, "16 jobs ran on {threads:?}");

        let panicked = pool.spawn(|| panic!("a failing job")).await;
        assert!(panicked.is_err());
        assert_eq!(pool.spawn(|| 7).await.unwrap(), 7);
    }

    #[test]
    fn statements_with_a_bound_limit_stay_prepared() {
        assert_eq!(reprepares(true), 0);
        // What it guards against: without the guarantee each new binding prepares again.
        assert!(reprepares(false) > 0);
    }
}
