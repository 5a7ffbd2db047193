//! Files and folders on the platform (sbg-api.md §5): list, get, rename, metadata, tags, delete,
//! folders, copy and move, bulk get and delete, and signed download URLs. The submodules add
//! continuation-token paging (`scroll`), bulk update and edit (`bulk_edit`, through
//! `change_file`, the code of `PATCH /v2/files/{id}`) and the 501 of file search (`search`).

mod bulk_edit;
mod scroll;
mod search;

use super::access::{parse_project_id, Need};
use super::auth::AuthUser;
use super::fields::{Fields, SelectedFile};
use super::list_filters;
use super::openapi::ErrorSchema;
use super::views;
use super::wire::{
    check_bulk_len, list_page, object, Body, Bulk, ListPage, Paging, Params, Selector,
};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use egress_core::limits;
use egress_core::util::now_ms;
use egress_store::{FileFilter, FileRec, StoreError, User};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/files", get(list).post(create_folder))
        .route("/v2/files/{id}", get(get_one).patch(update).delete(remove))
        .route("/v2/files/{id}/list", get(list_folder))
        .route(
            "/v2/files/{id}/metadata",
            get(get_metadata)
                .put(replace_metadata)
                .patch(merge_metadata),
        )
        .route("/v2/files/{id}/tags", put(set_tags))
        .route("/v2/files/{id}/actions/copy", post(copy))
        .route("/v2/files/{id}/actions/move", post(move_to))
        .route("/v2/files/{id}/download_info", get(download_info))
        .route("/v2/bulk/files/get", post(bulk_get))
        .route("/v2/bulk/files/delete", post(bulk_delete))
        .merge(scroll::routes())
        .merge(bulk_edit::routes())
        .merge(search::routes())
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list,
    create_folder,
    get_one,
    update,
    remove,
    list_folder,
    get_metadata,
    replace_metadata,
    merge_metadata,
    set_tags,
    copy,
    move_to,
    download_info,
    bulk_get,
    bulk_delete,
    scroll::scroll_files,
    scroll::scroll_folder,
    bulk_edit::bulk_update,
    bulk_edit::bulk_edit,
    search::search
))]
pub struct ApiDoc;

type St = State<Arc<AppState>>;

/// A file or folder name by the one rule imports follow too (`egress_core::names`).
pub use egress_engine::services::files::check_name;

/// Where a new file goes: exactly one of a project (its root folder) or a parent folder.
pub async fn resolve_destination(
    state: &AppState,
    user: &User,
    project: Option<&str>,
    parent: Option<&str>,
) -> ApiResult<FileRec> {
    match (project, parent) {
        (Some(_), Some(_)) => Err(ApiError::from(Code::ParentAndProject)),
        (None, None) => Err(ApiError::from(Code::ParentOrProjectMissing)),
        (Some(project_id), None) => {
            let (project, _) = state.project_for(user, project_id, Need::Write).await?;
            state
                .store
                .get_file(&project.root_folder)
                .await?
                .ok_or_else(|| ApiError::from(Code::Internal))
        }
        (None, Some(parent_id)) => {
            let (folder, _) = state
                .file_for(user, parent_id, Need::Write)
                .await
                .map_err(|e| {
                    if e.code == Code::FileNotFound {
                        ApiError::from(Code::DestinationNotFound)
                    } else {
                        e
                    }
                })?;
            if !folder.is_folder {
                return Err(ApiError::from(Code::ParentNotFolder));
            }
            Ok(folder)
        }
    }
}

async fn list_children(
    state: &AppState,
    uri: &Uri,
    folder: &FileRec,
    params: &Params,
    filter: FileFilter,
) -> ApiResult<Response> {
    let page = params.page()?;
    let (files, total) = state.store.list_children(&folder.id, &filter, page).await?;
    let items: Vec<views::File> = files.iter().map(|f| views::file(state.base(), f)).collect();
    let items = Fields::from_params(params).select_all(&items);
    Ok(list_page(state.base(), uri, page, total, items))
}

