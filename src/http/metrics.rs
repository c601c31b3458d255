//! Prometheus metrics: request counts and latencies labelled by route pattern (never by raw
//! path, which would let clients create unbounded label values).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::AppState;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    signed_reads: SignedReads,
}

/// The two counts of `printfarm_signed_reads_total`, resolved once: a read call counts one
/// without looking its label up.
#[derive(Clone)]
pub struct SignedReads {
    one: IntCounter,
    exact: IntCounter,
}

impl SignedReads {
    /// Counts a signed read (`Caller::read`): answered in one statement or by the exact path.
    pub fn count(&self, one_statement: bool) {
        if one_statement {
            self.one.inc();
        } else {
            self.exact.inc();
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "printfarm_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("static metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "printfarm_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method"],
        )
        .expect("static metric definition");
        let signed_reads = IntCounterVec::new(
            Opts::new(
                "printfarm_signed_reads_total",
                "Global API read calls by how they were answered: `one` statement with the \
                 session check, or the `exact` path (a session or rights that statement does \
                 not cover)",
            ),
            &["statement"],
        )
        .expect("static metric definition");
        registry
            .register(Box::new(signed_reads.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(requests.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("metric registered once");
        Metrics {
            registry,
            requests,
            latency,
            signed_reads: SignedReads {
                one: signed_reads.with_label_values(&["one"]),
                exact: signed_reads.with_label_values(&["exact"]),
            },
        }
    }

    pub fn signed_reads(&self) -> &SignedReads {
        &self.signed_reads
    }

    fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = method_label(req.method());
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = crate::http::routes::matched_pattern(res.request());
        metrics.observe(
            route.as_deref().unwrap_or("unmatched"),
            method,
            res.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(res)
}

/// The method label: one of HTTP's own methods, or "other", so that made-up methods cannot
/// create label sets without bound.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, label)| label)
}

/// Who may read `/metrics`: with `metrics.token` set, callers presenting it as a Bearer token;
/// without one, only clients on this machine that did not come through a proxy (a reverse
/// proxy on the same host adds forwarding headers, and would otherwise publish the page).
fn refusal(req: &HttpRequest, token: &str) -> Option<HttpResponse> {
    if !token.is_empty() {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same = crate::services::auth::same_secret(presented, token);
        return (!same).then(|| {
            HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .body("metrics: a valid Bearer token (metrics.token) is required\n")
        });
    }
    let local = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| req.headers().contains_key(*h));
    (!local || proxied).then(|| {
        HttpResponse::Forbidden().body(
            "metrics: only local clients may read this page; set metrics.token to allow others\n",
        )
    })
}

pub async fn export(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(refused) = refusal(&req, &state.config.metrics.token) {
        return refused;
    }
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&state.metrics.registry.gather(), &mut buf) {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body([buf, process_counters(&state.pool).into_bytes()].concat()),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

/// Figures kept by the database layer, in the text format.
fn process_counters(pool: &crate::db::Pool) -> String {
    let figures = [
        (
            "printfarm_db_transaction_retries_total",
            "Write transactions run again after a deadlock or serialization failure",
            "counter",
            crate::db::transient_retries(),
        ),
        (
            "printfarm_db_waiting_requests",
            "Requests waiting for a database connection now",
            "gauge",
            pool.waiting() as u64,
        ),
        (
            "printfarm_db_turned_away_total",
            "Requests answered 503 because the wait for a database connection was full or too long",
            "counter",
            pool.turned_away(),
        ),
    ];
    figures
        .iter()
        .map(|(name, help, kind, value)| {
            format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n")
        })
        .collect()
}
