//! Volumes: the user's buckets and folders that exports write to and imports read from. Each
//! kind of volume is one `VolumeBackend` (S3 in `s3`, local folders in `local`);
//! `VolumeClients::open` is the one place that picks the backend for a volume record. Keys here
//! are full object keys (prefix included); callers build them with `volume::object_key`.

mod azure;
mod gcs;
mod local;
mod s3;

pub use gcs::{parse_private_key, DEFAULT_GCS_ENDPOINT};
pub use s3::classify;
pub use s3::role::{AwsIdentity, DEFAULT_STS_ENDPOINT};

use super::{ByteRange, ByteStream, ObjectStore};
use crate::activity::Activity;
use async_trait::async_trait;
use egress_core::volume::{ServiceKind, VolumePolicy};
use egress_store::VolumeRec;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// User metadata key of the stamp every exported object carries (`x-amz-meta-egress-export-id`):
/// the id of the export that wrote it.
pub const STAMP: &str = "egress-export-id";

/// A failed call to a volume, classified once where it happened, so callers decide by kind:
/// retry, or tell the user what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeError {
    pub kind: VolumeErrorKind,
    /// The S3 error code (`AccessDenied`, `NoSuchBucket`…) or a short description, for messages.
    pub code: String,
    pub status: Option<u16>,
}

/// What went wrong, as far as a caller needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeErrorKind {
    /// Nothing is at the key, or the upload is gone (a 404).
    NotFound,
    /// The bucket does not exist.
    NoSuchBucket,
    /// The credentials, the bucket policy or the file system refuse the call.
    AccessDenied,
    /// The object's KMS key cannot be used.
    KmsKey,
    /// The volume refuses an object this large.
    TooLarge,
    /// A conditional write met an existing object (`If-None-Match: *`).
    PreconditionFailed,
    /// The volume refused an argument, such as a continuation token.
    InvalidArgument,
    /// The key cannot name anything this volume serves (outside a local root, a special file).
    InvalidKey,
    /// The volume asks us to slow down.
    Throttled,
    /// A timeout, a dropped connection, a 5xx, an error inside a 200: worth another attempt.
    Transient,
    /// This volume does not offer the call.
    Unsupported,
    /// Anything else; the user must fix something.
    Other,
}

impl VolumeError {
    pub fn new(kind: VolumeErrorKind, code: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            status: None,
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            VolumeErrorKind::Throttled | VolumeErrorKind::Transient
        )
    }
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} (HTTP {s})", self.code),
            None => f.write_str(&self.code),
        }
    }
}

impl std::error::Error for VolumeError {}

/// What a volume says about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: i64,
    pub etag: Option<String>,
    /// The MD5 of the object's bytes in hex, where the volume states it apart from the ETag.
    pub md5: Option<String>,
    pub last_modified: Option<i64>,
    pub content_type: Option<String>,
    pub sse_algorithm: Option<String>,
    pub kms_key_id: Option<String>,
    pub storage_class: Option<String>,
    pub user_metadata: HashMap<String, String>,
}

impl ObjectInfo {
    fn new(key: String, size: i64) -> Self {
        Self {
            key,
            size,
            etag: None,
            md5: None,
            last_modified: None,
            content_type: None,
            sse_algorithm: None,
            kms_key_id: None,
            storage_class: None,
            user_metadata: HashMap::new(),
        }
    }

    /// Whether the export `export_id` wrote this object (its stamp says so).
    pub fn stamped_by(&self, export_id: &str) -> bool {
        self.user_metadata
            .get(STAMP)
            .is_some_and(|s| s == export_id)
    }
}

/// One page of a delimited listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    /// Full keys of the "sub-folders", ending with `/`.
    pub prefixes: Vec<String>,
    pub next_token: Option<String>,
}

/// One kind of volume. Every call classifies its own failures (`VolumeError`).
#[async_trait]
pub trait VolumeBackend: Send + Sync {
    /// Can we list under `prefix`? (Read access, and the bucket exists.)
    async fn probe_read(&self, prefix: &str) -> Result<(), VolumeError>;

    /// Can we write under `prefix`? Writes and removes a small probe object, with the volume's
    /// default encryption (bucket policies may demand it).
    async fn probe_write(
        &self,
        prefix: &str,
        properties: &Map<String, Value>,
    ) -> Result<(), VolumeError>;

    /// One page of the objects and sub-folders directly under `prefix` (delimiter `/`).
    async fn list(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: i32,
    ) -> Result<Listing, VolumeError>;

    /// Every object under `prefix` (no delimiter), in key order after `start_after`; the flag
    /// says whether more follow.
    async fn list_recursive(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<ObjectInfo>, bool), VolumeError>;

