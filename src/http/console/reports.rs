//! Reports for organization and workgroup admins: a date range and the custom report's fields,
//! the CSV download (the same stream as `get_custom_report`), and charts of the same jobs —
//! jobs per day by outcome, printer utilisation, print hours per workgroup, top users and
//! cancel reasons. Charts are server-drawn SVG: no script, nothing from elsewhere.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use chrono::Utc;

use super::{query, refused, render, to_login, Chrome};
use crate::db::models::Organization;
use crate::error::Error;
use crate::http::apiglobal::reports::{stream, Format};
use crate::http::browser::browser_user;
use crate::http::routes::Routes;
use crate::services::reports::{self, Amount, CustomReportRequest, DateRange, Field, Summary};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.at("/reports").get(page);
    r.at("/reports/download").get(download);
}

/// The values of a repeated query parameter (`fields=a&fields=b`).
fn query_all(req: &HttpRequest, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// One bar of a horizontal chart: its label, its value as text, its length (0..100 %).
struct Bar {
    label: String,
    value: String,
    percent: f64,
}

fn bars(list: &[Amount], text: impl Fn(f64) -> String, max: Option<f64>) -> Vec<Bar> {
    let top = max.unwrap_or_else(|| list.iter().map(|a| a.value).fold(0.0, f64::max));
    list.iter()
        .map(|a| Bar {
            label: a.name.clone(),
            value: text(a.value),
            percent: if top > 0.0 {
                a.value / top * 100.0
            } else {
                0.0
            },
        })
        .collect()
}

/// One day's stacked column in the jobs-per-day chart (SVG units).
struct Column {
    x: f64,
    width: f64,
    /// (class, y, height), bottom up.
    parts: Vec<(&'static str, f64, f64)>,
    title: String,
}

/// The jobs-per-day chart's geometry.
struct DaysChart {
    columns: Vec<Column>,
    /// (x, text, anchor) under the axis.
    labels: Vec<(f64, String, &'static str)>,
    /// (y, text) of the gridlines.
    grid: Vec<(f64, String)>,
}

const CHART_W: f64 = 1100.0;
const CHART_H: f64 = 200.0;
const LEFT: f64 = 36.0;
const TOP: f64 = 10.0;

fn days_chart(s: &Summary) -> DaysChart {
    let n = s.days.len().max(1) as f64;
    let max = s
        .days
        .iter()
        .map(|d| d.done + d.cancelled + d.failed + d.open)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    // A round top for the axis: 1, 2, 5, 10, 20, 50 …
    let step = [1.0, 2.0, 5.0]
        .iter()
        .flat_map(|m| (0..7).map(move |e| m * 10f64.powi(e)))
        .filter(|st| max / st <= 4.0)
        .fold(f64::MAX, f64::min);
    let top = (max / step).ceil() * step;
    let plot_w = CHART_W - LEFT;
    let slot = plot_w / n;
    let scale = |v: f64| v / top * CHART_H;
    let columns = s
        .days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut y = TOP + CHART_H;
            let mut parts = Vec::new();
            for (class, v) in [
                ("done", d.done),
                ("cancelled", d.cancelled),
                ("failed", d.failed),
                ("open", d.open),
            ] {
                if v > 0 {
                    let h = scale(v as f64);
                    y -= h;
                    parts.push((class, y, h));
                }
            }
            Column {
                x: LEFT + i as f64 * slot + slot * 0.15,
                width: (slot * 0.7).max(1.0),
                parts,
                title: format!(
                    "{}: {} done, {} cancelled, {} failed, {} queued or printing",
                    d.day, d.done, d.cancelled, d.failed, d.open
                ),
            }
        })
        .collect();
    let count = s.days.len();
    let mut picks = vec![0, count / 2, count.saturating_sub(1)];
    picks.dedup();
    let labels = picks
        .into_iter()
        .filter_map(|i| s.days.get(i).map(|d| (i, d)))
        .map(|(i, d)| {
            // The ends are anchored inwards so they stay inside the picture.
            let anchor = match i {
                0 => "start",
                i if i + 1 == count && count > 1 => "end",
                _ => "middle",
            };
            let x = match anchor {
                "start" => LEFT + i as f64 * slot,
                "end" => LEFT + (i + 1) as f64 * slot,
                _ => LEFT + i as f64 * slot + slot / 2.0,
            };
            (x, d.day.format("%b %-d").to_string(), anchor)
        })
        .collect();
    let grid = (0..=((top / step) as i64))
        .map(|k| {
            let v = k as f64 * step;
            (TOP + CHART_H - scale(v), format!("{v}"))
        })
        .collect();
    DaysChart {
        columns,
        labels,
        grid,
    }
}

#[derive(Template)]
#[template(path = "console/reports.html")]
struct ReportsPage {
    chrome: Chrome,
    from: String,
    to: String,
    fields: Vec<(&'static str, bool)>,
    message: Option<String>,
    summary: Option<SummaryView>,
}

struct SummaryView {
    jobs: i64,
    print_hours: String,
    filament: String,
    days: DaysChart,
    day_count: usize,
    charts: Vec<BarChart>,
}

/// A horizontal bar chart: its title, a key for ids, its bars.
struct BarChart {
    title: &'static str,
    key: &'static str,
    bars: Vec<Bar>,
}

fn hours_text(h: f64) -> String {
    if h >= 10.0 {
        format!("{h:.0} h")
    } else {
        format!("{h:.1} h")
    }
}

async fn page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some((user, session)) = browser_user(&state, &req).await else {
        return to_login(&req);
    };
    let today = Utc::now().date_naive();
    let (from, to) = (query(&req, "from"), query(&req, "to"));
    let chosen = query_all(&req, "fields");
    let me = user.clone();
    let loaded = state
        .db(move |c| {
            // Refused here for people without reports, before the range is even read.
            reports::scope_for(c, &me)?;
            let org = Organization::find(c, me.organization_id)?
                .ok_or_else(|| Error::internal("user without organization"))?;
            let defaults = reports::organization_fields(&org);
            let range = DateRange::parse(
                from.as_deref().filter(|f| !f.is_empty()),
                to.as_deref().filter(|t| !t.is_empty()),
                today,
            );
            let summary = match &range {
                Ok(r) => Some(reports::summary(c, &me, *r, crate::db::now())?),
                Err(_) => None,
            };
            Ok((defaults, range, summary))
        })
        .await;
    let (defaults, range, summary) = match loaded {
        Ok(x) => x,
        Err(e) => return refused(&state, &req, e).await,
    };
    let picked = |f: &Field| {
        if chosen.is_empty() {
            defaults.contains(f)
        } else {
            chosen.iter().any(|c| c == f.name())
        }
    };
    let fields = Field::ALL.iter().map(|f| (f.name(), picked(f))).collect();
    let (from, to, message, status) = match &range {
        Ok(r) => (r.from.to_string(), r.to.to_string(), None, StatusCode::OK),
        Err(e) => (
            query(&req, "from").unwrap_or_default(),
            query(&req, "to").unwrap_or_default(),
            Some(e.client_message()),
            e.status_code(),
        ),
    };
    let summary = summary.map(|s| SummaryView {
        jobs: s.jobs,
        print_hours: hours_text(s.print_hours),
        filament: if s.filament_g >= 1000.0 {
            format!("{:.2} kg", s.filament_g / 1000.0)
        } else {
            format!("{:.0} g", s.filament_g)
        },
        days: days_chart(&s),
        day_count: s.days.len(),
        charts: vec![
            BarChart {
                title: "Printer utilisation",
                key: "util",
                bars: bars(&s.utilisation, |v| format!("{:.0} %", v * 100.0), Some(1.0)),
            },
            BarChart {
                title: "Print hours per workgroup",
                key: "groups",
                bars: bars(&s.workgroup_hours, hours_text, None),
            },
            BarChart {
                title: "Top users by print hours",
                key: "users",
                bars: bars(&s.top_users, hours_text, None),
            },
            BarChart {
                title: "Cancel reasons",
                key: "reasons",
                bars: bars(&s.cancel_reasons, |v| format!("{v:.0}"), None),
            },
        ],
    });
    render(
        status,
        &ReportsPage {
            chrome: Chrome::new(Some((&user, &session)), "reports"),
            from,
            to,
            fields,
            message,
            summary,
        },
    )
}

/// The CSV of the chosen range and fields: the same report, rules and stream as
/// `get_custom_report`.
async fn download(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some((user, _)) = browser_user(&state, &req).await else {
        return to_login(&req);
    };
    let request = CustomReportRequest {
        from: query(&req, "from").filter(|f| !f.is_empty()),
        to: query(&req, "to").filter(|t| !t.is_empty()),
        fields: query_all(&req, "fields"),
        all_fields: false,
        workgroups: query(&req, "workgroups").is_some(),
    };
    let today = Utc::now().date_naive();
    let report = state
        .db(move |c| reports::custom_report(c, &user, &request, today))
        .await;
    let streamed = match report {
        Ok(r) => stream(&state, r, Format::Csv).await,
        Err(e) => Err(e),
    };
    match streamed {
        Ok(res) => res,
        Err(e) => refused(&state, &req, e).await,
    }
}
