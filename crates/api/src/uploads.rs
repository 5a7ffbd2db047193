//! The SBG multipart-upload protocol (sbg-api.md §5), as `sevenbridges-python` drives it:
//! init, a signed URL per part, part reports, complete (assemble, hash, commit) and abort.

use super::auth::AuthUser;
use super::files::{check_name, resolve_destination};
use super::openapi::ErrorSchema;
use super::views;
use super::wire::{Body, Params};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code, SbgError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use egress_core::util::{new_long_id, now_ms};
use egress_engine::services::files::{commit_file, NewFile};
use egress_engine::services::uploads::{delete_upload_remains, part_count, part_keys};
use egress_store::{FileFilter, FileRec, Page, Upload, User};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/upload/multipart", post(init))
        .route("/v2/upload/multipart/", post(init))
        .route("/v2/upload/multipart/{id}", get(info).delete(abort))
        .route("/v2/upload/multipart/{id}/part/{number}", get(part_url))
        .route("/v2/upload/multipart/{id}/part", post(report_part))
        .route("/v2/upload/multipart/{id}/part/", post(report_part))
        .route("/v2/upload/multipart/{id}/complete", post(complete))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(init, info, abort, part_url, report_part, complete))]
pub struct ApiDoc;

type St = State<Arc<AppState>>;

const MIB: i64 = 1024 * 1024;
const MIN_PART: i64 = 5 * MIB;
const MAX_PART: i64 = 5 * 1024 * MIB;
const DEFAULT_PART: i64 = 32 * MIB;
const MAX_PARTS: i64 = 10_000;
const MAX_SIZE: i64 = 5 * 1024 * 1024 * MIB;

pub fn upload_not_found() -> ApiError {
    ApiError::from(Code::UploadNotFound)
}

/// The part size the server uses: the client's wish, raised so that at most 10,000 parts are
/// needed and no part but the last is under 5 MiB.
fn choose_part_size(size: i64, wanted: Option<i64>) -> i64 {
    let floor = (size + MAX_PARTS - 1) / MAX_PARTS;
    wanted
        .unwrap_or(DEFAULT_PART)
        .max(floor)
        .clamp(MIN_PART, MAX_PART)
}

/// The exact length of part `n` of an upload (the last one may be shorter).
pub fn part_length(upload: &Upload, n: i64) -> ApiResult<u64> {
    let count = part_count(upload);
    if !(1..=count).contains(&n) {
        return Err(ApiError::new(
            Code::InvalidPart,
            format!("Part number must be between 1 and {count}."),
        ));
    }
    Ok((upload.size - (n - 1) * upload.part_size).min(upload.part_size) as u64)
}

/// A multipart upload in progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct MultipartUpload {
    pub href: String,
    pub name: String,
    /// The destination folder's id.
    pub parent: String,
    /// Every part but the last has this many bytes.
    pub part_size: i64,
    /// How many parts the upload has.
    pub parts: i64,
    /// The project's id, `owner/slug`.
    pub project: String,
    pub size: i64,
    pub upload_id: String,
}

fn render(state: &AppState, u: &Upload) -> MultipartUpload {
    MultipartUpload {
        href: format!("{}/v2/upload/multipart/{}", state.base(), u.id),
        name: u.name.clone(),
        parent: u.parent_id.clone(),
        part_size: u.part_size,
        parts: part_count(u),
        project: u.project_id.clone(),
        size: u.size,
        upload_id: u.id.clone(),
    }
}

/// The existing file of this name in the folder, if any.
async fn existing(state: &AppState, parent_id: &str, name: &str) -> ApiResult<Option<FileRec>> {
    let filter = FileFilter {
        names: vec![name.to_string()],
        tags: vec![],
        ..Default::default()
    };
    let (found, _) = state
        .store
        .list_children(
            parent_id,
            &filter,
            Page {
                offset: 0,
                limit: 1,
            },
        )
        .await?;
    Ok(found.into_iter().next())
}

