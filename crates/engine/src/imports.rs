//! Import jobs: a volume object, or every object under a folder, becomes alias files. No
//! bytes move; a folder import commits batches of aliases with the last key it covered, so
//! a resumed attempt continues exactly where the previous one stopped.

use super::stall::VolumeHold;
use super::{api_error_json, keep_lease, Access, Engine, JobError};
use egress_core::error::{Code, SbgError};
use egress_core::names::{self, last_segment, NameError};
use egress_core::util::now_ms;
use egress_core::volume::object_key;
use egress_storage::volume::{ObjectInfo, VolumeBackend};
use egress_store::{ImportBatch, ImportRec, JobEnd, NewAlias, StoreError};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Objects listed and committed per batch of a folder import.
const BATCH: i32 = 100;

/// Objects listed per request when a folder import checks its names before the first batch.
const CHECK_PAGE: i32 = 1000;

/// A key that cannot become a file or folder name: the import fails, naming the key.
fn unnamable(location: &str, why: NameError) -> SbgError {
    SbgError::new(
        Code::InvalidLocation,
        format!(
            "Invalid location: {location:?} cannot become a file or folder name ({why}). \
             Rename the object, or import it on its own with a destination name."
        ),
    )
}

/// The name an import gives the file (or top folder) it makes: the one asked for, or the last
/// segment of its location.
fn job_name(job: &ImportRec) -> Result<String, SbgError> {
    let name = match &job.name {
        Some(name) => name.as_str(),
        None => last_segment(&job.location),
    };
    names::check(name).map_err(|why| unnamable(&job.location, why))?;
    Ok(name.to_string())
}

/// The top folder a folder import makes, if it keeps the structure.
fn top_folder(job: &ImportRec) -> Result<Option<String>, SbgError> {
    if !job.preserve_folder_structure {
        return Ok(None);
    }
    job_name(job).map(Some)
}

/// The alias a listed object becomes in a folder import of `location` (whose key is
/// `folder_key`). Every name it makes (its sub-folders, when the structure is kept, and its
/// file name) must pass the API's name rule.
fn folder_alias(
    location: &str,
    preserve: bool,
    folder_key: &str,
    (key, size): (&str, i64),
) -> Result<NewAlias, SbgError> {
    let relative = key.strip_prefix(folder_key).unwrap_or(key);
    let location = format!("{location}{relative}");
    let mut segments: Vec<String> = relative.split('/').map(str::to_string).collect();
    let name = segments.pop().unwrap_or_default();
    let folders = if preserve { segments } else { vec![] };
    for segment in folders.iter().chain([&name]) {
        names::check(segment).map_err(|why| unnamable(&location, why))?;
    }
    Ok(NewAlias {
        folders,
        name,
        size,
        // A listing does not say how an object is encrypted, and an SSE-KMS ETag is no MD5:
        // only an object's own HEAD can vouch for it.
        md5: None,
        location,
    })
}

/// Objects of a listing that become files (keys ending in `/` are folder markers).
fn files_of(objects: &[ObjectInfo]) -> impl Iterator<Item = &ObjectInfo> {
    objects.iter().filter(|o| !o.key.ends_with('/'))
}

/// The MD5 an object's HEAD gives for free: the ETag of a single-part object without KMS.
fn md5_of(info: &ObjectInfo) -> Option<String> {
    if info.md5.is_some() {
        return info.md5.clone();
    }
    let etag = info.etag.as_deref()?;
    (etag.len() == 32
        && etag.chars().all(|c| c.is_ascii_hexdigit())
        && info.sse_algorithm.as_deref() != Some("aws:kms"))
    .then(|| etag.to_string())
}