/// The filters of a folder listing, for the API document (`list_filters::file_filter` reads
/// them). `metadata.<key>=<value>` (repeatable; several keys must all match) keeps children whose
/// metadata maps the key to that string. Other query keys are refused (90000).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters only.
struct ChildFilter {
    /// Only children of one of these names (repeatable).
    name: Option<Vec<String>>,
    /// Only children with one of these tags (repeatable).
    tag: Option<Vec<String>>,
    /// Only children made by one of these tasks (repeatable). Platform files record no
    /// origin, so none matches.
    #[param(rename = "origin.task")]
    origin_task: Option<Vec<String>>,
    /// Only children from one of these datasets (repeatable); none matches, as for `origin.task`.
    #[param(rename = "origin.dataset")]
    origin_dataset: Option<Vec<String>>,
}

/// The children of a project's root folder (`project`) or of a folder (`parent`).
/// `metadata.<key>=<value>` keeps the children whose metadata maps the key to that string
/// (repeat a key for any of several values; several keys must all match).
#[utoipa::path(
    get,
    path = "/v2/files",
    tag = "files",
    operation_id = "list_files",
    params(
        ("project" = Option<String>, Query, description = "A project id, `owner/slug`; exactly one of `project` and `parent`."),
        ("parent" = Option<String>, Query, description = "A folder's id."),
        ChildFilter,
        Paging,
        Selector,
    ),
    responses(
        (status = 200, description = "One page of files and folders.", body = ListPage<SelectedFile>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "Neither or both of `project` and `parent` (5029, 5031), a malformed project id (5005), a parent that is a file (5022), bad paging or a query key the list does not know (90000).", body = ErrorSchema),
        (status = 403, description = "The caller may not read the project (3001, 5001).", body = ErrorSchema),
        (status = 404, description = "No such project (3002) or folder (5002).", body = ErrorSchema),
    ),
)]
async fn list(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let filter = list_filters::file_filter(&params, &["project", "parent"])?;
    let folder = listed_folder(&state, &user, &params).await?;
    list_children(&state, &uri, &folder, &params, filter).await
}

/// The folder a file list names: a project's root (`project`) or a folder (`parent`), which
/// the caller may read.
async fn listed_folder(state: &AppState, user: &User, params: &Params) -> ApiResult<FileRec> {
    match (params.get("project"), params.get("parent")) {
        (Some(_), Some(_)) => Err(ApiError::from(Code::ParentAndProject)),
        (None, None) => Err(ApiError::from(Code::ParentOrProjectMissing)),
        (Some(project_id), None) => {
            parse_project_id(project_id)
                .map_err(|_| ApiError::from(Code::MalformedProjectQuery))?;
            let (project, _) = state.project_for(user, project_id, Need::Read).await?;
            state
                .store
                .get_file(&project.root_folder)
                .await?
                .ok_or_else(|| ApiError::from(Code::Internal))
        }
        (None, Some(parent_id)) => folder_for(state, user, parent_id).await,
    }
}

async fn folder_for(state: &AppState, user: &User, id: &str) -> ApiResult<FileRec> {
    let (folder, _) = state.file_for(user, id, Need::Read).await?;
    if !folder.is_folder {
        return Err(ApiError::from(Code::ParentNotFolder));
    }
    Ok(folder)
}

#[utoipa::path(
    get,
    path = "/v2/files/{id}/list",
    tag = "files",
    operation_id = "list_folder",
    params(("id" = String, Path, description = "A folder's id."), ChildFilter, Paging, Selector),
    responses(
        (status = 200, description = "One page of the folder's children.", body = ListPage<SelectedFile>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "A file, not a folder (5022); bad paging or a query key the list does not know (90000).", body = ErrorSchema),
        (status = 403, description = "The caller may not read the project (5001).", body = ErrorSchema),
        (status = 404, description = "No such folder (5002).", body = ErrorSchema),
    ),
)]
async fn list_folder(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let filter = list_filters::file_filter(&params, &[])?;
    let folder = folder_for(&state, &user, &id).await?;
    list_children(&state, &uri, &folder, &params, filter).await
}

