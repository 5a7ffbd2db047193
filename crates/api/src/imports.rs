//! Import jobs (sbg-api.md §3): volume objects and folders become alias files in a project.
//! Submission checks metadata only; the engine reads the volume and commits the aliases.

use super::access::Need;
use super::auth::AuthUser;
use super::exports::job_not_found;
use super::exports::JobFilter;
use super::files::{check_name, resolve_destination};
use super::openapi::{ErrorSchema, JobStateSchema};
use super::views;
use super::volumes::volume_inactive;
use super::wire::{check_bulk_len, list_page, Body, Bulk, ListPage, Paging, Params};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use egress_core::util::{format_ms, new_long_id, now_ms};
use egress_core::volume;
use egress_store::{ImportRec, JobState, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/storage/imports", get(list).post(create_one))
        .route("/v2/storage/imports/", get(list).post(create_one))
        .route("/v2/storage/imports/{id}", get(get_one))
        .route("/v2/bulk/storage/imports/create", post(create_bulk))
        .route("/v2/bulk/storage/imports", post(create_bulk))
        .route("/v2/bulk/storage/imports/get", post(get_bulk))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create_one, list, get_one, create_bulk, get_bulk))]
pub struct ApiDoc;

type St = State<Arc<AppState>>;

/// The volume object, or folder (a location ending with `/`), an import reads.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ImportSource {
    /// Relative to the volume's prefix.
    #[schema(min_length = 1)]
    pub location: String,
    /// The volume's id, `owner/name`.
    pub volume: String,
}

/// Where an import puts the file (or folder): a project's root folder (`project`) or a folder
/// (`parent`), named `name` or after the location's last segment.
#[derive(Deserialize, Default, ToSchema)]
#[schema(as = ImportDestinationRequest)]
struct Destination {
    /// A project id, `owner/slug`; exactly one of `project` and `parent`.
    project: Option<String>,
    /// A folder's id.
    parent: Option<String>,
    #[schema(min_length = 1, pattern = "^[^/]+$")]
    name: Option<String>,
}

/// One import to submit.
#[derive(Deserialize, ToSchema)]
struct ImportItem {
    source: ImportSource,
    #[serde(default)]
    destination: Destination,
    /// Replace a file of the same name.
    #[serde(default)]
    overwrite: bool,
    /// Name the file `_1_name`, `_2_name`, … when the name is taken. The client sends it only
    /// when true.
    #[serde(default)]
    autorename: bool,
    /// A folder import recreates the folder and its sub-folders [default: true]. The client
    /// sends it only when false.
    preserve_folder_structure: Option<bool>,
}

/// Imports to submit together.
#[derive(Deserialize, ToSchema)]
struct ImportItems {
    /// 1 to 100 items.
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<ImportItem>,
}

/// An import job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Import {
    pub autorename: bool,
    #[schema(format = DateTime)]
    pub created_on: String,
    pub destination: ImportDestination,
    /// Why the job failed, or why its last attempt did (while it is retried).
    #[schema(required, value_type = Option<ErrorSchema>)]
    pub error: Option<Value>,
    #[schema(required, format = DateTime)]
    pub finished_on: Option<String>,
    pub href: String,
    pub id: String,
    pub overwrite: bool,
    pub preserve_folder_structure: bool,
    pub progress: ImportProgress,
    /// The file or folder made, once the job has completed.
    #[schema(required)]
    pub result: Option<views::File>,
    pub source: ImportSource,
    #[schema(required, format = DateTime)]
    pub started_on: Option<String>,
    #[schema(value_type = JobStateSchema)]
    pub state: JobState,
}

/// Where an import puts its result.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportDestination {
    /// The name asked for; null for the location's last segment.
    #[schema(required)]
    pub name: Option<String>,
    /// The destination folder's id.
    pub parent: String,
    /// The project's id, `owner/slug`.
    pub project: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportProgress {
    /// Objects imported so far (a folder import commits them in batches).
    pub objects_imported: i64,
}

