//! Async bulk file jobs (sbg-api.md §11): copy, move or delete up to 100 files and folders in
//! the background. Submission checks each item's shape only and records the job; the engine
//! applies the items in order, checking the owner's rights as each takes effect
//! (`egress_engine::file_jobs`).

use super::access::parse_project_id;
use super::auth::AuthUser;
use super::files::check_name;
use super::openapi::ErrorSchema;
use super::views;
use super::wire::{check_bulk_len, list_page, Body, BulkEntry, ListPage, Paging, Params};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use egress_core::util::{format_ms, new_long_id, now_ms};
use egress_store::{FileJobItem, FileJobKind, FileJobRec, JobState, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::ToSchema;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/async/files", get(list))
        .route("/v2/async/files/", get(list))
        .route("/v2/async/files/copy", post(copy_files))
        .route("/v2/async/files/move", post(move_files))
        .route("/v2/async/files/delete", post(delete_files))
        .route("/v2/async/files/{operation}/{id}", get(get_one))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(copy_files, move_files, delete_files, get_one, list))]
pub struct ApiDoc;

type St = State<Arc<AppState>>;

/// The path segment of each kind of job.
fn segment(kind: FileJobKind) -> &'static str {
    match kind {
        FileJobKind::Copy => "copy",
        FileJobKind::Move => "move",
        FileJobKind::Delete => "delete",
    }
}

/// A job's state as SBG shows it.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AsyncJobState {
    /// Not started yet.
    Submitted,
    /// Started; no item done yet.
    Resolving,
    /// Some items done.
    Running,
    /// Every item done (each with its resource or its error).
    Finished,
}

/// The type of a job.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AsyncJobType {
    Copy,
    Move,
    Delete,
}

/// An async file job, as `sevenbridges-python`'s `AsyncJob` reads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AsyncJob {
    /// Items done with a resource.
    pub completed_files: i64,
    /// Items done with an error.
    pub failed_files: i64,
    pub finished_on: Option<String>,
    pub href: String,
    pub id: String,
    /// One entry per item done so far, in request order (every item once `FINISHED`): the
    /// file as it was right after the item took effect (a deleted one as it was before), or
    /// the error the item met.
    pub result: Vec<BulkEntry<views::File>>,
    pub started_on: Option<String>,
    pub state: AsyncJobState,
    /// Items in the request.
    pub total_files: i64,
    #[serde(rename = "type")]
    pub kind: AsyncJobType,
}

fn wire_state(job: &FileJobRec) -> AsyncJobState {
    match job.state {
        JobState::Completed | JobState::Failed => AsyncJobState::Finished,
        JobState::Pending if job.started_at.is_none() => AsyncJobState::Submitted,
        _ if job.next_item == 0 => AsyncJobState::Resolving,
        _ => AsyncJobState::Running,
    }
}

/// A stored item error, back as the error it was.
fn stored_error(value: &Value) -> ApiError {
    let number = |key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
    let code = Code::ALL
        .iter()
        .copied()
        .find(|c| {
            u64::from(c.number()) == number("code") && u64::from(c.status()) == number("status")
        })
        .unwrap_or(Code::Internal);
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or(code.default_message());
    ApiError::new(code, message)
}

fn render(state: &AppState, job: &FileJobRec, items: &[FileJobItem]) -> AsyncJob {
    let kind = job.kind().unwrap_or(FileJobKind::Copy);
    let result = items
        .iter()
        .filter(|i| i.done)
        .map(|i| match (i.resource_file(), &i.error) {
            (Some(file), _) => BulkEntry::Resource(views::file(state.base(), &file)),
            (None, Some(error)) => BulkEntry::Error(stored_error(&error.0).into()),
            (None, None) => BulkEntry::Error(ApiError::from(Code::Internal).into()),
        })
        .collect();
    AsyncJob {
        completed_files: job.completed_items,
        failed_files: job.failed_items,
        finished_on: job.finished_at.map(format_ms),
        href: format!(
            "{}/v2/async/files/{}/{}",
            state.base(),
            segment(kind),
            job.id
        ),
        id: job.id.clone(),
        result,
        started_on: job.started_at.map(format_ms),
        state: wire_state(job),
        total_files: job.total_items,
        kind: match kind {
            FileJobKind::Copy => AsyncJobType::Copy,
            FileJobKind::Move => AsyncJobType::Move,
            FileJobKind::Delete => AsyncJobType::Delete,
        },
    }
}

