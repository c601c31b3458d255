//! HTTP: the route table, health and metrics endpoints, and JSON answers for everything
//! the router itself refuses.

pub mod access_log;
pub mod apiglobal;
mod camera;
pub mod files;
pub mod metrics;
mod noauth;
pub mod openapi;
mod printer;
pub mod quickprint;
pub mod upload;
pub(crate) mod v1;

use actix_web::{web, HttpResponse};

use crate::error::Error;
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics::export));
    apiglobal::configure(cfg);
    noauth::configure(cfg);
    quickprint::configure(cfg);
    files::configure(cfg);
    printer::configure(cfg);
    camera::configure(cfg);
    v1::configure(cfg);
    openapi::configure(cfg);
}

/// The base URL for links handed to clients: `server.public_url`, else the request's own
/// scheme and host, else the bind address.
pub fn public_base(config: &crate::config::Config, req: Option<&actix_web::HttpRequest>) -> String {
    let configured = config.server.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_string();
    }
    match req {
        Some(r) => {
            let info = r.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
        None => format!("http://{}", config.server.bind),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"result": true, "message": "ok"}))
}

/// Ready when a pooled connection answers a ping.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let pool = state.pool.clone();
    web::block(move || -> Result<(), Error> {
        use diesel::r2d2::R2D2Connection;
        let mut conn = pool.get()?;
        conn.ping()
            .map_err(|e| Error::Unavailable(format!("Database unavailable: {e}")))
    })
    .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "result": true,
        "message": {"database": state.backend.name()},
    })))
}

/// Unknown paths answer the envelope too, so strict JSON clients can report the problem.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, Error> {
    Err(Error::not_found(format!(
        "Unknown route {} {}",
        req.method(),
        req.path()
    )))
}
