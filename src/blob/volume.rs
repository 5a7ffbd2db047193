//! Volume backends: the user's S3 bucket (any S3-compatible endpoint), or a local folder.
//! Keys here are full object keys (prefix included); callers build them with `volume::object_key`.

use super::local_root::{self, Entry, LocalRoot};
use super::s3::build_client;
use crate::store::VolumeRec;
use crate::volume::{Service, ServiceKind, VolumePolicy};
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::Client;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

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

const THROTTLING_CODES: &[&str] = &["SlowDown", "Throttling", "ThrottlingException"];
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeTooSkewed",
];

/// Classifies an SDK error: the one place S3 failures get their kind. Timeouts, transport
/// failures, 5xx and throttling are retryable; everything the user must fix (access, missing
/// bucket, bad key…) is not.
pub fn classify<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> VolumeError {
    use VolumeErrorKind as K;
    let status = err.raw_response().map(|r| r.status().as_u16());
    let failure = |kind, code: &str| VolumeError {
        kind,
        code: code.into(),
        status,
    };
    if status == Some(412) {
        let code = err.code().unwrap_or("PreconditionFailed");
        return failure(K::PreconditionFailed, code);
    }
    match err {
        SdkError::TimeoutError(_) => failure(K::Transient, "Timeout"),
        // A connect or first-byte timeout comes from the connector.
        SdkError::DispatchFailure(f) if f.is_timeout() => failure(K::Transient, "Timeout"),
        SdkError::DispatchFailure(_) => failure(K::Transient, "ConnectionFailed"),
        SdkError::ResponseError(_) => failure(K::Transient, "BadResponse"),
        SdkError::ConstructionFailure(_) => failure(K::Other, "InvalidRequest"),
        _ => {
            let code = err
                .code()
                .map(str::to_string)
                .unwrap_or_else(|| match status {
                    Some(404) => "NotFound".into(),
                    Some(403) => "AccessDenied".into(),
                    Some(s) => format!("HTTP{s}"),
                    None => "Unknown".into(),
                });
            // S3 documents that CopyObject, UploadPartCopy and CompleteMultipartUpload may
            // answer 200 and put an error in the body once the work is under way; whether or
            // not it took effect, the call is safe to repeat.
            let in_200 = status.is_some_and(|s| (200..300).contains(&s));
            let kind = match code.as_str() {
                "PreconditionFailed" => K::PreconditionFailed,
                c if THROTTLING_CODES.contains(&c) => K::Throttled,
                _ if in_200 || status.is_some_and(|s| s >= 500) => K::Transient,
                c if TRANSIENT_CODES.contains(&c) => K::Transient,
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AllAccessDisabled" => K::AccessDenied,
                "NoSuchBucket" => K::NoSuchBucket,
                "KMS.NotFoundException"
                | "KMS.DisabledException"
                | "KMS.AccessDeniedException"
                | "InvalidKMSKey" => K::KmsKey,
                "EntityTooLarge" => K::TooLarge,
                "InvalidArgument" => K::InvalidArgument,
                "NoSuchKey" | "NoSuchUpload" | "NotFound" => K::NotFound,
                _ if status == Some(404) => K::NotFound,
                _ => K::Other,
            };
            VolumeError { kind, code, status }
        }
    }
}

/// Classifies a local volume's file-system error.
pub fn io_error(e: std::io::Error) -> VolumeError {
    use VolumeErrorKind as K;
    let (kind, code) = match e.kind() {
        _ if local_root::is_escape(&e) => (K::InvalidKey, "OutsideRoot"),
        std::io::ErrorKind::NotFound => (K::NotFound, "NoSuchKey"),
        std::io::ErrorKind::PermissionDenied => (K::AccessDenied, "AccessDenied"),
        std::io::ErrorKind::Unsupported => (K::InvalidKey, "NotARegularFile"),
        std::io::ErrorKind::InvalidInput => (K::InvalidKey, "InvalidKey"),
        _ => (K::Other, "IoError"),
    };
    VolumeError::new(kind, code)
}

