//! No multipart upload outlives the export that opened it, not even across a crash.
//!
//! Before an attempt creates a multipart upload, it lists the uploads already open on its exact
//! key and records them on the job as its intent; once S3 answers, the new upload's id replaces
//! the intent. An attempt that dies between the two leaves the intent behind, and the job's next
//! attempt aborts every upload open on the key that the intent does not name: the ones earlier
//! attempts opened. (Exports to one key run one at a time.) Uploads other writers had open
//! before are never touched. S3's `Initiated` time is not used: it would need the two clocks to
//! agree, and some S3-compatible servers report a fixed one.
//!
//! The copy lists the open uploads and reports them, and then the new id, through
//! `CopyProgress`; the job's `JobCtx` records them, the intent in the form `intent` gives.

use super::{Access, JobCtx, JobError};
use egress_storage::volume::{VolumeBackend, VolumeErrorKind};
use std::collections::HashSet;

/// How a recorded intent starts; the ids of the uploads open before follow, space-separated.
const INTENT: &str = "intent:";

/// What an attempt records on the job before it creates a multipart upload on its key: the
/// uploads open there now.
pub fn intent(open: &[String]) -> String {
    format!("{INTENT}{}", open.join(" "))
}

/// The uploads to abort, given what an earlier attempt recorded and what is open now.
fn doomed(recorded: &str, open: Option<Vec<String>>) -> Vec<String> {
    match recorded.strip_prefix(INTENT) {
        None => vec![recorded.to_string()],
        Some(before) => {
            let before: HashSet<&str> = before.split_whitespace().collect();
            open.unwrap_or_default()
                .into_iter()
                .filter(|id| !before.contains(id.as_str()))
                .collect()
        }
    }
}

/// Aborts what earlier attempts of the job left open on its key, from what they recorded (an
/// upload's id, or an intent), then clears the record. A transient failure keeps the record
/// for the next attempt and fails this one.
pub async fn clean_earlier(
    ctx: &JobCtx<'_>,
    volume: &dyn VolumeBackend,
    recorded: &str,
) -> Result<(), JobError> {
    let key = ctx.job.object_key.as_str();
    let open = if recorded.starts_with(INTENT) {
        match volume.open_uploads(key).await {
            Ok(open) => Some(open),
            Err(e) if !e.is_retryable() => {
                tracing::warn!(export = %ctx.job.id, error = %e, "cannot list the open multipart uploads; an earlier attempt's may stay open");
                None
            }
            Err(e) => return Err(JobError::from_volume(&e, Access::Write)),
        }
    } else {
        None
    };
    for upload_id in doomed(recorded, open) {
        match volume.abort_upload(key, &upload_id).await {
            Ok(_) => {
                tracing::info!(export = %ctx.job.id, upload_id, "aborted the multipart upload of an earlier attempt")
            }
            // Already completed or aborted (or the bucket is gone).
            Err(e)
                if matches!(
                    e.kind,
                    VolumeErrorKind::NotFound | VolumeErrorKind::NoSuchBucket
                ) => {}
            Err(e) if e.is_retryable() => return Err(JobError::from_volume(&e, Access::Write)),
            Err(e) => {
                tracing::warn!(export = %ctx.job.id, upload_id, error = %e, "could not abort the multipart upload of an earlier attempt")
            }
        }
    }
    match ctx
        .services
        .store
        .set_export_upload(&ctx.job.id, ctx.job.attempt, None)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(JobError::LeaseLost),
        Err(e) => Err(JobError::internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intent_dooms_only_the_uploads_opened_after_it() {
        let open = |ids: &[&str]| Some(ids.iter().map(|s| s.to_string()).collect());
        // An upload id on record: that upload.
        assert_eq!(doomed("abc", None), ["abc"]);
        // An intent naming what was open before: only what appeared since.
        assert_eq!(doomed("intent:x y", open(&["x", "new", "y"])), ["new"]);
        assert_eq!(doomed("intent:", open(&["a", "b"])), ["a", "b"]);
        assert!(doomed("intent:x", open(&["x"])).is_empty());
        // Nothing could be listed: nothing is aborted.
        assert!(doomed("intent:x", None).is_empty());
    }
}
