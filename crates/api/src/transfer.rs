//! Byte transfers that carry a signature instead of a token: file downloads (with `Range`)
//! and upload parts. The client fetches these URLs with a plain HTTP session.

use super::openapi::{Binary, ErrorSchema};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use egress_core::util::now_ms;
use egress_storage::{self, ByteRange, Hasher};
use egress_store::Part;
use futures_util::StreamExt;
use std::sync::Arc;

use super::wire::Params;

#[derive(utoipa::OpenApi)]
#[openapi(paths(download, upload_part))]
pub struct ApiDoc;

/// The query of a signed URL, for the API document (`verify` reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters only.
struct Signature {
    /// Unix seconds after which the URL stops working.
    expires: i64,
    /// The server's signature of the URL, in hex.
    signature: String,
}

const DOWNLOAD: &str = "download";
const UPLOAD_PART: &str = "upload-part";

fn signed_url(state: &AppState, path: &str, purpose: &str, subject: &str) -> String {
    let expires = now_ms() / 1000 + state.settings.url_ttl.as_secs() as i64;
    let sig = state.signer.sign(purpose, subject, expires);
    format!("{}{path}?expires={expires}&signature={sig}", state.base())
}

pub fn download_url(state: &AppState, file_id: &str) -> String {
    signed_url(
        state,
        &format!("/transfer/download/{file_id}"),
        DOWNLOAD,
        file_id,
    )
}

pub fn part_url(state: &AppState, upload_id: &str, part: i64) -> String {
    let subject = format!("{upload_id}/{part}");
    signed_url(
        state,
        &format!("/transfer/upload/{subject}"),
        UPLOAD_PART,
        &subject,
    )
}

fn verify(state: &AppState, params: &Params, purpose: &str, subject: &str) -> ApiResult<()> {
    let expires = params
        .get("expires")
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let signature = params.get("signature").unwrap_or("");
    state
        .signer
        .verify(purpose, subject, expires, signature, now_ms() / 1000)
}

/// Parses a single `bytes=` range against `size`. `Ok(None)`: serve everything (no header, or a
/// form we do not split, such as several ranges). `Err`: unsatisfiable.
fn parse_range(value: &str, size: u64) -> Result<Option<ByteRange>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.checked_sub(1).ok_or(())?)
        }
        (start, "") => (
            start.parse().map_err(|_| ())?,
            size.checked_sub(1).ok_or(())?,
        ),
        (start, end) => {
            let (s, e): (u64, u64) = (start.parse().map_err(|_| ())?, end.parse().map_err(|_| ())?);
            (s, e.min(size.saturating_sub(1)))
        }
    };
    if start > end || start >= size {
        return Err(());
    }
    Ok(Some(ByteRange { start, end }))
}

/// A file's bytes, from the signed URL `download_info` gives; needs no token.
#[utoipa::path(
    get,
    path = "/transfer/download/{file_id}",
    tag = "transfers",
    operation_id = "download",
    security(()),
    params(
        ("file_id" = String, Path),
        Signature,
        ("Range" = Option<String>, Header, nullable = false, description = "One range, `bytes=start-end`, `bytes=start-` or `bytes=-suffix`; other forms get the whole file."),
    ),
    responses(
        (status = 200, description = "The whole file.", content_type = "application/octet-stream", body = Binary),
        (status = 206, description = "The range asked for; `Content-Range` says which.", content_type = "application/octet-stream", body = Binary),
        (status = 403, description = "The signature is invalid or has expired (90002).", body = ErrorSchema),
        (status = 404, description = "No such file (5002), or an alias's object is gone (9105).", body = ErrorSchema),
        (status = 416, description = "The range is outside the file (90000); `Content-Range` gives its size.", body = ErrorSchema),
    ),
)]
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path(file_id): Path<String>,
    params: Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    verify(&state, &params, DOWNLOAD, &file_id)?;
    let file = state
        .store
        .get_file(&file_id)
        .await?
        .ok_or_else(|| ApiError::from(Code::FileNotFound))?;
    let size = file.size.unwrap_or(0) as u64;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => match parse_range(v, size) {
            Ok(r) => r,
            Err(()) => {
                let mut response = ApiError::from(Code::RangeNotSatisfiable).into_response();
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{size}"))
                        .map_err(|_| ApiError::from(Code::Internal))?,
                );
                return Ok(response);
            }
        },
    };
    let stream = if size == 0 {
        Box::pin(futures_util::stream::empty()) as egress_storage::ByteStream
    } else if let Some(blob_id) = &file.blob_id {
        state
            .platform
            .get(&egress_storage::blob_key(blob_id), range)
            .await?
    } else {
        alias_bytes(&state, &file, range).await?
    };
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let length = match range {
        Some(r) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let value = format!("bytes {}-{}/{size}", r.start, r.end);
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&value).map_err(|_| ApiError::from(Code::Internal))?,
            );
            r.length()
        }
        None => size,
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