/// Refuses a name that is taken, unless `overwrite` replaces a file (never a folder).
async fn check_clash(
    state: &AppState,
    parent_id: &str,
    name: &str,
    overwrite: bool,
) -> ApiResult<Option<FileRec>> {
    match existing(state, parent_id, name).await? {
        Some(f) if f.is_folder => Err(ApiError::new(
            Code::UploadTargetExists,
            "A folder with this name already exists.",
        )),
        Some(_) if !overwrite => Err(ApiError::new(
            Code::UploadTargetExists,
            "A file with this name already exists; use overwrite.",
        )),
        other => Ok(other),
    }
}

/// A new upload of one file of `size` bytes, into a project's root folder (`project`) or a
/// folder (`parent`).
#[derive(Deserialize, ToSchema)]
struct InitBody {
    /// A file or folder name: 1 to 255 bytes, no `/` or control characters, not `.` or `..`.
    #[schema(min_length = 1, pattern = "^[^/]+$")]
    name: String,
    /// 0 to 5 TiB.
    #[schema(minimum = 0, maximum = 5_497_558_138_880_i64)]
    size: i64,
    /// The part size wished for; the server raises it to at least 5 MiB and so that at most
    /// 10,000 parts are needed.
    #[schema(minimum = 1)]
    part_size: Option<i64>,
    /// A project id, `owner/slug`; exactly one of `project` and `parent`.
    project: Option<String>,
    /// A folder's id.
    parent: Option<String>,
}

/// Starts a multipart upload.
#[utoipa::path(
    post,
    path = "/v2/upload/multipart",
    tag = "uploads",
    operation_id = "init_upload",
    params(("overwrite" = Option<bool>, Query, description = "Replace a file of the same name.")),
    request_body = InitBody,
    responses(
        (status = 200, description = "The upload.", body = MultipartUpload),
        (status = 400, description = "A bad name (5024), size (8012) or part size (8013), neither or both of `project` and `parent` (5029, 5031), a malformed project id (3012), a parent that is a file (5022), a bad `overwrite` (90000), not JSON of this shape (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not write the destination (3001, 5001).", body = ErrorSchema),
        (status = 404, description = "No such project (3002) or destination folder (5026).", body = ErrorSchema),
        (status = 409, description = "The name is taken and `overwrite` was not asked, or is a folder's (8004).", body = ErrorSchema),
    ),
)]
async fn init(
    State(state): St,
    AuthUser(user): AuthUser,
    params: Params,
    Body(body): Body<InitBody>,
) -> ApiResult<Json<MultipartUpload>> {
    check_name(&body.name)?;
    if !(0..=MAX_SIZE).contains(&body.size) {
        return Err(ApiError::from(Code::InvalidFileSize));
    }
    if body.part_size.is_some_and(|p| p <= 0) {
        return Err(ApiError::from(Code::InvalidPartSize));
    }
    let overwrite = params.flag("overwrite")?;
    let parent = resolve_destination(
        &state,
        &user,
        body.project.as_deref(),
        body.parent.as_deref(),
    )
    .await?;
    check_clash(&state, &parent.id, &body.name, overwrite).await?;
    let now = now_ms();
    let upload = Upload {
        id: new_long_id(),
        owner: user.username.clone(),
        project_id: parent.project_id.clone(),
        parent_id: parent.id.clone(),
        name: body.name,
        size: body.size,
        part_size: choose_part_size(body.size, body.part_size),
        overwrite,
        created_at: now,
        expires_at: now + state.settings.upload_ttl.as_millis() as i64,
    };
    state.store.create_upload(&upload).await?;
    Ok(Json(render(&state, &upload)))
}

/// An upload of the caller's; anybody else's is invisible.
async fn own_upload(state: &AppState, user: &User, id: &str) -> ApiResult<Upload> {
    match state.store.get_upload(id).await? {
        Some(u) if u.owner == user.username => Ok(u),
        _ => Err(upload_not_found()),
    }
}

