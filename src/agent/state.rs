//! Per-printer state on disk: `<state_dir>/<snr>.json` (token, job, acks) and
//! `<state_dir>/<snr>.registration_code` (for the operator while registering).
//!
//! Writes go to a temporary file that is renamed over the old one, so a crash leaves
//! either the old or the new state, never half of one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::protocol::Ack;

/// How many executed command numbers are remembered to recognise re-sent commands.
const EXECUTED_MEMORY: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Persisted {
    #[serde(default)]
    pub auth_token: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// The job in flight (downloading, uploading to the printer, or printing).
    #[serde(default)]
    pub job: Option<Job>,
    /// Ack to send on the next `command` request.
    #[serde(default)]
    pub pending_ack: Option<Ack>,
    /// Recently executed commands and their results, newest last.
    #[serde(default)]
    pub executed: Vec<Ack>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Fetching the G-code, handing it to the printer and starting it.
    Preparing,
    /// Started on the printer.
    Printing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The server's job id, echoed verbatim as `clouds_job_id`.
    pub job_id: Value,
    /// The file name the server gave.
    pub filename: String,
    /// The name the file has on the printer.
    pub printer_file: String,
    pub url: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub zip: bool,
    pub phase: JobPhase,
    /// The printer has reported this job printing or paused at least once.
    #[serde(default)]
    pub seen_active: bool,
    /// Unix seconds when the print was started on the printer.
    #[serde(default)]
    pub started_at: Option<i64>,
}

impl Persisted {
    /// The result of an already executed command number, if remembered.
    pub fn executed_result(&self, number: i64) -> Option<bool> {
        self.executed
            .iter()
            .rev()
            .find(|a| a.number == number)
            .map(|a| a.result)
    }

    pub fn remember_executed(&mut self, ack: Ack) {
        self.executed.retain(|a| a.number != ack.number);
        self.executed.push(ack);
        let excess = self.executed.len().saturating_sub(EXECUTED_MEMORY);
        self.executed.drain(..excess);
    }
}

/// The files of one printer.
#[derive(Debug, Clone)]
pub struct StateFiles {
    dir: PathBuf,
    snr: String,
}

impl StateFiles {
    pub fn new(dir: &Path, snr: &str) -> StateFiles {
        StateFiles {
            dir: dir.to_path_buf(),
            snr: snr.to_string(),
        }
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.snr))
    }

    pub fn registration_code_path(&self) -> PathBuf {
        self.dir.join(format!("{}.registration_code", self.snr))
    }

    /// Folder for this printer's downloads.
    pub fn download_dir(&self) -> PathBuf {
        self.dir.join(format!("{}.download", self.snr))
    }

    /// Loads the state; a missing file is a fresh start, a corrupt one is set aside.
    pub fn load(&self) -> Persisted {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(p) => p,
                Err(e) => {
                    let aside = path.with_extension("json.corrupt");
                    tracing::error!(path = %path.display(), error = %e, aside = %aside.display(),
                        "state file is corrupt; starting fresh");
                    let _ = std::fs::rename(&path, aside);
                    Persisted::default()
                }
            },
            Err(_) => Persisted::default(),
        }
    }

    pub fn save(&self, state: &Persisted) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        write_atomic(&self.state_path(), &bytes)
    }

    pub fn read_registration_code(&self) -> Option<String> {
        std::fs::read_to_string(self.registration_code_path())
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    pub fn write_registration_code(&self, code: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(
            &self.registration_code_path(),
            format!("{code}\n").as_bytes(),
        )
    }

    pub fn remove_registration_code(&self) {
        let _ = std::fs::remove_file(self.registration_code_path());
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_survives_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path(), "SNR1");
        assert_eq!(files.load(), Persisted::default());
        let mut s = Persisted {
            auth_token: Some("tok".into()),
            pending_ack: Some(Ack {
                number: 4,
                result: true,
            }),
            ..Default::default()
        };
        for n in 0..100 {
            s.remember_executed(Ack {
                number: n,
                result: n % 2 == 0,
            });
        }
        assert_eq!(s.executed.len(), EXECUTED_MEMORY);
        assert_eq!(s.executed_result(99), Some(false));
        assert_eq!(s.executed_result(98), Some(true));
        assert_eq!(s.executed_result(1), None);
        files.save(&s).unwrap();
        assert_eq!(files.load(), s);

        files.write_registration_code("ABCD-1234").unwrap();
        assert_eq!(files.read_registration_code().as_deref(), Some("ABCD-1234"));
        files.remove_registration_code();
        assert_eq!(files.read_registration_code(), None);

        std::fs::write(files.state_path(), b"{not json").unwrap();
        assert_eq!(files.load(), Persisted::default());
        assert!(dir.path().join("SNR1.json.corrupt").exists());
    }
}
