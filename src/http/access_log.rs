//! The access log: one line per request, without the secrets some clients put in URLs
//! (`?session=…` from legacy scripts, sign-in and set-password tokens, agent download and
//! camera tokens, public upload ids). Anyone who can read a log must not be able to act as
//! the people in it.

use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};

use crate::AppState;

/// Query parameters whose values are credentials.
const SECRET_PARAMS: &[&str] = &[
    "session",
    "token",
    "auth_token",
    "access_token",
    "api_key",
    "password",
    "registration_code",
    "code",
];

/// Route placeholders whose values are credentials.
const SECRET_SEGMENTS: &[&str] = &["token", "upload_id"];

const REDACTED: &str = "[redacted]";

/// Longest logged path or query, so a client cannot write megabytes into the log.
const MAX_LOGGED: usize = 512;

fn is_secret_param(name: &str) -> bool {
    let name = name.trim_end_matches("[]").to_ascii_lowercase();
    SECRET_PARAMS.contains(&name.as_str())
}

fn clip(text: &str) -> String {
    if text.len() <= MAX_LOGGED {
        return text.to_string();
    }
    let mut end = MAX_LOGGED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The path as logged: a matched route's own pattern with its placeholders filled in, except
/// the secret ones; an unmatched path as sent (it matched nothing, so it opens nothing).
fn logged_path(req: &HttpRequest) -> String {
    let Some(pattern) = crate::http::routes::matched_pattern(req) else {
        return clip(req.path());
    };
    let mut out = String::with_capacity(pattern.len());
    let mut rest: &str = &pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        let name = inner.split(':').next().unwrap_or(inner);
        match req.match_info().get(name) {
            Some(_) if SECRET_SEGMENTS.contains(&name) => out.push_str(REDACTED),
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    clip(&out)
}

/// The query string with the values of credential parameters replaced.
fn logged_query(query: &str) -> String {
    let parts: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (raw_name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = url::form_urlencoded::parse(raw_name.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            if is_secret_param(&name) {
                format!("{raw_name}={REDACTED}")
            } else if value.is_empty() && !pair.contains('=') {
                raw_name.to_string()
            } else {
                format!("{raw_name}={value}")
            }
        })
        .collect();
    clip(&parts.join("&"))
}

pub async fn log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let res = next.call(req).await?;
    let request = res.request();
    let trust = request
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.config.server.trust_forwarded_for);
    let peer = crate::http::apiglobal::client_addr(request, trust);
    let query = request.query_string();
    let target = if query.is_empty() {
        logged_path(request)
    } else {
        format!("{}?{}", logged_path(request), logged_query(query))
    };
    let bytes = match res.response().body().size() {
        BodySize::Sized(n) => n.to_string(),
        _ => "-".to_string(),
    };
    tracing::info!(
        target: "printfarm::access",
        "{peer} \"{} {target} {:?}\" {} {bytes} {:.3}ms",
        request.method(),
        request.version(),
        res.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_values_are_replaced() {
        assert_eq!(
            logged_query("session=abc123&printer_id=4&Session=x&token=t&session%5B%5D=y&flag"),
            "session=[redacted]&printer_id=4&Session=[redacted]&token=[redacted]&session%5B%5D=[redacted]&flag"
        );
        assert!(logged_query(&"a=1&".repeat(1000)).len() <= MAX_LOGGED + 4);
    }
}
