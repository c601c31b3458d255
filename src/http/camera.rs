//! Camera viewing with a `get_camera_list_token` token: the latest JPEG of a printer, or an
//! MJPEG stream of its frames while the token lasts.

use std::time::Duration;

use crate::http::routes::Routes;
use actix_web::http::header;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use bytes::Bytes;

use crate::db::models::{CameraFrame, PrinterId};
use crate::error::{Error, Result};
use crate::services::{agent, printers};
use crate::AppState;

const BOUNDARY: &str = "printfarmframe";

pub fn routes(r: &mut Routes) {
    r.route(Method::GET, "/camera/{token}/{printer_id}.jpg", snapshot);
    r.route(Method::GET, "/camera/{token}/{printer_id}.mjpeg", stream);
}

/// Checks the token for this printer, tells the agent someone is watching, returns the latest
/// frame (if any).
async fn watch(state: &AppState, token: String, printer_id: PrinterId) -> Result<Option<Vec<u8>>> {
    let watch_for = chrono::Duration::seconds(state.config.printers.camera_watch_secs);
    state
        .db(move |c| {
            let printer = printers::camera_printer(c, &token, printer_id)?;
            agent::mark_watched(c, printer.id, watch_for)?;
            Ok(CameraFrame::latest(c, printer.id)?.map(|(jpeg, _)| jpeg))
        })
        .await
}

async fn snapshot(
    state: web::Data<AppState>,
    path: web::Path<(String, PrinterId)>,
) -> Result<HttpResponse> {
    let (token, printer_id) = path.into_inner();
    let frame = watch(&state, token, printer_id)
        .await?
        .ok_or_else(|| Error::not_found("No camera frame from this printer yet"))?;
    Ok(HttpResponse::Ok()
        .content_type("image/jpeg")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(frame))
}

async fn stream(
    state: web::Data<AppState>,
    path: web::Path<(String, PrinterId)>,
) -> Result<HttpResponse> {
    let (token, printer_id) = path.into_inner();
    // Validate before the stream starts so a bad token gets a proper error answer.
    watch(&state, token.clone(), printer_id).await?;
    let state = state.into_inner();
    let frames = futures_util::stream::unfold(
        (state, token, None::<Vec<u8>>, true),
        move |(state, token, last, first)| async move {
            if !first {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            loop {
                // Ends when the token expires or access is revoked.
                let frame = watch(&state, token.clone(), printer_id).await.ok()?;
                match frame {
                    Some(f) if last.as_ref() != Some(&f) => {
                        let mut part = format!(
                            "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                            f.len()
                        )
                        .into_bytes();
                        part.extend_from_slice(&f);
                        part.extend_from_slice(b"\r\n");
                        return Some((
                            Ok::<_, actix_web::Error>(Bytes::from(part)),
                            (state, token, Some(f), false),
                        ));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type(format!("multipart/x-mixed-replace; boundary={BOUNDARY}"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(frames))
}
