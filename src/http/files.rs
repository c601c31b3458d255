//! File downloads (with `Range`, so agents resume broken downloads) and preview images.

use crate::http::routes::Routes;
use actix_web::http::header;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::db::models::{FileId, StoredFile, User};
use crate::error::{Error, Result};
use crate::services::{api_tokens, files, sessions};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.route(Method::GET, "/files/{file_id}/download", download);
    r.route(Method::GET, "/render/{picture}", render);
}

/// A single byte range from a `Range` header, against a known size.
/// `Ok(None)` = no (or an unsupported multi-) range: send everything.
pub fn parse_range(value: Option<&str>, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let unsatisfiable = || Error::OutOfRange(size);
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| unsatisfiable())?;
            if n == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(n), size - 1)
        }
        (s, "") => (
            s.parse().map_err(|_| unsatisfiable())?,
            size.saturating_sub(1),
        ),
        (s, e) => {
            let s: u64 = s.parse().map_err(|_| unsatisfiable())?;
            let e: u64 = e.parse().map_err(|_| unsatisfiable())?;
            (s, e.min(size.saturating_sub(1)))
        }
    };
    if start >= size || end < start {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

fn session_token(req: &HttpRequest) -> Option<String> {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_string());
    from_header
        .or_else(|| {
            url::form_urlencoded::parse(req.query_string().as_bytes())
                .find(|(k, _)| k == "session")
                .map(|(_, v)| v.into_owned())
        })
        // The console's pages show previews with the browser's session (a GET: SameSite=Lax
        // keeps the cookie off other sites' images).
        .or_else(|| {
            req.cookie(crate::http::browser::COOKIE)
                .map(|c| c.value().to_string())
        })
}

/// The owner downloads their file with a session (`Authorization: Bearer <session>`,
/// `?session=` or the console's cookie). Answers Content-Length, Accept-Ranges, and 206 for a `Range`.
async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let file_id = FileId(
        path.parse()
            .map_err(|_| Error::invalid("file id must be an integer"))?,
    );
    let token =
        session_token(&req).ok_or_else(|| Error::Unauthenticated("missing session".into()))?;
    let policy = state.session_policy.clone();
    let file = state
        .db(move |c| {
            let me = sessions::authenticate(c, &policy, &token)?.user;
            StoredFile::find_owned(c, me.id, file_id)?
                .ok_or_else(|| Error::not_found(format!("File {file_id} not found")))
        })
        .await?;
    serve_file(&state, &req, &file).await
}

/// Streams a stored file, honouring a single `Range`.
pub async fn serve_file(
    state: &AppState,
    req: &HttpRequest,
    file: &StoredFile,
) -> Result<HttpResponse> {
    let size = u64::try_from(file.size).unwrap_or(0);
    let range_header = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let range = parse_range(range_header, size)?;
    let (body, _) = state
        .storage
        .get(&file.storage_key, range.map(|(s, e)| s..e + 1))
        .await?;
    let mut res = match range {
        Some((s, e)) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((header::CONTENT_RANGE, format!("bytes {s}-{e}/{size}")));
            r
        }
        None => HttpResponse::Ok(),
    };
    let length = range.map_or(size, |(s, e)| e - s + 1);
    let disposition = header::ContentDisposition {
        disposition: header::DispositionType::Attachment,
        parameters: vec![header::DispositionParam::Filename(file.filename.clone())],
    };
    Ok(res
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header(header::ContentType::octet_stream())
        .insert_header(disposition)
        .no_chunking(length)
        .streaming(body))
}

/// The caller behind a bearer or `?session=` credential: a session, or a `/v1` API token
/// (a JWT, told apart by its dots; session tokens are hex).
fn caller(
    c: &mut crate::db::DbConn,
    policy: &sessions::SessionPolicy,
    token: &str,
) -> Result<User> {
    if token.contains('.') {
        api_tokens::verify(c, token)
    } else {
        Ok(sessions::authenticate(c, policy, token)?.user)
    }
}

/// Preview images (clients build `/render/<picture>` from a file's or job's `picture`). They
/// show what was printed, so they need a session (or API token) of someone who may see a
/// file or job using the picture; anybody else gets 404, as for a missing picture.
async fn render(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let name = path.into_inner();
    let token =
        session_token(&req).ok_or_else(|| Error::Unauthenticated("missing session".into()))?;
    let valid = name
        .strip_suffix(".png")
        .is_some_and(crate::services::auth::is_token_shaped);
    let policy = state.session_policy.clone();
    let picture = name.clone();
    state
        .db(move |c| {
            let me = caller(c, &policy, &token)?;
            if !valid {
                return Err(Error::not_found("No such picture"));
            }
            files::visible_picture(c, &me, &picture)
        })
        .await?;
    let (body, size) = state.storage.get(&format!("render/{name}"), None).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        // Per-user permission: shared caches must not keep it.
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .no_chunking(size)
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=0-9"), 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range(Some("bytes=90-"), 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range(Some("bytes=-10"), 100).unwrap(), Some((90, 99)));
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100).unwrap(),
            Some((50, 99))
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100).unwrap(), None);
        assert!(parse_range(Some("bytes=100-"), 100).is_err());
        assert!(parse_range(Some("bytes=9-3"), 100).is_err());
        assert!(parse_range(Some("bytes=abc"), 100).is_err());
        assert!(parse_range(Some("bytes=-0"), 100).is_err());
    }
}
