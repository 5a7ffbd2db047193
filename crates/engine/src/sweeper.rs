//! Frees platform bytes that no file refers to any more, and the remains of abandoned uploads.
//! It runs after commits (woken through a `Notify`) and on a timer. Every step is idempotent:
//! a blob is deleted from storage before its row goes, so a crash in between is retried.

use crate::services::uploads::delete_upload_remains;
use crate::services::Services;
use egress_core::util::now_ms;
use std::sync::Arc;
use std::time::Duration;

const BATCH: i64 = 1000;
/// How long a woken sweeper lets releases accumulate before a pass.
const SETTLE: Duration = Duration::from_millis(250);

/// One pass over doomed blobs and expired uploads; returns how many things were freed.
pub async fn sweep_once(services: &Services) -> anyhow::Result<usize> {
    let mut freed = 0;
    loop {
        let doomed = services.store.doomed_blobs(BATCH).await?;
        if doomed.is_empty() {
            break;
        }
        let keys: Vec<String> = doomed
            .iter()
            .map(|id| egress_storage::blob_key(id))
            .collect();
        services.platform.delete_many(&keys).await?;
        services.store.forget_blobs(&doomed).await?;
        freed += doomed.len();
    }
    for upload in services.store.expired_uploads(now_ms(), BATCH).await? {
        delete_upload_remains(services, &upload).await?;
        freed += 1;
    }
    Ok(freed)
}

/// Runs the sweeper until the process ends.
pub async fn run(services: Arc<Services>, every: Duration) {
    loop {
        if let Err(e) = sweep_once(&services).await {
            tracing::warn!(error = %format!("{e:#}"), "sweep failed; will retry");
        }
        tokio::select! {
            // Commits come in bursts while exports run; one pass frees a whole burst.
            _ = services.sweep.notified() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
