//! Moonraker HTTP driver (Klipper). Verified against Moonraker 0.11 with the stand-in
//! Klippy of tests/peers. `print_stats.state` names the job outcome directly
//! (complete / cancelled / error), so no inference is needed here.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::octoprint::path_segment;
use super::{
    check, http_error, round2, upload_form, DriverError, DriverState, Material, PrinterStatus,
    Webcam, UPLOAD_TIMEOUT,
};
use crate::agent::config::PrinterConfig;

const QUERY: &str =
    "/printer/objects/query?webhooks&print_stats&virtual_sdcard&heater_bed&extruder";

/// How long the material of the active Spoolman spool is trusted before asking again (a
/// new spool id is looked up at once).
const SPOOL_TTL: Duration = Duration::from_secs(60);

pub struct Moonraker {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    pub(crate) camera: Webcam,
    /// (spool id, its material, when looked up).
    spool: Mutex<Option<(i64, Material, Instant)>>,
}

impl Moonraker {
    pub fn new(base: &str, key: Option<String>, timeout: Duration) -> anyhow::Result<Moonraker> {
        Ok(Moonraker {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(timeout)
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            key: key.filter(|k| !k.is_empty()),
            camera: Webcam::new(false),
            spool: Mutex::new(None),
        })
    }

    /// Posts camera frames from the first enabled webcam with a snapshot URL
    /// (`camera = true`).
    pub fn with_camera(mut self, enabled: bool) -> Moonraker {
        self.camera = Webcam::new(enabled);
        self
    }

    async fn snapshot_setting(&self) -> Result<Option<String>, DriverError> {
        let list = self.get_result("/server/webcams/list").await?;
        Ok(list["webcams"].as_array().and_then(|cams| {
            cams.iter()
                .filter(|c| c["enabled"].as_bool() != Some(false))
                .find_map(|c| c["snapshot_url"].as_str().filter(|s| !s.trim().is_empty()))
                .map(str::to_string)
        }))
    }