async fn render(state: &AppState, i: &ImportRec) -> ApiResult<Import> {
    let result = match &i.result_file_id {
        Some(id) => state
            .store
            .get_file(id)
            .await?
            .map(|f| views::file(state.base(), &f)),
        None => None,
    };
    Ok(Import {
        autorename: i.autorename,
        created_on: format_ms(i.created_at),
        destination: ImportDestination {
            name: i.name.clone(),
            parent: i.parent_id.clone(),
            project: i.project_id.clone(),
        },
        error: i.error.as_ref().map(|j| j.0.clone()),
        finished_on: i.finished_at.map(format_ms),
        href: format!("{}/v2/storage/imports/{}", state.base(), i.id),
        id: i.id.clone(),
        overwrite: i.overwrite,
        preserve_folder_structure: i.preserve_folder_structure,
        progress: ImportProgress {
            objects_imported: i.objects_imported,
        },
        result,
        source: ImportSource {
            location: i.location.clone(),
            volume: i.volume_id.clone(),
        },
        started_on: i.started_at.map(format_ms),
        state: i.state,
    })
}

/// Without a destination name, an object import names its file, and a folder import that keeps
/// the structure its top folder, after the location's last segment: refused now if that cannot
/// be a name, rather than failing the job later.
fn check_location_name(item: &ImportItem) -> ApiResult<()> {
    let location = &item.source.location;
    let is_folder = location.ends_with('/');
    if is_folder && item.preserve_folder_structure == Some(false) {
        return Ok(());
    }
    egress_core::names::check(egress_core::names::last_segment(location)).map_err(|why| {
        ApiError::new(
            Code::InvalidLocation,
            format!(
                "Invalid location: the last segment of {location:?} cannot be a file or folder \
                 name ({why}); give destination.name."
            ),
        )
    })
}

/// Checks one item: the volume (copy right, active), the location and name, and the
/// destination (write right on the project).
async fn validate(state: &AppState, user: &User, item: ImportItem) -> ApiResult<ImportRec> {
    let vol = state
        .volume_for(user, &item.source.volume, Need::Copy)
        .await?;
    if !vol.active {
        return Err(volume_inactive());
    }
    volume::checked_key(&vol.service.prefix, &item.source.location)?;
    match &item.destination.name {
        Some(name) => check_name(name)?,
        None => check_location_name(&item)?,
    }
    let dest = &item.destination;
    let parent =
        resolve_destination(state, user, dest.project.as_deref(), dest.parent.as_deref()).await?;
    Ok(ImportRec {
        seq: 0,
        id: new_long_id(),
        owner: user.username.clone(),
        volume_id: vol.id,
        volume_uid: vol.uid,
        location: item.source.location,
        project_id: parent.project_id,
        parent_id: parent.id,
        name: item.destination.name,
        overwrite: item.overwrite,
        autorename: item.autorename,
        preserve_folder_structure: item.preserve_folder_structure.unwrap_or(true),
        state: JobState::Pending,
        error: None,
        attempt: 0,
        lease_owner: None,
        lease_expires_at: 0,
        next_attempt_at: 0,
        cursor: None,
        objects_imported: 0,
        result_file_id: None,
        created_at: now_ms(),
        started_at: None,
        finished_at: None,
    })
}

/// Submits one import.
#[utoipa::path(
    post,
    path = "/v2/storage/imports",
    tag = "imports",
    operation_id = "create_import",
    request_body = ImportItem,
    responses(
        (status = 200, description = "The new job, PENDING.", body = Import),
        (status = 400, description = "A bad location (9011) or name (5024), a GCS volume (9017), neither or both of `project` and `parent` (5029, 5031), a malformed project id (3012), a parent that is a file (5022), not JSON of this shape (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not copy from the volume (9020) or write the destination (3001, 5001), or the volume is deactivated (9103).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007), project (3002) or destination folder (5026).", body = ErrorSchema),
    ),
)]
async fn create_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(item): Body<ImportItem>,
) -> ApiResult<Json<Import>> {
    let job = validate(&state, &user, item).await?;
    state
        .store
        .insert_imports(std::slice::from_ref(&job))
        .await?;
    state.jobs.notify_one();
    Ok(Json(render(&state, &job).await?))
}