/// A new folder, in a project's root folder (`project`) or in a folder (`parent`).
#[derive(Deserialize, ToSchema)]
struct NewFolder {
    /// A file or folder name: 1 to 255 bytes, no `/` or control characters, not `.` or `..`.
    #[schema(min_length = 1, pattern = "^[^/]+$")]
    name: String,
    /// `folder` (any case).
    #[serde(rename = "type")]
    kind: String,
    /// A project id, `owner/slug`; exactly one of `project` and `parent`.
    project: Option<String>,
    /// A folder's id.
    parent: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v2/files",
    tag = "files",
    operation_id = "create_folder",
    request_body = NewFolder,
    responses(
        (status = 200, description = "The new folder.", body = views::File),
        (status = 400, description = "A type other than folder (5012), a bad name (5024), neither or both of `project` and `parent` (5029, 5031), a malformed project id (3012), a parent that is a file (5022), not JSON of this shape (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not write the destination (3001, 5001).", body = ErrorSchema),
        (status = 404, description = "No such project (3002) or destination folder (5026).", body = ErrorSchema),
        (status = 409, description = "The name is taken in the destination (5030).", body = ErrorSchema),
    ),
)]
async fn create_folder(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<NewFolder>,
) -> ApiResult<Json<views::File>> {
    if !body.kind.eq_ignore_ascii_case("folder") {
        return Err(ApiError::from(Code::InvalidFileType));
    }
    check_name(&body.name)?;
    let parent = resolve_destination(
        &state,
        &user,
        body.project.as_deref(),
        body.parent.as_deref(),
    )
    .await?;
    let folder = FileRec::new(&parent.project_id, Some(&parent.id), &body.name, true);
    state
        .store
        .create_file(&folder)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::from(Code::FolderExists),
            e => e.into(),
        })?;
    Ok(Json(views::file(state.base(), &folder)))
}

#[utoipa::path(
    get,
    path = "/v2/files/{id}",
    tag = "files",
    operation_id = "get_file",
    params(("id" = String, Path), Selector),
    responses(
        (status = 200, description = "The file or folder.", body = SelectedFile),
        (status = 403, description = "The caller may not read its project (5001).", body = ErrorSchema),
        (status = 404, description = "No such file, or one the caller cannot see (5002).", body = ErrorSchema),
    ),
)]
async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (file, _) = state.file_for(&user, &id, Need::Read).await?;
    Ok(Json(
        Fields::from_params(&params).select(&views::file(state.base(), &file)),
    ))
}

fn name_clash(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict => ApiError::from(Code::FileExists),
        StoreError::NotFound => ApiError::from(Code::FileNotFound),
        e => e.into(),
    }
}

/// What a file update may change. The file's read-only fields (`id`, `href`, `size`, `project`,
/// `parent`, `type`, `created_on`, `modified_on`, `storage`, `origin`, `checksums`) are ignored.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body only; the handler reads it field by field.
struct FileChanges {
    /// A new name (not for a project's root folder).
    #[schema(min_length = 1, pattern = "^[^/]+$")]
    name: Option<String>,
    /// Merged into the metadata; a `null` value removes its key.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// Replaces the tags.
    tags: Option<Vec<String>>,
}

/// Renames a file or changes its metadata or tags; needs write on its project.
#[utoipa::path(
    patch,
    path = "/v2/files/{id}",
    tag = "files",
    operation_id = "update_file",
    params(("id" = String, Path)),
    request_body = FileChanges,
    responses(
        (status = 200, description = "The changed file.", body = views::File),
        (status = 400, description = "A bad name (5024) or value (5033), over a limit (90000), a body that is not a JSON object (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not write its project (5001), or renames a root folder (5008).", body = ErrorSchema),
        (status = 404, description = "No such file (5002).", body = ErrorSchema),
        (status = 409, description = "The name is taken (5003), or an export is moving the file (90007).", body = ErrorSchema),
    ),
)]
async fn update(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Json<views::File>> {
    let file = change_file(&state, &user, &id, object(body)?, Omitted::Keep).await?;
    Ok(Json(views::file(state.base(), &file)))
}

/// What a change to a file's details does with `metadata` and `tags` it does not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Omitted {
    /// PATCH and bulk edit: keep them; `metadata` is merged (a `null` value removes its key),
    /// `tags` replaced.
    Keep,
    /// Bulk update (PUT semantics): the file's name, metadata and tags become what is given;
    /// missing or `null` metadata and tags become empty, a missing or `null` name stays.
    Clear,
}