/// What a volume says about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: i64,
    pub etag: Option<String>,
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
            last_modified: None,
            content_type: None,
            sse_algorithm: None,
            kms_key_id: None,
            storage_class: None,
            user_metadata: HashMap::new(),
        }
    }

    /// The `metadata` object of a VolumeObject.
    pub fn metadata_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("size".into(), json!(self.size));
        m.insert("etag".into(), json!(self.etag));
        m.insert("content_type".into(), json!(self.content_type));
        m.insert(
            "last_modified".into(),
            json!(self.last_modified.map(crate::util::format_ms)),
        );
        m.insert("sse_algorithm".into(), json!(self.sse_algorithm));
        m.insert("sse_aws_kms_key_id".into(), json!(self.kms_key_id));
        m.insert("storage_class".into(), json!(self.storage_class));
        for (k, v) in &self.user_metadata {
            m.insert(format!("x-amz-meta-{k}"), json!(v));
        }
        Value::Object(m)
    }
}

/// What a listing says about an object.
fn listed(o: &aws_sdk_s3::types::Object) -> ObjectInfo {
    let mut info = ObjectInfo::new(
        o.key().unwrap_or_default().to_string(),
        o.size().unwrap_or(0),
    );
    info.etag = o.e_tag().map(|e| e.trim_matches('"').to_string());
    info.last_modified = o.last_modified().and_then(|t| t.to_millis().ok());
    info.storage_class = o.storage_class().map(|c| c.as_str().to_string());
    info
}

/// One page of a delimited listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    /// Full keys of the "sub-folders", ending with `/`.
    pub prefixes: Vec<String>,
    pub next_token: Option<String>,
}

pub enum VolumeBackend {
    S3 { client: Client, bucket: String },
    Local { root: LocalRoot },
}

/// Runs a local volume's file-system call on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, VolumeError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(io_error),
        Err(e) => Err(io_error(std::io::Error::other(e))),
    }
}

/// Per-volume S3 clients, built once and reused until the endpoint, region or credentials change.
#[derive(Default)]
pub struct VolumeClients {
    clients: Mutex<HashMap<String, (u64, Client)>>,
}

impl VolumeClients {
    /// The backend of a volume, or why it cannot be reached. A local volume's root is checked
    /// against the policy at every use, not only when the volume was made.
    pub fn backend(
        &self,
        volume: &VolumeRec,
        secret: &str,
        policy: &VolumePolicy,
    ) -> Result<VolumeBackend, &'static str> {
        let service = &volume.service;
        match service.kind {
            ServiceKind::Gcs => {
                Err("GCS volumes are stored but cannot be reached from this server")
            }
            ServiceKind::Local => match local_root::resolve(&service.root, policy) {
                // Resolving again must land on the same folder: a symlink planted on the way
                // since the volume was made does not move it.
                Ok(root) if root.path() == std::path::Path::new(&service.root) => {
                    Ok(VolumeBackend::Local { root })
                }
                Ok(_) => Err("the local volume's folder has moved; it is no longer served"),
                Err(why) => Err(why),
            },
            ServiceKind::S3 => Ok(VolumeBackend::S3 {
                client: self.client(&volume.id, service, secret),
                bucket: service.bucket.clone(),
            }),
        }
    }

    fn client(&self, volume_id: &str, service: &Service, secret: &str) -> Client {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (
            &service.endpoint,
            &service.region,
            &service.credential_id,
            secret,
        )
            .hash(&mut hasher);
        let fingerprint = hasher.finish();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((fp, client)) = clients.get(volume_id) {
            if *fp == fingerprint {
                return client.clone();
            }
        }
        let credentials = Credentials::new(&service.credential_id, secret, None, None, "volume");
        let client = build_client(Some(&service.endpoint), &service.region, credentials);
        clients.insert(volume_id.to_string(), (fingerprint, client.clone()));
        client
    }

    /// Drops a deleted volume's client.
    pub fn forget(&self, volume_id: &str) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(volume_id);
    }
}

impl VolumeBackend {
    /// Can we list under `prefix`? (Read access, and the bucket exists.)
    pub async fn probe_read(&self, prefix: &str) -> Result<(), VolumeError> {
        match self {
            VolumeBackend::S3 { client, bucket } => {
                client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .max_keys(1)
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(())
            }
            VolumeBackend::Local { root } => {
                let root = root.clone();
                blocking(move || root.check()).await
            }
        }
    }