/// Submits up to 100 imports; each entry is the job or the error its item met.
#[utoipa::path(
    post,
    path = "/v2/bulk/storage/imports/create",
    tag = "imports",
    operation_id = "create_imports",
    request_body = ImportItems,
    responses(
        (status = 200, description = "One entry per item, in order (also at `/v2/bulk/storage/imports`).", body = Bulk<Import>),
        (status = 400, description = "No items or more than 100 (90000), not JSON of this shape (90009).", body = ErrorSchema),
    ),
)]
async fn create_bulk(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<ImportItems>,
) -> ApiResult<Json<Bulk<Import>>> {
    check_bulk_len(body.items.len())?;
    let mut results = Vec::with_capacity(body.items.len());
    for item in body.items {
        results.push(validate(&state, &user, item).await);
    }
    let jobs: Vec<ImportRec> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    state.store.insert_imports(&jobs).await?;
    state.jobs.notify_one();
    let mut items = Vec::with_capacity(results.len());
    for r in results {
        items.push(match r {
            Ok(job) => render(&state, &job).await,
            Err(e) => Err(e),
        });
    }
    Ok(Json(Bulk::new(items)))
}

async fn own_import(state: &AppState, user: &User, id: &str) -> ApiResult<ImportRec> {
    match state.store.get_import(id).await? {
        Some(i) if i.owner == user.username || user.is_admin => Ok(i),
        _ => Err(job_not_found()),
    }
}

/// An import of the caller's (platform administrators see all).
#[utoipa::path(
    get,
    path = "/v2/storage/imports/{id}",
    tag = "imports",
    operation_id = "get_import",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The job.", body = Import),
        (status = 404, description = "No such job of the caller's (9008).", body = ErrorSchema),
    ),
)]
async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Import>> {
    let i = own_import(&state, &user, &id).await?;
    Ok(Json(render(&state, &i).await?))
}

#[derive(Deserialize, ToSchema)]
struct ImportIds {
    /// 1 to 100 import ids.
    #[schema(min_items = 1, max_items = 100)]
    import_ids: Vec<String>,
}

/// Gets up to 100 imports; each entry is the job or the error it met.
#[utoipa::path(
    post,
    path = "/v2/bulk/storage/imports/get",
    tag = "imports",
    operation_id = "get_imports",
    request_body = ImportIds,
    responses(
        (status = 200, description = "One entry per id, in order.", body = Bulk<Import>),
        (status = 400, description = "No ids or more than 100 (90000), not JSON of this shape (90009).", body = ErrorSchema),
    ),
)]
async fn get_bulk(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<ImportIds>,
) -> ApiResult<Json<Bulk<Import>>> {
    check_bulk_len(body.import_ids.len())?;
    let mut items = Vec::with_capacity(body.import_ids.len());
    for id in &body.import_ids {
        let result = match own_import(&state, &user, id).await {
            Ok(i) => render(&state, &i).await,
            Err(e) => Err(e),
        };
        items.push(result);
    }
    Ok(Json(Bulk::new(items)))
}

/// The caller's imports.
#[utoipa::path(
    get,
    path = "/v2/storage/imports",
    tag = "imports",
    operation_id = "list_imports",
    params(
        ("project" = Option<String>, Query, description = "Only imports into this project."),
        ("volume" = Option<String>, Query, description = "Only imports from this volume."),
        JobFilter,
        Paging,
    ),
    responses(
        (status = 200, description = "One page of jobs.", body = ListPage<Import>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "An unknown state or bad paging (90000).", body = ErrorSchema),
    ),
)]
async fn list(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let page = params.page()?;
    let states = super::exports::parse_states(&params)?;
    let (jobs, total) = state
        .store
        .list_imports(
            &user.username,
            params.get("project"),
            params.get("volume"),
            &states,
            page,
        )
        .await?;
    let mut items: Vec<Import> = Vec::with_capacity(jobs.len());
    for i in &jobs {
        items.push(render(&state, i).await?);
    }
    Ok(list_page(state.base(), &uri, page, total, items))
}