/// Renders jobs with their items, loaded in one query.
async fn render_all(state: &AppState, jobs: &[FileJobRec]) -> ApiResult<Vec<AsyncJob>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let mut by_job: HashMap<String, Vec<FileJobItem>> = HashMap::new();
    for item in state.store.file_job_items(&ids).await? {
        by_job.entry(item.job_id.clone()).or_default().push(item);
    }
    Ok(jobs
        .iter()
        .map(|j| render(state, j, by_job.get(&j.id).map_or(&[][..], Vec::as_slice)))
        .collect())
}

/// One copy or move: a file or folder and where it goes, a project's root folder
/// (`project`) or a folder (`parent`); an empty string counts as not given.
#[derive(Deserialize, ToSchema)]
struct TargetItem {
    /// The file or folder's id.
    file: String,
    /// A project id, `owner/slug`; exactly one of `project` and `parent`.
    #[serde(default)]
    project: Option<String>,
    /// A folder's id.
    #[serde(default)]
    parent: Option<String>,
    /// A new name; empty or missing keeps the file's.
    #[serde(default)]
    name: Option<String>,
}

/// One file or folder to delete; folders go with everything in them.
#[derive(Deserialize, ToSchema)]
struct DeleteItem {
    /// The file or folder's id.
    file: String,
}

/// The items of a copy or move job: 1 to 100.
#[derive(Deserialize, ToSchema)]
struct TargetItems {
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<TargetItem>,
}

/// The items of a delete job: 1 to 100.
#[derive(Deserialize, ToSchema)]
struct DeleteItems {
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<DeleteItem>,
}

/// `None` for an empty string, as SBG's examples send `"parent": ""`.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// An item as stored: its fields, and (when they do not make sense together) the error it will
/// end with when its turn comes.
fn parse_item(
    job_id: &str,
    position: usize,
    file: String,
    target: Option<TargetItem>,
) -> FileJobItem {
    let mut item = FileJobItem::new(job_id, position as i64);
    item.file_id = file;
    let checked = (|| -> ApiResult<()> {
        if item.file_id.is_empty() {
            return Err(ApiError::new(
                Code::InvalidFileRequest,
                "Each item needs 'file', a file id.",
            ));
        }
        let Some(target) = target else {
            return Ok(());
        };
        let (project, parent) = (given(target.project), given(target.parent));
        match (&project, &parent) {
            (Some(_), Some(_)) => return Err(ApiError::from(Code::ParentAndProject)),
            (None, None) => return Err(ApiError::from(Code::ParentOrProjectMissing)),
            (Some(p), None) => {
                parse_project_id(p)?;
            }
            (None, Some(_)) => {}
        }
        item.project_id = project;
        item.parent_id = parent;
        item.name = given(target.name);
        if let Some(name) = &item.name {
            check_name(name)?;
        }
        Ok(())
    })();
    if let Err(ApiError(e)) = checked {
        item.refuse(serde_json::to_value(&e).unwrap_or_default());
    }
    item
}

async fn submit(
    state: &AppState,
    user: &User,
    kind: FileJobKind,
    items: Vec<(String, Option<TargetItem>)>,
) -> ApiResult<Json<AsyncJob>> {
    check_bulk_len(items.len())?;
    let id = new_long_id();
    let parsed: Vec<FileJobItem> = items
        .into_iter()
        .enumerate()
        .map(|(i, (file, target))| parse_item(&id, i, file, target))
        .collect();
    let job = FileJobRec {
        seq: 0,
        id,
        owner: user.username.clone(),
        kind: kind.as_str().to_string(),
        state: JobState::Pending,
        total_items: parsed.len() as i64,
        next_item: 0,
        completed_items: 0,
        failed_items: 0,
        attempt: 0,
        lease_owner: None,
        lease_expires_at: 0,
        next_attempt_at: 0,
        error: None,
        created_at: now_ms(),
        started_at: None,
        finished_at: None,
    };
    state.store.insert_file_job(&job, &parsed).await?;
    state.file_jobs.notify_one();
    Ok(Json(render(state, &job, &[])))
}

/// Copies up to 100 files or folders (folders with everything in them). No bytes are copied:
/// a copy shares its file's platform bytes, or points at the same volume object. A name taken
/// in the destination becomes `_1_name`, `_2_name`…. Needs `copy` on each file's project and
/// `write` on the destination, checked as each item takes effect.
#[utoipa::path(
    post,
    path = "/v2/async/files/copy",
    tag = "async",
    operation_id = "async_copy_files",
    request_body = TargetItems,
    responses(
        (status = 200, description = "The job, SUBMITTED. Each item's outcome is in `result` once it is done: the copy, or the error it met (404 5002 no such file, 403 5014 no copy right, 404 3002 / 403 3001 destination project, 404 5026 / 403 5001 / 400 5022 destination folder, 400 5029 / 5031 / 3012 / 5024 an item whose fields do not make sense together, 400 5033 an empty file id, 400 5033 a folder into itself, 409 5003 no free name).", body = AsyncJob),
        (status = 400, description = "No items or more than 100 (90000), not JSON of this shape, such as an item without a string `file` (90009).", body = ErrorSchema),
    ),
)]
async fn copy_files(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<TargetItems>,
) -> ApiResult<Json<AsyncJob>> {
    let items = body.items.into_iter().map(|i| (i.file.clone(), Some(i)));
    submit(&state, &user, FileJobKind::Copy, items.collect()).await
}

