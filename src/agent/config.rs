//! The agent's configuration file (TOML); the format is documented in `agent/mod.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Top-level settings shared by every printer of one agent process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Base URL of the printfarm server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// Optional vendor segment: `/apiprinter/v1/<vendor>/printer/` instead of `/apiprinter/v1/printer/`.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Folder for tokens, registration codes, in-flight job state and downloads.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Period of the `register` and `command` polls.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// 0 = plain polling; N = ask the server to hold an idle `command` request up to N seconds.
    #[serde(default)]
    pub long_poll_secs: u64,
    /// Timeout of one request to the server (added to the long-poll wait).
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Cap of the reconnect backoff.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    #[serde(default, rename = "printer")]
    pub printers: Vec<PrinterConfig>,
}

/// Which driver talks to the printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Virtual,
    Octoprint,
    Moonraker,
}

/// One `[[printer]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    pub name: String,
    /// Unique serial number; also names the printer's state files.
    pub snr: String,
    /// Printer-type short name as the server knows it, e.g. `PRUSA_MK4S`.
    #[serde(rename = "type")]
    pub printer_type: String,
    pub driver: DriverKind,
    /// OctoPrint / Moonraker base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// OctoPrint API key (Moonraker: optional `X-Api-Key`).
    #[serde(default)]
    pub api_key: Option<String>,
    /// OctoPrint serial port to connect (default `VIRTUAL`, OctoPrint's virtual printer).
    #[serde(default)]
    pub port: Option<String>,
    /// USB ids sent at registration; defaults depend on the driver.
    #[serde(default)]
    pub vid: Option<String>,
    #[serde(default)]
    pub pid: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    /// Virtual printer: simulated seconds per real second.
    #[serde(default)]
    pub speed_factor: Option<f64>,
    /// Virtual printer: heating/cooling rate in °C per simulated second.
    #[serde(default)]
    pub heat_rate: Option<f64>,
    /// Virtual printer: every print fails when it reaches this percent.
    #[serde(default)]
    pub fail_after_percent: Option<f64>,
    /// Post camera frames while a viewer watches: generated ones (virtual), the snapshot
    /// webcam of OctoPrint's settings, or Moonraker's first webcam with a snapshot URL.
    #[serde(default)]
    pub camera: Option<bool>,
    /// Timeout of one request to the printer (driver), seconds.
    #[serde(default)]
    pub driver_timeout_secs: Option<u64>,
    /// The bed clears itself after a print (auto-eject, belt, or a simulation): send
    /// `bed_clear: true` after each finished print so the server may start the next job.
    #[serde(default)]
    pub auto_bed_clear: bool,
    /// The materials loaded, one entry per extruder in order (`[[printer.filaments]]` with
    /// `material` and an optional `color`, `#RRGGBB`). The virtual printer reports them as
    /// loaded; an OctoPrint or Moonraker printer reports them when the printer itself
    /// cannot tell (no Spoolman spool active).
    #[serde(default)]
    pub filaments: Vec<FilamentConfig>,
}

/// One loaded material (`[[printer.filaments]]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilamentConfig {
    /// Material type as slicers name it: `PLA`, `PETG`, `ABS`, `TPU`, …
    pub material: String,
    /// Colour as `#RRGGBB` (or `#RRGGBBAA`).
    #[serde(default)]
    pub color: Option<String>,
}

/// Most filament entries per printer (the server keeps as many).
pub const MAX_FILAMENTS: usize = 16;

fn default_state_dir() -> PathBuf {
    PathBuf::from("agent-state")
}
fn default_poll_interval_ms() -> u64 {
    2000
}
fn default_request_timeout_secs() -> u64 {
    15
}
fn default_max_backoff_ms() -> u64 {
    30_000
}

