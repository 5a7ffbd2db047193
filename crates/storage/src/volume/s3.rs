//! A volume in an S3 bucket (any S3-compatible endpoint). Every S3 failure of a volume is
//! classified here, by `classify`, and nowhere else.

mod copy;
pub mod role;

use super::{
    CopyError, CopyIn, CopyProgress, Listing, ObjectInfo, VolumeBackend, VolumeError,
    VolumeErrorKind,
};
use crate::s3::{build_client, build_virtual_hosted_client};
use crate::{ByteRange, ByteStream};
use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::Client;
use egress_core::volume::{is_oss_host, Service, ServiceKind};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        // The role's credentials could not be had: STS said why.
        SdkError::DispatchFailure(f) => {
            match f.as_connector_error().and_then(|c| role::role_error_in(c)) {
                Some(refused) => refused.clone(),
                None => failure(K::Transient, "ConnectionFailed"),
            }
        }
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

/// A kept client: the fingerprint of what it was built from, and its role provider if any.
type Entry = (u64, Client, Option<Arc<role::AssumeRole>>);

/// Per-volume S3 clients, built once and reused until the endpoint, region or credentials change.
#[derive(Default)]
pub(super) struct Clients {
    clients: Mutex<HashMap<String, Entry>>,
}

impl Clients {
    /// The client of a volume, and for a volume on an IAM role the provider that assumes it.
    /// `None` when the volume is on a role and the server has no AWS identity of its own.
    pub(super) fn client(
        &self,
        volume_id: &str,
        service: &Service,
        secret: &str,
        cloud: &super::CloudSettings,
    ) -> Option<(Client, Option<Arc<role::AssumeRole>>)> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (
            &service.endpoint,
            &service.region,
            &service.credential_id,
            &service.role_arn,
            secret,
        )
            .hash(&mut hasher);
        let fingerprint = hasher.finish();
        let mut clients = self.lock();
        if let Some((fp, client, role)) = clients.get(volume_id) {
            if *fp == fingerprint {
                return Some((client.clone(), role.clone()));
            }
        }
        let (client, role) = if service.role_arn.is_empty() {
            let credentials =
                Credentials::new(&service.credential_id, secret, None, None, "volume");
            let host = service.endpoint.split("://").nth(1).unwrap_or("");
            let client = if service.kind == ServiceKind::Oss && is_oss_host(host) {
                build_virtual_hosted_client(&service.endpoint, &service.region, credentials)
            } else {
                build_client(Some(&service.endpoint), &service.region, credentials)
            };
            (client, None)
        } else {
            let role = Arc::new(role::AssumeRole::new(
                cloud.aws_identity.as_ref()?,
                &cloud.sts_endpoint,
                &service.region,
                &service.role_arn,
                secret,
                volume_id,
            ));
            let shared: Arc<dyn ProvideCredentials> = role.clone();
            let provider = SharedCredentialsProvider::new(shared);
            let client = build_client(Some(&service.endpoint), &service.region, provider);
            (client, Some(role))
        };
        clients.insert(
            volume_id.to_string(),
            (fingerprint, client.clone(), role.clone()),
        );
        Some((client, role))
    }

    pub(super) fn forget(&self, volume_id: &str) {
        self.lock().remove(volume_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) struct S3Volume {
    client: Client,
    /// For a volume on an IAM role: asked directly by the probe, so that a refused role is
    /// reported as STS words it.
    role: Option<Arc<role::AssumeRole>>,
    bucket: String,
    /// Normalized `scheme://host[:port]`: a platform bucket there can be copied from server-side.
    endpoint: String,
}

impl S3Volume {
    pub(super) fn new(
        client: Client,
        role: Option<Arc<role::AssumeRole>>,
        service: &Service,
    ) -> Self {
        Self {
            client,
            role,
            bucket: service.bucket.clone(),
            endpoint: service.endpoint.clone(),
        }
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

#[async_trait]
impl VolumeBackend for S3Volume {
    async fn probe_read(&self, prefix: &str) -> Result<(), VolumeError> {
        if let Some(role) = &self.role {
            role.assume().await?;
        }
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }

    async fn probe_write(
        &self,
        prefix: &str,
        properties: &Map<String, Value>,
    ) -> Result<(), VolumeError> {
        let key = super::probe_key(prefix);
        let effective = egress_core::volume::effective_properties(properties, &Map::new());
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
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
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        if let Err(e) = deleted {
            tracing::warn!(error = %classify(&e), "could not delete the write probe");
        }
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: i32,
    ) -> Result<Listing, VolumeError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
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

    async fn list_recursive(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<ObjectInfo>, bool), VolumeError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(limit)
            .set_start_after(start_after.map(str::to_string))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let objects = out.contents().iter().map(listed).collect();
        Ok((objects, out.is_truncated() == Some(true)))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, VolumeError> {
        let o = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => {
                return match classify(&e) {
                    // A 404 of any kind: nothing is there.
                    failure if failure.status == Some(404) => Ok(None),
                    failure => Err(failure),
                };
            }
        };
        let mut info = ObjectInfo::new(key.to_string(), o.content_length().unwrap_or(0));
        info.etag = o.e_tag().map(|e| e.trim_matches('"').to_string());
        info.last_modified = o.last_modified().and_then(|t| t.to_millis().ok());
        info.content_type = o.content_type().map(str::to_string);
        info.sse_algorithm = o.server_side_encryption().map(|s| s.as_str().to_string());
        info.kms_key_id = o.ssekms_key_id().map(str::to_string);
        info.storage_class = o.storage_class().map(|c| c.as_str().to_string());
        info.user_metadata = o.metadata().cloned().unwrap_or_default();
        Ok(Some(info))
    }

    async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<Option<String>, VolumeError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|_| VolumeError::new(VolumeErrorKind::InvalidArgument, "InvalidExpiry"))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| classify(&e))?;
        Ok(Some(request.uri().to_string()))
    }

    /// S3 objects are read through presigned URLs, never through Egress.
    async fn read(&self, _key: &str, _range: Option<ByteRange>) -> Result<ByteStream, VolumeError> {
        Err(VolumeError::new(VolumeErrorKind::Unsupported, "NotLocal"))
    }

    async fn copy_in(
        &self,
        req: &CopyIn<'_>,
        progress: &dyn CopyProgress,
    ) -> Result<(), CopyError> {
        self.export(req, progress).await
    }

    /// Every answer moves the calling job's activity (see `blob::activity`), and so does every
    /// part a copy completes.
    fn reports_activity(&self) -> bool {
        true
    }

    async fn open_uploads(&self, key: &str) -> Result<Vec<String>, VolumeError> {
        let mut ids = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(key)
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            ids.extend(
                page.uploads()
                    .iter()
                    .filter(|u| u.key() == Some(key))
                    .filter_map(|u| u.upload_id().map(str::to_string)),
            );
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            // Keys sort after `key` once the listing has passed it.
            let past = key_marker.as_deref().is_some_and(|k| k > key);
            if page.is_truncated() != Some(true) || key_marker.is_none() || past {
                return Ok(ids);
            }
        }
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), VolumeError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::copy_object::CopyObjectError;

    fn service_error(code: Option<&str>, status: u16) -> VolumeError {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let err = SdkError::service_error(
            CopyObjectError::generic(meta.build()),
            HttpResponse::new(
                status.try_into().unwrap(),
                aws_smithy_types::body::SdkBody::empty(),
            ),
        );
        classify(&err)
    }

    #[test]
    fn service_errors_get_their_kind_once() {
        use VolumeErrorKind as K;
        for (code, status, kind) in [
            (Some("PreconditionFailed"), 412, K::PreconditionFailed),
            (None, 412, K::PreconditionFailed),
            (Some("AccessDenied"), 403, K::AccessDenied),
            (None, 403, K::AccessDenied),
            (Some("SignatureDoesNotMatch"), 403, K::AccessDenied),
            (Some("NoSuchBucket"), 404, K::NoSuchBucket),
            (Some("NoSuchUpload"), 404, K::NotFound),
            (None, 404, K::NotFound),
            (Some("InvalidKMSKey"), 400, K::KmsKey),
            (Some("EntityTooLarge"), 400, K::TooLarge),
            (Some("InvalidArgument"), 400, K::InvalidArgument),
            (Some("SlowDown"), 503, K::Throttled),
            (Some("InternalError"), 500, K::Transient),
            (Some("RequestTimeout"), 400, K::Transient),
            (Some("AccessDenied"), 200, K::Transient),
            (Some("MalformedXML"), 400, K::Other),
        ] {
            let e = service_error(code, status);
            assert_eq!(e.kind, kind, "{code:?} {status}");
            assert_eq!(e.status, Some(status));
        }
        assert_eq!(
            service_error(None, 403).to_string(),
            "AccessDenied (HTTP 403)"
        );
    }
}
