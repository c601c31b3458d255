//! HTTP: the route table, health and metrics endpoints, and JSON answers for everything
//! the router itself refuses.

pub mod access_log;
pub mod apiglobal;
mod browser;
mod camera;
mod console;
pub mod files;
pub mod metrics;
pub mod openapi;
mod printer;
pub mod routes;
pub mod upload;
pub(crate) mod v1;

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use routes::Routes;

use crate::error::Error;
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    routes(&mut Routes::new(cfg));
}

fn routes(r: &mut Routes) {
    r.route(Method::GET, "/healthz", healthz);
    r.route(Method::GET, "/readyz", readyz);
    r.route(Method::GET, "/metrics", metrics::export);
    apiglobal::routes(r);
    files::routes(r);
    printer::routes(r);
    camera::routes(r);
    v1::routes(r);
    openapi::routes(r);
    console::routes(r);
}

/// Every route the server answers, in matching order: methods, path, and what other methods
/// get where a resource answers them itself.
pub fn route_list() -> Vec<String> {
    let mut list = Vec::new();
    let _ = actix_web::App::new().configure(|cfg| {
        list = {
            let mut r = Routes::new(cfg);
            routes(&mut r);
            r.into_list()
        }
    });
    list
}

/// The base URL for links handed to clients: `server.public_url`, else the request's own
/// scheme and host, else the bind address. `Forwarded` / `X-Forwarded-Host` /
/// `X-Forwarded-Proto` count only with `server.trust_forwarded_for`: otherwise anyone could
/// point the links we hand out at their own host.
pub fn public_base(config: &crate::config::Config, req: Option<&actix_web::HttpRequest>) -> String {
    let configured = config.server.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_string();
    }
    match req {
        Some(r) if config.server.trust_forwarded_for => {
            let info = r.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
        Some(r) => {
            let scheme = if r.app_config().secure() {
                "https"
            } else {
                "http"
            };
            let host = r
                .headers()
                .get(actix_web::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| r.app_config().host().to_string());
            format!("{scheme}://{host}")
        }
        None => format!("http://{}", config.server.bind),
    }
}

/// The base of G-code links stored in agent commands: `server.public_url`, or empty so the
/// link stays a path. A path is resolved only when handed out, against the agent's own poll
/// (see `http::printer`), so the request of whoever caused a start never picks the host.
pub fn agent_link_base(config: &crate::config::Config) -> String {
    config.server.public_url.trim_end_matches('/').to_string()
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"result": true, "message": "ok"}))
}

/// Ready when a pooled connection answers a ping.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let pool = state.pool.clone();
    // Within a second either way: a load balancer must not wait out the checkout timeout.
    web::block(move || pool.ping_within(std::time::Duration::from_millis(900)))
        .await?
        .map_err(Error::from)?;
    let slicer = &state.config.slicer.prusa_slicer;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "result": true,
        "message": {
            "database": state.backend.name(),
            // The optional parts, so an operator sees what this server can do.
            "parts": {
                "slicer": {
                    "command": slicer,
                    "present": crate::slicer::installed(slicer),
                    "install": crate::slicer::INSTALL_HINT,
                },
                "storage": state.config.storage.backend,
                "google_sign_in": state.google.enabled(),
            },
        },
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
