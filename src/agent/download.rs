//! G-code download: `Content-Length` is required and checked, an interrupted transfer is
//! resumed with `Range: bytes=N-` (up to [`MAX_RETRIES`] retries with backoff), and a zip
//! is unpacked to its G-code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::protocol::{codes, error_chain};

pub const MAX_RETRIES: u32 = 5;
/// No byte for this long means the transfer is stuck.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("download failed: {0}")]
    Failed(String),
    #[error("download size problem: {0}")]
    Size(String),
    #[error("file problem: {0}")]
    File(String),
}

impl DownloadError {
    pub fn code(&self) -> i64 {
        match self {
            DownloadError::Failed(_) => codes::DOWNLOAD_FAILED,
            DownloadError::Size(_) => codes::DOWNLOAD_SIZE,
            DownloadError::File(_) => codes::DOWNLOAD_FILE,
        }
    }
}

/// Bytes done and total, readable while the download runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

impl Progress {
    pub fn percent(&self) -> f64 {
        let total = self.total.load(Ordering::Relaxed);
        if total == 0 {
            return 0.0;
        }
        (self.done.load(Ordering::Relaxed) as f64 * 100.0 / total as f64).min(100.0)
    }
}

/// Resolves a print link against the server the agent is registered with and refuses any
/// other origin (scheme, host, port): a link pointing elsewhere could only come from a forged
/// or compromised command, and would print someone else's G-code.
pub fn resolve_print_link(server: &str, link: &str) -> Result<String, String> {
    let base = url::Url::parse(server).map_err(|e| format!("server URL {server:?}: {e}"))?;
    let url = base
        .join(link)
        .map_err(|e| format!("download link {link:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("download link {link:?} is not http(s)"));
    }
    if url.origin() != base.origin() {
        return Err(format!(
            "download link {} is not on this agent's server {}",
            url.origin().ascii_serialization(),
            base.origin().ascii_serialization()
        ));
    }
    Ok(url.to_string())
}

/// How long to wait before retry number `attempt` (1-based).
pub fn retry_delay(base: Duration, attempt: u32) -> Duration {
    base * 2u32.saturating_pow(attempt.saturating_sub(1).min(5))
}

/// Downloads `url` into `dest`, resuming from what `dest` already holds.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    dest: &Path,
    progress: &Arc<Progress>,
    retry_base: Duration,
) -> Result<u64, DownloadError> {
    let mut last_err = DownloadError::Failed("no attempt made".into());
    for attempt in 0..=MAX_RETRIES {
        if attempt > 0 {
            let delay = retry_delay(retry_base, attempt);
            tracing::info!(url, attempt, error = %last_err, ?delay, "retrying download");
            tokio::time::sleep(delay).await;
        }
        match try_once(client, url, dest, progress).await {
            Ok(n) => return Ok(n),
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Retry(e)) => last_err = e,
        }
    }
    Err(last_err)
}

enum Attempt {
    Retry(DownloadError),
    Fatal(DownloadError),
}

fn file_err(e: std::io::Error) -> Attempt {
    Attempt::Fatal(DownloadError::File(e.to_string()))
}

