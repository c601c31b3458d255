//! printfarm: a self-hosted print-farm backend speaking the 3DPrinterOS Global API.
//!
//! Assembly: config → database pool (migrated) → services → HTTP routes.

pub mod agent;
pub mod background;
pub mod config;
pub mod db;
pub mod error;
pub mod gcode;
pub mod http;
#[cfg(test)]
mod layering;
pub mod material;
pub mod mesh;
pub mod notify;
pub mod render;
pub mod services;
pub mod slicer;
pub mod staging;
pub mod storage;

pub use background::spawn_background;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{middleware, web, App, HttpServer};

use crate::config::Config;
use crate::db::models::JobId;
use crate::db::{Backend, DbConn, Pool};
use crate::error::{Error, Result};
use crate::services::auth::PasswordHasher;
use crate::services::sessions::SessionPolicy;

/// Everything a request handler needs, shared across workers.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub backend: Backend,
    pub hasher: PasswordHasher,
    pub session_policy: SessionPolicy,
    pub metrics: http::metrics::Metrics,
    pub google: Arc<services::google::GoogleVerifier>,
    pub storage: storage::Storage,
    pub notifier: Arc<notify::Notifier>,
    /// Limits the slices running at once on this instance.
    pub slice_permits: Arc<tokio::sync::Semaphore>,
    /// Wakes this instance's slice workers when a slice is queued here.
    pub slice_wake: Arc<tokio::sync::Notify>,
    /// This instance's running slicer processes (killed on shutdown).
    pub slicers: Arc<slicer::Running>,
    /// Wakes this instance's farm dispatcher at once (a farm job queued or retried, a printer
    /// out of maintenance); it also runs every second by itself.
    pub farm_wake: Arc<tokio::sync::Notify>,
    /// Tells this instance's demo-farm runner to look again at once (the demo was removed).
    pub demo_changed: Arc<tokio::sync::Notify>,
    /// Agents' volatile reports waiting to be written (about once a second).
    pub heartbeats: Arc<services::agent::Heartbeats>,
    /// On SQLite, a shared lock on `<database>.lock` while this instance runs: a restore
    /// refuses to replace the database under a running server.
    instance_lock: Arc<std::sync::Mutex<Option<std::fs::File>>>,
}

impl AppState {
    /// Connects (and migrates) the database, loads the printer-type catalogue, and creates
    /// the first organization and admin when there are no users yet.
    pub fn init(config: Config) -> anyhow::Result<AppState> {
        let pool_size = (config.database.pool_size > 0).then_some(config.database.pool_size);
        let mut pool = db::connect(&config.database.url, pool_size)?;
        if config.database.max_waiting > 0 {
            pool = pool.with_max_waiting(config.database.max_waiting);
        }
        let backend = db::backend_for_url(&config.database.url);
        let hasher = PasswordHasher::new(&config.auth)?;
        let state = AppState {
            session_policy: SessionPolicy::from_config(&config.auth),
            google: Arc::new(services::google::GoogleVerifier::new(config.google.clone())),
            storage: storage::Storage::from_config(&config.storage)?,
            notifier: Arc::new(notify::Notifier::default()),
            slice_permits: Arc::new(tokio::sync::Semaphore::new(
                config.slicer.max_concurrent.max(1),
            )),
            slice_wake: Arc::new(tokio::sync::Notify::new()),
            slicers: Arc::new(slicer::Running::default()),
            farm_wake: Arc::new(tokio::sync::Notify::new()),
            heartbeats: Arc::default(),
            demo_changed: Arc::new(tokio::sync::Notify::new()),
            instance_lock: Arc::new(std::sync::Mutex::new(
                services::backup::hold_shared(&config).map_err(|e| {
                    anyhow::anyhow!("cannot lock the database for this server: {e}")
                })?,
            )),
            config: Arc::new(config),
            pool,
            backend,
            hasher,
            metrics: http::metrics::Metrics::new(),
        };
        if backend == Backend::Postgres {
            notify::spawn_pg_listener(
                state.config.database.url.clone(),
                Arc::downgrade(&state.notifier),
            );
        }
        let mut conn = state.pool.get()?;
        let loaded = services::bootstrap::load_printer_types(&mut conn)?;
        if loaded > 0 {
            tracing::info!(count = loaded, "loaded the printer-type catalogue");
        }
        let boot = &state.config.bootstrap;
        if let Some(first) = services::bootstrap::ensure_first_admin(
            &mut conn,
            &state.hasher,
            &boot.organization,
            &boot.admin_email,
        )? {
            tracing::warn!(
                organization = %first.organization.name,
                email = %first.user.email,
                password = %first.password,
                "first start: created the organization and its admin; this one-time password is shown only once, change it with `printfarm admin reset-password`"
            );
        }
        Ok(state)
    }