    /// Facts about one object, or `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, VolumeError>;

    /// A URL that reads `key` without Egress for `ttl`; `None` (the default) for volumes Egress
    /// serves itself through its own signed URLs.
    async fn presigned_get(
        &self,
        _key: &str,
        _ttl: Duration,
    ) -> Result<Option<String>, VolumeError> {
        Ok(None)
    }

    /// Reads `key`, or one inclusive range of it, for volumes Egress serves itself.
    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream, VolumeError>;

    /// Copies a platform blob to `req.key` and makes sure what arrived is the blob, written by
    /// this export. Progress and the multipart uploads it opens are reported to `progress`.
    async fn copy_in(&self, req: &CopyIn<'_>, progress: &dyn CopyProgress)
        -> Result<(), CopyError>;

    /// Whether a copy moves the calling job's `Activity` as it goes, so that a stalled copy can
    /// be told from a slow one. A volume that reports nothing until a copy is done is not
    /// watched for stalls.
    fn reports_activity(&self) -> bool {
        false
    }

    /// The multipart uploads open on exactly `key`; none where the volume has no such thing.
    async fn open_uploads(&self, _key: &str) -> Result<Vec<String>, VolumeError> {
        Ok(Vec::new())
    }

    /// Aborts a multipart upload on `key`.
    async fn abort_upload(&self, _key: &str, _upload_id: &str) -> Result<(), VolumeError> {
        Ok(())
    }
}

/// What a read-only kind of volume (GCS, Azure) answers to a write.
fn read_only() -> VolumeError {
    VolumeError::new(VolumeErrorKind::Unsupported, "ReadOnly")
}

/// A platform blob to copy into a volume.
pub struct CopyIn<'a> {
    pub platform: &'a dyn ObjectStore,
    pub blob_key: &'a str,
    pub size: u64,
    /// The file's recorded checksums: MD5 in hex, CRC32C in base64.
    pub md5: Option<&'a str>,
    pub crc32c: Option<&'a str>,
    /// Where the object goes on the volume (the full key).
    pub key: &'a str,
    /// The export's effective properties (SSE, KMS key, ACL, storage class).
    pub properties: &'a Map<String, Value>,
    /// With `false`, an object already at `key` is left alone (`CopyError::Exists`), unless it
    /// is this export's own from an earlier attempt.
    pub overwrite: bool,
    /// The export's id, stamped on the object (`STAMP`).
    pub export_id: &'a str,
    pub limits: &'a CopyLimits,
}

/// How copies may use the volume and memory; one set is shared by all of a process's copies.
pub struct CopyLimits {
    /// Objects up to this size are copied server-side in one request.
    pub multipart_cutoff: u64,
    /// The part size wanted for multipart copies (raised for objects of over 10,000 parts).
    pub part_size: u64,
    /// Parts of one copy in flight at once.
    pub part_parallelism: usize,
    /// Part buffers of the memory budget, shared by all streamed copies.
    pub buffers: Semaphore,
}

impl CopyLimits {
    /// Holds room for one part buffer of the memory budget.
    async fn part_buffer(&self) -> Option<SemaphorePermit<'_>> {
        // Waiting for memory is no stall of the volume.
        let _busy = Activity::current().map(|a| a.busy());
        self.buffers.acquire().await.ok()
    }
}

/// What a copy tells its caller as it goes, and the caller's answer: an error stops the copy.
/// Called per part or per object, never per chunk of bytes.
#[async_trait]
pub trait CopyProgress: Send + Sync {
    /// `bytes` more reached the volume.
    async fn bytes_copied(&self, bytes: u64) -> Result<(), CopyError>;

    /// A multipart upload is about to be created on the key; `open` names the uploads already
    /// open there (other writers', or an earlier attempt's).
    async fn upload_intent(&self, open: &[String]) -> Result<(), CopyError>;

    /// A multipart upload was created. On an error the copy aborts it and stops.
    async fn upload_started(&self, upload_id: &str) -> Result<(), CopyError>;

    /// The multipart upload was completed or aborted.
    async fn upload_ended(&self);
}