async fn try_once(
    client: &reqwest::Client,
    url: &str,
    dest: &Path,
    progress: &Arc<Progress>,
) -> Result<u64, Attempt> {
    let have = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    let mut req = client.get(url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut res = req
        .send()
        .await
        .map_err(|e| Attempt::Retry(DownloadError::Failed(error_chain(&e))))?;
    let status = res.status().as_u16();
    let encoded = res
        .headers()
        .get(reqwest::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity");
    let length = res.content_length();
    let (start, total) = match status {
        206 if !encoded => {
            let Some(start) = content_range_start(&res) else {
                return Err(Attempt::Retry(DownloadError::Failed(
                    "206 without a usable Content-Range".into(),
                )));
            };
            if start != have {
                // Not where we asked: restart from scratch next time.
                let _ = std::fs::remove_file(dest);
                return Err(Attempt::Retry(DownloadError::Failed(format!(
                    "asked for bytes {have}- but got {start}-"
                ))));
            }
            let Some(len) = length else {
                return Err(Attempt::Fatal(DownloadError::Size(
                    "the answer has no Content-Length".into(),
                )));
            };
            (have, have + len)
        }
        // A full answer (or an encoded one, which cannot be resumed byte-wise).
        200 | 206 => {
            let Some(len) = length else {
                return Err(Attempt::Fatal(DownloadError::Size(
                    "the answer has no Content-Length".into(),
                )));
            };
            (0, len)
        }
        416 if have > 0 => {
            // Nothing left to send, or our partial file is bad: start over.
            let _ = std::fs::remove_file(dest);
            return Err(Attempt::Retry(DownloadError::Failed(
                "416 range not satisfiable".into(),
            )));
        }
        s if (400..500).contains(&s) && s != 408 && s != 429 => {
            return Err(Attempt::Fatal(DownloadError::Failed(format!("HTTP {s}"))));
        }
        s => return Err(Attempt::Retry(DownloadError::Failed(format!("HTTP {s}")))),
    };
    progress.total.store(total, Ordering::Relaxed);
    progress.done.store(start, Ordering::Relaxed);
    let mut file = if start == 0 {
        std::fs::File::create(dest).map_err(file_err)?
    } else {
        std::fs::OpenOptions::new()
            .append(true)
            .open(dest)
            .map_err(file_err)?
    };
    let mut done = start;
    loop {
        let chunk = match tokio::time::timeout(READ_TIMEOUT, res.chunk()).await {
            Err(_) => {
                return Err(Attempt::Retry(DownloadError::Failed(
                    "no data for 30 s".into(),
                )))
            }
            Ok(Err(e)) => {
                let _ = file.flush();
                return Err(Attempt::Retry(DownloadError::Failed(error_chain(&e))));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(c))) => c,
        };
        if done + chunk.len() as u64 > total {
            let _ = std::fs::remove_file(dest);
            return Err(Attempt::Fatal(DownloadError::Size(format!(
                "more data than the Content-Length of {total}"
            ))));
        }
        file.write_all(&chunk).map_err(file_err)?;
        done += chunk.len() as u64;
        progress.done.store(done, Ordering::Relaxed);
    }
    file.sync_all().map_err(file_err)?;
    if done != total {
        return Err(Attempt::Retry(DownloadError::Size(format!(
            "got {done} of {total} bytes"
        ))));
    }
    Ok(total)
}

fn content_range_start(res: &reqwest::Response) -> Option<u64> {
    // "bytes 100-199/200"
    let v = res
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// Extracts the G-code from `zip_path` into `dir`; returns its path.
pub fn unzip_gcode(zip_path: &Path, dir: &Path, name: &str) -> Result<PathBuf, DownloadError> {
    let file = std::fs::File::open(zip_path).map_err(|e| DownloadError::File(e.to_string()))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| DownloadError::File(format!("bad zip: {e}")))?;
    // The first G-code entry; else the archive's only file.
    let mut gcode: Option<usize> = None;
    let mut first: Option<usize> = None;
    let mut files = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| DownloadError::File(format!("bad zip: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        files += 1;
        first.get_or_insert(i);
        let lower = entry
            .name()
            .map_err(|e| DownloadError::File(format!("bad zip: {e}")))?
            .to_ascii_lowercase();
        if gcode.is_none()
            && (lower.ends_with(".gcode") || lower.ends_with(".gco") || lower.ends_with(".g"))
        {
            gcode = Some(i);
        }
    }
    let pick = gcode.or(first.filter(|_| files == 1));
    let Some(index) = pick else {
        return Err(DownloadError::File("the zip holds no G-code file".into()));
    };
    let mut entry = archive
        .by_index(index)
        .map_err(|e| DownloadError::File(format!("bad zip: {e}")))?;
    let out_path = dir.join(name);
    let mut out =
        std::fs::File::create(&out_path).map_err(|e| DownloadError::File(e.to_string()))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = entry
            .read(&mut buf)
            .map_err(|e| DownloadError::File(format!("unzip: {e}")))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| DownloadError::File(e.to_string()))?;
    }
    Ok(out_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_links_only_from_the_own_server() {
        let s = "http://127.0.0.1:8080";
        assert_eq!(
            resolve_print_link(s, "/apiprinter/v1/download/3/tok").unwrap(),
            "http://127.0.0.1:8080/apiprinter/v1/download/3/tok"
        );
        assert!(resolve_print_link(s, "http://127.0.0.1:8080/apiprinter/v1/download/3/t").is_ok());
        for bad in [
            "http://evil.example/apiprinter/v1/download/3/t",
            "http://127.0.0.1:9090/x",
            "https://127.0.0.1:8080/x",
            "//evil.example/x",
            "file:///etc/passwd",
        ] {
            assert!(resolve_print_link(s, bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn delays_grow_and_cap() {
        let b = Duration::from_millis(100);
        assert_eq!(retry_delay(b, 1), Duration::from_millis(100));
        assert_eq!(retry_delay(b, 3), Duration::from_millis(400));
        assert_eq!(retry_delay(b, 50), Duration::from_millis(3200));
    }

    #[test]
    fn unzips_the_gcode() {
        let dir = tempfile::tempdir().unwrap();
        let zpath = dir.path().join("a.zip");
        {
            let f = std::fs::File::create(&zpath).unwrap();
            let mut z = zip::ZipWriter::new(f);
            let opts = zip::write::SimpleFileOptions::default();
            z.start_file("readme.txt", opts).unwrap();
            z.write_all(b"hi").unwrap();
            z.start_file("part.gcode", opts).unwrap();
            z.write_all(b"G28\nG1 X1\n").unwrap();
            z.finish().unwrap();
        }
        let out = unzip_gcode(&zpath, dir.path(), "out.gcode").unwrap();
        assert_eq!(std::fs::read(out).unwrap(), b"G28\nG1 X1\n");
        std::fs::write(&zpath, b"not a zip").unwrap();
        assert!(matches!(
            unzip_gcode(&zpath, dir.path(), "x.gcode"),
            Err(DownloadError::File(_))
        ));
    }
}
