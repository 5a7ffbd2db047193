//! How an export's bytes reach an S3 volume: server-side CopyObject, server-side multipart
//! copy, or a streamed upload from platform storage; then a look at what arrived. Every object
//! written carries the export's properties and stamp, and `overwrite=false` is enforced by the
//! store itself with `If-None-Match: *`.

use super::{classify, S3Volume};
use crate::volume::{
    off_thread, CopyError, CopyIn, CopyProgress, VolumeBackend, VolumeErrorKind, STAMP,
};
use crate::{ByteRange, ByteStream, Hasher};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, MetadataDirective, ObjectCannedAcl,
    ServerSideEncryption, StorageClass,
};
use base64::Engine as _;
use bytes::BytesMut;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::Value;

const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;

/// Applies the export's properties and stamp to a write request (PutObject, CopyObject,
/// CreateMultipartUpload share these setters but not a trait).
macro_rules! with_properties {
    ($request:expr, $req:expr) => {{
        let props = $req.properties;
        let text = |k: &str| {
            props
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let mut r = $request.metadata(STAMP, $req.export_id);
        if let Some(alg) = text("sse_algorithm") {
            r = r.server_side_encryption(ServerSideEncryption::from(alg));
        }
        if let Some(key) = text("sse_aws_kms_key_id") {
            r = r.ssekms_key_id(key);
        }
        if let Some(acl) = text("aws_canned_acl") {
            r = r.acl(ObjectCannedAcl::from(acl));
        }
        if let Some(class) = text("aws_storage_class") {
            r = r.storage_class(StorageClass::from(class));
        }
        r
    }};
}

/// The part size for an object: at least the configured size and enough for ≤10,000 parts.
fn part_size_for(size: u64, wanted: u64) -> u64 {
    wanted
        .max(size.div_ceil(MAX_PARTS))
        .clamp(MIN_PART, MAX_PART)
}

fn ranges(size: u64, part: u64) -> Vec<(i32, ByteRange)> {
    (0..size.div_ceil(part))
        .map(|i| {
            (
                i as i32 + 1,
                ByteRange {
                    start: i * part,
                    end: ((i + 1) * part).min(size) - 1,
                },
            )
        })
        .collect()
}

/// `bucket/key` for CopySource, with the key percent-encoded.
fn copy_source(bucket: &str, key: &str) -> String {
    let encoded: String = key
        .split('/')
        .map(|seg| {
            url::form_urlencoded::byte_serialize(seg.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/");
    format!("{bucket}/{encoded}")
}

/// Counts an S3 request by operation and outcome, and classifies its failure.
fn observed<T, E: ProvideErrorMetadata>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<T, CopyError> {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("egress_s3_requests_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
    result.map_err(|e| classify(&e).into())
}

async fn read_all(mut stream: ByteStream, capacity: usize) -> Result<bytes::Bytes, CopyError> {
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk.map_err(|e| CopyError::Platform(e.to_string()))?);
    }
    Ok(buf.freeze())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl S3Volume {
    /// Writes the blob unless this export's object is already there, then checks what arrived
    /// when the write itself did not prove it.
    pub(super) async fn export(
        &self,
        req: &CopyIn<'_>,
        progress: &dyn CopyProgress,
    ) -> Result<(), CopyError> {
        if !self.write(req, progress).await? {
            self.verify(req).await?;
        }
        Ok(())
    }

    /// Picks the copy strategy (DESIGN.md): server-side when the platform bucket is on the
    /// volume's endpoint, streamed otherwise or when the volume's credentials may not read the
    /// platform bucket. True when the write proved the bytes (a CopyObject whose ETag is the
    /// file's MD5).
    async fn write(
        &self,
        req: &CopyIn<'_>,
        progress: &dyn CopyProgress,
    ) -> Result<bool, CopyError> {
        if !req.overwrite {
            if let Some(info) = self.head(req.key).await? {
                return if info.stamped_by(req.export_id) {
                    Ok(false)
                } else {
                    Err(CopyError::Exists)
                };
            }
        }
        let source = req
            .platform
            .s3_source(req.blob_key)
            .filter(|s| s.endpoint == self.endpoint);
        let server_side = match &source {
            Some(src) if req.size <= req.limits.multipart_cutoff => {
                // A single-part copy without KMS answers with the MD5 as its ETag: verified.
                let kms =
                    req.properties.get("sse_algorithm").and_then(|v| v.as_str()) == Some("aws:kms");
                let copied = self.copy_object(req, &src.bucket, &src.key).await;
                Some(copied.map(|etag| !kms && etag.is_some() && etag.as_deref() == req.md5))
            }
            Some(src) => Some(
                self.multipart_copy(req, progress, &src.bucket, &src.key)
                    .await
                    .map(|()| false),
            ),
            None => None,
        };
        let refused = matches!(
            &server_side,
            Some(Err(CopyError::Volume(e))) if e.kind == VolumeErrorKind::AccessDenied
        );
        if refused {
            tracing::info!(export = %req.export_id, "server-side copy refused; streaming instead");
        }
        let result = match server_side {
            Some(done) if !refused => done,
            _ => self.streamed_upload(req, progress).await.map(|()| false),
        };
        match result {
            // A retry of ours may have written it already.
            Err(CopyError::Exists) => match self.head(req.key).await? {
                Some(info) if info.stamped_by(req.export_id) => Ok(false),
                _ => Err(CopyError::Exists),
            },
            other => other,
        }
    }

    /// Reads the object back: it must be ours, of the right size, and where S3 gives an MD5 (a
    /// single-part object without KMS) it must match the file's.
    async fn verify(&self, req: &CopyIn<'_>) -> Result<(), CopyError> {
        let info = self
            .head(req.key)
            .await?
            .ok_or_else(|| CopyError::Retry("the object is not visible yet".into()))?;
        if !info.stamped_by(req.export_id) {
            return Err(CopyError::Unverified("another writer replaced the object"));
        }
        if info.size as u64 != req.size {
            return Err(CopyError::Unverified("its size differs from the file's"));
        }
        let etag_is_md5 = info
            .etag
            .as_deref()
            .is_some_and(|e| e.len() == 32 && !e.contains('-'))
            && info.sse_algorithm.as_deref() != Some("aws:kms");
        if etag_is_md5 && req.md5.is_some() && info.etag.as_deref() != req.md5 {
            return Err(CopyError::Unverified(
                "its checksum differs from the file's",
            ));
        }
        Ok(())
    }

    /// One CopyObject within the volume's endpoint; the new ETag comes back.
    async fn copy_object(
        &self,
        req: &CopyIn<'_>,
        src_bucket: &str,
        src_key: &str,
    ) -> Result<Option<String>, CopyError> {
        let mut request = with_properties!(
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(req.key)
                .copy_source(copy_source(src_bucket, src_key))
                .metadata_directive(MetadataDirective::Replace),
            req
        );
        if !req.overwrite {
            request = request.if_none_match("*");
        }
        // S3 can send an error inside a 200; the SDK parses it into `Err`.
        let copied = observed("CopyObject", request.send().await)?;
        Ok(copied
            .copy_object_result()
            .and_then(|r| r.e_tag())
            .map(|e| e.trim_matches('"').to_string()))
    }

    /// Creates a multipart upload. The caller records the uploads open on the key before, and
    /// the new one's id after, so that a later attempt can abort it even if this one dies.
    async fn start_multipart(
        &self,
        req: &CopyIn<'_>,
        progress: &dyn CopyProgress,
    ) -> Result<String, CopyError> {
        match self.open_uploads(req.key).await {
            Ok(open) => progress.upload_intent(&open).await?,
            // Without the right to list uploads, a crash in the next moment may leave one open,
            // as it would without the record; the copy itself does not need the listing.
            Err(e) if !e.is_retryable() => {
                tracing::debug!(export = %req.export_id, error = %e, "cannot list the open multipart uploads");
            }
            Err(e) => return Err(e.into()),
        }
        let created = with_properties!(
            self.client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(req.key),
            req
        )
        .send()
        .await;
        let created = observed("CreateMultipartUpload", created)?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        if let Err(e) = progress.upload_started(&upload_id).await {
            self.abort_multipart(req, &upload_id).await;
            return Err(e);
        }
        Ok(upload_id)
    }

    async fn abort_multipart(&self, req: &CopyIn<'_>, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(req.key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = observed("AbortMultipartUpload", aborted) {
            tracing::warn!(export = %req.export_id, error = ?e, "could not abort a multipart upload");
        }
    }

    async fn complete_multipart(
        &self,
        req: &CopyIn<'_>,
        upload_id: &str,
        mut parts: Vec<CompletedPart>,
    ) -> Result<(), CopyError> {
        parts.sort_by_key(|p| p.part_number());
        let mut request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(req.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if !req.overwrite {
            request = request.if_none_match("*");
        }
        observed("CompleteMultipartUpload", request.send().await)?;
        Ok(())
    }

    /// Runs `parts` with a multipart upload around them: on any failure the upload is aborted.
    async fn in_multipart<F, Fut>(
        &self,
        req: &CopyIn<'_>,
        progress: &dyn CopyProgress,
        parts: F,
    ) -> Result<(), CopyError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<CompletedPart>, CopyError>>,
    {
        let upload_id = self.start_multipart(req, progress).await?;
        let result = match parts(upload_id.clone()).await {
            Ok(done) => self.complete_multipart(req, &upload_id, done).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.abort_multipart(req, &upload_id).await;
        }
        progress.upload_ended().await;
        result
    }

    /// Server-side multipart copy: UploadPartCopy of byte ranges, several at a time.
    async fn multipart_copy(
        &self,
        req: &CopyIn<'_>,
        progress: &dyn CopyProgress,
        src_bucket: &str,
        src_key: &str,
    ) -> Result<(), CopyError> {
        let part = part_size_for(req.size, req.limits.part_size);
        let source = copy_source(src_bucket, src_key);
        self.in_multipart(req, progress, |upload_id| async move {
            futures_util::stream::iter(ranges(req.size, part))
                .map(|(n, r)| {
                    let (source, upload_id) = (source.clone(), upload_id.clone());
                    async move {
                        let done = self
                            .client
                            .upload_part_copy()
                            .bucket(&self.bucket)
                            .key(req.key)
                            .upload_id(upload_id)
                            .part_number(n)
                            .copy_source(source)
                            .copy_source_range(format!("bytes={}-{}", r.start, r.end))
                            .send()
                            .await;
                        let done = observed("UploadPartCopy", done)?;
                        progress.bytes_copied(r.length()).await?;
                        let etag = done
                            .copy_part_result()
                            .and_then(|p| p.e_tag())
                            .map(str::to_string);
                        Ok(CompletedPart::builder()
                            .part_number(n)
                            .set_e_tag(etag)
                            .build())
                    }
                })
                .buffer_unordered(req.limits.part_parallelism)
                .try_collect()
                .await
        })
        .await
    }

    /// Streams platform bytes to the volume: one PutObject for a small file, else a multipart
    /// upload whose parts are read with ranged GETs. Every part carries Content-MD5, so S3
    /// checks what arrives, and the parts' CRC32Cs, combined, must match the file's recorded
    /// CRC32C.
    async fn streamed_upload(
        &self,
        req: &CopyIn<'_>,
        progress: &dyn CopyProgress,
    ) -> Result<(), CopyError> {
        let (platform, size) = (req.platform, req.size);
        let part = part_size_for(size, req.limits.part_size);
        if size <= part {
            let _budget = req.limits.part_buffer().await;
            let stream = if size == 0 {
                Box::pin(futures_util::stream::empty()) as ByteStream
            } else {
                platform
                    .get(req.blob_key, None)
                    .await
                    .map_err(CopyError::platform)?
            };
            let bytes = read_all(stream, size as usize).await?;
            let sums = off_thread({
                let bytes = bytes.clone();
                move || {
                    let mut h = Hasher::new();
                    h.update(&bytes);
                    h.finish()
                }
            })
            .await?;
            let md5 = req.md5.unwrap_or_default();
            if sums.md5 != md5 || sums.size != size {
                return Err(CopyError::Corrupt);
            }
            let mut request = with_properties!(
                self.client.put_object().bucket(&self.bucket).key(req.key),
                req
            )
            .content_md5(b64(&hex::decode(md5).unwrap_or_default()))
            .body(SdkBody::from(bytes));
            if !req.overwrite {
                request = request.if_none_match("*");
            }
            observed("PutObject", request.send().await)?;
            return progress.bytes_copied(size).await;
        }
        let expected_crc = u32::from_be_bytes(
            base64::engine::general_purpose::STANDARD
                .decode(req.crc32c.unwrap_or_default())
                .ok()
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        );
        self.in_multipart(req, progress, |upload_id| async move {
            let mut done: Vec<(CompletedPart, u32, u64)> =
                futures_util::stream::iter(ranges(size, part))
                    .map(|(n, r)| {
                        let upload_id = upload_id.clone();
                        async move {
                            let _budget = req.limits.part_buffer().await;
                            let stream = platform
                                .get(req.blob_key, Some(r))
                                .await
                                .map_err(CopyError::platform)?;
                            let bytes = read_all(stream, r.length() as usize).await?;
                            if bytes.len() as u64 != r.length() {
                                return Err(CopyError::Corrupt);
                            }
                            let (crc, part_md5) = off_thread({
                                let bytes = bytes.clone();
                                move || {
                                    let md5 = <md5::Md5 as md5::Digest>::digest(&bytes);
                                    (crc32c::crc32c(&bytes), md5)
                                }
                            })
                            .await?;
                            let sent = self
                                .client
                                .upload_part()
                                .bucket(&self.bucket)
                                .key(req.key)
                                .upload_id(upload_id)
                                .part_number(n)
                                .content_md5(b64(&part_md5))
                                .body(SdkBody::from(bytes))
                                .send()
                                .await;
                            let sent = observed("UploadPart", sent)?;
                            progress.bytes_copied(r.length()).await?;
                            Ok((
                                CompletedPart::builder()
                                    .part_number(n)
                                    .set_e_tag(sent.e_tag)
                                    .build(),
                                crc,
                                r.length(),
                            ))
                        }
                    })
                    .buffer_unordered(req.limits.part_parallelism)
                    .try_collect()
                    .await?;
            done.sort_by_key(|(p, _, _)| p.part_number());
            let combined = done.iter().fold(None, |acc: Option<u32>, (_, crc, len)| {
                Some(match acc {
                    None => *crc,
                    Some(a) => crc32c::crc32c_combine(a, *crc, *len as usize),
                })
            });
            if combined.unwrap_or(0) != expected_crc {
                return Err(CopyError::Corrupt);
            }
            Ok(done.into_iter().map(|(p, _, _)| p).collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_and_ranges() {
        assert_eq!(part_size_for(12 << 20, 5 << 20), 5 << 20);
        assert_eq!(part_size_for(10, 1), MIN_PART);
        assert_eq!(
            part_size_for(5 << 40, 5 << 20),
            (5u64 << 40).div_ceil(10_000)
        );
        let r = ranges(12, 5);
        assert_eq!(
            r.iter()
                .map(|(n, r)| (*n, r.start, r.end))
                .collect::<Vec<_>>(),
            [(1, 0, 4), (2, 5, 9), (3, 10, 11)]
        );
        assert_eq!(ranges(10, 5).len(), 2);
    }

    #[test]
    fn copy_sources_are_encoded() {
        assert_eq!(copy_source("b", "blobs/a b+c"), "b/blobs/a%20b%2Bc");
    }
}
