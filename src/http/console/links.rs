//! Pages reached from links, before (or while) signing in: choosing a password from an
//! invitation, allowing a slicer's sign-in (`apiglobal_login_with_token`), and the Cura
//! plugin's "go to cloud" browser link. They share the console's look and its rules.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::{refused, render, Chrome, NoticePage};
use crate::error::Error;
use crate::http::apiglobal::{client_addr, Form};
use crate::http::browser::{self, browser_user, checked_user, csrf_token, see_other};
use crate::http::routes::Routes;
use crate::services::{auth, login_tokens, orgs, sessions};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/noauth/set_password/{token}")
        .get(set_password_form)
        .post(set_password);
    r.at("/noauth/apiglobal_login_with_token/{token}")
        .get(confirm_login_form)
        .post(confirm_login);
    r.at("/noauth/login_with_auth_token/{token}")
        .get(browser_link_form)
        .post(browser_link_sign_in);
}

/// A link's token, or the 404 every unknown link gets.
fn shaped(token: String, unknown: &str) -> Result<String, Error> {
    if auth::is_token_shaped(&token) {
        Ok(token)
    } else {
        Err(Error::not_found(unknown.to_string()))
    }
}

const UNKNOWN_INVITATION: &str = "This invitation link is not valid";
const UNKNOWN_LOGIN_TOKEN: &str = "Unknown login token";

#[derive(Template)]
#[template(path = "console/set_password.html")]
struct SetPasswordPage {
    chrome: Chrome,
    email: String,
    message: Option<String>,
}

fn set_password_page(status: StatusCode, email: String, message: Option<String>) -> HttpResponse {
    render(
        status,
        &SetPasswordPage {
            chrome: Chrome::new(None, ""),
            email,
            message,
        },
    )
}

async fn set_password_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let outcome = async {
        let token = shaped(path.into_inner(), UNKNOWN_INVITATION)?;
        state.db(move |c| orgs::check_invitation(c, &token)).await
    }
    .await;
    match outcome {
        Ok((_, user)) => set_password_page(StatusCode::OK, user.email, None),
        Err(e) => refused(&state, &req, e).await,
    }
}

async fn set_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let token = shaped(path.into_inner(), UNKNOWN_INVITATION)?;
        let Form(p) = form?;
        let password = p.raw("password").unwrap_or_default().to_string();
        if p.raw("password2").unwrap_or_default() != password {
            let (_, user) = state.db(move |c| orgs::check_invitation(c, &token)).await?;
            // Back to the form, with the reason.
            return Ok(Err(user.email));
        }
        let st = state.clone();
        let user = state
            .db(move |c| orgs::accept_invitation(c, &st.hasher, &token, &password))
            .await?;
        Ok(Ok(user))
    }
    .await;
    match outcome {
        Ok(Ok(user)) => render(
            StatusCode::OK,
            &NoticePage {
                chrome: Chrome::new(None, ""),
                title: "Password set".into(),
                message: format!("You can now sign in as {}.", user.email),
                links: vec![("/login", "Sign in")],
            },
        ),
        Ok(Err(email)) => set_password_page(
            StatusCode::BAD_REQUEST,
            email,
            Some("The two passwords differ.".into()),
        ),
        // A password the rules refuse: the form again, with the rule.
        Err(e @ Error::Invalid(_)) => {
            let message = e.client_message();
            let token = shaped_again(&req);
            match state.db(move |c| orgs::check_invitation(c, &token)).await {
                Ok((_, user)) => set_password_page(e.status_code(), user.email, Some(message)),
                Err(e) => refused(&state, &req, e).await,
            }
        }
        Err(e) => refused(&state, &req, e).await,
    }
}

/// The token of the link the request was made on.
fn shaped_again(req: &HttpRequest) -> String {
    req.match_info()
        .get("token")
        .unwrap_or_default()
        .to_string()
}

#[derive(Template)]
#[template(path = "console/confirm_login.html")]
struct ConfirmLoginPage {
    chrome: Chrome,
    /// Signed in already in this browser: allow as them with one button.
    signed_in: Option<(String, String)>,
    message: Option<String>,
}