/// Changes a file's name, metadata and tags as `changes` says, with the caller's write right
/// on its project checked now, the name rule and the limits checked on what changes; saves it.
/// The file's read-only fields (`id`, `href`, `size`, …) are ignored; other keys are 5033.
pub async fn change_file(
    state: &AppState,
    user: &User,
    id: &str,
    changes: Map<String, Value>,
    omitted: Omitted,
) -> ApiResult<FileRec> {
    let (mut file, _) = state.file_for(user, id, Need::Write).await?;
    let clear = omitted == Omitted::Clear;
    let (mut metadata_changed, mut tags_changed) = (clear, clear);
    if clear {
        file.metadata.clear();
        file.tags.clear();
    }
    for (key, value) in changes {
        match (key.as_str(), value) {
            ("name" | "metadata" | "tags", Value::Null) if clear => {}
            ("name", Value::String(name)) => {
                if name == file.name {
                    // Unchanged (bulk calls send every name back), so not held to the rule.
                    continue;
                }
                check_name(&name)?;
                if file.parent_id.is_none() {
                    return Err(ApiError::new(
                        Code::RenameForbidden,
                        "The root folder cannot be renamed.",
                    ));
                }
                if state.store.moving_export(&file.id).await?.is_some() {
                    return Err(being_moved());
                }
                file.name = name;
            }
            ("metadata", Value::Object(m)) => {
                merge(&mut file.metadata, m);
                metadata_changed = true;
            }
            ("tags", v @ Value::Array(_)) => {
                file.tags = parse_tags(v)?;
                tags_changed = true;
            }
            (
                "id" | "href" | "size" | "project" | "parent" | "type" | "created_on"
                | "modified_on" | "storage" | "origin" | "checksums",
                _,
            ) => {}
            _ => {
                return Err(ApiError::new(
                    Code::InvalidFileRequest,
                    format!("Invalid value for '{key}'."),
                ))
            }
        }
    }
    // Only what this request changes is held to the limits: a file stored before them can
    // still be renamed.
    if metadata_changed {
        limits::check_metadata(&file.metadata)?;
    }
    if tags_changed {
        limits::check_tags(&file.tags)?;
    }
    file.modified_at = now_ms();
    state.store.update_file(&file).await.map_err(name_clash)?;
    Ok(file)
}

fn being_moved() -> ApiError {
    ApiError::new(
        Code::Conflict,
        "The file is being moved by an export; wait for it to end.",
    )
}

/// Merges `changes` into metadata; a `null` value removes the key.
fn merge(metadata: &mut Map<String, Value>, changes: Map<String, Value>) {
    for (k, v) in changes {
        if v.is_null() {
            metadata.remove(&k);
        } else {
            metadata.insert(k, v);
        }
    }
}

fn parse_tags(value: Value) -> ApiResult<Vec<String>> {
    serde_json::from_value(value)
        .map_err(|_| ApiError::new(Code::InvalidFileRequest, "Tags must be a list of strings."))
}

