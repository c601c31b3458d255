use std::net::TcpListener;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use printfarm::config::Config;
use printfarm::services::auth::{random_password, PasswordHasher};
use printfarm::services::bootstrap::{self, NewAccount};
use printfarm::{db, AppState};

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
    Serve,
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
    /// Print a fresh set-password link for a user (earlier links stop working).
    InviteLink {
        #[arg(long)]
        email: String,
    },
    /// Create the first organization and admin if the database has no users.
    Bootstrap {
        #[arg(long)]
        organization: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
}

fn init_tracing(cfg: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
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
    init_tracing(&config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
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
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.server.bind.clone();
    let state = AppState::init(config)?;
    let listener =
        TcpListener::bind(&bind).map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    tracing::info!(address = %bind, database = state.backend.name(), "printfarm listening");
    actix_web::rt::System::new().block_on(async move {
        printfarm::spawn_maintenance(state.clone());
        // actix stops on SIGINT/SIGTERM and lets in-flight requests finish (shutdown_timeout).
        printfarm::server(state, listener)?.await
    })?;
    tracing::info!("printfarm stopped");
    Ok(())
}

fn admin(config: Config, cmd: Admin) -> anyhow::Result<()> {
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
                    organization_id: org,
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
        Admin::ResetPassword { email, password } => {
            let password =
                bootstrap::reset_password(&mut conn, &hasher, &email, password.as_deref())?;
            println!(
                "password for {} reset: {}",
                email.trim().to_lowercase(),
                password
            );
        }
        Admin::CreateWorkgroup {
            org,
            name,
            password,
        } => {
            let wg =
                printfarm::services::orgs::create_workgroup_in(&mut conn, org, &name, &password)?;
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
