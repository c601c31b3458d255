//! Printer drivers: one async trait, three implementations (virtual, OctoPrint, Moonraker).

use std::future::Future;
use std::path::Path;

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
        matches!(self, AnyDriver::Virtual(v) if v.has_camera())
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
}

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

pub(crate) fn round2(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        0.0
    }
}
