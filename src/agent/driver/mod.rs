//! Printer drivers: one async trait, three implementations (virtual, OctoPrint, Moonraker).

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::{DriverKind, PrinterConfig};

pub mod moonraker;
pub mod octoprint;
pub mod virtual_printer;

pub use moonraker::Moonraker;
pub use octoprint::OctoPrint;
pub use virtual_printer::VirtualPrinter;

/// What the printer is doing, normalised across drivers.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverState {
    /// Not reachable or not connected to its printer; `connect` may help.
    Offline,
    /// The printer is in an error state (firmware error, shutdown).
    Error,
    /// Operational, no job (or no knowledge of the last one).
    Idle,
    Printing,
    Paused,
    /// Idle; the last job (`job_file`) completed.
    Finished,
    /// Idle (or about to be); the last job was cancelled.
    Cancelled,
    /// Idle; the last job failed (`message` says why).
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrinterStatus {
    pub state: DriverState,
    /// Why Offline/Error/Failed.
    pub message: Option<String>,
    /// Job progress 0–100.
    pub percent: f64,
    /// [bed, tool0], °C.
    pub temps: [f64; 2],
    pub target_temps: [f64; 2],
    /// The file of the current or last job, as named on the printer.
    pub job_file: Option<String>,
}

impl PrinterStatus {
    pub fn offline(message: impl Into<String>) -> PrinterStatus {
        PrinterStatus {
            state: DriverState::Offline,
            message: Some(message.into()),
            percent: 0.0,
            temps: [0.0, 0.0],
            target_temps: [0.0, 0.0],
            job_file: None,
        }
    }
}

/// The material loaded in one extruder.
#[derive(Debug, Clone, PartialEq)]
pub struct Material {
    /// Material type (`PLA`, `PETG`, …), when known.
    pub material: Option<String>,
    /// `#RRGGBB` (or `#RRGGBBAA`), when known.
    pub color_hex: Option<String>,
}

