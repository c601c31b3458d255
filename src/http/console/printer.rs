//! One printer's page: its live card, its queue (start or cancel queued jobs), its recent jobs,
//! the build tray, and the camera. The queue is what `get_printer_jobs` answers the viewer;
//! actions go through the same services as `job_start`, `job_cancel` and
//! `printer_clear_build_tray`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{
    card_view, job_outcome, posted, refused, render, to_login, CardView, Chrome, Stamp, REASONS,
};
use crate::db::models::{share_role, Job, JobStatus, PrinterId, User};
use crate::error::Error;
use crate::http::apiglobal::Form;
use crate::http::browser::{browser_user, csrf_token, see_other};
use crate::http::routes::Routes;
use crate::services::jobs::PrinterDetail;
use crate::services::maintenance::{self, Maintenance};
use crate::services::printers::{self, Access};
use crate::services::{jobs, printers as printer_rules};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/printers/{printer_id}").get(page);
    r.at("/printers/{printer_id}/tray").post(clear_tray);
    r.at("/printers/{printer_id}/shares").post(add_share);
    r.at("/printers/{printer_id}/shares/{share_id}/remove")
        .post(remove_share);
}

/// A job in the printer's lists.
pub struct JobLine {
    id: i64,
    filename: String,
    owner: String,
    created: Stamp,
    ended: Option<Stamp>,
    outcome: String,
    tone: &'static str,
    /// The viewer may start or cancel it: their own, or a printer they manage.
    may_act: bool,
}

fn job_line(user: &User, manages: bool, (job, file, owner): &(Job, String, String)) -> JobLine {
    let (outcome, tone) = job_outcome(job);
    JobLine {
        id: job.id.0,
        filename: file.clone(),
        owner: owner.clone(),
        created: Stamp::new(job.created_at),
        ended: job.ended_at.map(Stamp::new),
        outcome,
        tone,
        may_act: manages || job.user_id == user.id,
    }
}

/// What updates live on the page: the card, the queue, the recent jobs, the tray.
#[derive(Template)]
#[template(path = "console/printer_live.html")]
pub struct PrinterLive {
    id: i64,
    cards: Vec<CardView>,
    queue: Vec<JobLine>,
    recent: Vec<JobLine>,
    tray_clear: bool,
    may_print: bool,
    manages: bool,
    csrf: String,
    reasons: &'static [(&'static str, &'static str)],
    /// Where the page's forms come back to.
    back: String,
}

pub fn live(user: &User, csrf: String, d: PrinterDetail) -> PrinterLive {
    let manages = d.access == Access::Manage;
    let id = d.card.item.id.0;
    // In the order they start: raised ones first, then the oldest.
    let mut queued: Vec<&(Job, String, String)> = d
        .jobs
        .iter()
        .filter(|(j, _, _)| j.status_id == JobStatus::Queued)
        .collect();
    queued.sort_by_key(|(j, _, _)| (std::cmp::Reverse(j.priority), j.id));
    let queue = queued
        .into_iter()
        .map(|row| job_line(user, manages, row))
        .collect();
    let recent = d
        .jobs
        .iter()
        .filter(|(j, _, _)| !j.status_id.is_active())
        .take(10)
        .map(|row| job_line(user, manages, row))
        .collect();
    PrinterLive {
        id,
        cards: vec![card_view(d.card)],
        queue,
        recent,
        tray_clear: d.tray_clear,
        may_print: d.access >= Access::Print,
        manages,
        csrf,
        reasons: &REASONS,
        back: format!("/printers/{id}"),
    }
}

/// The viewer's page of one printer, as the live stream renders it.
pub async fn load(
    state: &web::Data<AppState>,
    user: User,
    csrf: String,
    id: PrinterId,
) -> Result<PrinterLive, Error> {
    let offline = chrono::Duration::seconds(state.config.printers.offline_after_secs);
    let me = user.clone();
    let detail = state
        .db(move |c| jobs::printer_detail(c, &me, id, offline, crate::db::now()))
        .await?;
    Ok(live(&user, csrf, detail))
}

#[derive(Template)]
#[template(path = "console/printer.html")]
struct PrinterPage {
    chrome: Chrome,
    name: String,
    camera: Option<String>,
    live: PrinterLive,
    /// The printer's shares, for those who manage it.
    shares: Option<Vec<ShareView>>,
    maintenance: Maintenance,
    last_maintained: Option<Stamp>,
}

