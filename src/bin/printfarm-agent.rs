//! `printfarm-agent --config agent.toml`: runs the printer agent (see `printfarm::agent`
//! for the configuration format).

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "printfarm-agent",
    version,
    about = "printfarm printer agent: connects OctoPrint, Moonraker or virtual printers to a printfarm server"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(
        long,
        short,
        env = "PRINTFARM_AGENT_CONFIG",
        default_value = "agent.toml"
    )]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cfg = match printfarm::agent::AgentConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("printfarm-agent: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    if cli.check {
        println!(
            "{}: {} printer(s), server {}",
            cli.config.display(),
            cfg.printers.len(),
            cfg.server
        );
        return std::process::ExitCode::SUCCESS;
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping (signal received)");
        let _ = tx.send(true);
    });
    match printfarm::agent::run(cfg, rx).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("printfarm-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