/// Deletes a file or an empty folder; needs write on its project.
#[utoipa::path(
    delete,
    path = "/v2/files/{id}",
    tag = "files",
    operation_id = "delete_file",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "A folder that is not empty (5021).", body = ErrorSchema),
        (status = 403, description = "The caller may not write its project, or it is a root folder (5001).", body = ErrorSchema),
        (status = 404, description = "No such file (5002).", body = ErrorSchema),
        (status = 409, description = "An export is moving the file (90007).", body = ErrorSchema),
    ),
)]
async fn remove(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_file(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_file(state: &AppState, user: &User, id: &str) -> ApiResult<FileRec> {
    let (file, _) = state.file_for(user, id, Need::Write).await?;
    if file.parent_id.is_none() {
        return Err(ApiError::new(
            Code::FileForbidden,
            "A project's root folder cannot be deleted.",
        ));
    }
    state
        .store
        .delete_file(&file.id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::from(Code::FileNotFound),
            StoreError::InUse => being_moved(),
            e => e.into(),
        })?;
    state.sweep.notify_one();
    Ok(file)
}

async fn editable_metadata(state: &AppState, user: &User, id: &str) -> ApiResult<FileRec> {
    let (file, _) = state.file_for(user, id, Need::Write).await?;
    if file.is_folder {
        return Err(ApiError::from(Code::FolderMetadata));
    }
    Ok(file)
}

/// A file's metadata: any JSON values under string keys.
type Metadata = Map<String, Value>;

#[utoipa::path(
    get,
    path = "/v2/files/{id}/metadata",
    tag = "files",
    operation_id = "get_file_metadata",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The metadata.", body = Object),
        (status = 403, description = "The caller may not read its project (5001).", body = ErrorSchema),
        (status = 404, description = "No such file (5002).", body = ErrorSchema),
    ),
)]
async fn get_metadata(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Metadata>> {
    let (file, _) = state.file_for(&user, &id, Need::Read).await?;
    Ok(Json(file.metadata))
}

async fn save_metadata(state: &AppState, mut file: FileRec) -> ApiResult<Json<Metadata>> {
    limits::check_metadata(&file.metadata)?;
    file.modified_at = now_ms();
    state.store.update_file(&file).await.map_err(name_clash)?;
    Ok(Json(file.metadata))
}

/// Replaces a file's metadata (`null` values are dropped); needs write on its project.
#[utoipa::path(
    put,
    path = "/v2/files/{id}/metadata",
    tag = "files",
    operation_id = "replace_file_metadata",
    params(("id" = String, Path)),
    request_body(content = Object, description = "The new metadata."),
    responses(
        (status = 200, description = "The metadata now.", body = Object),
        (status = 400, description = "A folder (5025), over a limit (90000), a body that is not a JSON object (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not write its project (5001).", body = ErrorSchema),
        (status = 404, description = "No such file (5002).", body = ErrorSchema),
    ),
)]
async fn replace_metadata(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Json<Metadata>> {
    let mut file = editable_metadata(&state, &user, &id).await?;
    file.metadata = object(body)?;
    file.metadata.retain(|_, v| !v.is_null());
    save_metadata(&state, file).await
}

/// Merges into a file's metadata (a `null` value removes its key); needs write on its project.
#[utoipa::path(
    patch,
    path = "/v2/files/{id}/metadata",
    tag = "files",
    operation_id = "merge_file_metadata",
    params(("id" = String, Path)),
    request_body(content = Object, description = "The keys to set or, with `null`, remove."),
    responses(
        (status = 200, description = "The metadata now.", body = Object),
        (status = 400, description = "A folder (5025), over a limit (90000), a body that is not a JSON object (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not write its project (5001).", body = ErrorSchema),
        (status = 404, description = "No such file (5002).", body = ErrorSchema),
    ),
)]
async fn merge_metadata(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Json<Metadata>> {
    let mut file = editable_metadata(&state, &user, &id).await?;
    merge(&mut file.metadata, object(body)?);
    save_metadata(&state, file).await
}

/// Replaces a file's tags; needs write on its project.
#[utoipa::path(
    put,
    path = "/v2/files/{id}/tags",
    tag = "files",
    operation_id = "set_file_tags",
    params(("id" = String, Path)),
    request_body = Vec<String>,
    responses(
        (status = 200, description = "The tags now.", body = Vec<String>),
        (status = 400, description = "A folder (5027), not a list of strings (5033), over a limit (90000), not JSON (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not write its project (5001).", body = ErrorSchema),
        (status = 404, description = "No such file (5002).", body = ErrorSchema),
    ),
)]
async fn set_tags(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Json<Vec<String>>> {
    let (mut file, _) = state.file_for(&user, &id, Need::Write).await?;
    if file.is_folder {
        return Err(ApiError::from(Code::FolderTags));
    }
    file.tags = parse_tags(body)?;
    limits::check_tags(&file.tags)?;
    file.modified_at = now_ms();
    state.store.update_file(&file).await.map_err(name_clash)?;
    Ok(Json(file.tags))
}

/// Where a copy or a moved file goes: a project's root folder (`project`) or a folder
/// (`parent`), under its own name unless `name` gives another.
#[derive(Deserialize, ToSchema)]
struct CopyTarget {
    /// A project id, `owner/slug`; exactly one of `project` and `parent`.
    project: Option<String>,
    parent: Option<String>,
    #[schema(min_length = 1, pattern = "^[^/]+$")]
    name: Option<String>,
}

/// Inserts `file`, renaming it `_1_name`, `_2_name`… while its name is taken, as SBG does.
pub async fn insert_autorenamed(state: &AppState, mut file: FileRec) -> ApiResult<FileRec> {
    let base = file.name.clone();
    for n in 1..=1000 {
        match state.store.create_file(&file).await {
            Ok(()) => return Ok(file),
            Err(StoreError::Conflict) => {
                file.name = format!("_{n}_{base}");
                check_name(&file.name)?;
            }
            Err(e) => return Err(name_clash(e)),
        }
    }
    Err(ApiError::from(Code::FileExists))
}

/// Copies a file (not a folder); a taken name becomes `_1_name`, `_2_name`, ….
#[utoipa::path(
    post,
    path = "/v2/files/{id}/actions/copy",
    tag = "files",
    operation_id = "copy_file",
    params(("id" = String, Path)),
    request_body = CopyTarget,
    responses(
        (status = 200, description = "The copy.", body = views::File),
        (status = 400, description = "A folder (5018), a bad name (5024), neither or both of `project` and `parent` (5029, 5031), a malformed project id (3012), a parent that is a file (5022), not JSON of this shape (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not copy the file (5014) or write the destination (3001, 5001).", body = ErrorSchema),
        (status = 404, description = "No such file (5002), project (3002) or destination folder (5026).", body = ErrorSchema),
        (status = 409, description = "No free name in the destination (5003).", body = ErrorSchema),
    ),
)]
async fn copy(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<CopyTarget>,
) -> ApiResult<Json<views::File>> {
    let (source, _) = state.file_for(&user, &id, Need::Copy).await.map_err(|e| {
        if e.code == Code::FileForbidden {
            ApiError::from(Code::CopyForbidden)
        } else {
            e
        }
    })?;
    if source.is_folder {
        return Err(ApiError::from(Code::FolderCopy));
    }
    let name = body.name.unwrap_or_else(|| source.name.clone());
    check_name(&name)?;
    let parent = resolve_destination(
        &state,
        &user,
        body.project.as_deref(),
        body.parent.as_deref(),
    )
    .await?;
    let source_public = source.is_public
        || state
            .store
            .get_project(&source.project_id)
            .await?
            .is_some_and(|p| p.is_public);
    let mut copy = FileRec::new(&parent.project_id, Some(&parent.id), &name, false);
    copy.size = source.size;
    copy.blob_id = source.blob_id.clone();
    copy.volume_id = source.volume_id.clone();
    copy.volume_uid = source.volume_uid.clone();
    copy.location = source.location.clone();
    copy.is_public = source_public;
    copy.metadata = source.metadata.clone();
    copy.tags = source.tags.clone();
    copy.md5 = source.md5.clone();
    copy.crc32c = source.crc32c.clone();
    let copy = insert_autorenamed(&state, copy).await?;
    Ok(Json(views::file(state.base(), &copy)))
}

