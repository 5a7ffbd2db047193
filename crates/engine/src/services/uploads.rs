//! Upload remains: the staged parts and partial blob of an unfinished upload, freed both when a
//! user aborts it (the API) and when it expires (the sweeper).

use crate::services::Services;
use egress_store::Upload;

/// How many parts an upload is cut into.
pub fn part_count(upload: &Upload) -> i64 {
    ((upload.size + upload.part_size - 1) / upload.part_size).max(1)
}

/// The platform keys of every part an upload may have staged.
pub fn part_keys(upload: &Upload) -> Vec<String> {
    (1..=part_count(upload))
        .map(|n| egress_storage::part_key(&upload.id, n))
        .collect()
}

/// Deletes an unfinished upload's parts and partial blob, then its row. Storage goes first so
/// that a failure leaves the row for the sweeper to retry.
pub async fn delete_upload_remains(services: &Services, upload: &Upload) -> anyhow::Result<()> {
    let mut keys = part_keys(upload);
    keys.push(egress_storage::blob_key(&upload.id));
    services.platform.delete_many(&keys).await?;
    services.store.delete_upload(&upload.id).await?;
    Ok(())
}
