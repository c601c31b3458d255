//! `printfarm-agent`: the printer-side agent. It speaks the 3DPrinterOS printer protocol
//! (APIPrinter v1: `register`, `command`, `camera` under `/apiprinter/v1/printer/`) to a
//! printfarm server and drives printers through OctoPrint, Moonraker or a built-in
//! virtual printer.
//!
//! # Configuration file (TOML)
//!
//! ```toml
//! server = "http://127.0.0.1:8080"   # printfarm server base URL (required)
//! # vendor = "apv1"                  # optional: /apiprinter/v1/<vendor>/printer/
//! state_dir = "agent-state"          # tokens, registration codes, job state, downloads
//! poll_interval_ms = 2000            # register/command poll period
//! long_poll_secs = 0                 # 0 = plain polling; N = server holds idle polls ≤ N s
//! request_timeout_secs = 15          # per request to the server (plus the long-poll wait)
//! max_backoff_ms = 30000             # cap of the reconnect backoff (1 s, 2 s, 4 s …, jittered)
//!
//! [[printer]]
//! name = "Virtual MK4S"
//! snr = "VIRT-0001"                  # unique serial; names <state_dir>/<snr>.* files
//! type = "PRUSA_MK4S"                # printer-type short name known to the server
//! driver = "virtual"                 # virtual | octoprint | moonraker
//! speed_factor = 1.0                 # virtual: simulated seconds per real second
//! heat_rate = 3.0                    # virtual: °C per simulated second
//! # fail_after_percent = 50.0        # virtual: fail every print at this percent
//! # camera = true                    # post camera frames while someone watches (virtual: generated)
//!
//! [[printer.filaments]]              # what is loaded, one entry per extruder, in order
//! material = "PLA"
//! color = "#FF8800"                  # optional, #RRGGBB
//!
//! [[printer]]
//! name = "Octo"
//! snr = "OCTO-0001"
//! type = "PRUSA_MK3S"
//! driver = "octoprint"
//! url = "http://127.0.0.1:5000"
//! api_key = "…"                      # a user's API key
//! # port = "VIRTUAL"                 # serial port to connect; default: OctoPrint's saved one
//!
//! [[printer]]
//! name = "Klipper"
//! snr = "KLIP-0001"
//! type = "VORON_2_4"
//! driver = "moonraker"
//! url = "http://127.0.0.1:7125"
//! # api_key = "…"                    # only if Moonraker requires one
//! ```
//!
//! Every printer may also set `vid`, `pid`, `mac` (sent at registration),
//! `driver_timeout_secs` (per request to the printer, default 10) and
//! `auto_bed_clear = true` (the bed clears itself: `bed_clear: true` is sent after each
//! finished print, so the server may start the next job without an operator).
//!
//! # Loaded materials
//! Reports carry `material_names` and `material_colors_hex` (one entry per extruder) when
//! they change; the server answers them as `filaments` in `get_printers_list`. Sources: the
//! virtual printer's `[[printer.filaments]]`; on Moonraker the spool its Spoolman
//! integration has active (`/server/spoolman/spool_id`, then the spool's filament material
//! and colour through `/server/spoolman/proxy`); OctoPrint's core API has no material, so
//! there (and on Moonraker without an active spool) the configured `[[printer.filaments]]`
//! are reported.
//!
//! # Behaviour
//! * Registration: the first `register` answer carries a registration code; it is logged
//!   as a warning and written to `<state_dir>/<snr>.registration_code` until an admin
//!   redeems it. The auth token then goes to `<state_dir>/<snr>.json`; with a stored
//!   token registration is skipped. An invalid token (error 3) starts it over.
//! * Commands are acknowledged on the next request. The ack and the executed command
//!   numbers are persisted before a command runs, so a re-sent command is acknowledged
//!   again but never executed twice.
//! * A job in flight (downloading or printing) is persisted too: after a restart or a
//!   network fault the agent reports the printer's real state with `clouds_job_id` and
//!   does not send `reset_job`.
//! * Printers run as separate tasks with their own HTTP clients and timeouts.

pub mod config;
pub mod download;
pub mod driver;
pub mod jpeg;
mod printer;
pub mod protocol;
pub mod state;

pub use config::{AgentConfig, DriverKind, FilamentConfig, PrinterConfig};
pub use printer::{run_printer, run_printer_with};

use std::time::Duration;

use tokio::sync::watch;

/// Runs every configured printer until `shutdown` becomes true. A printer task that
/// panics is logged and restarted; it never affects the others.
pub async fn run(cfg: AgentConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    cfg.validate()?;
    if cfg.printers.is_empty() {
        anyhow::bail!("no [[printer]] configured");
    }
    let mut tasks = Vec::new();
    for printer in cfg.printers.clone() {
        let cfg = cfg.clone();
        let mut shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let task = tokio::spawn(run_printer(
                    cfg.clone(),
                    printer.clone(),
                    shutdown.clone(),
                ));
                match task.await {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => {
                        tracing::error!(printer = %printer.name, error = %e, "printer agent cannot run");
                        return;
                    }
                    Err(e) => {
                        tracing::error!(printer = %printer.name, error = %e, "printer agent crashed; restarting in 5 s")
                    }
                }
                if *shutdown.borrow() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