    /// Can we write under `prefix`? Writes and deletes a small probe object, with the volume's
    /// default encryption (bucket policies may demand it).
    pub async fn probe_write(
        &self,
        prefix: &str,
        properties: &Map<String, Value>,
    ) -> Result<(), VolumeError> {
        let key = crate::volume::object_key(
            prefix,
            &format!(".egress-write-probe-{}", crate::util::random_hex(8)),
        );
        match self {
            VolumeBackend::S3 { client, bucket } => {
                let effective = crate::volume::effective_properties(properties, &Map::new());
                let mut put = client
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(SdkBody::from_static(b"egress"));
                match effective["sse_algorithm"].as_str() {
                    Some("aws:kms") => {
                        put = put.server_side_encryption("aws:kms".into());
                        if let Some(k) = effective["sse_aws_kms_key_id"].as_str() {
                            put = put.ssekms_key_id(k);
                        }
                    }
                    Some(alg) => put = put.server_side_encryption(alg.into()),
                    None => {}
                }
                put.send().await.map_err(|e| classify(&e))?;
                if let Err(e) = client.delete_object().bucket(bucket).key(&key).send().await {
                    tracing::warn!(error = %classify(&e), "could not delete the write probe");
                }
                Ok(())
            }
            VolumeBackend::Local { root } => {
                let root = root.clone();
                blocking(move || {
                    use std::io::Write;
                    let (mut file, probe) = root.create_temp(&key)?;
                    let written = file.write_all(b"egress");
                    probe.discard();
                    written
                })
                .await
            }
        }
    }

    /// Lists objects and sub-folders directly under `prefix` (delimiter `/`).
    pub async fn list(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: i32,
    ) -> Result<Listing, VolumeError> {
        match self {
            VolumeBackend::S3 { client, bucket } => {
                let out = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .delimiter("/")
                    .max_keys(limit)
                    .set_continuation_token(token.map(str::to_string))
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                let objects = out.contents().iter().map(listed).collect();
                let prefixes = out
                    .common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string))
                    .collect();
                let next_token = if out.is_truncated() == Some(true) {
                    out.next_continuation_token().map(str::to_string)
                } else {
                    None
                };
                Ok(Listing {
                    objects,
                    prefixes,
                    next_token,
                })
            }
            VolumeBackend::Local { root } => list_local(root, prefix, token, limit as usize).await,
        }
    }

    /// Every object under `prefix` (no delimiter), in key order after `start_after`; the
    /// flag says whether more follow.
    pub async fn list_recursive(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<ObjectInfo>, bool), VolumeError> {
        match self {
            VolumeBackend::S3 { client, bucket } => {
                let out = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .max_keys(limit)
                    .set_start_after(start_after.map(str::to_string))
                    .send()
                    .await
                    .map_err(|e| classify(&e))?;
                let objects = out.contents().iter().map(listed).collect();
                Ok((objects, out.is_truncated() == Some(true)))
            }
            VolumeBackend::Local { root } => {
                let (root, prefix) = (root.clone(), prefix.to_string());
                let start_after = start_after.map(str::to_string);
                let mut keys = blocking(move || {
                    let mut keys = Vec::new();
                    let mut stack = vec![String::new()];
                    while let Some(dir) = stack.pop() {
                        for (name, entry) in root.read_dir(&dir)?.unwrap_or_default() {
                            let key = crate::volume::object_key(&dir, &name);
                            match entry {
                                Entry::Folder => stack.push(key),
                                Entry::File { .. } if name.starts_with(".egress-") => {}
                                Entry::File { .. }
                                    if !key.starts_with(&prefix)
                                        || start_after.as_ref().is_some_and(|s| &key <= s) => {}
                                Entry::File { size, modified_ms } => {
                                    let mut info = ObjectInfo::new(key, size as i64);
                                    info.last_modified = modified_ms;
                                    keys.push(info);
                                }
                            }
                        }
                    }
                    Ok(keys)
                })
                .await?;
                keys.sort_by(|a, b| a.key.cmp(&b.key));
                let more = keys.len() > limit as usize;
                keys.truncate(limit as usize);
                Ok((keys, more))
            }
        }
    }

    /// A presigned GET of `key` for S3; `None` for backends Egress serves itself.
    pub async fn presigned_get(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<String>, VolumeError> {
        match self {
            VolumeBackend::S3 { client, bucket } => {
                let config =
                    aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl).map_err(|_| {
                        VolumeError::new(VolumeErrorKind::InvalidArgument, "InvalidExpiry")
                    })?;
                let request = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .presigned(config)
                    .await
                    .map_err(|e| classify(&e))?;
                Ok(Some(request.uri().to_string()))
            }
            VolumeBackend::Local { .. } => Ok(None),
        }
    }

    /// Reads a local volume's object (S3 objects are read through presigned URLs).
    pub async fn read_local(
        &self,
        key: &str,
        range: Option<super::ByteRange>,
    ) -> Result<super::ByteStream, VolumeError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let VolumeBackend::Local { root } = self else {
            return Err(VolumeError::new(VolumeErrorKind::Unsupported, "NotLocal"));
        };
        let (root, key) = (root.clone(), key.to_string());
        let mut file = tokio::fs::File::from_std(blocking(move || root.open_file(&key)).await?);
        Ok(match range {
            None => Box::pin(tokio_util::io::ReaderStream::new(file)),
            Some(r) => {
                file.seek(std::io::SeekFrom::Start(r.start))
                    .await
                    .map_err(io_error)?;
                Box::pin(tokio_util::io::ReaderStream::new(file.take(r.length())))
            }
        })
    }

    /// Facts about one object, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, VolumeError> {
        match self {
            VolumeBackend::S3 { client, bucket } => {
                match client.head_object().bucket(bucket).key(key).send().await {
                    Ok(o) => {
                        let mut info =
                            ObjectInfo::new(key.to_string(), o.content_length().unwrap_or(0));
                        info.etag = o.e_tag().map(|e| e.trim_matches('"').to_string());
                        info.last_modified = o.last_modified().and_then(|t| t.to_millis().ok());
                        info.content_type = o.content_type().map(str::to_string);
                        info.sse_algorithm =
                            o.server_side_encryption().map(|s| s.as_str().to_string());
                        info.kms_key_id = o.ssekms_key_id().map(str::to_string);
                        info.storage_class = o.storage_class().map(|c| c.as_str().to_string());
                        info.user_metadata = o.metadata().cloned().unwrap_or_default();
                        Ok(Some(info))
                    }
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                    Err(e) => match classify(&e) {
                        // A 404 of any kind: nothing is there.
                        failure if failure.status == Some(404) => Ok(None),
                        failure => Err(failure),
                    },
                }
            }
            VolumeBackend::Local { root } => {
                let (root, owned_key) = (root.clone(), key.to_string());
                match blocking(move || root.stat(&owned_key)).await? {
                    Some(Entry::File { size, modified_ms }) => {
                        let mut info = ObjectInfo::new(key.to_string(), size as i64);
                        info.last_modified = modified_ms;
                        Ok(Some(info))
                    }
                    Some(Entry::Folder) | None => Ok(None),
                }
            }
        }
    }
}