/// Why a copy into a volume did not complete.
#[derive(Debug)]
pub enum CopyError {
    /// A call to the volume failed.
    Volume(VolumeError),
    /// `overwrite=false`, and an object that is not this export's holds the key.
    Exists,
    /// Platform storage could not be read.
    Platform(String),
    /// The platform's bytes do not match the file's recorded checksum.
    Corrupt,
    /// The object read back is not the one written; says how.
    Unverified(&'static str),
    /// Worth another attempt: the object is not visible yet, a helper task failed, or the
    /// caller's bookkeeping failed.
    Retry(String),
    /// The caller no longer wants the copy (its job is owned elsewhere now).
    Cancelled,
}

impl CopyError {
    fn platform(e: anyhow::Error) -> Self {
        CopyError::Platform(format!("{e:#}"))
    }
}

impl From<VolumeError> for CopyError {
    /// A conditional write that met an object is the `Exists` outcome.
    fn from(e: VolumeError) -> Self {
        match e.kind {
            VolumeErrorKind::PreconditionFailed => CopyError::Exists,
            _ => CopyError::Volume(e),
        }
    }
}

/// Runs CPU-bound or blocking work (hashing a part, file-system calls) on the blocking pool: the
/// background runtime has one thread, and hashing many MiB on it would hold up every other job.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CopyError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CopyError::Retry(format!("hashing failed: {e}")))
}

/// A fresh key for a write probe under `prefix`.
fn probe_key(prefix: &str) -> String {
    egress_core::volume::object_key(
        prefix,
        &format!(".egress-write-probe-{}", egress_core::util::random_hex(8)),
    )
}

/// Why a volume's backend could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The server's policy refuses the volume's location (a local folder outside the declared
    /// roots, or one that moved).
    Refused(&'static str),
    /// This server cannot reach volumes of this kind.
    Unreachable(&'static str),
}

/// What the server itself brings to reach volumes.
#[derive(Debug, Clone, Default)]
pub struct CloudSettings {
    /// The server's own AWS identity, which S3 volumes on an IAM role trust; none turns such
    /// volumes off.
    pub aws_identity: Option<AwsIdentity>,
    /// Where AssumeRole is sent; empty means `s3::role::DEFAULT_STS_ENDPOINT`.
    pub sts_endpoint: String,
    /// Where Azure volumes' applications sign in; empty means Microsoft Entra ID.
    pub azure_authority_host: String,
    /// Storage accounts whose shared key the operator gave the server (`account`, `key`):
    /// volumes on them sign with the key (Azurite, development).
    pub azure_shared_keys: Vec<(String, String)>,
}

/// Opens volumes' backends, keeping what is worth reusing between calls (S3 clients).
#[derive(Default)]
pub struct VolumeClients {
    s3: s3::Clients,
    cloud: CloudSettings,
    /// One HTTP client (its connection pool) for the volumes reached over plain HTTPS APIs.
    http: std::sync::OnceLock<reqwest::Client>,
}

impl VolumeClients {
    pub fn new(cloud: CloudSettings) -> Self {
        Self {
            cloud,
            ..Default::default()
        }
    }

    /// The backend of a volume, given its unsealed secret: the one place that picks the
    /// implementation for a kind of volume. A local volume's folder is checked against the
    /// policy at every use, not only when the volume was made.
    pub fn open(
        &self,
        volume: &VolumeRec,
        secret: &str,
        policy: &VolumePolicy,
    ) -> Result<Arc<dyn VolumeBackend>, OpenError> {
        let service = &volume.service;
        Ok(match service.kind {
            ServiceKind::S3 | ServiceKind::Oss => {
                let (client, role) = self
                    .s3
                    .client(&volume.id, service, secret, &self.cloud)
                    .ok_or(OpenError::Unreachable(
                        "S3 volumes on an IAM role need the server's own AWS identity \
                         (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), and this server has none",
                    ))?;
                Arc::new(s3::S3Volume::new(client, role, service))
            }
            ServiceKind::Local => {
                Arc::new(local::LocalVolume::open(service, policy).map_err(OpenError::Refused)?)
            }
            ServiceKind::Azure => {
                let shared = self
                    .cloud
                    .azure_shared_keys
                    .iter()
                    .find(|(account, _)| *account == service.account)
                    .map(|(_, key)| key.as_str());
                Arc::new(
                    azure::AzureVolume::open(
                        service,
                        secret,
                        &self.cloud.azure_authority_host,
                        shared,
                    )
                    .map_err(OpenError::Refused)?,
                )
            }
            ServiceKind::Gcs => Arc::new(
                gcs::GcsVolume::open(self.http(), service, secret).map_err(OpenError::Refused)?,
            ),
        })
    }

    fn http(&self) -> reqwest::Client {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(Duration::from_secs(60))
                    .build()
                    .unwrap_or_default()
            })
            .clone()
    }

    /// Drops what was kept for a deleted volume.
    pub fn forget(&self, volume_id: &str) {
        self.s3.forget(volume_id);
    }
}