impl Engine {
    pub(super) async fn claim_imports(&self, max: usize) -> anyhow::Result<Vec<ImportRec>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let until = now + self.config.lease.as_millis() as i64;
        self.services
            .store
            .claim_imports(&self.node, now, until, max as i64)
            .await
    }

    /// Runs one import; its worker slot and its share of the volume are held until it ends.
    pub(super) async fn run_import(
        self: Arc<Self>,
        job: ImportRec,
        _slot: (OwnedSemaphorePermit, VolumeHold),
    ) {
        let ends = self.services.job_ends.clone();
        self.import_once(job).await;
        ends.record();
    }

    async fn import_once(self: Arc<Self>, job: ImportRec) {
        let heartbeat = {
            let (services, id, attempt) = (self.services.clone(), job.id.clone(), job.attempt);
            keep_lease(self.config.lease, move |until| {
                let (services, id) = (services.clone(), id.clone());
                async move { services.store.renew_import(&id, attempt, until).await }
            })
        };
        let outcome = tokio::select! {
            r = self.execute_import(&job) => r,
            _ = heartbeat => Err(JobError::LeaseLost),
        };
        let end = match outcome {
            Ok(()) => {
                return tracing::info!(import = %job.id, attempt = job.attempt, "import completed")
            }
            Err(JobError::LeaseLost) => {
                return tracing::warn!(import = %job.id, "lease lost; another worker owns the job")
            }
            Err(JobError::Terminal(e)) => JobEnd::Failed {
                error: api_error_json(&e),
            },
            Err(JobError::Exists) => JobEnd::Failed {
                error: api_error_json(&name_taken()),
            },
            Err(JobError::Retryable(why)) => self.retry_or_fail(&job.id, job.attempt, why),
        };
        if let JobEnd::Failed { error } = &end {
            tracing::info!(import = %job.id, attempt = job.attempt, error = %error, "import failed");
        }
        if let Err(e) = self
            .services
            .store
            .finish_import(&job.id, job.attempt, &end)
            .await
        {
            tracing::warn!(import = %job.id, error = %format!("{e:#}"), "could not record the outcome; the lease will expire");
        }
    }

    async fn execute_import(&self, job: &ImportRec) -> Result<(), JobError> {
        let volume = self
            .services
            .store
            .get_volume(&job.volume_id)
            .await
            .map_err(JobError::internal)?;
        let rights = self
            .services
            .store
            .import_rights(&job.id)
            .await
            .map_err(JobError::internal)?;
        if let Some(why) = rights.and_then(|r| r.refusal()) {
            return Err(JobError::Terminal(super::refusal_error(why, "import")));
        }
        let volume = volume
            .filter(|v| v.uid == job.volume_uid)
            .ok_or_else(|| JobError::Terminal(super::volume_replaced("import")))?;
        if !volume.active {
            return Err(JobError::Terminal(SbgError::new(
                Code::LocationInaccessible,
                "The volume was deactivated before the import ran.",
            )));
        }
        let backend = self
            .services
            .volume_backend(&volume, None)
            .map_err(|e| JobError::Terminal(e.into()))?;
        let read_error =
            |e: egress_storage::volume::VolumeError| JobError::from_volume(&e, Access::Read);
        if !job.is_folder() {
            let key = object_key(&volume.service.prefix, &job.location);
            let info = backend
                .head(&key)
                .await
                .map_err(read_error)?
                .ok_or_else(not_found)?;
            let alias = NewAlias {
                folders: vec![],
                name: job_name(job).map_err(JobError::Terminal)?,
                size: info.size,
                md5: md5_of(&info),
                location: job.location.clone(),
            };
            let batch = ImportBatch {
                top_folder: None,
                aliases: vec![alias],
                cursor: None,
                done: true,
            };
            return self.commit(job, &batch).await;
        }
        self.import_folder(
            job,
            &*backend,
            &object_key(&volume.service.prefix, &job.location),
            read_error,
        )
        .await
    }

    async fn import_folder(
        &self,
        job: &ImportRec,
        backend: &dyn VolumeBackend,
        folder_key: &str,
        read_error: impl Fn(egress_storage::volume::VolumeError) -> JobError,
    ) -> Result<(), JobError> {
        let top_folder = top_folder(job).map_err(JobError::Terminal)?;
        if job.cursor.is_none() && job.objects_imported == 0 {
            self.check_names(job, backend, folder_key, &read_error)
                .await?;
        }
        let mut cursor = job.cursor.clone();
        loop {
            let (objects, more) = backend
                .list_recursive(folder_key, cursor.as_deref(), BATCH)
                .await
                .map_err(&read_error)?;
            if objects.is_empty() && cursor.is_none() && job.objects_imported == 0 {
                return Err(not_found());
            }
            // Checked again batch by batch: objects may have appeared since the first look.
            let aliases = files_of(&objects)
                .map(|o| {
                    let object = (o.key.as_str(), o.size);
                    folder_alias(
                        &job.location,
                        job.preserve_folder_structure,
                        folder_key,
                        object,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(JobError::Terminal)?;
            cursor = objects.last().map(|o| o.key.clone()).or(cursor);
            let batch = ImportBatch {
                top_folder: top_folder.clone(),
                aliases,
                cursor: cursor.clone(),
                done: !more,
            };
            self.commit(job, &batch).await?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Lists the whole folder once before anything is committed: a key that cannot become a
    /// name fails the job, naming the key, with nothing imported.
    async fn check_names(
        &self,
        job: &ImportRec,
        backend: &dyn VolumeBackend,
        folder_key: &str,
        read_error: &impl Fn(egress_storage::volume::VolumeError) -> JobError,
    ) -> Result<(), JobError> {
        let mut after: Option<String> = None;
        loop {
            let (objects, more) = backend
                .list_recursive(folder_key, after.as_deref(), CHECK_PAGE)
                .await
                .map_err(read_error)?;
            for object in files_of(&objects) {
                folder_alias(
                    &job.location,
                    job.preserve_folder_structure,
                    folder_key,
                    (&object.key, object.size),
                )
                .map_err(JobError::Terminal)?;
            }
            match objects.last() {
                Some(last) if more => after = Some(last.key.clone()),
                _ => return Ok(()),
            }
        }
    }

    async fn commit(&self, job: &ImportRec, batch: &ImportBatch) -> Result<(), JobError> {
        match self.services.store.commit_import_batch(job, batch).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::LeaseLost),
            Err(StoreError::Conflict) => Err(JobError::Exists),
            Err(StoreError::Refused(why)) => {
                Err(JobError::Terminal(super::refusal_error(why, "import")))
            }
            Err(StoreError::NoParent) => Err(JobError::Terminal(SbgError::new(
                Code::DestinationNotFound,
                "Destination folder not found: it was deleted before the import committed.",
            ))),
            Err(e) => Err(JobError::Retryable(format!("committing the import: {e}"))),
        }
    }
}

fn not_found() -> JobError {
    JobError::Terminal(SbgError::from(Code::LocationNotFound))
}

fn name_taken() -> SbgError {
    SbgError::new(
        Code::ImportDestinationExists,
        "Requested file already exists in the destination; import with overwrite or autorename.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(key: &str, preserve: bool) -> Result<NewAlias, SbgError> {
        folder_alias("imp/", preserve, "pre/imp/", (key, 1))
    }

    #[test]
    fn keys_that_cannot_be_names_fail_naming_the_key() {
        let long = "x".repeat(304);
        let bad = [
            "pre/imp/../../escape.txt".to_string(),
            "pre/imp/./dot.txt".into(),
            "pre/imp//empty.txt".into(),
            "pre/imp/a/..".into(),
            "pre/imp/tab\there".into(),
            "pre/imp/d\u{1}ir/x.txt".into(),
            format!("pre/imp/{long}"),
            format!("pre/imp/{long}/x.txt"),
        ];
        for key in &bad {
            let err = alias(key, true).unwrap_err();
            assert_eq!((err.status(), err.code.number()), (400, 9011), "{key:?}");
            let location = format!("{:?}", key.strip_prefix("pre/").unwrap());
            assert!(
                err.message.contains(&location),
                "{} names {location}",
                err.message
            );
        }
        // Flattened, only the file name is made, so only it must be a name.
        assert_eq!(alias("pre/imp/a/./y", false).unwrap().name, "y");
        assert_eq!(
            alias("pre/imp/d\u{1}ir/x.txt", false).unwrap().name,
            "x.txt"
        );
        assert!(alias("pre/imp/a/tab\there", false).is_err());
        assert!(alias(&format!("pre/imp/{long}"), false).is_err());

        let good = alias("pre/imp/sub/deep/c.txt", true).unwrap();
        assert_eq!(
            (good.folders, good.name.as_str(), good.location.as_str()),
            (
                vec!["sub".to_string(), "deep".into()],
                "c.txt",
                "imp/sub/deep/c.txt"
            )
        );
    }
}