impl AgentConfig {
    /// A configuration with defaults and no printers (handy for tests).
    pub fn new(server: impl Into<String>, state_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            server: server.into(),
            vendor: None,
            state_dir: state_dir.into(),
            poll_interval_ms: default_poll_interval_ms(),
            long_poll_secs: 0,
            request_timeout_secs: default_request_timeout_secs(),
            max_backoff_ms: default_max_backoff_ms(),
            printers: Vec::new(),
        }
    }

    pub fn from_toml(text: &str) -> anyhow::Result<AgentConfig> {
        let cfg: AgentConfig = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> anyhow::Result<AgentConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        AgentConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        url::Url::parse(&self.server)
            .map_err(|e| anyhow::anyhow!("server {:?} is not a URL: {e}", self.server))?;
        if self.poll_interval_ms == 0 {
            anyhow::bail!("poll_interval_ms must be > 0");
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.printers {
            p.validate()?;
            if !seen.insert(p.snr.as_str()) {
                anyhow::bail!("printer snr {:?} appears twice", p.snr);
            }
        }
        Ok(())
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// `{server}/apiprinter/v1/[<vendor>/]printer/`
    pub fn printer_api_base(&self) -> String {
        let server = self.server.trim_end_matches('/');
        match self.vendor.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{server}/apiprinter/v1/{v}/printer/"),
            None => format!("{server}/apiprinter/v1/printer/"),
        }
    }
}