/// Moves a file or folder to another folder of its project.
#[utoipa::path(
    post,
    path = "/v2/files/{id}/actions/move",
    tag = "files",
    operation_id = "move_file",
    params(("id" = String, Path)),
    request_body = CopyTarget,
    responses(
        (status = 200, description = "The moved file.", body = views::File),
        (status = 400, description = "Another project (5015), a bad name (5024), neither or both of `project` and `parent` (5029, 5031), a malformed project id (3012), a parent that is a file (5022), a folder into itself (5033), not JSON of this shape (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not move the file (5032) or write the destination (3001, 5001).", body = ErrorSchema),
        (status = 404, description = "No such file (5002), project (3002) or destination folder (5026).", body = ErrorSchema),
        (status = 409, description = "The name is taken in the destination (5003), or an export is moving the file (90007).", body = ErrorSchema),
    ),
)]
async fn move_to(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<CopyTarget>,
) -> ApiResult<Json<views::File>> {
    let (mut file, _) = state.file_for(&user, &id, Need::Write).await.map_err(|e| {
        if e.code == Code::FileForbidden {
            ApiError::from(Code::MoveForbidden)
        } else {
            e
        }
    })?;
    if file.parent_id.is_none() {
        return Err(ApiError::new(
            Code::MoveForbidden,
            "A project's root folder cannot be moved.",
        ));
    }
    let parent = resolve_destination(
        &state,
        &user,
        body.project.as_deref(),
        body.parent.as_deref(),
    )
    .await?;
    if parent.project_id != file.project_id {
        return Err(ApiError::from(Code::CrossProjectMove));
    }
    if let Some(name) = body.name {
        check_name(&name)?;
        file.name = name;
    }
    file.parent_id = Some(parent.id);
    file.modified_at = now_ms();
    // The store checks, in the transaction that moves it, that the destination still exists
    // and that a folder does not go into its own subtree.
    state.store.update_file(&file).await.map_err(|e| match e {
        StoreError::Conflict => ApiError::new(
            Code::FileExists,
            "A file or folder with this name already exists in the destination folder.",
        ),
        e => name_clash(e),
    })?;
    Ok(Json(views::file(state.base(), &file)))
}

