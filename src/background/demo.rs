//! Runs the demo farm on a server started with `--demo` (see `services::demo`): stores the
//! sample files, runs the virtual printers through the agent in a thread of its own (talking
//! to this server over HTTP, as a real agent does), admits them, and keeps them printing. It
//! stops the printers as soon as the demo is removed, from the console or the command line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::agent::{AgentConfig, FilamentConfig, PrinterConfig};
use crate::error::{Error, Result};
use crate::services::demo::{self, PRINTERS};
use crate::services::files::{StagedContent, UploadMeta};
use crate::AppState;

/// How often the runner looks at the demo (admits printers, feeds the queue, notices removal).
const EVERY: Duration = Duration::from_secs(2);

/// Creates the demo farm unless there is one, stores its sample files, and starts running it
/// on this server (reachable at `addr`). Answers whether the demo was created now.
pub async fn start(state: &AppState, addr: SocketAddr) -> Result<bool> {
    let hasher = state.hasher.clone();
    let (_, created) = state.db(move |c| demo::ensure(c, &hasher)).await?;
    store_samples(state).await?;
    let runner = state.clone();
    actix_web::rt::spawn(async move { run(runner, addr).await });
    Ok(created)
}

/// Stores the sample files that are not stored yet, as the demo user's uploads.
async fn store_samples(state: &AppState) -> Result<()> {
    let found = state
        .db(|c| match demo::get(c)? {
            Some((d, user)) => Ok(Some((user, demo::missing_samples(c, &d)?))),
            None => Ok(None),
        })
        .await?;
    let Some((user, missing)) = found else {
        return Ok(());
    };
    for (name, content) in missing {
        let staged = state.storage.staging_file()?;
        std::fs::write(staged.path(), content).map_err(|e| Error::io("staging file", e))?;
        let sha256 = hex::encode(Sha256::digest(content));
        let meta = UploadMeta {
            project_name: Some(demo::PROJECT.into()),
            upload_soft_name: Some("printfarm demo".into()),
            ..UploadMeta::default()
        };
        let content = StagedContent {
            path: staged.path(),
            filename: name,
            size: content.len() as u64,
            sha256: &sha256,
        };
        state.store_upload(&user, &meta, content, false).await?;
    }
    Ok(())
}

/// The virtual printers, run by the agent in a thread with its own runtime (the server's
/// workers never wait on it), with their state in a scratch folder: on each start they
/// register afresh and are admitted again as the same printers.
struct Printers {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
    _state_dir: tempfile::TempDir,
}

impl Printers {
    fn start(state: &AppState, addr: SocketAddr) -> Result<Printers> {
        let state_dir = tempfile::Builder::new()
            .prefix("demo-agent-")
            .tempdir_in(state.storage.staging_dir())
            .map_err(|e| Error::io("demo agent folder", e))?;
        // Listening on every address: talk to it over loopback.
        let ip: IpAddr = match addr.ip() {
            IpAddr::V4(a) if a.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(a) if a.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        let mut cfg = AgentConfig::new(
            format!("http://{}", SocketAddr::new(ip, addr.port())),
            state_dir.path(),
        );
        cfg.poll_interval_ms = 1000;
        cfg.long_poll_secs = 20;
        cfg.printers = PRINTERS
            .iter()
            .map(|p| {
                let mut c = PrinterConfig::virtual_printer(p.name, p.snr, p.printer_type);
                c.vid = Some(demo::USB_ID.into());
                c.pid = Some(demo::USB_ID.into());
                c.speed_factor = Some(p.speed_factor);
                c.auto_bed_clear = true;
                c.camera = Some(true);
                c.filaments = vec![FilamentConfig {
                    material: p.material.into(),
                    color: Some(p.color.into()),
                }];
                c
            })
            .collect();
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("demo-printers".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "the demo farm's printers cannot start");
                        return;
                    }
                };
                if let Err(e) = runtime.block_on(crate::agent::run(cfg, stopped)) {
                    tracing::error!(error = %e, "the demo farm's printers stopped");
                }
            })
            .map_err(|e| Error::io("demo printers thread", e))?;
        Ok(Printers {
            stop,
            thread,
            _state_dir: state_dir,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let thread = self.thread;
        let _ = actix_web::web::block(move || thread.join()).await;
    }
}

async fn run(state: AppState, addr: SocketAddr) {
    let mut printers: Option<Printers> = None;
    let mut announced = false;
    loop {
        let ctx = state.job_context();
        match state.db(move |c| demo::tend(c, &ctx)).await {
            Ok(Some(tended)) => {
                if printers.is_none() {
                    match Printers::start(&state, addr) {
                        Ok(p) => printers = Some(p),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start the demo farm's printers")
                        }
                    }
                }
                if tended.admitted > 0 && !announced {
                    announced = true;
                    tracing::info!(
                        printers = PRINTERS.len(),
                        "demo farm running: sign in to the console to watch it; remove it under Admin › Printers or with `printfarm admin remove-demo`"
                    );
                }
                if tended.admitted > 0 || tended.fed {
                    state.farm_wake.notify_one();
                }
            }
            Ok(None) => {
                if let Some(p) = printers.take() {
                    p.stop().await;
                    // Codes the printers asked for while the demo was being removed.
                    if let Err(e) = state.db(demo::forget_devices).await {
                        tracing::warn!(error = %e, "demo farm: cannot delete its registration codes");
                    }
                    tracing::info!("the demo farm was removed; its printers stopped");
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "demo farm"),
        }
        tokio::select! {
            _ = actix_web::rt::time::sleep(EVERY) => {}
            _ = state.demo_changed.notified() => {}
            _ = state.notifier.shutting_down() => {
                if let Some(p) = printers.take() {
                    p.stop().await;
                }
                return;
            }
        }
    }
}