    pub fn from_config(p: &PrinterConfig) -> anyhow::Result<Moonraker> {
        Ok(Moonraker::new(
            p.url.as_deref().unwrap_or_default(),
            p.api_key.clone(),
            p.driver_timeout(),
        )?
        .with_camera(p.camera.unwrap_or(false)))
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => r.header("X-Api-Key", k),
            None => r,
        }
    }

    async fn get_result(&self, path: &str) -> Result<Value, DriverError> {
        let res = self
            .req(reqwest::Method::GET, path)
            .send()
            .await
            .map_err(http_error)?;
        let v: Value = check(res).await?.json().await.map_err(http_error)?;
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }

    /// The material of the spool Moonraker's Spoolman integration has active: its id from
    /// `/server/spoolman/spool_id`, the spool itself through Moonraker's proxy to Spoolman
    /// (`GET /v1/spool/<id>`: `filament.material`, `filament.color_hex`). None when Moonraker
    /// has no `[spoolman]` section (404) or no spool is active.
    async fn active_spool(&self) -> Result<Option<Material>, DriverError> {
        let res = self
            .req(reqwest::Method::GET, "/server/spoolman/spool_id")
            .send()
            .await
            .map_err(http_error)?;
        if res.status().as_u16() == 404 {
            return Ok(None);
        }
        let v: Value = check(res).await?.json().await.map_err(http_error)?;
        let Some(id) = v["result"]["spool_id"].as_i64() else {
            return Ok(None);
        };
        if let Some((cached, m, at)) = self.spool.lock().unwrap_or_else(|p| p.into_inner()).clone()
        {
            if cached == id && at.elapsed() < SPOOL_TTL {
                return Ok(Some(m));
            }
        }
        let res = self
            .req(reqwest::Method::POST, "/server/spoolman/proxy")
            .json(&serde_json::json!({
                "request_method": "GET",
                "path": format!("/v1/spool/{id}"),
                "use_v2_response": true,
            }))
            .send()
            .await
            .map_err(http_error)?;
        let v: Value = check(res).await?.json().await.map_err(http_error)?;
        let answer = &v["result"];
        if !answer["error"].is_null() {
            // Spoolman unreachable or the spool is gone: the material is not known.
            let msg = answer["error"]["message"]
                .as_str()
                .unwrap_or("Spoolman error");
            return Err(DriverError::Other(format!("spool {id}: {msg}")));
        }
        let filament = &answer["response"]["filament"];
        let material = Material {
            material: filament["material"]
                .as_str()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string),
            color_hex: filament["color_hex"]
                .as_str()
                .and_then(crate::material::hex_color)
                // A multi-colour filament has no color_hex: take its first colour.
                .or_else(|| {
                    filament["multi_color_hexes"]
                        .as_str()?
                        .split(',')
                        .find_map(crate::material::hex_color)
                }),
        };
        *self.spool.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((id, material.clone(), Instant::now()));
        Ok(Some(material))
    }

    async fn post(&self, path: &str) -> Result<(), DriverError> {
        let res = self
            .req(reqwest::Method::POST, path)
            .send()
            .await
            .map_err(http_error)?;
        check(res).await.map(|_| ())
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

impl super::Driver for Moonraker {
    async fn connect(&self) -> Result<(), DriverError> {
        let info = self.get_result("/server/info").await?;
        match info["klippy_state"].as_str().unwrap_or("") {
            // A Klippy shutdown (e.g. an emergency stop) needs a firmware restart.
            "shutdown" => self.post("/printer/firmware_restart").await,
            _ => Ok(()),
        }
    }

    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        let res = self
            .req(reqwest::Method::GET, QUERY)
            .send()
            .await
            .map_err(http_error)?;
        // 404 (endpoint not registered yet) / 503 (Klippy not connected): Moonraker is up
        // but its printer is not.
        if matches!(res.status().as_u16(), 404 | 503) {
            return Ok(PrinterStatus::offline("Klippy is not connected"));
        }
        let v: Value = check(res).await?.json().await.map_err(http_error)?;
        let st = &v["result"]["status"];
        let wh = st["webhooks"]["state"].as_str().unwrap_or("");
        let ps = &st["print_stats"];
        let file = ps["filename"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let progress = num(&st["virtual_sdcard"]["progress"]) * 100.0;
        let (state, message) = match wh {
            "ready" => match ps["state"].as_str().unwrap_or("") {
                "printing" => (DriverState::Printing, None),
                "paused" => (DriverState::Paused, None),
                "complete" => (DriverState::Finished, None),
                "cancelled" => (DriverState::Cancelled, None),
                "error" => (
                    DriverState::Failed,
                    ps["message"].as_str().map(str::to_string),
                ),
                _ => (DriverState::Idle, None),
            },
            "startup" | "" => (DriverState::Offline, Some(format!("Klippy state {wh:?}"))),
            other => (
                DriverState::Error,
                Some(
                    st["webhooks"]["state_message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("Klippy state {other}")),
                ),
            ),
        };
        Ok(PrinterStatus {
            percent: round2(if state == DriverState::Finished {
                100.0
            } else {
                progress
            }),
            state,
            message,
            temps: [
                round2(num(&st["heater_bed"]["temperature"])),
                round2(num(&st["extruder"]["temperature"])),
            ],
            target_temps: [
                round2(num(&st["heater_bed"]["target"])),
                round2(num(&st["extruder"]["target"])),
            ],
            job_file: file,
        })
    }

    async fn upload(&self, path: &Path, name: &str) -> Result<(), DriverError> {
        let form = upload_form(&[("root", "gcodes")], path, name).await?;
        let res = self
            .req(reqwest::Method::POST, "/server/files/upload")
            .timeout(UPLOAD_TIMEOUT)
            .multipart(form)
            .send()
            .await
            .map_err(http_error)?;
        check(res).await.map(|_| ())
    }

    async fn start(&self, name: &str) -> Result<(), DriverError> {
        self.post(&format!(
            "/printer/print/start?filename={}",
            path_segment(name)
        ))
        .await
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.post("/printer/print/pause").await
    }

    async fn resume(&self) -> Result<(), DriverError> {
        self.post("/printer/print/resume").await
    }

    async fn cancel(&self) -> Result<(), DriverError> {
        self.post("/printer/print/cancel").await
    }

    async fn snapshot(&self) -> Option<Vec<u8>> {
        self.camera
            .snapshot(&self.http, &self.base, self.snapshot_setting())
            .await
    }

    /// Moonraker tracks one active spool (for the extruder in use); Klipper itself has no
    /// notion of the loaded material.
    async fn materials(&self) -> Result<Vec<Material>, DriverError> {
        Ok(self.active_spool().await?.into_iter().collect())
    }
}
