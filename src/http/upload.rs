//! Uploads shared by the Global API and `/v1`: the multipart body streams to a staging file
//! (hashed and size-checked as it arrives); the content is checked, analysed and previewed,
//! stored, and only then registered. Anything refused or interrupted leaves nothing behind.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::db::models::{Project, StoredFile, User};
use crate::error::{Error, Result};
use crate::http::apiglobal::form::Params;
use crate::services::auth::random_token;
use crate::services::files::{self, Upload, UploadMeta};
use crate::AppState;

/// Text parts are small; anything bigger is not a parameter.
const MAX_TEXT_PART: usize = 64 * 1024;

/// Most a Global API upload may stage before its `session` is known (a file part sent before
/// the session part). Real clients (OrcaSlicer, the 3DPrinterOS plugins) send `session` first,
/// so this only bounds what an unauthenticated caller can make the server write.
const MAX_BEFORE_SESSION: u64 = 1024 * 1024;

/// An upload staged on local disk; the file deletes itself unless it is kept.
pub struct StagedUpload {
    pub file: tempfile::NamedTempFile,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

fn too_large(limit: u64) -> Error {
    Error::PayloadTooLarge(format!(
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
        return Err(Error::bad_request(
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
    let mut parts = actix_multipart::Multipart::new(req.headers(), payload);
    let mut pairs = Vec::new();
    let mut staged: Option<StagedUpload> = None;
    let malformed = |e: actix_multipart::MultipartError| {
        Error::bad_request(format!("Malformed multipart body: {e}"))
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
                return Err(Error::bad_request("upload takes exactly one file"));
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
                if !authenticated && size > MAX_BEFORE_SESSION {
                    return Err(Error::PayloadTooLarge(format!(
                        "send the 'session' part before the 'file' part: without a session \
                         first, uploads are limited to {} MiB",
                        MAX_BEFORE_SESSION / (1024 * 1024)
                    )));
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
                    return Err(Error::bad_request(format!(
                        "part '{name}' is too large for a parameter"
                    )));
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(value).map_err(|_| {
                Error::bad_request(format!("part '{name}' is not valid UTF-8 text"))
            })?;
            if name == "session" && !authenticated {
                // Refuse a bad session before a single byte of the file is read.
                check_session(state, value.clone()).await?;
                authenticated = true;
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
    let staged = staged.ok_or_else(|| Error::bad_request("missing required parameter 'file'"))?;
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
    let (kind, zipped) = files::kind_from_filename(&staged.filename, zip_flag)?;
    {
        let (me, meta) = (me.clone(), meta.clone());
        state
            .db(move |c| files::check_project(c, &me, &meta))
            .await?;
    }

    fail::fail_point!("upload-staged");
    let path = staged.file.path().to_path_buf();
    let size = staged.size;
    let max_unzipped = state.storage.max_unzipped_bytes;
    let analysed =
        web::block(move || files::analyse_staged_limited(&path, size, kind, zipped, max_unzipped))
            .await??;

    // Store the content and the preview, then register; undo the storing if registering fails.
    let storage_key = format!("files/{}", random_token());
    let picture = format!("{}.png", random_token());
    let picture_key = format!("render/{picture}");
    state
        .storage
        .put_file(&storage_key, staged.file.path())
        .await?;
    if let Err(e) = state
        .storage
        .put_bytes(&picture_key, analysed.preview_png.clone())
        .await
    {
        let _ = state.storage.delete(&storage_key).await;
        return Err(e);
    }
    fail::fail_point!("upload-stored");
    let registered = {
        let (me, meta) = (me.clone(), meta.clone());
        let (key, pic, name, sha) = (
            storage_key.clone(),
            picture.clone(),
            staged.filename.clone(),
            staged.sha256.clone(),
        );
        state
            .db(move |c| {
                files::register(
                    c,
                    &me,
                    &meta,
                    &Upload {
                        filename: &name,
                        size,
                        sha256: &sha,
                        storage_key: &key,
                        picture: &pic,
                        analysed: &analysed,
                    },
                )
            })
            .await
    };
    let (file, project) = match registered {
        Ok(r) => r,
        Err(e) => {
            let _ = state.storage.delete(&storage_key).await;
            let _ = state.storage.delete(&picture_key).await;
            return Err(e);
        }
    };
    Ok((file, project))
}
