//! Calls 4, 5, 10, 11: upload, get_projects, get_slicer_settings_for_gcode, file_update.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::envelope::ok;
use super::form::Params;
use super::{authenticate, Form};
use crate::error::{Error, Result};
use crate::services::auth::random_token;
use crate::services::files::{self, Upload, UploadMeta};
use crate::AppState;

/// Text parts are small; anything bigger is not a parameter.
const MAX_TEXT_PART: usize = 64 * 1024;

/// An upload staged on local disk; the file deletes itself unless it is kept.
struct StagedUpload {
    file: tempfile::NamedTempFile,
    filename: String,
    size: u64,
    sha256: String,
}

fn too_large(limit: u64) -> Error {
    Error::PayloadTooLarge(format!(
        "The file is larger than this server's upload limit of {} MiB",
        limit / (1024 * 1024)
    ))
}

/// Streams the multipart body: the `file` part to a staging file (hashed and size-checked as it
/// arrives), text parts into parameters. Memory stays flat whatever the file size.
async fn receive(
    state: &AppState,
    req: &HttpRequest,
    payload: Payload,
) -> Result<(Params, StagedUpload)> {
    let limit = state.storage.max_upload_bytes;
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
            let mut out = tokio::fs::File::from_std(
                file.reopen()
                    .map_err(|e| Error::internal(format!("staging file: {e}")))?,
            );
            let mut hasher = Sha256::new();
            let mut size: u64 = 0;
            while let Some(chunk) = part.next().await {
                let chunk = chunk.map_err(malformed)?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(too_large(limit));
                }
                hasher.update(&chunk);
                out.write_all(&chunk)
                    .await
                    .map_err(|e| Error::internal(format!("staging file: {e}")))?;
            }
            out.flush()
                .await
                .map_err(|e| Error::internal(format!("staging file: {e}")))?;
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
            pairs.push((name, value));
        }
    }
    let mut params = Params::default();
    params.extend_pairs(pairs);
    if !req.query_string().is_empty() {
        params
            .extend_pairs(url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned());
    }
    let staged = staged.ok_or_else(|| Error::bad_request("missing required parameter 'file'"))?;
    Ok((params, staged))
}

fn upload_meta(p: &Params) -> Result<UploadMeta> {
    Ok(UploadMeta {
        project_id: p.i64("project_id")?,
        project_name: p.str("project_name").map(str::to_string),
        project_color: p.str("project_color").map(str::to_string),
        upload_type_id: p
            .i64("upload_type_id")?
            .map(|v| {
                i32::try_from(v).map_err(|_| Error::bad_request("upload_type_id is out of range"))
            })
            .transpose()?,
        upload_soft_name: p.str("upload_soft_name").map(str::to_string),
    })
}

pub async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (p, staged) = receive(&state, &req, payload.into_inner()).await?;
    let me = authenticate(&state, &p).await?.user;
    let meta = upload_meta(&p)?;
    let zip_flag = p.bool("zip")?.unwrap_or(false);
    let (kind, zipped) = files::kind_from_filename(&staged.filename, zip_flag)?;
    {
        let (me, meta) = (me.clone(), meta.clone());
        state
            .db(move |c| files::check_project(c, &me, &meta))
            .await?;
    }

    let path = staged.file.path().to_path_buf();
    let size = staged.size;
    let analysed = web::block(move || files::analyse_staged(&path, size, kind, zipped)).await??;

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
    Ok(ok(json!({
        "file_id": file.id,
        "show_select_printers": file.kind == "gcode",
        "project_id": project.id,
        "slicer": file.slicer.unwrap_or_default(),
    })))
}

pub async fn get_projects(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let list = state.db(move |c| files::projects(c, &me)).await?;
    Ok(ok(list
        .iter()
        .map(|p| json!({"id": p.id, "name": p.name, "color": p.color}))
        .collect::<Vec<_>>()))
}

pub async fn get_slicer_settings_for_gcode(
    state: web::Data<AppState>,
    Form(p): Form,
) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let file_id = p.required_i64("file_id")?;
    let settings = state
        .db(move |c| files::slicer_settings(c, &me, file_id))
        .await?;
    Ok(ok(settings))
}

pub async fn file_update(state: web::Data<AppState>, Form(p): Form) -> Result<HttpResponse> {
    let me = authenticate(&state, &p).await?.user;
    let updates = p
        .value("updates")?
        .ok_or_else(|| Error::bad_request("missing required parameter 'updates'"))?;
    let changes = files::parse_updates(&updates)?;
    let checked = {
        let (me, changes) = (me.clone(), changes.clone());
        state
            .db(move |c| files::check_changes(c, &me, &changes))
            .await?
    };

    // Re-zip (or unzip) content first; the new objects replace the old ones only if the
    // metadata transaction commits.
    let mut new_content = Vec::new();
    let mut old_keys = Vec::new();
    for (ch, file) in changes.iter().zip(&checked) {
        let Some(zip) = ch.zip.filter(|z| *z != file.zip) else {
            continue;
        };
        let result = async {
            let source = state.storage.fetch_to_staging(&file.storage_key).await?;
            let mut out = state.storage.staging_file()?;
            let name = file.filename.clone();
            let (out, size, sha) = web::block(move || {
                let r = files::rezip(source.path(), &name, zip, &mut out);
                r.map(|(size, sha)| (out, size, sha))
            })
            .await??;
            let key = format!("files/{}", random_token());
            state.storage.put_file(&key, out.path()).await?;
            Ok::<_, Error>((key, size, sha))
        }
        .await;
        match result {
            Ok((key, size, sha)) => {
                new_content.push((file.id, key, size as i64, sha, zip));
                old_keys.push(file.storage_key.clone());
            }
            Err(e) => {
                for (_, key, ..) in &new_content {
                    let _ = state.storage.delete(key).await;
                }
                return Err(e);
            }
        }
    }
    let applied = {
        let new_content = new_content.clone();
        state
            .db(move |c| files::apply_changes(c, &me, &changes, &new_content))
            .await
    };
    let cleanup = if applied.is_ok() {
        old_keys
    } else {
        new_content.into_iter().map(|(_, key, ..)| key).collect()
    };
    for key in cleanup {
        let _ = state.storage.delete(&key).await;
    }
    applied?;
    Ok(ok(json!([])))
}