#[utoipa::path(
    get,
    path = "/v2/upload/multipart/{id}",
    tag = "uploads",
    operation_id = "get_upload",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The upload.", body = MultipartUpload),
        (status = 404, description = "No such upload of the caller's (8003).", body = ErrorSchema),
    ),
)]
async fn info(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<MultipartUpload>> {
    Ok(Json(render(&state, &own_upload(&state, &user, &id).await?)))
}

/// Where to send one part.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrl {
    /// When `url` stops working.
    #[schema(format = DateTime)]
    pub expires: String,
    pub method: PartMethod,
    pub part_number: i64,
    /// Signed; needs no token.
    pub url: String,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PartMethod {
    Put,
}

/// A signed URL to `PUT` one part's bytes to.
#[utoipa::path(
    get,
    path = "/v2/upload/multipart/{id}/part/{number}",
    tag = "uploads",
    operation_id = "get_part_url",
    params(("id" = String, Path), ("number" = i64, Path, description = "1 to the upload's `parts`.")),
    responses(
        (status = 200, description = "The part's URL.", body = PartUrl),
        (status = 400, description = "A part number out of range (8011) or not a number (90000).", body = ErrorSchema),
        (status = 404, description = "No such upload of the caller's (8003).", body = ErrorSchema),
    ),
)]
async fn part_url(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((id, number)): Path<(String, i64)>,
) -> ApiResult<Json<PartUrl>> {
    let upload = own_upload(&state, &user, &id).await?;
    part_length(&upload, number)?;
    let expires =
        egress_core::util::format_ms(now_ms() + state.settings.url_ttl.as_millis() as i64);
    Ok(Json(PartUrl {
        expires,
        method: PartMethod::Put,
        part_number: number,
        url: super::transfer::part_url(&state, &id, number),
    }))
}

/// A part the client reports as sent, with the answer it got.
#[derive(Deserialize, ToSchema)]
struct PartReport {
    part_number: i64,
    /// The part upload's response: its `headers.ETag` is checked against what arrived.
    #[schema(value_type = Option<Object>)]
    response: Option<Value>,
}

/// A part as the server received it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedPart {
    /// The MD5 of the part's bytes, in hex.
    pub etag: String,
    pub part_number: i64,
    pub size: i64,
}

/// Confirms that a part arrived as the client sent it.
#[utoipa::path(
    post,
    path = "/v2/upload/multipart/{id}/part",
    tag = "uploads",
    operation_id = "report_part",
    params(("id" = String, Path)),
    request_body = PartReport,
    responses(
        (status = 200, description = "The part as received.", body = ReceivedPart),
        (status = 400, description = "A part number out of range (8011), a part not received or with another ETag (8008), not JSON of this shape (90009).", body = ErrorSchema),
        (status = 404, description = "No such upload of the caller's (8003).", body = ErrorSchema),
    ),
)]
async fn report_part(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<PartReport>,
) -> ApiResult<Json<ReceivedPart>> {
    let upload = own_upload(&state, &user, &id).await?;
    part_length(&upload, body.part_number)?;
    let parts = state.store.list_parts(&id).await?;
    let part = parts
        .iter()
        .find(|p| p.part_number == body.part_number)
        .ok_or_else(|| {
            ApiError::new(
                Code::PartMismatch,
                format!("Part {} has not been received.", body.part_number),
            )
        })?;
    let reported = body
        .response
        .as_ref()
        .and_then(|r| {
            r.pointer("/headers/ETag")
                .or_else(|| r.pointer("/headers/etag"))
        })
        .and_then(Value::as_str)
        .map(|e| e.trim_matches('"'));
    if reported.is_some_and(|e| e != part.etag) {
        return Err(ApiError::new(
            Code::PartMismatch,
            format!(
                "The ETag of part {} does not match what was received.",
                body.part_number
            ),
        ));
    }
    Ok(Json(ReceivedPart {
        etag: part.etag.clone(),
        part_number: part.part_number,
        size: part.size,
    }))
}