/// Moves up to 100 files or folders, across projects too when the caller may write both. A
/// file keeps its id, and a name taken by another file becomes `_1_name`, …; a folder merges
/// into a folder of the same name in the destination, or else into a new one (a new id). Needs
/// `write` on each file's project and on the destination, checked as each item takes effect.
#[utoipa::path(
    post,
    path = "/v2/async/files/move",
    tag = "async",
    operation_id = "async_move_files",
    request_body = TargetItems,
    responses(
        (status = 200, description = "The job, SUBMITTED. Each item's outcome is in `result` once it is done: the moved file or folder, or the error it met (as for copies; 403 5032 no write right or a root folder, 409 90007 a file an export is moving).", body = AsyncJob),
        (status = 400, description = "No items or more than 100 (90000), not JSON of this shape, such as an item without a string `file` (90009).", body = ErrorSchema),
    ),
)]
async fn move_files(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<TargetItems>,
) -> ApiResult<Json<AsyncJob>> {
    let items = body.items.into_iter().map(|i| (i.file.clone(), Some(i)));
    submit(&state, &user, FileJobKind::Move, items.collect()).await
}

/// Deletes up to 100 files or folders; a folder goes with everything in it. The platform bytes
/// nothing else refers to are freed afterwards by the sweeper. Needs `write` on each file's
/// project, checked as each item takes effect.
#[utoipa::path(
    post,
    path = "/v2/async/files/delete",
    tag = "async",
    operation_id = "async_delete_files",
    request_body = DeleteItems,
    responses(
        (status = 200, description = "The job, SUBMITTED. Each item's outcome is in `result` once it is done: the deleted file as it was, or the error it met (404 5002 no such file, 403 5001 no write right or a root folder, 409 90007 a file an export is moving, 400 5033 an empty file id).", body = AsyncJob),
        (status = 400, description = "No items or more than 100 (90000), not JSON of this shape, such as an item without a string `file` (90009).", body = ErrorSchema),
    ),
)]
async fn delete_files(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<DeleteItems>,
) -> ApiResult<Json<AsyncJob>> {
    let items = body.items.into_iter().map(|i| (i.file, None));
    submit(&state, &user, FileJobKind::Delete, items.collect()).await
}

fn job_not_found() -> ApiError {
    ApiError::new(Code::JobNotFound, "Requested async job does not exist.")
}

/// One of the caller's jobs (platform administrators see all), of the type the path names.
#[utoipa::path(
    get,
    path = "/v2/async/files/{operation}/{id}",
    tag = "async",
    operation_id = "get_async_file_job",
    params(
        ("operation" = String, Path, description = "`copy`, `move` or `delete`: the job's type."),
        ("id" = String, Path),
    ),
    responses(
        (status = 200, description = "The job.", body = AsyncJob),
        (status = 404, description = "No such job of the caller's, or not of this type (9008); an operation other than copy, move or delete (90003).", body = ErrorSchema),
    ),
)]
async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((operation, id)): Path<(String, String)>,
) -> ApiResult<Json<AsyncJob>> {
    let kind = FileJobKind::ALL
        .into_iter()
        .find(|k| segment(*k) == operation)
        .ok_or_else(|| {
            ApiError::new(
                Code::NotFound,
                "No such route: async file jobs are copy, move or delete.",
            )
        })?;
    let job = match state.store.get_file_job(&id).await? {
        Some(j) if (j.owner == user.username || user.is_admin) && j.kind() == Some(kind) => j,
        _ => return Err(job_not_found()),
    };
    Ok(Json(
        render_all(&state, std::slice::from_ref(&job))
            .await?
            .remove(0),
    ))
}

/// The caller's async file jobs, newest first.
#[utoipa::path(
    get,
    path = "/v2/async/files",
    tag = "async",
    operation_id = "list_async_file_jobs",
    params(Paging),
    responses(
        (status = 200, description = "One page of jobs.", body = ListPage<AsyncJob>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "Bad paging (90000).", body = ErrorSchema),
    ),
)]
async fn list(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let page = params.page()?;
    let (jobs, total) = state.store.list_file_jobs(&user.username, page).await?;
    let items = render_all(&state, &jobs).await?;
    Ok(list_page(state.base(), &uri, page, total, items))
}
