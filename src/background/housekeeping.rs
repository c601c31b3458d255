//! Cleaning up after crashes: staging leftovers, stored objects that no database row names
//! (an upload or slice killed between storing its object and writing its row), and rows
//! whose object is missing (reported, never deleted: the row is the record of a print).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use futures_util::StreamExt;

use crate::db::models::StoredFile;
use crate::error::Result;
use crate::AppState;

/// What one reconciliation pass found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub objects_seen: usize,
    pub orphans_deleted: usize,
    pub orphan_bytes: u64,
    /// Part files of interrupted multipart writes (local store).
    pub parts_deleted: usize,
    /// Rows whose object is missing: (file id, key), at most `MISSING_LISTED` of them.
    pub missing: Vec<(i64, String)>,
    pub missing_count: usize,
}

const BATCH: usize = 500;
const MISSING_LISTED: usize = 100;
/// A row younger than this may belong to an upload whose object is still being written.
const ROW_GRACE: chrono::Duration = chrono::Duration::seconds(60);

/// Keys are remembered by a 64-bit hash, so that a store of millions of objects costs
/// megabytes, not a copy of every name (a collision only hides one missing object).
fn key_hash(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Deletes stored objects under `files/` and `render/` that no file row names and that are
/// older than `grace` (younger ones may belong to an upload between its two steps), and
/// reports rows whose object is missing.
pub async fn reconcile(state: &AppState, grace: Duration) -> Result<Reconciled> {
    let started = chrono::Utc::now();
    let cutoff = started - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut out = Reconciled::default();
    let mut seen: HashSet<u64> = HashSet::new();
    for prefix in ["files/", "render/"] {
        let mut listing = state.storage.list(prefix);
        let mut candidates = Vec::new();
        while let Some(obj) = listing.next().await {
            let obj = obj?;
            out.objects_seen += 1;
            seen.insert(key_hash(&obj.key));
            if obj.last_modified < cutoff {
                candidates.push((obj.key, obj.size));
            }
            if candidates.len() >= BATCH {
                delete_unreferenced(state, std::mem::take(&mut candidates), &mut out).await?;
            }
        }
        delete_unreferenced(state, candidates, &mut out).await?;
    }
    out.parts_deleted = state.storage.sweep_local_parts(grace).0;

    // Rows in id order, a page at a time, each checked against the listing.
    let rows_before = (started - ROW_GRACE).naive_utc();
    let mut after = 0_i64;
    loop {
        let page: Vec<(i64, String, Option<String>)> = state
            .db(move |c| {
                Ok(StoredFile::stored_objects_page(
                    c,
                    after,
                    rows_before,
                    1000,
                )?)
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        for (id, key, picture) in page {
            let keys = std::iter::once(key).chain(picture.map(|p| format!("render/{p}")));
            for key in keys {
                // Confirmed one by one: it may have been stored after the listing passed it.
                if !seen.contains(&key_hash(&key)) && !state.storage.exists(&key).await? {
                    out.missing_count += 1;
                    if out.missing.len() < MISSING_LISTED {
                        out.missing.push((id, key));
                    }
                }
            }
        }
    }
    Ok(out)
}

async fn delete_unreferenced(
    state: &AppState,
    candidates: Vec<(String, u64)>,
    out: &mut Reconciled,
) -> Result<()> {
    if candidates.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = candidates.iter().map(|(k, _)| k.clone()).collect();
    let referenced: HashSet<String> = state
        .db(move |c| {
            let pictures: Vec<String> = keys
                .iter()
                .filter_map(|k| k.strip_prefix("render/").map(str::to_string))
                .collect();
            let (mut found, pics) = StoredFile::naming(c, &keys, &pictures)?;
            found.extend(pics.into_iter().map(|p| format!("render/{p}")));
            Ok(found.into_iter().collect())
        })
        .await?;
    for (key, size) in candidates {
        if referenced.contains(&key) {
            continue;
        }
        state.storage.delete(&key).await?;
        tracing::info!(key, size, "deleted a stored object that no file names");
        out.orphans_deleted += 1;
        out.orphan_bytes += size;
    }
    Ok(())
}

/// One housekeeping pass over storage: staging leftovers, then the store against the rows.
pub async fn storage_pass(state: &AppState) {
    let cfg = &state.config.storage;
    let swept = state
        .storage
        .sweep_staging(Duration::from_secs(cfg.staging_max_age_secs));
    if swept.dead_runs + swept.stale_entries > 0 {
        tracing::info!(
            dead_processes = swept.dead_runs,
            stale = swept.stale_entries,
            bytes = swept.bytes,
            "removed staging leftovers"
        );
    }
    match reconcile(state, Duration::from_secs(cfg.orphan_grace_secs)).await {
        Ok(r) => {
            if r.orphans_deleted + r.parts_deleted > 0 {
                tracing::info!(
                    objects = r.orphans_deleted,
                    bytes = r.orphan_bytes,
                    parts = r.parts_deleted,
                    "removed stored objects without a file row"
                );
            }
            if r.missing_count > 0 {
                tracing::warn!(
                    count = r.missing_count,
                    examples = ?r.missing,
                    "file rows whose stored object is missing"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "storage reconciliation failed"),
    }
}
