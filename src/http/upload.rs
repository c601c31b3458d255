//! Uploads shared by the Global API and `/v1`: the multipart body streams to a staging file
//! (hashed and size-checked as it arrives); the content is checked, analysed and previewed,
//! stored, and only then registered. Anything refused or interrupted leaves nothing behind.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::HttpRequest;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::db::models::{Project, StoredFile, User};
use crate::error::{Error, Result};
use crate::http::apiglobal::form::Params;
use crate::services::files::{self, StagedContent, UploadMeta};
use crate::AppState;

/// Text parts are small; anything bigger is not a parameter.
const MAX_TEXT_PART: usize = 64 * 1024;

/// Bytes staged at once, by all uploads together, whose `session` is not known yet (a file
/// part sent before the session part, as the 3DPrinterOS Cura plugin does). It bounds what
/// callers without a valid session can make the server write; an upload that would exceed it
/// answers 503 (retry), and its bytes count until its session is checked.
struct BeforeSession<'a> {
    budget: &'a std::sync::atomic::AtomicU64,
    limit: u64,
    held: u64,
}

impl BeforeSession<'_> {
    fn take(&mut self, n: u64) -> Result<()> {
        use std::sync::atomic::Ordering;
        let before = self.budget.fetch_add(n, Ordering::AcqRel);
        if before + n > self.limit {
            self.budget.fetch_sub(n, Ordering::AcqRel);
            return Err(Error::Unavailable(format!(
                "Too many uploads are waiting for their session (at most {} MiB may be staged \
                 before a session is checked); send the 'session' part before the 'file' part, \
                 or retry",
                self.limit / (1024 * 1024)
            )));
        }
        self.held += n;
        Ok(())
    }

    fn release(&mut self) {
        self.budget.fetch_sub(
            std::mem::take(&mut self.held),
            std::sync::atomic::Ordering::AcqRel,
        );
    }
}

impl Drop for BeforeSession<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// The bytes of Cura plugin uploads, which put their text parts after a closing delimiter
/// (`…file\r\n--B--\r\n\r\n--B\r\n<part>…`): the premature `--B--\r\n\r\n` before the
/// next part is dropped, so the parser reads every part (as 3DPrinterOS does) instead of
/// taking them for the epilogue. Boundaries never occur inside content (RFC 2046), so no
/// other body changes.
fn join_parts_after_close<S>(
    inner: S,
    boundary: &str,
) -> impl futures_util::Stream<Item = std::result::Result<bytes::Bytes, actix_web::error::PayloadError>>
where
    S: futures_util::Stream<
            Item = std::result::Result<bytes::Bytes, actix_web::error::PayloadError>,
        > + Unpin,
{
    let pattern = format!("--{boundary}--\r\n\r\n--{boundary}\r\n").into_bytes();
    let replacement = format!("--{boundary}\r\n").into_bytes();
    let keep = pattern.len() - 1;
    futures_util::stream::unfold(
        (inner, Vec::new(), false),
        move |(mut inner, mut carry, done)| {
            let (pattern, replacement) = (pattern.clone(), replacement.clone());
            async move {
                if done {
                    return None;
                }
                loop {
                    match inner.next().await {
                        Some(Ok(chunk)) => {
                            carry.extend_from_slice(&chunk);
                            let mut joined = replace_all(&carry, &pattern, &replacement);
                            if joined.len() <= keep {
                                carry = joined;
                                continue;
                            }
                            let tail = joined.split_off(joined.len() - keep);
                            return Some((Ok(bytes::Bytes::from(joined)), (inner, tail, false)));
                        }
                        Some(Err(e)) => return Some((Err(e), (inner, Vec::new(), true))),
                        None => {
                            let rest = replace_all(&carry, &pattern, &replacement);
                            return Some((Ok(bytes::Bytes::from(rest)), (inner, Vec::new(), true)));
                        }
                    }
                }
            }
        },
    )
}

