//! How bytes reach a volume: server-side CopyObject, server-side multipart copy, streamed
//! upload from platform storage, or a write into a local folder. Every object written carries
//! the export's properties and the `egress-export-id` stamp, and `overwrite=false` is enforced
//! by the store itself with `If-None-Match: *`.

use super::{JobCtx, JobError};
use crate::blob::local_root::LocalRoot;
use crate::blob::volume::classify;
use crate::blob::{ByteRange, ByteStream, Hasher};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, MetadataDirective, ObjectCannedAcl,
    ServerSideEncryption, StorageClass,
};
use aws_sdk_s3::Client;
use base64::Engine as _;
use bytes::BytesMut;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Map, Value};

/// User metadata key of the stamp (`x-amz-meta-egress-export-id`).
pub const STAMP: &str = "egress-export-id";
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;

/// Where an export writes on S3.
pub struct Target<'a> {
    pub client: &'a Client,
    pub bucket: &'a str,
    pub key: &'a str,
    pub properties: &'a Map<String, Value>,
    pub overwrite: bool,
}

/// Applies the export's properties and stamp to a write request (PutObject, CopyObject,
/// CreateMultipartUpload share these setters but not a trait).
macro_rules! with_properties {
    ($request:expr, $target:expr, $stamp:expr) => {{
        let props = $target.properties;
        let text = |k: &str| {
            props
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let mut r = $request.metadata(STAMP, $stamp);
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
pub fn part_size_for(size: u64, wanted: u64) -> u64 {
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
) -> Result<T, JobError> {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("egress_s3_requests_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
    result.map_err(|e| JobError::from_volume(&classify(&e), super::Access::Write))
}

/// One CopyObject within the destination's endpoint.
pub async fn copy_object(
    ctx: &JobCtx<'_>,
    t: &Target<'_>,
    src_bucket: &str,
    src_key: &str,
) -> Result<Option<String>, JobError> {
    let mut request = with_properties!(
        t.client
            .copy_object()
            .bucket(t.bucket)
            .key(t.key)
            .copy_source(copy_source(src_bucket, src_key))
            .metadata_directive(MetadataDirective::Replace),
        t,
        ctx.job.id.as_str()
    );
    if !t.overwrite {
        request = request.if_none_match("*");
    }
    let copied = observed("CopyObject", request.send().await)?;
    // S3 can send an error inside a 200; the SDK parses it into `Err`. The new ETag comes back.
    Ok(copied
        .copy_object_result()
        .and_then(|r| r.e_tag())
        .map(|e| e.trim_matches('"').to_string()))
}

/// Creates a multipart upload and records its id on the job, so a later attempt can abort it;
/// the intent recorded first covers a crash before the id is known.
async fn start_multipart(ctx: &JobCtx<'_>, t: &Target<'_>) -> Result<String, JobError> {
    super::orphans::record_intent(ctx, t).await?;
    let created = with_properties!(
        t.client
            .create_multipart_upload()
            .bucket(t.bucket)
            .key(t.key),
        t,
        ctx.job.id.as_str()
    )
    .send()
    .await;
    let created = observed("CreateMultipartUpload", created)?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    ctx.opened_upload(&upload_id);
    if !ctx
        .services
        .store
        .set_export_upload(&ctx.job.id, ctx.job.attempt, Some(&upload_id))
        .await
        .map_err(JobError::internal)?
    {
        abort_multipart(ctx, t, &upload_id).await;
        return Err(JobError::LeaseLost);
    }
    Ok(upload_id)
}

pub async fn abort_multipart(ctx: &JobCtx<'_>, t: &Target<'_>, upload_id: &str) {
    let aborted = t
        .client
        .abort_multipart_upload()
        .bucket(t.bucket)
        .key(t.key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(e) = observed("AbortMultipartUpload", aborted) {
        tracing::warn!(export = %ctx.job.id, error = ?e, "could not abort a multipart upload");
    }
}

async fn complete_multipart(
    ctx: &JobCtx<'_>,
    t: &Target<'_>,
    upload_id: &str,
    mut parts: Vec<CompletedPart>,
) -> Result<(), JobError> {
    parts.sort_by_key(|p| p.part_number());
    let mut request = t
        .client
        .complete_multipart_upload()
        .bucket(t.bucket)
        .key(t.key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        );
    if !t.overwrite {
        request = request.if_none_match("*");
    }
    observed("CompleteMultipartUpload", request.send().await)?;
    let _ = ctx
        .services
        .store
        .set_export_upload(&ctx.job.id, ctx.job.attempt, None)
        .await;
    Ok(())
}

/// Runs `parts` with a multipart upload around them: on any failure the upload is aborted.
async fn in_multipart<F, Fut>(ctx: &JobCtx<'_>, t: &Target<'_>, parts: F) -> Result<(), JobError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<CompletedPart>, JobError>>,
{
    let upload_id = start_multipart(ctx, t).await?;
    let result = match parts(upload_id.clone()).await {
        Ok(done) => complete_multipart(ctx, t, &upload_id, done).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        abort_multipart(ctx, t, &upload_id).await;
        let _ = ctx
            .services
            .store
            .set_export_upload(&ctx.job.id, ctx.job.attempt, None)
            .await;
    }
    result
}

/// Server-side multipart copy: UploadPartCopy of byte ranges, several at a time.
pub async fn multipart_copy(
    ctx: &JobCtx<'_>,
    t: &Target<'_>,
    src_bucket: &str,
    src_key: &str,
    size: u64,
) -> Result<(), JobError> {
    let part = part_size_for(size, ctx.engine.config.part_size);
    let source = copy_source(src_bucket, src_key);
    in_multipart(ctx, t, |upload_id| async move {
        futures_util::stream::iter(ranges(size, part))
            .map(|(n, r)| {
                let (source, upload_id) = (source.clone(), upload_id.clone());
                async move {
                    let done = t
                        .client
                        .upload_part_copy()
                        .bucket(t.bucket)
                        .key(t.key)
                        .upload_id(upload_id)
                        .part_number(n)
                        .copy_source(source)
                        .copy_source_range(format!("bytes={}-{}", r.start, r.end))
                        .send()
                        .await;
                    let done = observed("UploadPartCopy", done)?;
                    ctx.add_progress(r.length()).await?;
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
            .buffer_unordered(ctx.engine.config.part_parallelism)
            .try_collect()
            .await
    })
    .await
}

async fn read_all(mut stream: ByteStream, capacity: usize) -> Result<bytes::Bytes, JobError> {
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(
            &chunk.map_err(|e| JobError::Retryable(format!("reading platform storage: {e}")))?,
        );
    }
    Ok(buf.freeze())
}

/// Runs CPU-bound work (hashing a part) on the blocking pool: the background runtime has one
/// thread, and hashing many MiB on it would hold up every other job meanwhile.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| JobError::Retryable(format!("hashing failed: {e}")))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Streams platform bytes to the volume: one PutObject for a small file, else a multipart
/// upload whose parts are read with ranged GETs. Every part carries Content-MD5, so S3 checks
/// what arrives, and the parts' CRC32Cs, combined, must match the file's recorded CRC32C.
pub async fn streamed_upload(
    ctx: &JobCtx<'_>,
    t: &Target<'_>,
    blob_key: &str,
    size: u64,
    md5: &str,
    crc32c: &str,
) -> Result<(), JobError> {
    let platform = &ctx.services.platform;
    let part = part_size_for(size, ctx.engine.config.part_size);
    if size <= part {
        let _budget = ctx.engine.buffer_permit(1).await;
        let stream = if size == 0 {
            Box::pin(futures_util::stream::empty()) as ByteStream
        } else {
            platform
                .get(blob_key, None)
                .await
                .map_err(JobError::platform)?
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
        if sums.md5 != md5 || sums.size != size {
            return Err(JobError::corrupt());
        }
        let mut request = with_properties!(
            t.client.put_object().bucket(t.bucket).key(t.key),
            t,
            ctx.job.id.as_str()
        )
        .content_md5(b64(&hex::decode(md5).unwrap_or_default()))
        .body(SdkBody::from(bytes));
        if !t.overwrite {
            request = request.if_none_match("*");
        }
        observed("PutObject", request.send().await)?;
        return ctx.add_progress(size).await;
    }
    let expected_crc = u32::from_be_bytes(
        base64::engine::general_purpose::STANDARD
            .decode(crc32c)
            .ok()
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default(),
    );
    in_multipart(ctx, t, |upload_id| async move {
        let mut done: Vec<(CompletedPart, u32, u64)> =
            futures_util::stream::iter(ranges(size, part))
                .map(|(n, r)| {
                    let upload_id = upload_id.clone();
                    async move {
                        let _budget = ctx.engine.buffer_permit(1).await;
                        let stream = platform
                            .get(blob_key, Some(r))
                            .await
                            .map_err(JobError::platform)?;
                        let bytes = read_all(stream, r.length() as usize).await?;
                        if bytes.len() as u64 != r.length() {
                            return Err(JobError::corrupt());
                        }
                        let (crc, part_md5) = off_thread({
                            let bytes = bytes.clone();
                            move || {
                                let md5 = <md5::Md5 as md5::Digest>::digest(&bytes);
                                (crc32c::crc32c(&bytes), md5)
                            }
                        })
                        .await?;
                        let sent = t
                            .client
                            .upload_part()
                            .bucket(t.bucket)
                            .key(t.key)
                            .upload_id(upload_id)
                            .part_number(n)
                            .content_md5(b64(&part_md5))
                            .body(SdkBody::from(bytes))
                            .send()
                            .await;
                        let sent = observed("UploadPart", sent)?;
                        ctx.add_progress(r.length()).await?;
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
                .buffer_unordered(ctx.engine.config.part_parallelism)
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
            return Err(JobError::corrupt());
        }
        Ok(done.into_iter().map(|(p, _, _)| p).collect())
    })
    .await
}

/// Writes into a local volume: a synced temporary file, then a hard link (which refuses an
/// existing name, for `overwrite=false`) or a rename (which replaces it).
pub async fn write_local(
    ctx: &JobCtx<'_>,
    root: &LocalRoot,
    key: &str,
    blob_key: &str,
    size: u64,
    md5: &str,
    overwrite: bool,
) -> Result<(), JobError> {
    use tokio::io::AsyncWriteExt;
    let (file, temp) = {
        let (root, key) = (root.clone(), key.to_string());
        off_thread(move || root.create_temp(&key))
            .await?
            .map_err(JobError::local)?
    };
    let written = async {
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Hasher::new();
        if size > 0 {
            let mut stream = ctx
                .services
                .platform
                .get(blob_key, None)
                .await
                .map_err(JobError::platform)?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(JobError::local)?;
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(JobError::local)?;
            }
        }
        file.sync_all().await.map_err(JobError::local)?;
        if hasher.finish().md5 != md5 {
            return Err(JobError::corrupt());
        }
        Ok(())
    }
    .await;
    match written {
        Ok(()) => match off_thread(move || temp.publish(overwrite)).await? {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(JobError::Exists),
            other => other.map_err(JobError::local),
        },
        Err(e) => {
            let _ = off_thread(move || temp.discard()).await;
            Err(e)
        }
    }?;
    ctx.add_progress(size).await
}

/// Does the local object at `key` hold exactly these bytes? Sizes are compared first, and the
/// file is hashed as a stream, so an object of any size costs a fixed amount of memory.
pub async fn local_matches(root: &LocalRoot, key: &str, size: u64, md5: &str) -> bool {
    let (root, key, md5) = (root.clone(), key.to_string(), md5.to_string());
    // Reading and hashing in one blocking task: one hop off the background thread, not two.
    let same = off_thread(move || -> std::io::Result<bool> {
        use std::io::Read;
        let mut file = root.open_file(&key)?;
        if file.metadata()?.len() != size {
            return Ok(false);
        }
        let mut hasher = <md5::Md5 as md5::Digest>::new();
        let mut buf = vec![0; 1 << 20];
        loop {
            match file.read(&mut buf)? {
                0 => break,
                n => md5::Digest::update(&mut hasher, &buf[..n]),
            }
        }
        Ok(hex::encode(md5::Digest::finalize(hasher)) == md5)
    });
    matches!(same.await, Ok(Ok(true)))
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
