//! Slice workers: claim a queued slice, run PrusaSlicer in a folder of its own, store and
//! analyse the G-code, and queue the print job when one was asked for.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::models::{SliceJob, StoredFile};
use crate::error::{Error, Result};
use crate::services::auth::random_token;
use crate::services::files::{self, Kind};
use crate::services::slicing;
use crate::AppState;

/// Starts `count` workers on the current runtime; they run until the process ends.
pub fn spawn(state: AppState, count: usize, wake: Arc<Notify>) {
    let owner_base = format!("{}-{}", std::process::id(), &random_token()[..8]);
    for n in 0..count {
        let (state, wake, owner) = (state.clone(), wake.clone(), format!("{owner_base}-{n}"));
        actix_web::rt::spawn(async move {
            loop {
                let notified = wake.notified();
                match work_once(&state, &owner).await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "slice worker error"),
                }
                // Poll now and then too: rows may come from other instances or expired leases.
                let _ = tokio::time::timeout(Duration::from_secs(2), notified).await;
            }
        });
    }
}

/// The owner's liveness decides how long a dead worker's slice stays claimed: a short lease
/// renewed by a heartbeat while the slice runs (not the slice's maximum duration).
fn lease(state: &AppState) -> chrono::Duration {
    chrono::Duration::seconds(state.config.slicer.lease_secs as i64)
}

/// Claims and runs one slice; false when there was nothing to do.
pub async fn work_once(state: &AppState, owner: &str) -> Result<bool> {
    let lease_for = lease(state);
    let o = owner.to_string();
    let Some(job) = state.db(move |c| slicing::claim(c, &o, lease_for)).await? else {
        return Ok(false);
    };
    tracing::info!(slice = %job.uuid, attempt = job.attempts, "slicing");
    // Keep the lease while the slicer runs.
    let renew = {
        let (state, id, owner) = (state.clone(), job.id, owner.to_string());
        actix_web::rt::spawn(async move {
            let every = Duration::from_secs((lease_for.num_seconds() as u64 / 3).max(1));
            loop {
                tokio::time::sleep(every).await;
                let o = owner.clone();
                match state
                    .db(move |c| slicing::renew(c, id, &o, lease_for))
                    .await
                {
                    Ok(true) => {}
                    // Taken over: our result will not be committed.
                    Ok(false) => break,
                    // A database hiccup: the lease has two more beats before it runs out.
                    Err(e) => tracing::warn!(error = %e, "slice lease renewal failed"),
                }
            }
        })
    };
    let result = run(state, &job, owner).await;
    renew.abort();
    if let Err(e) = result {
        let (o, msg) = (owner.to_string(), e.to_string());
        let j = job.clone();
        state
            .db(move |c| slicing::fail(c, &j, &o, &msg, ""))
            .await?;
    }
    Ok(true)
}

async fn run(state: &AppState, job: &SliceJob, owner: &str) -> Result<()> {
    let file_id = job.file_id;
    let input = state
        .db(move |c| Ok(StoredFile::find(c, file_id)?))
        .await?
        .ok_or_else(|| Error::not_found("the model file was deleted"))?;
    let dir = tempfile::Builder::new()
        .prefix("slice-")
        .tempdir_in(state.storage.staging_dir())
        .map_err(|e| Error::io("slice folder", e))?;
    let staged = state.storage.fetch_to_staging(&input.storage_key).await?;
    let (src, folder, kind) = (
        staged.path().to_path_buf(),
        dir.path().to_path_buf(),
        input.kind.as_str().to_string(),
    );
    let prepared =
        actix_web::web::block(move || crate::slicer::prepare_model(&src, &folder, &kind))
            .await
            .map_err(Error::internal)?;
    let model = match prepared {
        Ok(m) => m,
        Err(e) => {
            let (j, o, msg) = (job.clone(), owner.to_string(), e.to_string());
            state
                .db(move |c| slicing::fail(c, &j, &o, &msg, ""))
                .await?;
            return Ok(());
        }
    };
    let keys: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&job.profile).map_err(Error::internal)?;
    let profile = crate::slicer::Profile::from_stored(keys)
        .map_err(|e| Error::invalid(format!("profile: {e}")))?;
    let ini = dir.path().join("profile.ini");
    std::fs::write(&ini, profile.to_ini()).map_err(|e| Error::io("slice folder", e))?;
    let output = dir.path().join("out.gcode");

    let permit = state
        .slice_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(Error::internal)?;
    let limits = crate::slicer::Limits::from_config(&state.config.slicer);
    let (result, log) = crate::slicer::run(
        &state.config.slicer.prusa_slicer,
        &ini,
        &model,
        &output,
        &limits,
        &state.slicers,
    )
    .await;
    drop(permit);
    let log: String = log
        .chars()
        .rev()
        .take(16_000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if let Err(e) = result {
        let (j, o, msg) = (job.clone(), owner.to_string(), e.to_string());
        state
            .db(move |c| slicing::fail(c, &j, &o, &msg, &log))
            .await?;
        return Ok(());
    }

    // Measure, preview and store the G-code like an upload.
    let size = std::fs::metadata(&output).map_err(Error::internal)?.len();
    let sha = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut f = std::fs::File::open(&output).map_err(Error::internal)?;
        std::io::copy(&mut f, &mut h).map_err(Error::internal)?;
        hex::encode(h.finalize())
    };
    let out_path = output.clone();
    let analysed =
        actix_web::web::block(move || files::analyse_staged(&out_path, size, Kind::Gcode, false))
            .await??;
    let analysis = analysed.analysis.to_string();
    let settings = serde_json::to_string(&analysed.settings.clone().unwrap_or_default())
        .map_err(Error::internal)?;
    // A slice whose lease another worker took over registers nothing: its result stands, and
    // our objects go.
    let ctx = state.job_context();
    let j = job.clone();
    let o = owner.to_string();
    let finished = files::store_and_register(
        &state.storage,
        &output,
        analysed.preview_png.clone(),
        |stored| async move {
            fail::fail_point!("slice-stored", |_| Err(Error::Internal(
                "fail point slice-stored".into()
            )));
            state
                .db(move |c| {
                    let out = slicing::Output {
                        storage_key: &stored.storage_key,
                        picture: &stored.picture,
                        size: size as i64,
                        sha256: &sha,
                        analysis: &analysis,
                        settings: &settings,
                    };
                    match slicing::finish(c, &j, &o, &out, &log, &ctx)? {
                        slicing::Finished::LeaseLost => Ok(None),
                        kept => Ok(Some(kept)),
                    }
                })
                .await
        },
    )
    .await?;
    match finished {
        Some(slicing::Finished::PrintRefused(e)) => {
            tracing::warn!(slice = %job.uuid, error = %e, "the sliced file could not be queued on the printer")
        }
        // A farm job may have copies for free printers now.
        Some(slicing::Finished::PrintQueued) => state.farm_wake.notify_one(),
        _ => {}
    }
    Ok(())
}
