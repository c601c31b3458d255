//! "Sign in with Google" in the console (when `google.client_ids` is set): the Google Identity
//! Services button on the sign-in page posts the person's ID token here; it goes through the
//! same verification and rules as `google_login`, and a new account first gives GDPR consent
//! (as `gdpr_registration`). Google's script is the one thing the console loads from
//! elsewhere, and only on the sign-in page, only when Google sign-in is on.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::{refused, render, Chrome};
use crate::error::Error;
use crate::http::apiglobal::{client_addr, Form};
use crate::http::browser::{self, csrf_token, see_other};
use crate::http::routes::Routes;
use crate::services::google::{self, SignIn};
use crate::services::{auth, sessions};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/login/google").post(sign_in);
    r.at("/login/google/consent")
        .get(consent_form)
        .post(consent);
}

/// The sign-in page's policy when the Google button is on it: Google's script, its styles and
/// its frame, nothing else from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self' https://accounts.google.com/gsi/client; \
     style-src 'self' https://accounts.google.com/gsi/style; img-src 'self' data:; \
     frame-src https://accounts.google.com/gsi/; connect-src 'self' https://accounts.google.com/gsi/; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the sign-in page needs for the button.
pub struct Button {
    pub client_id: String,
    pub login_uri: String,
}

pub fn button(state: &AppState, req: &HttpRequest) -> Option<Button> {
    if !state.google.enabled() {
        return None;
    }
    let client_id = state.google.config().client_ids.first()?.clone();
    let base = crate::http::public_base(&state.config, Some(req));
    Some(Button {
        client_id,
        login_uri: format!("{}/login/google", base.trim_end_matches('/')),
    })
}

/// A new account's registration waits for consent under this cookie (only the consent page
/// reads it).
const PENDING: &str = "printfarm_pending";

fn pending_cookie(state: &AppState, value: String, max_age: CookieDuration) -> Cookie<'static> {
    Cookie::build(PENDING, value)
        .path("/login/google")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.server.public_url.starts_with("https://"))
        .max_age(max_age)
        .finish()
}

/// The ID token Google's button posts (`credential`), with its double-submit CSRF token
/// (`g_csrf_token`, in the body and in a cookie of ours that Google's script set).
async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        if !state.google.enabled() {
            return Err(Error::not_found(
                "Google sign-in is not enabled on this server",
            ));
        }
        let Form(p) = form?;
        let posted = p.str("g_csrf_token").unwrap_or_default();
        let cookie = req
            .cookie("g_csrf_token")
            .map(|c| c.value().to_string())
            .unwrap_or_default();
        if posted.is_empty() || !auth::same_secret(posted, &cookie) {
            return Err(Error::denied(
                "This Google sign-in did not come from this server's sign-in page; try again",
            ));
        }
        let credential = p
            .str("credential")
            .ok_or_else(|| Error::invalid("Google sent no sign-in token"))?
            .to_string();
        let who = state.google.verify(&credential).await?;
        let addr = client_addr(&req, state.config.server.trust_forwarded_for);
        let st = state.clone();
        state
            .db(move |c| google::sign_in(c, &st.session_policy, st.google.config(), &who, &addr))
            .await
    }
    .await;
    match outcome {
        Ok(SignIn::Session { token, .. }) => see_other("/")
            .cookie(browser::new_session_cookie(&state, token))
            .finish(),
        Ok(SignIn::GdprNeeded { token }) => see_other("/login/google/consent")
            .cookie(pending_cookie(&state, token, CookieDuration::minutes(30)))
            .finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

#[derive(Template)]
#[template(path = "console/google_consent.html")]
struct ConsentPage {
    chrome: Chrome,
    csrf: String,
    message: Option<String>,
}

fn pending(req: &HttpRequest) -> Result<String, Error> {
    req.cookie(PENDING)
        .map(|c| c.value().to_string())
        .filter(|t| auth::is_token_shaped(t))
        .ok_or_else(|| {
            Error::Unauthenticated("No registration is waiting; sign in with Google again".into())
        })
}

async fn consent_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let waiting = async {
        let token = pending(&req)?;
        let t = token.clone();
        let session = state.db(move |c| sessions::find_live(c, &t)).await?;
        if session.gdpr_pending.is_none() {
            return Err(Error::Unauthenticated(
                "No registration is waiting; sign in with Google again".into(),
            ));
        }
        Ok(token)
    }
    .await;
    match waiting {
        Ok(token) => render(
            StatusCode::OK,
            &ConsentPage {
                chrome: Chrome::new(None, ""),
                csrf: csrf_token(&token),
                message: None,
            },
        ),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// Consent creates the account and signs in; `cancel` drops the registration.
async fn consent(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let Form(p) = form?;
        let token = pending(&req)?;
        if !auth::same_secret(p.str("csrf").unwrap_or_default(), &csrf_token(&token)) {
            return Err(Error::denied(
                "This form did not come from this page; reload it and try again",
            ));
        }
        let cancel = p.str("cancel").is_some();
        let gdpr1 = p.str("gdpr1").is_some();
        let gdpr2 = p.str("gdpr2").is_some();
        let st = state.clone();
        let t = token.clone();
        state
            .db(move |c| {
                google::complete_registration(
                    c,
                    &st.hasher,
                    st.google.config(),
                    &t,
                    gdpr1,
                    gdpr2,
                    cancel,
                )
            })
            .await
    }
    .await;
    let cleared = pending_cookie(&state, String::new(), CookieDuration::ZERO);
    match outcome {
        Ok(Some((session, _))) => see_other("/")
            .cookie(browser::new_session_cookie(&state, session))
            .cookie(cleared)
            .finish(),
        Ok(None) => see_other("/login").cookie(cleared).finish(),
        // Consent missing: the form again, with why.
        Err(e @ Error::Invalid(_)) => match pending(&req) {
            Ok(token) => render(
                e.status_code(),
                &ConsentPage {
                    chrome: Chrome::new(None, ""),
                    csrf: csrf_token(&token),
                    message: Some(e.client_message()),
                },
            ),
            Err(e) => refused(&state, &req, e).await,
        },
        Err(e) => refused(&state, &req, e).await,
    }
}
