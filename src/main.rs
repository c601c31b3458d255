use std::net::TcpListener;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use printfarm::config::Config;
use printfarm::services::auth::{random_password, PasswordHasher};
use printfarm::services::bootstrap::{self, NewAccount};
use printfarm::{db, AppState};

/// jemalloc instead of glibc's malloc, for Rust, SQLite and libpq alike: a fifth less CPU per
/// read call (glibc's arenas contend and consolidate under the database threads) and less
/// memory with many agents connected (bench/README.md, "Session 19"). One arena and a thread
/// cache of small sizes only keep the footprint of an idle or agent-heavy server low.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (`MALLOC_CONF` in the environment
/// overrides them).
#[cfg(target_os = "linux")]
#[allow(non_upper_case_globals)]
#[export_name = "malloc_conf"]
pub static malloc_conf: &[u8] = b"narenas:1,tcache_max:1024\0";

#[derive(Parser)]
#[command(
    name = "printfarm",
    version,
    about = "Self-hosted print-farm backend (3DPrinterOS Global API)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve {
        /// Add a demo farm if there is none (virtual printers printing sample files, run by
        /// this server) and run it; remove it under Admin › Printers or with
        /// `printfarm admin remove-demo`.
        #[arg(long)]
        demo: bool,
    },
    /// Run slice workers only (no HTTP), sharing the database and file store with the servers.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administrative actions on the configured database.
    #[command(subcommand)]
    Admin(Admin),
}