    /// This instance has stopped using the database (its server and workers ended): a
    /// restore may replace it.
    pub fn release_database(&self) {
        self.instance_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Queues a command for a printer's agent and wakes the agent if it is long-polling here
    /// (other instances are woken through Postgres NOTIFY).
    pub async fn send_command(
        &self,
        printer_id: db::models::PrinterId,
        command: &'static str,
        extra: serde_json::Map<String, serde_json::Value>,
        job_id: Option<JobId>,
    ) -> Result<db::models::PrinterCommand> {
        self.db(move |c| services::commands::enqueue(c, printer_id, command, extra, job_id))
            .await
    }

    /// What job transitions need: the base URL agents download from, and when a printer
    /// counts as offline. The request is deliberately not used: links for agents never take
    /// their host from whoever started the job (see `http::agent_link_base`).
    pub fn job_context(&self) -> services::jobs::JobContext {
        services::jobs::JobContext {
            base_url: http::agent_link_base(&self.config),
            offline_after: chrono::Duration::seconds(self.config.printers.offline_after_secs),
        }
    }

    /// Checks, analyses, stores and registers a staged file as `me`'s upload: what every
    /// upload path and the demo farm's samples go through (see `http::upload`).
    pub async fn store_upload(
        &self,
        me: &db::models::User,
        meta: &services::files::UploadMeta,
        staged: services::files::StagedContent<'_>,
        zip_flag: bool,
    ) -> Result<(db::models::StoredFile, db::models::Project)> {
        use services::files;
        let (kind, zipped) = files::kind_from_filename(staged.filename, zip_flag)?;
        {
            let (me, meta) = (me.clone(), meta.clone());
            self.db(move |c| files::check_project(c, &me, &meta))
                .await?;
        }

        fail::fail_point!("upload-staged");
        let path = staged.path.to_path_buf();
        let size = staged.size;
        let max_unzipped = self.storage.max_unzipped_bytes;
        let analysed = web::block(move || {
            files::analyse_staged_limited(&path, size, kind, zipped, max_unzipped)
        })
        .await??;

        let registered = files::store_and_register(
            &self.storage,
            staged.path,
            analysed.preview_png.clone(),
            |stored| async move {
                // `return` stands for a registration that fails (tests/integration/faults/crash.rs).
                fail::fail_point!("upload-stored", |_| Err(Error::Internal(
                    "fail point upload-stored".into()
                )));
                let (me, meta) = (me.clone(), meta.clone());
                let (name, sha) = (staged.filename.to_string(), staged.sha256.to_string());
                self.db(move |c| {
                    files::register(
                        c,
                        &me,
                        &meta,
                        &files::Upload {
                            filename: &name,
                            size,
                            sha256: &sha,
                            storage_key: &stored.storage_key,
                            picture: &stored.picture,
                            analysed: &analysed,
                        },
                    )
                })
                .await
                .map(Some)
            },
        )
        .await?;
        registered
            .ok_or_else(|| Error::Internal("an upload was registered without its file".into()))
    }

    /// Removes the demo farm (`serve --demo`) and its stored files; `by` is the admin asking
    /// (None: the command line). A demo runner on this instance stops its printers at once,
    /// one on another instance within seconds.
    pub async fn remove_demo(
        &self,
        by: Option<db::models::User>,
    ) -> Result<db::models::DemoCounts> {
        let (counts, keys) = self
            .db(move |c| services::demo::remove(c, by.as_ref()))
            .await?;
        for key in keys {
            if let Err(e) = self.storage.delete(&key).await {
                // The orphan sweep removes what is left (storage.orphan_grace_secs).
                tracing::warn!(key, error = %e, "demo farm: a stored file is left for the orphan sweep");
            }
        }
        self.demo_changed.notify_one();
        Ok(counts)
    }

    /// Runs blocking database work on the pool's database threads with a pooled connection.
    pub async fn db<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let turn = self.pool.turn().await?;
        let (result, wakes) = self
            .pool
            .spawn(move || {
                // Left by work that ran on this thread outside `db` (nothing to wake for it here).
                drop(db::take_committed_wakes());
                let result = pool.get().map_err(Error::from).and_then(|mut c| {
                    let result = f(&mut c);
                    let lost = |m: &String| m.starts_with(db::UNAVAILABLE);
                    if matches!(&result, Err(Error::Unavailable(m)) if lost(m)) {
                        c.mark_broken();
                    }
                    result
                });
                drop(turn);
                (result, db::take_committed_wakes())
            })
            .await
            .map_err(|e| Error::Internal(format!("database work did not finish: {e}")))?;
        // The one place where agents learn of committed commands on this instance.
        for printer in wakes {
            self.notifier.wake(printer);
        }
        result
    }
}

/// JSON envelope answers for bodies and queries actix itself refuses.
fn json_config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| Error::invalid(format!("Malformed query: {e}")).into()),
    );
}

/// Builds the HTTP server on an already bound listener (tests bind port 0).
pub fn server(state: AppState, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let workers = match state.config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let shutdown = state.config.server.shutdown_timeout_secs;
    let notifier = state.notifier.clone();
    let slicers = state.slicers.clone();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(middleware::from_fn(http::metrics::track))
            .wrap(middleware::from_fn(http::access_log::log))
            .configure(json_config)
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    .workers(workers)
    .shutdown_timeout(shutdown)
    .shutdown_signal(stop_requested(notifier, slicers))
    // A client that closes its side is gone: actix then drops its request, which ends a
    // held long poll instead of keeping it until its timeout.
    .h1_allow_half_closed(false)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Resolves when the server should stop gracefully: SIGINT/SIGTERM, or `Notifier::shut_down`.
/// Marks the notifier first, so held long polls answer at once instead of waiting out their
/// timeout during the graceful shutdown.
async fn stop_requested(notifier: Arc<notify::Notifier>, slicers: Arc<slicer::Running>) {
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    let int = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = int => {}
        _ = term => {}
        _ = notifier.shutting_down() => {}
    }
    tracing::info!("shutting down");
    notifier.shut_down();
    // Running slices are lost anyway (their lease runs out and another worker retries them):
    // do not leave their slicers running without a server.
    slicers.kill_all();
}