impl PrinterConfig {
    /// A virtual printer entry with defaults (handy for tests).
    pub fn virtual_printer(name: &str, snr: &str, printer_type: &str) -> PrinterConfig {
        PrinterConfig {
            name: name.into(),
            snr: snr.into(),
            printer_type: printer_type.into(),
            driver: DriverKind::Virtual,
            url: None,
            api_key: None,
            port: None,
            vid: None,
            pid: None,
            mac: None,
            speed_factor: None,
            heat_rate: None,
            fail_after_percent: None,
            camera: None,
            driver_timeout_secs: None,
            auto_bed_clear: false,
            filaments: Vec::new(),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let ok_snr = !self.snr.is_empty()
            && self
                .snr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !self.snr.starts_with('.');
        if !ok_snr {
            anyhow::bail!(
                "printer {:?}: snr {:?} must be non-empty ASCII letters, digits, '-', '_' or '.' (it names files)",
                self.name,
                self.snr
            );
        }
        if self.filaments.len() > MAX_FILAMENTS {
            anyhow::bail!(
                "printer {:?}: at most {MAX_FILAMENTS} filaments (one per extruder)",
                self.name
            );
        }
        for f in &self.filaments {
            let m = f.material.trim();
            if m.is_empty() || m.chars().count() > 64 || m.chars().any(char::is_control) {
                anyhow::bail!(
                    "printer {:?}: filament material {:?} must be 1 to 64 printable characters",
                    self.name,
                    f.material
                );
            }
            if let Some(c) = &f.color {
                if crate::material::hex_color(c).is_none() {
                    anyhow::bail!(
                        "printer {:?}: filament color {c:?} is not #RRGGBB",
                        self.name
                    );
                }
            }
        }
        match self.driver {
            DriverKind::Octoprint => {
                self.require_url()?;
                if self.api_key.as_deref().unwrap_or("").is_empty() {
                    anyhow::bail!(
                        "printer {:?}: the octoprint driver needs api_key",
                        self.name
                    );
                }
            }
            DriverKind::Moonraker => {
                self.require_url()?;
            }
            DriverKind::Virtual => {
                if self
                    .speed_factor
                    .is_some_and(|s| s <= 0.0 || !s.is_finite())
                {
                    anyhow::bail!("printer {:?}: speed_factor must be > 0", self.name);
                }
                if self.heat_rate.is_some_and(|s| s <= 0.0 || !s.is_finite()) {
                    anyhow::bail!("printer {:?}: heat_rate must be > 0", self.name);
                }
            }
        }
        Ok(())
    }

    fn require_url(&self) -> anyhow::Result<()> {
        let url = self.url.as_deref().unwrap_or("");
        url::Url::parse(url).map_err(|e| {
            anyhow::anyhow!("printer {:?}: url {url:?} is not a URL: {e}", self.name)
        })?;
        Ok(())
    }

    pub fn driver_timeout(&self) -> Duration {
        Duration::from_secs(self.driver_timeout_secs.unwrap_or(10).max(1))
    }

    /// (VID, PID) sent at registration.
    pub fn usb_ids(&self) -> (String, String) {
        let (v, p) = match self.driver {
            DriverKind::Virtual => ("VIRT", "VIRT"),
            DriverKind::Octoprint => ("OCTO", "OCTO"),
            DriverKind::Moonraker => ("KLIP", "MOON"),
        };
        (
            self.vid.clone().unwrap_or_else(|| v.into()),
            self.pid.clone().unwrap_or_else(|| p.into()),
        )
    }

    /// A stable pseudo MAC derived from the serial unless configured.
    pub fn mac(&self) -> String {
        if let Some(m) = &self.mac {
            return m.clone();
        }
        use sha2::Digest;
        let d = sha2::Sha256::digest(self.snr.as_bytes());
        // Locally administered, unicast.
        let first = (d[0] & 0xfc) | 0x02;
        format!(
            "{first:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            d[1], d[2], d[3], d[4], d[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_example_and_rejects_mistakes() {
        let cfg = AgentConfig::from_toml(
            r##"
server = "http://127.0.0.1:8080"
state_dir = "st"
long_poll_secs = 20

[[printer]]
name = "Virtual 1"
snr = "VIRT-0001"
type = "PRUSA_MK4S"
driver = "virtual"
speed_factor = 1000.0

[[printer.filaments]]
material = "PLA"
color = "#FF8800"

[[printer.filaments]]
material = "PVA"

[[printer]]
name = "Octo"
snr = "OCTO-1"
type = "PRUSA_MK3S"
driver = "octoprint"
url = "http://127.0.0.1:5000"
api_key = "K"
"##,
        )
        .unwrap();
        assert_eq!(cfg.printers.len(), 2);
        assert_eq!(cfg.poll_interval_ms, 2000);
        assert_eq!(cfg.long_poll_secs, 20);
        assert_eq!(cfg.printers[0].driver, DriverKind::Virtual);
        assert_eq!(
            cfg.printer_api_base(),
            "http://127.0.0.1:8080/apiprinter/v1/printer/"
        );
        assert_eq!(cfg.printers[0].mac().len(), 12);
        assert_eq!(cfg.printers[0].filaments.len(), 2);
        assert_eq!(cfg.printers[0].filaments[1].color, None);
        assert!(cfg.printers[1].filaments.is_empty());

        let bad = [
            // octoprint without api_key
            "server = \"http://x\"\n[[printer]]\nname=\"a\"\nsnr=\"a\"\ntype=\"T\"\ndriver=\"octoprint\"\nurl=\"http://h\"\n",
            // path in snr
            "server = \"http://x\"\n[[printer]]\nname=\"a\"\nsnr=\"../a\"\ntype=\"T\"\ndriver=\"virtual\"\n",
            // unknown key
            "server = \"http://x\"\nbogus = 1\n",
            // a filament colour that is not hex, an empty material
            "server = \"http://x\"\n[[printer]]\nname=\"a\"\nsnr=\"a\"\ntype=\"T\"\ndriver=\"virtual\"\n[[printer.filaments]]\nmaterial=\"PLA\"\ncolor=\"orange\"\n",
            "server = \"http://x\"\n[[printer]]\nname=\"a\"\nsnr=\"a\"\ntype=\"T\"\ndriver=\"virtual\"\n[[printer.filaments]]\nmaterial=\" \"\n",
            // duplicate snr
            "server = \"http://x\"\n[[printer]]\nname=\"a\"\nsnr=\"a\"\ntype=\"T\"\ndriver=\"virtual\"\n[[printer]]\nname=\"b\"\nsnr=\"a\"\ntype=\"T\"\ndriver=\"virtual\"\n",
        ];
        for b in bad {
            assert!(AgentConfig::from_toml(b).is_err(), "accepted: {b}");
        }
    }

    #[test]
    fn the_example_file_is_valid() {
        let cfg = AgentConfig::from_toml(include_str!("../../agent.example.toml")).unwrap();
        assert_eq!(cfg.printers[0].filaments[0].material, "PLA");
    }
}
