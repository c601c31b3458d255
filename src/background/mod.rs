//! Work a server instance does besides answering requests: slice workers and housekeeping.
//! Like `http/`, it runs on the assembled `AppState` and calls services; nothing below it
//! (services, db, storage) imports it.

pub mod demo;
pub mod housekeeping;
pub mod slice_worker;

use crate::{services, AppState};

/// Background work of a server instance: housekeeping and, unless disabled, slice workers.
/// Call from within the server's runtime.
pub fn spawn_background(state: AppState) {
    if state.config.slicer.in_process_workers {
        let n = state.config.slicer.max_concurrent.max(1);
        slice_worker::spawn(state.clone(), n, state.slice_wake.clone());
    }
    spawn_farm_dispatcher(state.clone());
    spawn_heartbeat_writer(state.clone());
    spawn_maintenance(state);
}

/// Writes the agents' buffered heartbeats ([`services::agent::Heartbeats`]) every second, and
/// once more when the server shuts down.
pub fn spawn_heartbeat_writer(state: AppState) {
    actix_web::rt::spawn(async move {
        let every = std::time::Duration::from_secs(1);
        loop {
            let stopping = tokio::select! {
                _ = actix_web::rt::time::sleep(every) => false,
                _ = state.notifier.shutting_down() => true,
            };
            write_heartbeats(&state).await;
            if stopping {
                return;
            }
        }
    });
}

/// Writes what agents reported since the last write and did not need written at once.
pub async fn write_heartbeats(state: &AppState) {
    let beats = state.heartbeats.take();
    if beats.is_empty() {
        return;
    }
    match state
        .db(move |c| services::agent::write_heartbeats(c, &beats))
        .await
    {
        // Open dashboards show the new temperatures.
        Ok(_) => state.notifier.printers_changed(),
        Err(e) => tracing::warn!(error = %e, "writing agent heartbeats failed"),
    }
}

/// The farm queue's dispatcher: a pass over the idle printers when woken and at least every
/// second, so a copy starts within a second of what allows it (a tray cleared elsewhere, a
/// circuit's heater done) even when no request of this instance saw the event. Agents' own
/// polls dispatch at once, in their transaction. Every instance runs one; row locks keep them
/// from assigning a printer or a copy twice.
pub fn spawn_farm_dispatcher(state: AppState) {
    actix_web::rt::spawn(async move {
        let every = std::time::Duration::from_secs(1);
        loop {
            let _ = actix_web::rt::time::timeout(every, state.farm_wake.notified()).await;
            if state.notifier.is_shutting_down() {
                return;
            }
            let ctx = state.job_context();
            match state
                .db(move |c| services::farm::dispatch_pass(c, &ctx, true))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::debug!(started = n, "farm dispatch pass"),
                Err(e) => tracing::warn!(error = %e, "farm dispatch pass failed"),
            }
        }
    });
}

/// Periodic housekeeping: expired sessions and stale login failures; staging leftovers and
/// stored objects without a row (once at start, then every `storage.reconcile_every_secs`).
pub fn spawn_maintenance(state: AppState) {
    let storage_state = state.clone();
    actix_web::rt::spawn(async move {
        let period = std::time::Duration::from_secs(
            storage_state.config.storage.reconcile_every_secs.max(1),
        );
        let mut tick = actix_web::rt::time::interval(period);
        loop {
            tick.tick().await;
            housekeeping::storage_pass(&storage_state).await;
        }
    });
    actix_web::rt::spawn(async move {
        // The first pass runs one period after start, not at once: a fresh server has little
        // to prune, and tests that plant expired rows must not race it.
        let period = std::time::Duration::from_secs(600);
        let mut tick =
            actix_web::rt::time::interval_at(actix_web::rt::time::Instant::now() + period, period);
        loop {
            tick.tick().await;
            let policy = state.session_policy.clone();
            match state
                .db(move |c| services::sessions::prune(c, &policy))
                .await
            {
                Ok((s, f)) if s + f > 0 => {
                    tracing::info!(sessions = s, login_failures = f, "pruned expired rows")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "maintenance failed"),
            }
            match state.db(services::agent::prune_expired).await {
                Ok((r, c, u)) if r + c + u > 0 => tracing::info!(
                    registration_codes = r,
                    camera_tokens = c,
                    user_tokens = u,
                    "pruned expired rows"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "maintenance failed"),
            }
        }
    });
}