/// Assembles the parts into the file.
#[utoipa::path(
    post,
    path = "/v2/upload/multipart/{id}/complete",
    tag = "uploads",
    operation_id = "complete_upload",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The new file.", body = views::File),
        (status = 400, description = "A part is missing or of the wrong size (8007).", body = ErrorSchema),
        (status = 404, description = "No such upload of the caller's (8003), or its folder is gone (5026).", body = ErrorSchema),
        (status = 409, description = "The name was taken meanwhile (8004).", body = ErrorSchema),
    ),
)]
async fn complete(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<views::File>> {
    let upload = own_upload(&state, &user, &id).await?;
    let parts = state.store.list_parts(&id).await?;
    for n in 1..=part_count(&upload) {
        let expected = part_length(&upload, n)? as i64;
        if !parts
            .iter()
            .any(|p| p.part_number == n && p.size == expected)
        {
            return Err(ApiError::new(
                Code::UploadIncomplete,
                format!("Part {n} is missing; upload every part before completing."),
            ));
        }
    }
    let replace = check_clash(&state, &upload.parent_id, &upload.name, upload.overwrite).await?;

    // Assemble the parts into the blob. Its key is the upload id: until the commit, the
    // sweeper of abandoned uploads owns it.
    let platform = state.platform.clone();
    let keys: Vec<String> = (1..=part_count(&upload))
        .map(|n| egress_storage::part_key(&id, n))
        .collect();
    let assembled = futures_util::stream::iter(keys)
        .then(move |key| {
            let platform = platform.clone();
            async move {
                platform
                    .get(&key, None)
                    .await
                    .map_err(std::io::Error::other)
            }
        })
        .map(|opened| match opened {
            Ok(stream) => stream,
            Err(e) => Box::pin(futures_util::stream::once(async move { Err(e) }))
                as egress_storage::ByteStream,
        })
        .flatten();
    let target = NewFile {
        upload: Some(&upload.id),
        project_id: &upload.project_id,
        parent_id: &upload.parent_id,
        name: &upload.name,
    };
    let file = commit_file(
        &state,
        target,
        Box::pin(assembled),
        upload.size as u64,
        replace.as_ref(),
    )
    .await
    .map_err(|e| match e.code {
        Code::FileExists => SbgError::new(
            Code::UploadTargetExists,
            "A file with this name appeared meanwhile; retry with overwrite.",
        ),
        _ => e,
    })?;
    if let Err(e) = state.platform.delete_many(&part_keys(&upload)).await {
        tracing::warn!(upload = %id, error = %e, "could not delete every upload part");
    }
    Ok(Json(views::file(state.base(), &file)))
}

/// Abandons an upload and deletes the parts received.
#[utoipa::path(
    delete,
    path = "/v2/upload/multipart/{id}",
    tag = "uploads",
    operation_id = "abort_upload",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Aborted."),
        (status = 404, description = "No such upload of the caller's (8003).", body = ErrorSchema),
    ),
)]
async fn abort(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let upload = own_upload(&state, &user, &id).await?;
    delete_upload_remains(&state, &upload).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes() {
        assert_eq!(choose_part_size(12 * MIB, Some(5 * MIB)), 5 * MIB);
        assert_eq!(choose_part_size(0, None), DEFAULT_PART);
        assert_eq!(choose_part_size(100, Some(1)), MIN_PART);
        assert_eq!(
            choose_part_size(MAX_SIZE, Some(5 * MIB)),
            549_755_814,
            "10,000 parts at most"
        );
        assert_eq!(choose_part_size(10, Some(100 * MAX_PART)), MAX_PART);
    }

    #[test]
    fn part_lengths() {
        let mut u = Upload {
            id: "u".into(),
            owner: "o".into(),
            project_id: "o/p".into(),
            parent_id: "r".into(),
            name: "n".into(),
            size: 12 * MIB,
            part_size: 5 * MIB,
            overwrite: false,
            created_at: 0,
            expires_at: 0,
        };
        assert_eq!(part_count(&u), 3);
        assert_eq!(part_length(&u, 1).unwrap(), 5 * MIB as u64);
        assert_eq!(part_length(&u, 3).unwrap(), 2 * MIB as u64);
        assert!(part_length(&u, 4).is_err());
        assert!(part_length(&u, 0).is_err());
        u.size = 0;
        assert_eq!(part_count(&u), 1);
        assert_eq!(part_length(&u, 1).unwrap(), 0);
    }
}