#[derive(Subcommand)]
enum Admin {
    /// Create an organization; prints its id.
    CreateOrg {
        #[arg(long)]
        name: String,
    },
    /// Create a user in an organization; prints the password (generated unless given).
    CreateUser {
        #[arg(long)]
        org: i64,
        #[arg(long)]
        email: String,
        /// 0 member, 1 organization admin, 2 workgroup admin.
        #[arg(long, default_value_t = 0)]
        role: i32,
        #[arg(long, default_value = "")]
        firstname: String,
        #[arg(long, default_value = "")]
        lastname: String,
        /// Read from the environment so it stays out of shell history when possible.
        #[arg(long, env = "PRINTFARM_NEW_PASSWORD")]
        password: Option<String>,
    },
    /// Set a new password (generated unless given) and end the user's sessions.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[arg(long, env = "PRINTFARM_NEW_PASSWORD")]
        password: Option<String>,
    },
    /// Create a workgroup in an organization; prints its id.
    CreateWorkgroup {
        #[arg(long)]
        org: i64,
        #[arg(long)]
        name: String,
        /// The join password shown in reports.
        #[arg(long, default_value = "")]
        password: String,
    },
    /// Back up a SQLite farm into a new folder while it runs: the database (a consistent
    /// snapshot) and the local file store. Postgres: use pg_dump (README).
    Backup {
        /// A folder that does not exist yet (or is empty).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Restore a backup folder over the configured SQLite database and file store; the server
    /// must be stopped. An older backup is migrated forward.
    Restore {
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Print a fresh set-password link for a user (earlier links stop working).
    InviteLink {
        #[arg(long)]
        email: String,
    },
    /// Create an API token for a user's `/v1` calls; prints it once.
    TokenCreate {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        days: Option<i64>,
    },
    /// List a user's API tokens.
    TokenList {
        #[arg(long)]
        email: String,
    },
    /// Revoke one of a user's API tokens (effective at once).
    TokenRevoke {
        #[arg(long)]
        email: String,
        #[arg(long)]
        id: i64,
    },
    /// Remove the demo farm (`serve --demo`): its virtual printers, their jobs, the sample
    /// files and the demo user. A server running it stops its printers within seconds.
    RemoveDemo,
    /// Create the first organization and admin if the database has no users.
    Bootstrap {
        #[arg(long)]
        organization: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
}

/// Lines a request may leave for the log thread before it waits. The queue's slots are
/// allocated up front: tracing-appender's default of 128,000 held ~5 MiB.
const LOG_LINES_PENDING: usize = 4096;

/// Logs go to stderr from a thread of their own, written in batches: one `write` per line from
/// the request's thread cost a tenth of a cheap call's CPU. Nothing is dropped (the request
/// waits when `LOG_LINES_PENDING` lines are pending, as it waited for a slow stderr before);
/// the returned guard writes out the rest when dropped.
fn init_tracing(cfg: &Config) -> tracing_appender::non_blocking::WorkerGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log.level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_LINES_PENDING)
        .thread_name("printfarm-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load()?;
    let _log_writer = init_tracing(&config);
    match cli.command.unwrap_or(Command::Serve { demo: false }) {
        Command::Serve { demo } => serve(config, demo),
        Command::Migrate => {
            let manager = db::ConnectionManager::new(&config.database.url);
            let mut conn = manager.establish()?;
            let applied = db::run_migrations(&mut conn)?;
            println!(
                "applied {} migration(s) on {}",
                applied.len(),
                db::backend_for_url(&config.database.url).name()
            );
            for v in applied {
                println!("  {v}");
            }
            Ok(())
        }
        Command::Admin(cmd) => admin(config, cmd),
        Command::Worker => {
            let state = AppState::init(config)?;
            let n = state.config.slicer.max_concurrent.max(1);
            tracing::info!(workers = n, "printfarm slice workers running");
            actix_web::rt::System::new().block_on(async move {
                printfarm::background::slice_worker::spawn(
                    state.clone(),
                    n,
                    state.slice_wake.clone(),
                );
                let stopped = tokio::signal::ctrl_c().await;
                state.slicers.kill_all();
                stopped
            })?;
            Ok(())
        }
    }
}

fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    limit_malloc_arenas();
    // Crash tests stop the server at chosen points (FAILPOINTS); only test builds have them.
    let _fail_points = fail::has_failpoints().then(fail::FailScenario::setup);
    let bind = config.server.bind.clone();
    let state = AppState::init(config)?;
    let listener =
        TcpListener::bind(&bind).map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %bind, database = state.backend.name(), "printfarm listening");
    actix_web::rt::System::new().block_on(async move {
        printfarm::spawn_background(state.clone());
        // actix stops on SIGINT/SIGTERM and lets in-flight requests finish (shutdown_timeout).
        let slicers = state.slicers.clone();
        let last = state.clone();
        let server = printfarm::server(state.clone(), listener)?;
        let demo_added = demo
            && printfarm::background::demo::start(&state, addr)
                .await
                .map_err(|e| std::io::Error::other(format!("cannot start the demo farm: {e}")))?;
        if demo_added {
            tracing::info!("demo farm added: four virtual printers, sample files and a queue");
        }
        let served = server.await;
        slicers.kill_all();
        // Polls answered during the shutdown may have left heartbeats behind.
        printfarm::background::write_heartbeats(&last).await;
        served
    })?;
    tracing::info!("printfarm stopped");
    Ok(())
}

/// glibc gives threads that allocate at once arenas of their own, up to eight per core, and
/// memory freed in one arena is not reused by another: the blocking pool's threads left
/// megabytes behind each (1,000 agents on long poll: 104 MiB resident with the default, 71
/// MiB with two). An operator's own `MALLOC_ARENA_MAX` wins. Called before the server's threads
/// start, so that they share the two arenas.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes an allocator setting (glibc takes its own lock).
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn find_user(
    conn: &mut printfarm::db::DbConn,
    email: &str,
) -> anyhow::Result<printfarm::db::models::User> {
    printfarm::db::models::User::find_by_email(conn, email)?
        .ok_or_else(|| anyhow::anyhow!("no user with email {}", email.trim().to_lowercase()))
}