struct ShareView {
    id: i64,
    email: String,
    role: &'static str,
    prints: String,
}

/// How long a camera link on the page works (a reload of the page makes a new one).
const CAMERA_LINK_MINUTES: i64 = 30;

async fn page(state: web::Data<AppState>, req: HttpRequest, path: web::Path<i64>) -> HttpResponse {
    let id = PrinterId(path.into_inner());
    let Some((user, session)) = browser_user(&state, &req).await else {
        return to_login(&req);
    };
    let csrf = csrf_token(&session);
    let live = match load(&state, user.clone(), csrf, id).await {
        Ok(l) => l,
        Err(e) => return refused(&state, &req, e).await,
    };
    let me = user.clone();
    let camera = state
        .db(move |c| {
            printer_rules::camera_token(
                c,
                &me,
                Some(id),
                chrono::Duration::minutes(CAMERA_LINK_MINUTES),
            )
        })
        .await
        .ok()
        // Still pictures the page refreshes: an endless MJPEG stream would keep the page
        // loading for ever.
        .map(|token| format!("/camera/{token}/{id}.jpg"));
    let manages = live.manages;
    let me = user.clone();
    let maintenance = match state.db(move |c| maintenance::of_printer(c, &me, id)).await {
        Ok(m) => m,
        Err(e) => return refused(&state, &req, e).await,
    };
    let last_maintained = maintenance
        .last_maintained
        .as_deref()
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").ok())
        .map(Stamp::new);
    let me = user.clone();
    let shares = if manages {
        match state.db(move |c| printers::shares(c, &me, id)).await {
            Ok(list) => Some(
                list.into_iter()
                    .map(|s| ShareView {
                        id: s.id,
                        email: s.email,
                        role: if s.role_id == share_role::CAN_QUEUE {
                            "Can only queue"
                        } else {
                            "Can print"
                        },
                        prints: match s.number_of_prints {
                            Some(n) => format!("{} of {n} prints used", s.prints_used),
                            None => format!("{} prints, no limit", s.prints_used),
                        },
                    })
                    .collect(),
            ),
            Err(e) => return refused(&state, &req, e).await,
        }
    } else {
        None
    };
    let name = live
        .cards
        .first()
        .map(|c| c.name.clone())
        .unwrap_or_default();
    render(
        StatusCode::OK,
        &PrinterPage {
            chrome: Chrome::new(Some((&user, &session)), "printers"),
            name,
            camera,
            live,
            shares,
            maintenance,
            last_maintained,
        },
    )
}

/// The build tray is clear again (the next queued job may start where the organization
/// starts them by itself).
async fn clear_tray(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let id = PrinterId(path.into_inner());
    let outcome = async {
        let (_, user, _) = posted(&state, &req, form).await?;
        let ctx = state.job_context();
        state
            .db(move |c| crate::services::farm::clear_build_tray(c, &user, id, true, &ctx))
            .await?;
        state.notifier.printers_changed();
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => see_other(&format!("/printers/{id}")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

/// `share_printer` from the printer's page: by email, to print or only queue, with an optional
/// number of prints.
async fn add_share(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let id = PrinterId(path.into_inner());
    let outcome = async {
        let (p, user, _) = posted(&state, &req, form).await?;
        let email = p.str("email").unwrap_or_default().to_string();
        let role = p.i64("role")?.unwrap_or(i64::from(share_role::CAN_PRINT));
        let prints = p.i64("prints")?;
        state
            .db(move |c| printers::share(c, &user, id, role, &email, prints))
            .await?;
        state.notifier.printers_changed();
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => see_other(&format!("/printers/{id}#shares")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}

async fn remove_share(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(i64, i64)>,
    form: Result<Form, Error>,
) -> HttpResponse {
    let (id, share) = path.into_inner();
    let outcome = async {
        let (_, user, _) = posted(&state, &req, form).await?;
        state
            .db(move |c| printers::unshare(c, &user, share))
            .await?;
        state.notifier.printers_changed();
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => see_other(&format!("/printers/{id}#shares")).finish(),
        Err(e) => refused(&state, &req, e).await,
    }
}