async fn confirm_login_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let outcome = async {
        let token = shaped(path.into_inner(), UNKNOWN_LOGIN_TOKEN)?;
        state.db(move |c| login_tokens::check(c, &token)).await
    }
    .await;
    match outcome {
        Ok(()) => {
            let me = browser_user(&state, &req).await;
            render(
                StatusCode::OK,
                &ConfirmLoginPage {
                    chrome: Chrome::new(None, ""),
                    signed_in: me.map(|(u, s)| (u.email, csrf_token(&s))),
                    message: None,
                },
            )
        }
        Err(e) => refused(&state, &req, e).await,
    }
}

/// Allows the slicer's sign-in: with the user's password, with this browser's console
/// session (and the page's CSRF token), or with a live `session` for clients that hold one.
async fn confirm_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let outcome = async {
        let token = shaped(path.into_inner(), UNKNOWN_LOGIN_TOKEN)?;
        let Form(p) = form?;
        let user = if let Some(session) = p.str("session").map(str::to_string) {
            let policy = state.session_policy.clone();
            state
                .db(move |c| sessions::authenticate(c, &policy, &session).map(|a| a.user))
                .await?
        } else if let Some(csrf) = p.str("csrf") {
            checked_user(&state, &req, csrf).await?.0
        } else {
            let username = p.str("username").unwrap_or_default().to_string();
            let password = p.raw("password").unwrap_or_default().to_string();
            let addr = client_addr(&req, state.config.server.trust_forwarded_for);
            let st = state.clone();
            web::block(move || {
                sessions::verify_credentials(
                    &st.pool,
                    &st.hasher,
                    &st.session_policy,
                    &username,
                    &password,
                    &addr,
                )
            })
            .await
            .map_err(Error::from)
            .and_then(|r| r)?
        };
        let email = user.email.clone();
        state
            .db(move |c| login_tokens::confirm(c, &token, &user))
            .await?;
        Ok(email)
    }
    .await;
    match outcome {
        Ok(email) => render(
            StatusCode::OK,
            &NoticePage {
                chrome: Chrome::new(None, ""),
                title: "Sign-in allowed".into(),
                message: format!(
                    "Signed in as {email}. You can close this page and return to your application."
                ),
                links: Vec::new(),
            },
        ),
        // A wrong password stays on the form, with the reason.
        Err(e @ (Error::Unauthenticated(_) | Error::RateLimited(_))) => render(
            e.status_code(),
            &ConfirmLoginPage {
                chrome: Chrome::new(None, ""),
                signed_in: None,
                message: Some(e.client_message()),
            },
        ),
        Err(e) => refused(&state, &req, e).await,
    }
}

#[derive(Template)]
#[template(path = "console/continue.html")]
struct ContinuePage {
    chrome: Chrome,
    email: String,
}

/// The page a browser sign-in link (the Cura plugin's "go to cloud") opens: it names the
/// account and asks before signing in, so that a link preview or a prefetch cannot use up the
/// one-time link, and a person sees whose account they are entering.
async fn browser_link_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let token = path.into_inner();
    let outcome = async {
        if !auth::is_token_shaped(&token) {
            return Err(Error::not_found("Unknown sign-in link"));
        }
        state
            .db(move |c| login_tokens::browser_link_user(c, &token))
            .await
    }
    .await;
    match outcome {
        Ok(user) => render(
            StatusCode::OK,
            &ContinuePage {
                chrome: Chrome::new(None, ""),
                email: user.email,
            },
        ),
        Err(e) => refused(&state, &req, e).await,
    }
}

async fn browser_link_sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let token = path.into_inner();
    let outcome = async {
        if !auth::is_token_shaped(&token) {
            return Err(Error::not_found("Unknown sign-in link"));
        }
        // Only our own confirmation page may post here.
        if browser::from_another_site(&state, &req) {
            return Err(Error::denied("This form did not come from this site"));
        }
        let policy = state.session_policy.clone();
        state
            .db(move |c| login_tokens::redeem_browser(c, &policy, &token))
            .await
    }
    .await;
    match outcome {
        Ok(session) => see_other("/myfiles")
            .cookie(browser::new_session_cookie(&state, session))
            .finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}