fn admin(config: Config, cmd: Admin) -> anyhow::Result<()> {
    // A restore replaces the database: it must not open (and lock) it first.
    if let Admin::Restore { from } = &cmd {
        let m = printfarm::services::backup::restore(&config, from)?;
        println!(
            "restored the backup of {} (schema {}, {} files) from {}",
            m.created_at,
            m.schema,
            m.files,
            from.display()
        );
        return Ok(());
    }
    if let Admin::RemoveDemo = &cmd {
        let state = AppState::init(config)?;
        let removed = actix_web::rt::System::new().block_on(state.remove_demo(None))?;
        println!(
            "demo farm removed: {} printers, {} files, {} jobs",
            removed.printers, removed.files, removed.jobs
        );
        return Ok(());
    }
    let pool = db::connect(&config.database.url, Some(1))?;
    let mut conn = pool.get()?;
    let hasher = PasswordHasher::new(&config.auth)?;
    match cmd {
        Admin::CreateOrg { name } => {
            let org = bootstrap::create_organization(&mut conn, &name)?;
            println!("organization {} created: {}", org.id, org.name);
        }
        Admin::CreateUser {
            org,
            email,
            role,
            firstname,
            lastname,
            password,
        } => {
            let password = password.unwrap_or_else(random_password);
            let user = bootstrap::create_user(
                &mut conn,
                &hasher,
                &NewAccount {
                    organization_id: printfarm::db::models::OrgId(org),
                    email: &email,
                    password: Some(&password),
                    firstname: &firstname,
                    lastname: &lastname,
                    company: "",
                    access_role: role,
                    gdpr: 3,
                },
            )?;
            println!(
                "user {} created: {} (role {}) password: {}",
                user.id, user.email, user.access_role, password
            );
        }
        Admin::Backup { to } => {
            let m = printfarm::services::backup::backup(&mut conn, &config, &to)?;
            println!(
                "backed up the database (schema {}) and {} files ({} bytes) into {}",
                m.schema,
                m.files,
                m.file_bytes,
                to.display()
            );
        }
        // Done above, before the database was opened.
        Admin::Restore { .. } | Admin::RemoveDemo => {}
        Admin::ResetPassword { email, password } => {
            let password =
                bootstrap::reset_password(&mut conn, &hasher, &email, password.as_deref())?;
            println!(
                "password for {} reset: {}",
                email.trim().to_lowercase(),
                password
            );
        }
        Admin::TokenCreate { email, name, days } => {
            let user = find_user(&mut conn, &email)?;
            let (row, jwt) =
                printfarm::services::api_tokens::create(&mut conn, &user, &name, days)?;
            println!(
                "API token {} \"{}\" for {}:\n{jwt}",
                row.id, row.name, user.email
            );
        }
        Admin::TokenList { email } => {
            let user = find_user(&mut conn, &email)?;
            for t in printfarm::services::api_tokens::list(&mut conn, &user)? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\texpires {}",
                    t.id,
                    t.name,
                    state,
                    t.created_at,
                    t.expires_at.map_or("never".into(), |e| e.to_string())
                );
            }
        }
        Admin::TokenRevoke { email, id } => {
            let user = find_user(&mut conn, &email)?;
            printfarm::services::api_tokens::revoke(&mut conn, &user, id)?;
            println!("API token {id} revoked");
        }
        Admin::CreateWorkgroup {
            org,
            name,
            password,
        } => {
            let wg = printfarm::services::orgs::create_workgroup_in(
                &mut conn,
                printfarm::db::models::OrgId(org),
                &name,
                &password,
            )?;
            println!("workgroup {} created: {}", wg.id, wg.name);
        }
        Admin::InviteLink { email } => {
            let user = printfarm::db::models::User::find_by_email(&mut conn, &email)?.ok_or_else(
                || anyhow::anyhow!("no user with email {}", email.trim().to_lowercase()),
            )?;
            let ttl = chrono::Duration::hours(config.auth.invitation_hours);
            let token = printfarm::services::orgs::issue_invitation(&mut conn, user.id, ttl)?;
            println!(
                "{}/noauth/set_password/{token}  (valid {} hours, single use)",
                printfarm::http::public_base(&config, None),
                config.auth.invitation_hours
            );
        }
        Admin::Bootstrap {
            organization,
            email,
        } => {
            let org = organization.unwrap_or(config.bootstrap.organization.clone());
            let email = email.unwrap_or(config.bootstrap.admin_email.clone());
            match bootstrap::ensure_first_admin(&mut conn, &hasher, &org, &email)? {
                Some(first) => println!(
                    "organization {} \"{}\" and admin {} created; one-time password: {}",
                    first.organization.id,
                    first.organization.name,
                    first.user.email,
                    first.password
                ),
                None => println!("users already exist; nothing created"),
            }
        }
    }
    Ok(())
}