impl Material {
    /// The configured filaments (`[[printer.filaments]]`), one per extruder.
    pub fn from_config(p: &PrinterConfig) -> Vec<Material> {
        p.filaments
            .iter()
            .map(|f| Material {
                material: Some(f.material.trim().to_string()),
                color_hex: f.color.as_deref().and_then(crate::material::hex_color),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    /// The printer (or its host) could not be reached.
    #[error("printer unreachable: {0}")]
    Unreachable(String),
    /// The printer refused the operation (busy, wrong state, bad file …).
    #[error("printer refused: {0}")]
    Refused(String),
    /// Anything else (local file problems, malformed answers).
    #[error("{0}")]
    Other(String),
}

/// The operations the agent needs from a printer. Implementations keep no lock across
/// an await, and every network call has its own timeout.
pub trait Driver: Send + Sync {
    /// Makes sure the printer is connected (OctoPrint: opens the serial connection).
    fn connect(&self) -> impl Future<Output = Result<(), DriverError>> + Send;
    fn status(&self) -> impl Future<Output = Result<PrinterStatus, DriverError>> + Send;
    /// Stores the G-code at `path` on the printer as `name` (not started).
    fn upload(
        &self,
        path: &Path,
        name: &str,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;
    fn start(&self, name: &str) -> impl Future<Output = Result<(), DriverError>> + Send;
    fn pause(&self) -> impl Future<Output = Result<(), DriverError>> + Send;
    fn resume(&self) -> impl Future<Output = Result<(), DriverError>> + Send;
    fn cancel(&self) -> impl Future<Output = Result<(), DriverError>> + Send;
    /// A JPEG frame, for printers with a camera.
    fn snapshot(&self) -> impl Future<Output = Option<Vec<u8>>> + Send;
    /// The materials loaded, one per extruder in order, as far as the printer knows them;
    /// empty when it cannot tell.
    fn materials(&self) -> impl Future<Output = Result<Vec<Material>, DriverError>> + Send;
}

/// The configured driver (enum dispatch keeps the trait free of boxing).
pub enum AnyDriver {
    // Boxed: the simulation state is much larger than the HTTP drivers.
    Virtual(Box<VirtualPrinter>),
    OctoPrint(OctoPrint),
    Moonraker(Moonraker),
}

impl AnyDriver {
    pub fn from_config(p: &PrinterConfig) -> anyhow::Result<AnyDriver> {
        Ok(match p.driver {
            DriverKind::Virtual => AnyDriver::Virtual(Box::new(VirtualPrinter::from_config(p))),
            DriverKind::Octoprint => AnyDriver::OctoPrint(OctoPrint::from_config(p)?),
            DriverKind::Moonraker => AnyDriver::Moonraker(Moonraker::from_config(p)?),
        })
    }

    pub fn has_camera(&self) -> bool {
        match self {
            AnyDriver::Virtual(v) => v.has_camera(),
            AnyDriver::OctoPrint(d) => d.camera.enabled(),
            AnyDriver::Moonraker(d) => d.camera.enabled(),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            AnyDriver::Virtual($d) => $e,
            AnyDriver::OctoPrint($d) => $e,
            AnyDriver::Moonraker($d) => $e,
        }
    };
}

impl Driver for AnyDriver {
    async fn connect(&self) -> Result<(), DriverError> {
        dispatch!(self, d => d.connect().await)
    }
    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        dispatch!(self, d => d.status().await)
    }
    async fn upload(&self, path: &Path, name: &str) -> Result<(), DriverError> {
        dispatch!(self, d => d.upload(path, name).await)
    }
    async fn start(&self, name: &str) -> Result<(), DriverError> {
        dispatch!(self, d => d.start(name).await)
    }
    async fn pause(&self) -> Result<(), DriverError> {
        dispatch!(self, d => d.pause().await)
    }
    async fn resume(&self) -> Result<(), DriverError> {
        dispatch!(self, d => d.resume().await)
    }
    async fn cancel(&self) -> Result<(), DriverError> {
        dispatch!(self, d => d.cancel().await)
    }
    async fn snapshot(&self) -> Option<Vec<u8>> {
        dispatch!(self, d => d.snapshot().await)
    }
    async fn materials(&self) -> Result<Vec<Material>, DriverError> {
        dispatch!(self, d => d.materials().await)
    }
}

/// Timeout of one upload to a printer (uploads take longer than status calls; a large
/// G-code over a slow link needs minutes).
pub(crate) const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Maps a reqwest failure: connection problems and timeouts mean "unreachable".
pub(crate) fn http_error(e: reqwest::Error) -> DriverError {
    let text = super::protocol::error_chain(&e);
    if e.is_connect() || e.is_timeout() || e.is_request() {
        DriverError::Unreachable(text)
    } else {
        DriverError::Other(text)
    }
}

/// Reads an answer; non-2xx becomes `Refused` (4xx) or `Unreachable` (5xx) with the body.
pub(crate) async fn check(res: reqwest::Response) -> Result<reqwest::Response, DriverError> {
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let body = res.text().await.unwrap_or_default();
    let msg = extract_message(&body).unwrap_or(body);
    let msg = format!(
        "HTTP {}: {}",
        status.as_u16(),
        msg.chars().take(300).collect::<String>()
    );
    if status.is_server_error() {
        Err(DriverError::Unreachable(msg))
    } else {
        Err(DriverError::Refused(msg))
    }
}

/// `{"error": "..."}` (OctoPrint) or `{"error": {"message": "..."}}` (Moonraker).
fn extract_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let e = v.get("error")?;
    e.as_str()
        .map(str::to_string)
        .or_else(|| e.get("message")?.as_str().map(str::to_string))
}

/// A multipart form with text `fields` and the file at `path` as part `file` named `name`,
/// streamed from disk with its length known up front (so the request has a Content-Length
/// and a large G-code never sits in memory).
pub(crate) async fn upload_form(
    fields: &[(&'static str, &'static str)],
    path: &Path,
    name: &str,
) -> Result<reqwest::multipart::Form, DriverError> {
    let local = |e: std::io::Error| DriverError::Other(format!("{}: {e}", path.display()));
    let file = tokio::fs::File::open(path).await.map_err(local)?;
    let len = file.metadata().await.map_err(local)?.len();
    let part = reqwest::multipart::Part::stream_with_length(file, len)
        .file_name(name.to_string())
        .mime_str("application/octet-stream")
        .map_err(|e| DriverError::Other(e.to_string()))?;
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(*k, *v);
    }
    Ok(form.part("file", part))
}

/// Largest camera frame fetched from a webcam (the server refuses larger ones).
const MAX_SNAPSHOT_BYTES: usize = 2 * 1024 * 1024;
/// How long a looked-up snapshot URL (or its absence) is trusted before asking again.
const SNAPSHOT_URL_TTL: Duration = Duration::from_secs(60);
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// The webcam of an OctoPrint or Moonraker host: its snapshot URL, as the host's settings
/// name it, looked up lazily and cached for a while.
pub(crate) struct Webcam {
    enabled: bool,
    cached: Mutex<Option<(Option<url::Url>, Instant)>>,
}

impl Webcam {
    pub(crate) fn new(enabled: bool) -> Webcam {
        Webcam {
            enabled,
            cached: Mutex::new(None),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    fn cached_url(&self) -> Option<Option<url::Url>> {
        let c = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        c.as_ref()
            .filter(|(_, at)| at.elapsed() < SNAPSHOT_URL_TTL)
            .map(|(u, _)| u.clone())
    }

    fn remember(&self, url: Option<url::Url>) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((url, Instant::now()));
    }

    fn forget(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// One JPEG from the webcam. `lookup` yields the snapshot URL as configured on the host
    /// (absolute or relative to `base`); None when disabled, not configured or failing.
    pub(crate) async fn snapshot<F>(
        &self,
        http: &reqwest::Client,
        base: &str,
        lookup: F,
    ) -> Option<Vec<u8>>
    where
        F: Future<Output = Result<Option<String>, DriverError>>,
    {
        if !self.enabled {
            return None;
        }
        let url = match self.cached_url() {
            Some(u) => u,
            None => {
                let found = match lookup.await {
                    Ok(u) => u.and_then(|u| snapshot_url(base, &u)),
                    // Host unreachable: ask again next time.
                    Err(_) => return None,
                };
                self.remember(found.clone());
                found
            }
        }?;
        match fetch_jpeg(http, url.clone()).await {
            Ok(jpeg) => Some(jpeg),
            Err(e) => {
                tracing::debug!(url = %url, error = %e, "webcam snapshot failed");
                // The settings may have changed: look the URL up again next time.
                self.forget();
                None
            }
        }
    }
}

/// Resolves a configured snapshot URL against the printer host's base URL. A loopback host
/// means "on the printer host" (the usual `http://127.0.0.1:8080/?action=snapshot`), which
/// only works from another machine with the printer host's name put in.
fn snapshot_url(base: &str, configured: &str) -> Option<url::Url> {
    let configured = configured.trim();
    if configured.is_empty() {
        return None;
    }
    let base = url::Url::parse(base).ok()?;
    let mut url = base.join(configured).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let loopback = |u: &url::Url| match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback(&url) && !loopback(&base) {
        url.set_host(base.host_str()).ok()?;
    }
    Some(url)
}

async fn fetch_jpeg(http: &reqwest::Client, url: url::Url) -> Result<Vec<u8>, String> {
    let mut res = http
        .get(url)
        .timeout(SNAPSHOT_TIMEOUT)
        .send()
        .await
        .map_err(|e| super::protocol::error_chain(&e))?;
    if !res.status().is_success() {
        return Err(format!("HTTP {}", res.status().as_u16()));
    }
    let mut jpeg = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        if jpeg.len() + chunk.len() > MAX_SNAPSHOT_BYTES {
            return Err(format!("frame over {MAX_SNAPSHOT_BYTES} bytes"));
        }
        jpeg.extend_from_slice(&chunk);
    }
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG".into());
    }
    Ok(jpeg)
}

pub(crate) fn round2(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_snapshot_urls() {
        let u = |b: &str, c: &str| snapshot_url(b, c).map(|u| u.to_string());
        assert_eq!(
            u("http://octopi.lan", "/webcam/?action=snapshot").as_deref(),
            Some("http://octopi.lan/webcam/?action=snapshot")
        );
        assert_eq!(
            u(
                "http://octopi.lan:5000",
                "http://127.0.0.1:8080/?action=snapshot"
            )
            .as_deref(),
            Some("http://octopi.lan:8080/?action=snapshot")
        );
        assert_eq!(
            u("http://127.0.0.1:5000", "http://localhost:8080/snap.jpg").as_deref(),
            Some("http://localhost:8080/snap.jpg")
        );
        assert_eq!(
            u("http://10.0.0.5:7125", "http://cam.lan/s.jpg").as_deref(),
            Some("http://cam.lan/s.jpg")
        );
        assert_eq!(u("http://octopi.lan", "  "), None);
        assert_eq!(u("http://octopi.lan", "file:///etc/passwd"), None);
        assert_eq!(u("not a url", "/snap"), None);
    }
}
