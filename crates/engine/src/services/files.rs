//! Committing new platform bytes as a file: shared by uploads (the API) and the demo's seeding.

use crate::services::Services;
use egress_core::error::{Code, SbgError, SbgResult};
use egress_core::util::new_long_id;
use egress_storage::{self, Hasher};
use egress_store::{Blob, FileRec, StoreError};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};

/// Where new platform bytes go, and the upload (if any) they finish.
pub struct NewFile<'a> {
    pub upload: Option<&'a str>,
    pub project_id: &'a str,
    pub parent_id: &'a str,
    pub name: &'a str,
}

/// Writes `bytes` as a new blob while hashing them, checks the size, and commits the blob and
/// its file (replacing `replace`) in one transaction.
pub async fn commit_file(
    services: &Services,
    target: NewFile<'_>,
    bytes: egress_storage::ByteStream,
    size: u64,
    replace: Option<&FileRec>,
) -> SbgResult<FileRec> {
    let blob_id = target
        .upload
        .map(str::to_string)
        .unwrap_or_else(new_long_id);
    let hasher = Arc::new(Mutex::new(Hasher::new()));
    let seen = hasher.clone();
    let hashed = bytes.inspect(move |chunk| {
        if let Ok(b) = chunk {
            seen.lock().unwrap_or_else(|e| e.into_inner()).update(b);
        }
    });
    let key = egress_storage::blob_key(&blob_id);
    services.platform.put(&key, Box::pin(hashed)).await?;
    let sums = hasher
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .finish();
    if sums.size != size {
        return Err(SbgError::new(
            Code::UploadIncomplete,
            "The assembled file does not have the announced size.",
        ));
    }
    let blob = Blob {
        id: blob_id,
        size: size as i64,
        md5: sums.md5.clone(),
        crc32c: sums.crc32c.clone(),
    };
    let mut file = FileRec::new(
        target.project_id,
        Some(target.parent_id),
        target.name,
        false,
    );
    file.size = Some(blob.size);
    file.blob_id = Some(blob.id.clone());
    file.md5 = Some(sums.md5);
    file.crc32c = Some(sums.crc32c);
    file.is_public = services
        .store
        .get_project(target.project_id)
        .await?
        .is_some_and(|p| p.is_public);
    let committed = services
        .store
        .complete_upload(target.upload, &blob, &file, replace.map(|f| f.id.as_str()))
        .await;
    if let Err(e) = committed {
        if target.upload.is_none() {
            // No upload row owns these bytes, so nothing else would ever free them.
            let _ = services.platform.delete(&key).await;
        }
        return Err(match e {
            StoreError::Conflict => SbgError::from(Code::FileExists),
            StoreError::NotFound => SbgError::from(Code::UploadNotFound),
            StoreError::NoParent => SbgError::new(
                Code::DestinationNotFound,
                "Destination folder not found: it was deleted before the file was committed.",
            ),
            e => e.into(),
        });
    }
    services.sweep.notify_one();
    Ok(file)
}

/// Stores small in-memory bytes as a new file in `parent` (the demo and tests seed data this way).
pub async fn store_bytes(
    services: &Services,
    parent: &FileRec,
    name: &str,
    bytes: Vec<u8>,
) -> SbgResult<FileRec> {
    check_name(name)?;
    let size = bytes.len() as u64;
    let body: egress_storage::ByteStream =
        Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(bytes))]));
    let target = NewFile {
        upload: None,
        project_id: &parent.project_id,
        parent_id: &parent.id,
        name,
    };
    commit_file(services, target, body, size, None).await
}

/// A file or folder name by the one rule (`egress_core::names`), as the SBG error the API returns.
pub fn check_name(name: &str) -> SbgResult<()> {
    egress_core::names::check(name).map_err(|_| SbgError::from(Code::InvalidName))
}