/// A URL the file's bytes can be fetched from without a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadInfo {
    /// Signed and expiring; a volume's own presigned URL for an alias on S3.
    pub url: String,
}

#[utoipa::path(
    get,
    path = "/v2/files/{id}/download_info",
    tag = "files",
    operation_id = "get_download_info",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "A download URL.", body = DownloadInfo),
        (status = 400, description = "A folder (5017).", body = ErrorSchema),
        (status = 403, description = "The caller may not read its project (5001), or the alias's volume is deactivated (9103).", body = ErrorSchema),
        (status = 404, description = "No such file (5002), or the alias's volume is gone (9007).", body = ErrorSchema),
        (status = 503, description = "The volume could not sign a URL (9000).", body = ErrorSchema),
    ),
)]
async fn download_info(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<DownloadInfo>> {
    let (file, _) = state.file_for(&user, &id, Need::Read).await?;
    if file.is_folder {
        return Err(ApiError::from(Code::FolderDownload));
    }
    if file.volume_id.is_some() {
        // An alias: the bytes are the volume's object.
        let volume = state.alias_volume(&file).await?;
        if !volume.active {
            return Err(super::volumes::volume_inactive());
        }
        let key = egress_core::volume::object_key(
            &volume.service.prefix,
            file.location.as_deref().unwrap_or_default(),
        );
        let backend = state.volume_backend(&volume, None)?;
        let presigned = backend
            .presigned_get(&key, state.settings.url_ttl)
            .await
            .map_err(|e| {
                ApiError::new(
                    Code::ServiceError,
                    format!("Could not sign a URL on the volume: {e}."),
                )
            })?;
        if let Some(url) = presigned {
            return Ok(Json(DownloadInfo { url }));
        }
    }
    Ok(Json(DownloadInfo {
        url: super::transfer::download_url(&state, &file.id),
    }))
}

#[derive(Deserialize, ToSchema)]
struct FileIds {
    /// 1 to 100 file ids.
    #[schema(min_items = 1, max_items = 100)]
    file_ids: Vec<String>,
}

/// Gets up to 100 files; each entry is the file or the error it met.
#[utoipa::path(
    post,
    path = "/v2/bulk/files/get",
    tag = "files",
    operation_id = "bulk_get_files",
    request_body = FileIds,
    responses(
        (status = 200, description = "One entry per id, in order.", body = Bulk<views::File>),
        (status = 400, description = "No ids or more than 100 (90000), not JSON of this shape (90009).", body = ErrorSchema),
    ),
)]
async fn bulk_get(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<FileIds>,
) -> ApiResult<Json<Bulk<views::File>>> {
    check_bulk_len(body.file_ids.len())?;
    let mut results = Vec::with_capacity(body.file_ids.len());
    for id in &body.file_ids {
        let result = state
            .file_for(&user, id, Need::Read)
            .await
            .map(|(f, _)| views::file(state.base(), &f));
        results.push(result);
    }
    Ok(Json(Bulk::new(results)))
}

/// A deleted file, as a bulk delete reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedFile {
    pub href: String,
    pub id: String,
}

/// Deletes up to 100 files; each entry is the deleted file or the error it met.
#[utoipa::path(
    post,
    path = "/v2/bulk/files/delete",
    tag = "files",
    operation_id = "bulk_delete_files",
    request_body = FileIds,
    responses(
        (status = 200, description = "One entry per id, in order.", body = Bulk<DeletedFile>),
        (status = 400, description = "No ids or more than 100 (90000), not JSON of this shape (90009).", body = ErrorSchema),
    ),
)]
async fn bulk_delete(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<FileIds>,
) -> ApiResult<Json<Bulk<DeletedFile>>> {
    check_bulk_len(body.file_ids.len())?;
    let mut results = Vec::with_capacity(body.file_ids.len());
    for id in &body.file_ids {
        let result = delete_file(&state, &user, id).await.map(|f| DeletedFile {
            href: format!("{}/v2/files/{}", state.base(), f.id),
            id: f.id,
        });
        results.push(result);
    }
    Ok(Json(Bulk::new(results)))
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names() {
        assert!(check_name("a.txt").is_ok());
        assert!(check_name("with space ü").is_ok());
        for bad in ["", ".", "..", "a/b", "x\0y", "new\nline", &"x".repeat(256)] {
            assert_eq!(check_name(bad).unwrap_err().code.number(), 5024, "{bad:?}");
        }
    }
}
