//! Test helper: starts a real printer peer with the scripts in `tests/peers/` and stops it
//! when dropped. Shared by the agent test modules (`use crate::peers;`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use printfarm::agent::driver::{Driver, DriverState, PrinterStatus};

pub fn peers_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

pub fn peers_dir() -> PathBuf {
    std::env::var_os("PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers"))
}

/// Installs the peers that come from PyPI (OctoPrint, Moonraker, moto; Spoolman too when
/// `SPOOLMAN_SRC` names its source tree) with `tests/peers/setup.sh`, once per test process:
/// the first test that finds one missing runs it while the others wait here. The script holds
/// a lock file while it installs, so test processes started at once wait for one installation
/// instead of racing pip into the same venvs; it is idempotent, so the one that gets the lock
/// after another installed everything returns in about a second. `Err` says why it could not
/// (no `python3 -m venv`, no package index).
pub fn provision() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let dir = peers_dir();
        eprintln!(
            "peers: installing the test peers under {} (once; tests/peers/setup.sh)",
            dir.display()
        );
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(peers_script("setup.sh"))
            .env("PEERS_DIR", &dir)
            .output()
            .map_err(|e| format!("cannot run tests/peers/setup.sh: {e}"))?;
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{log}peers: setup took {:?}", started.elapsed());
        if out.status.success() {
            Ok(())
        } else {
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "tests/peers/setup.sh failed ({}): {}",
                out.status,
                tail.join(" | ")
            ))
        }
    })
    .clone()
}

/// `path` of an installed peer, after `provision` made sure of the peers. `None` (after
/// a loud message) when they cannot be installed and `required` is off; a panic when it is on.
pub fn installed(what: &str, path: PathBuf, required: bool, switch: &str) -> Option<PathBuf> {
    // Always (once per process; about a second when all is there): the script also repairs or
    // removes a peer that cannot load, and no peer starts here while it runs. A peer that is
    // there afterwards is usable, whatever happened to the others.
    let provisioned = provision();
    if path.exists() {
        return Some(path);
    }
    let msg = match provisioned {
        Ok(()) => format!(
            "{what} is not installed at {} after tests/peers/setup.sh",
            path.display()
        ),
        Err(e) => format!("{what} could not be installed: {e}"),
    };
    if required {
        panic!("{switch}=1 but {msg}");
    }
    eprintln!("!!! SKIPPING this test: {msg}. Set {switch}=1 to fail instead.");
    None
}

/// Whether a missing `kind` fails the test instead of skipping it. Spoolman has its own
/// switch: it is not on PyPI, so it can be installed only where its source tree is at hand
/// (`.ci/run` sets the switch when it found one).
fn required(kind: &str) -> bool {
    let switch = if kind == "spoolman" {
        "PRINTFARM_TEST_REQUIRE_SPOOLMAN"
    } else {
        "PRINTFARM_TEST_REQUIRE_PEERS"
    };
    std::env::var(switch).is_ok_and(|v| v == "1")
}

/// A running peer; `env` holds what its start script printed (URL, API key).
pub struct Peer {
    pub env: HashMap<String, String>,
    pub run_dir: tempfile::TempDir,
}

impl Peer {
    /// Starts `kind` ("octoprint" | "moonraker" | "spoolman"); `None` (after a loud message)
    /// when the peers are not installed and not required.
    pub fn start(kind: &str, env: &[(&str, &str)]) -> Option<Peer> {
        let venv = peers_dir().join(format!("{kind}-venv"));
        let bin = if kind == "spoolman" { "uvicorn" } else { kind };
        let (what, switch) = if kind == "spoolman" {
            (
                "the spoolman peer (it installs only from a source tree named by SPOOLMAN_SRC)"
                    .to_string(),
                "PRINTFARM_TEST_REQUIRE_SPOOLMAN",
            )
        } else {
            (format!("the {kind} peer"), "PRINTFARM_TEST_REQUIRE_PEERS")
        };
        installed(&what, venv.join("bin").join(bin), required(kind), switch)?;
        // Short path: Moonraker's Unix socket lives in it (108-byte limit).
        let run_dir = tempfile::Builder::new()
            .prefix("pfpeer")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(peers_script(&format!("start_{kind}.sh")))
            .arg(run_dir.path())
            .envs(env.iter().copied())
            .output()
            .expect("run the start script");
        // Created before checking the outcome so that Drop stops a half-started peer.
        let mut peer = Peer {
            env: HashMap::new(),
            run_dir,
        };
        if !out.status.success() {
            panic!(
                "start_{kind}.sh failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        peer.env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        eprintln!("{kind} peer up in {:?}", started.elapsed());
        Some(peer)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(peers_script("stop.sh"))
            .arg(self.run_dir.path())
            .status();
    }
}

/// Polls the driver until it reports one of `states` (panics after `secs`).
pub async fn wait_state(d: &impl Driver, states: &[DriverState], secs: u64) -> PrinterStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    while Instant::now() < deadline {
        match d.status().await {
            Ok(s) if states.contains(&s.state) => return s,
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no state in {states:?} within {secs} s; last: {last:?}");
}
