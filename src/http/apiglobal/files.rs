//! Calls 4, 5, 10, 11: upload, get_projects, get_slicer_settings_for_gcode, file_update.

use actix_web::{web, HttpRequest, HttpResponse};
use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{ok, Envelope, Failures, Nothing};
use super::form::Params;
use super::{authenticate, forms, Signed};
use crate::db::models::{signed, FileId, FileKind};
use crate::error::{Error, Result};
use crate::http::upload;
use crate::services::auth::random_token;
use crate::services::files::{self, UploadMeta};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct UploadMessage {
    pub file_id: i64,
    /// True for G-code, which can be printed as it is.
    pub show_select_printers: bool,
    pub project_id: i64,
    /// The slicer that wrote the G-code, or empty.
    pub slicer: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectItem {
    pub id: i64,
    pub name: String,
    pub color: String,
}

fn upload_meta(p: &Params) -> Result<UploadMeta> {
    Ok(UploadMeta {
        project_id: p.i64("project_id")?,
        project_name: p.str("project_name").map(str::to_string),
        project_color: p.str("project_color").map(str::to_string),
        upload_type_id: p
            .i64("upload_type_id")?
            .map(|v| i32::try_from(v).map_err(|_| Error::invalid("upload_type_id is out of range")))
            .transpose()?,
        upload_soft_name: p.str("upload_soft_name").map(str::to_string),
        reserved_id: None,
    })
}

#[utoipa::path(post, path = "/apiglobal/upload", tag = "Files",
    request_body(content = forms::Upload, content_type = "multipart/form-data"),
    responses((status = 200, description = "The stored file", body = Envelope<UploadMessage>), Failures))]
pub async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (p, staged) = upload::receive_with_session(&state, &req, payload.into_inner()).await?;
    let me = authenticate(&state, &p).await?.user;
    let meta = upload_meta(&p)?;
    let zip_flag = p.bool("zip")?.unwrap_or(false);
    let (file, project) = upload::store(&state, &me, &meta, staged, zip_flag).await?;
    Ok(ok(UploadMessage {
        file_id: file.id.0,
        show_select_printers: file.kind == FileKind::Gcode,
        project_id: project.id,
        slicer: file.slicer.unwrap_or_default(),
    }))
}

#[utoipa::path(post, path = "/apiglobal/get_projects", tag = "Files",
    request_body(content = forms::SessionOnly, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The caller's projects", body = Envelope<Vec<ProjectItem>>), Failures))]
pub async fn get_projects(
    state: web::Data<AppState>,
    call: Signed<forms::SessionOnly>,
) -> Result<HttpResponse> {
    let caller = call.caller;
    let list = caller
        .read(
            &state,
            |c, gate| Ok(signed::projects(c, gate)?),
            files::projects,
        )
        .await?;
    Ok(ok(list
        .iter()
        .map(|p| ProjectItem {
            id: p.id,
            name: p.name.clone(),
            color: p.color.clone(),
        })
        .collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/apiglobal/get_slicer_settings_for_gcode", tag = "Files",
    request_body(content = forms::FileId, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The settings the slicer embedded, as a flat map of strings, with `file_id`, `printer_type_id` and `slicer`", body = Envelope<BTreeMap<String, String>>), Failures))]
pub async fn get_slicer_settings_for_gcode(
    state: web::Data<AppState>,
    call: Signed<forms::FileId>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let file_id = p.file_id;
    let settings = caller
        .db(&state, move |c, me| {
            files::slicer_settings(c, me, FileId(file_id))
        })
        .await?;
    Ok(ok(settings))
}

#[utoipa::path(post, path = "/apiglobal/file_update", tag = "Files",
    request_body(content = forms::FileUpdate, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Applied (all changes or none)", body = Envelope<Nothing>), Failures))]
pub async fn file_update(
    state: web::Data<AppState>,
    call: Signed<forms::FileUpdate>,
) -> Result<HttpResponse> {
    let (caller, p) = (call.caller, call.params);
    let updates = p.updates;
    let (changes, checked) = caller
        .db(&state, move |c, me| {
            let changes = files::parse_updates(&updates)?;
            let checked = files::check_changes(c, me, &changes)?;
            Ok((changes, checked))
        })
        .await?;

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
            let max_unzipped = state.storage.max_unzipped_bytes;
            let (out, size, sha) = web::block(move || {
                let r = files::rezip(source.path(), &name, zip, max_unzipped, &mut out);
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
        caller
            .db(&state, move |c, me| {
                files::apply_changes(c, me, &changes, &new_content)
            })
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
    Ok(ok(Nothing))
}