/// The bytes of an alias on a local volume (S3 aliases are served by presigned URLs).
async fn alias_bytes(
    state: &AppState,
    file: &egress_store::FileRec,
    range: Option<ByteRange>,
) -> ApiResult<egress_storage::ByteStream> {
    let volume = state
        .alias_volume(file)
        .await
        .map_err(|_| ApiError::from(Code::FileNotFound))?;
    let key = egress_core::volume::object_key(
        &volume.service.prefix,
        file.location.as_deref().unwrap_or_default(),
    );
    state
        .volume_backend(&volume, None)?
        .read(&key, range)
        .await
        .map_err(|e| {
            ApiError::new(
                Code::LocationNotFound,
                format!("Location on volume not found: {e}."),
            )
        })
}

/// Receives one upload part: the bytes go to platform storage, their MD5 becomes the ETag.
/// The signed URL comes from `GET /v2/upload/multipart/{id}/part/{number}`; needs no token.
#[utoipa::path(
    put,
    path = "/transfer/upload/{upload_id}/{part}",
    tag = "transfers",
    operation_id = "upload_part",
    security(()),
    params(("upload_id" = String, Path), ("part" = i64, Path), Signature),
    request_body(content = Binary, content_type = "application/octet-stream", description = "Exactly the part's bytes."),
    responses(
        (status = 200, description = "Stored; the `ETag` header is the MD5 of the bytes.", headers(("ETag" = String))),
        (status = 400, description = "A part number out of range, or not exactly the part's size (8011).", body = ErrorSchema),
        (status = 403, description = "The signature is invalid or has expired (90002).", body = ErrorSchema),
        (status = 404, description = "No such upload (8003).", body = ErrorSchema),
    ),
)]
pub async fn upload_part(
    State(state): State<Arc<AppState>>,
    Path((upload_id, part)): Path<(String, i64)>,
    params: Params,
    body: Body,
) -> ApiResult<Response> {
    verify(&state, &params, UPLOAD_PART, &format!("{upload_id}/{part}"))?;
    let upload = state
        .store
        .get_upload(&upload_id)
        .await?
        .ok_or_else(super::uploads::upload_not_found)?;
    let expected = super::uploads::part_length(&upload, part)?;
    let hasher = Arc::new(std::sync::Mutex::new(Hasher::new()));
    let seen = hasher.clone();
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        let mut h = seen.lock().unwrap_or_else(|e| e.into_inner());
        h.update(&chunk);
        if h.size() > expected {
            return Err(std::io::Error::other("part is larger than announced"));
        }
        Ok(chunk)
    });
    let key = egress_storage::part_key(&upload_id, part);
    let written = state.platform.put(&key, Box::pin(stream)).await;
    let sums = hasher
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .finish();
    if written.is_err() || sums.size != expected {
        let _ = state.platform.delete(&key).await;
        return Err(ApiError::new(
            Code::InvalidPart,
            format!(
                "Part {part} must be exactly {expected} bytes; {} arrived.",
                sums.size
            ),
        ));
    }
    let expires_at = now_ms() + state.settings.upload_ttl.as_millis() as i64;
    let recorded = Part {
        part_number: part,
        size: sums.size as i64,
        etag: sums.md5.clone(),
    };
    if !state
        .store
        .put_part(&upload_id, &recorded, expires_at)
        .await?
    {
        // The upload was aborted while the part arrived: keep nothing.
        let _ = state.platform.delete(&key).await;
        return Err(super::uploads::upload_not_found());
    }
    let mut response = StatusCode::OK.into_response();
    response.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{}\"", sums.md5))
            .map_err(|_| ApiError::from(Code::Internal))?,
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |s, e| Ok(Some(ByteRange { start: s, end: e }));
        assert_eq!(parse_range("bytes=0-9", 100), r(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), r(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), r(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), r(50, 99));
        assert_eq!(parse_range("bytes=-500", 100), r(0, 99));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-2", 100), Err(()));
        assert_eq!(parse_range("bytes=0-0", 0), Err(()));
        assert_eq!(parse_range("bytes=x-1", 100), Err(()));
    }
}
