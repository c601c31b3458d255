//! OctoPrint REST driver (`X-Api-Key`). Verified against OctoPrint 1.11 with its
//! virtual printer (tests/peers).
//!
//! OctoPrint keeps the last job's file selected after it ends: a finished job shows
//! `progress.completion` 100, a cancelled one `null`. So "Operational" with completion
//! 100 is reported as Finished, otherwise Idle (the agent infers a local cancel).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::{
    check, http_error, round2, upload_form, DriverError, DriverState, Material, PrinterStatus,
    Webcam, UPLOAD_TIMEOUT,
};
use crate::agent::config::PrinterConfig;

pub struct OctoPrint {
    http: reqwest::Client,
    base: String,
    key: String,
    port: Option<String>,
    pub(crate) camera: Webcam,
}

impl OctoPrint {
    pub fn new(
        base: &str,
        key: &str,
        port: Option<String>,
        timeout: Duration,
    ) -> anyhow::Result<OctoPrint> {
        Ok(OctoPrint {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(timeout)
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
            port,
            camera: Webcam::new(false),
        })
    }

    /// Posts camera frames from OctoPrint's snapshot webcam (`camera = true`).
    pub fn with_camera(mut self, enabled: bool) -> OctoPrint {
        self.camera = Webcam::new(enabled);
        self
    }

    /// The snapshot URL in OctoPrint's settings (its snapshot webcam, else any that has one).
    async fn snapshot_setting(&self) -> Result<Option<String>, DriverError> {
        let (_, settings) = self.get_json("/api/settings").await?;
        let cam = &settings["webcam"];
        let snapshot = |w: &Value| {
            w["compat"]["snapshot"]
                .as_str()
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        };
        let webcams = cam["webcams"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let named = webcams
            .iter()
            .filter(|w| w["name"] == cam["snapshotWebcam"])
            .find_map(snapshot);
        Ok(named
            .or_else(|| {
                cam["snapshotUrl"]
                    .as_str()
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_string)
            })
            .or_else(|| webcams.iter().find_map(snapshot)))
    }

    pub fn from_config(p: &PrinterConfig) -> anyhow::Result<OctoPrint> {
        Ok(OctoPrint::new(
            p.url.as_deref().unwrap_or_default(),
            p.api_key.as_deref().unwrap_or_default(),
            p.port.clone(),
            p.driver_timeout(),
        )?
        .with_camera(p.camera.unwrap_or(false)))
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("X-Api-Key", &self.key)
    }

    async fn get_json(&self, path: &str) -> Result<(u16, Value), DriverError> {
        let res = self
            .req(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(http_error)?;
        let status = res.status().as_u16();
        if status == 409 {
            // "Printer is not operational"
            return Ok((409, Value::Null));
        }
        let res = check(res).await?;
        let v = res.json().await.map_err(http_error)?;
        Ok((status, v))
    }

    async fn post_json(&self, path: &str, body: Value) -> Result<(), DriverError> {
        let res = self
            .req(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .map_err(http_error)?;
        check(res).await.map(|_| ())
    }

    async fn job_command(&self, body: Value) -> Result<(), DriverError> {
        self.post_json("/api/job", body).await
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn flag(flags: &Value, name: &str) -> bool {
    flags.get(name).and_then(Value::as_bool).unwrap_or(false)
}

impl super::Driver for OctoPrint {
    async fn connect(&self) -> Result<(), DriverError> {
        let (_, conn) = self.get_json("/api/connection").await?;
        let state = conn["current"]["state"].as_str().unwrap_or("");
        let closed = state.is_empty()
            || state.starts_with("Closed")
            || state.starts_with("Offline")
            || state.starts_with("Error")
            || state.contains("Error");
        if !closed {
            return Ok(());
        }
        let mut body = json!({"command": "connect", "autoconnect": false});
        if let Some(port) = &self.port {
            body["port"] = json!(port);
            body["baudrate"] = json!(115200);
            body["printerProfile"] = json!("_default");
        }
        self.post_json("/api/connection", body).await
    }

    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        let (code, printer) = self.get_json("/api/printer?exclude=sd").await?;
        if code == 409 {
            return Ok(PrinterStatus::offline(
                "OctoPrint is not connected to the printer",
            ));
        }
        let (_, job) = self.get_json("/api/job").await?;
        let flags = &printer["state"]["flags"];
        let temp = &printer["temperature"];
        let completion = job["progress"]["completion"].as_f64();
        let file = job["job"]["file"]["name"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let text = printer["state"]["text"].as_str().unwrap_or("").to_string();
        let (state, message) = if flag(flags, "error") {
            (DriverState::Error, Some(text))
        } else if flag(flags, "closedOrError") || !flag(flags, "operational") {
            (DriverState::Offline, Some(text))
        } else if flag(flags, "cancelling") {
            (DriverState::Cancelled, None)
        } else if flag(flags, "paused") || flag(flags, "resuming") {
            (DriverState::Paused, None)
        } else if flag(flags, "printing") || flag(flags, "pausing") || flag(flags, "finishing") {
            (DriverState::Printing, None)
        } else if file.is_some() && completion.is_some_and(|c| c >= 99.99) {
            (DriverState::Finished, None)
        } else {
            (DriverState::Idle, None)
        };
        let percent = match state {
            DriverState::Finished => 100.0,
            _ => completion.unwrap_or(0.0),
        };
        Ok(PrinterStatus {
            state,
            message,
            percent: round2(percent),
            temps: [
                round2(num(&temp["bed"]["actual"])),
                round2(num(&temp["tool0"]["actual"])),
            ],
            target_temps: [
                round2(num(&temp["bed"]["target"])),
                round2(num(&temp["tool0"]["target"])),
            ],
            job_file: file,
        })
    }

    async fn upload(&self, path: &Path, name: &str) -> Result<(), DriverError> {
        let form = upload_form(&[("select", "false"), ("print", "false")], path, name).await?;
        let res = self
            .req(reqwest::Method::POST, "/api/files/local")
            // Uploads may take longer than status calls.
            .timeout(UPLOAD_TIMEOUT)
            .multipart(form)
            .send()
            .await
            .map_err(http_error)?;
        check(res).await.map(|_| ())
    }

    async fn start(&self, name: &str) -> Result<(), DriverError> {
        self.post_json(
            &format!("/api/files/local/{}", path_segment(name)),
            json!({"command": "select", "print": true}),
        )
        .await
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.job_command(json!({"command": "pause", "action": "pause"}))
            .await
    }

    async fn resume(&self) -> Result<(), DriverError> {
        self.job_command(json!({"command": "pause", "action": "resume"}))
            .await
    }

    async fn cancel(&self) -> Result<(), DriverError> {
        self.job_command(json!({"command": "cancel"})).await
    }

    async fn snapshot(&self) -> Option<Vec<u8>> {
        self.camera
            .snapshot(&self.http, &self.base, self.snapshot_setting())
            .await
    }

    /// OctoPrint's core API knows nothing about the loaded material (its printer profile
    /// only has the extruder count); the agent falls back to the configured filaments.
    async fn materials(&self) -> Result<Vec<Material>, DriverError> {
        Ok(Vec::new())
    }
}

/// Percent-encodes one path segment.
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(path_segment("pf 1/ä.gcode"), "pf%201%2F%C3%A4.gcode");
    }
}