fn replace_all(data: &[u8], pattern: &[u8], replacement: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(pattern) {
            out.extend_from_slice(replacement);
            i += pattern.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// An upload staged on local disk; the file deletes itself unless it is kept.
pub struct StagedUpload {
    pub file: tempfile::NamedTempFile,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

fn too_large(limit: u64) -> Error {
    Error::TooLarge(format!(
        "The file is larger than this server's upload limit of {} MiB",
        limit / (1024 * 1024)
    ))
}

/// Streams the multipart body: the `file` part to a staging file (hashed and size-checked as it
/// arrives), text parts into parameters. Memory stays flat whatever the file size.
pub async fn receive(
    state: &AppState,
    req: &HttpRequest,
    payload: Payload,
) -> Result<(Params, StagedUpload)> {
    receive_inner(state, req, payload, false).await
}

/// [`receive`] for the Global API, where the session travels in the body: a `session` part (or
/// query parameter) is checked as soon as it arrives, so an invalid one answers 401 before the
/// file is read; a file part arriving before any session may stage at most
/// [`MAX_BEFORE_SESSION`] bytes.
pub async fn receive_with_session(
    state: &AppState,
    req: &HttpRequest,
    payload: Payload,
) -> Result<(Params, StagedUpload)> {
    receive_inner(state, req, payload, true).await
}

async fn check_session(state: &AppState, token: String) -> Result<()> {
    let mut p = Params::default();
    p.extend_pairs([("session".to_string(), token)]);
    crate::http::apiglobal::authenticate(state, &p).await?;
    Ok(())
}

async fn receive_inner(
    state: &AppState,
    req: &HttpRequest,
    payload: Payload,
    session_in_body: bool,
) -> Result<(Params, StagedUpload)> {
    let limit = state.storage.max_upload_bytes;
    // Whether the caller is already known to hold a valid session.
    let mut authenticated = !session_in_body;
    if session_in_body {
        let from_query = url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == "session")
            .map(|(_, v)| v.into_owned());
        if let Some(token) = from_query {
            check_session(state, token).await?;
            authenticated = true;
        }
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err(Error::invalid(
            "upload takes multipart/form-data with the file in a part named 'file'",
        ));
    }
    // Refuse at once when the declared length already exceeds the limit (with room for the
    // multipart framing and text parts).
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(1024 * 1024)) {
        return Err(too_large(limit));
    }
    let boundary = ct
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_string())
        .unwrap_or_default();
    let mut parts = if boundary.is_empty() {
        actix_multipart::Multipart::new(req.headers(), payload)
    } else {
        actix_multipart::Multipart::new(
            req.headers(),
            Box::pin(join_parts_after_close(payload, &boundary).fuse()),
        )
    };
    let mut before_session = BeforeSession {
        budget: &state.storage.staged_before_session,
        limit: state.storage.max_before_session_bytes,
        held: 0,
    };
    let mut pairs = Vec::new();
    let mut staged: Option<StagedUpload> = None;
    let malformed = |e: actix_multipart::MultipartError| {
        Error::invalid(format!("Malformed multipart body: {e}"))
    };
    while let Some(part) = parts.next().await {
        let mut part = part.map_err(malformed)?;
        let disposition = part.content_disposition().cloned();
        let name = disposition
            .as_ref()
            .and_then(|d| d.get_name())
            .unwrap_or_default()
            .to_string();
        let filename = disposition
            .as_ref()
            .and_then(|d| d.get_filename())
            .map(str::to_string);
        if name == "file" || (filename.is_some() && staged.is_none()) {
            if staged.is_some() {
                return Err(Error::invalid("upload takes exactly one file"));
            }
            let filename = files::clean_filename(filename.as_deref().unwrap_or(""))?;
            let file = state.storage.staging_file()?;
            let mut out =
                tokio::fs::File::from_std(file.reopen().map_err(|e| Error::io("staging file", e))?);
            let mut hasher = Sha256::new();
            let mut size: u64 = 0;
            while let Some(chunk) = part.next().await {
                let chunk = chunk.map_err(malformed)?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(too_large(limit));
                }
                if !authenticated {
                    before_session.take(chunk.len() as u64)?;
                }
                hasher.update(&chunk);
                out.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io("staging file", e))?;
            }
            out.flush()
                .await
                .map_err(|e| Error::io("staging file", e))?;
            staged = Some(StagedUpload {
                file,
                filename,
                size,
                sha256: hex::encode(hasher.finalize()),
            });
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = part.next().await {
                let chunk = chunk.map_err(malformed)?;
                if value.len() + chunk.len() > MAX_TEXT_PART {
                    return Err(Error::invalid(format!(
                        "part '{name}' is too large for a parameter"
                    )));
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(value)
                .map_err(|_| Error::invalid(format!("part '{name}' is not valid UTF-8 text")))?;
            if name == "session" && !authenticated {
                // Refuse a bad session before a single byte of the file is read.
                check_session(state, value.clone()).await?;
                authenticated = true;
                before_session.release();
            }
            pairs.push((name, value));
        }
    }
    let mut params = Params::default();
    params.extend_pairs(pairs);
    if !req.query_string().is_empty() {
        params
            .extend_pairs(url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned());
    }
    crate::http::apiglobal::refuse_nul(&params)?;
    let staged = staged.ok_or_else(|| Error::invalid("missing required parameter 'file'"))?;
    Ok((params, staged))
}

/// Checks, analyses, stores and registers a staged upload (see the module doc).
pub async fn store(
    state: &AppState,
    me: &User,
    meta: &UploadMeta,
    staged: StagedUpload,
    zip_flag: bool,
) -> Result<(StoredFile, Project)> {
    let content = StagedContent {
        path: staged.file.path(),
        filename: &staged.filename,
        size: staged.size,
        sha256: &staged.sha256,
    };
    // `staged` (its temporary file) lives until the file is stored.
    state.store_upload(me, meta, content, zip_flag).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn joined(body: &[u8], chunk: usize) -> Vec<u8> {
        let chunks: Vec<std::result::Result<bytes::Bytes, actix_web::error::PayloadError>> = body
            .chunks(chunk)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let mut out = Vec::new();
        let mut s =
            Box::pin(join_parts_after_close(futures_util::stream::iter(chunks), "B1").fuse());
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[actix_web::test]
    async fn parts_after_a_premature_close_are_joined_whatever_the_chunking() {
        let cura = b"--B1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.gcode\"\r\n\r\nG1 X1\r\n--B1--\r\n\r\n--B1\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\nabc\r\n--B1--\r\n";
        let expected = b"--B1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.gcode\"\r\n\r\nG1 X1\r\n--B1\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\nabc\r\n--B1--\r\n";
        let plain = b"--B1\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n--B1--\r\n\r\n--B2\r\n--B1--\r\n";
        for chunk in [1, 2, 3, 7, 16, 1000] {
            assert_eq!(
                joined(cura, chunk).await,
                expected.to_vec(),
                "chunk {chunk}"
            );
            assert_eq!(joined(plain, chunk).await, plain.to_vec(), "chunk {chunk}");
        }
    }
}