/// A delimited listing of a local folder, in key order, paged by the last key returned.
async fn list_local(
    root: &LocalRoot,
    prefix: &str,
    token: Option<&str>,
    limit: usize,
) -> Result<Listing, VolumeError> {
    let (dir_key, name_prefix) = match prefix.rfind('/') {
        Some(i) => (prefix[..i].to_string(), prefix[i + 1..].to_string()),
        None => (String::new(), prefix.to_string()),
    };
    let entries = {
        let (root, dir_key) = (root.clone(), dir_key.clone());
        blocking(move || root.read_dir(&dir_key)).await?
    };
    let mut found: Vec<(String, Option<ObjectInfo>)> = Vec::new();
    for (name, entry) in entries.unwrap_or_default() {
        if !name.starts_with(&name_prefix) || name.starts_with(".egress-") {
            continue;
        }
        let key = crate::volume::object_key(&dir_key, &name);
        match entry {
            Entry::Folder => found.push((format!("{key}/"), None)),
            Entry::File { size, modified_ms } => {
                let mut info = ObjectInfo::new(key.clone(), size as i64);
                info.last_modified = modified_ms;
                found.push((key, Some(info)));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut listing = Listing::default();
    let after = token.unwrap_or("");
    for (taken, (key, info)) in found
        .into_iter()
        .filter(|(k, _)| k.as_str() > after)
        .enumerate()
    {
        if taken == limit {
            listing.next_token = listing
                .objects
                .last()
                .map(|o| o.key.clone())
                .max(listing.prefixes.last().cloned());
            break;
        }
        match info {
            Some(i) => listing.objects.push(i),
            None => listing.prefixes.push(key),
        }
    }
    Ok(listing)
}
