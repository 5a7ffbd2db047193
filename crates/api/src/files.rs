//! Files and folders on the platform (sbg-api.md §5): list, get, rename, metadata, tags, delete,
//! folders, copy and move, bulk get and delete, and signed download URLs.

use super::access::{parse_project_id, Need};
use super::auth::AuthUser;
use super::views;
use super::wire::{bulk_entry, check_bulk_len, list_page, object, Body, Params};
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
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

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
}

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
) -> ApiResult<Response> {
    let page = params.page()?;
    let filter = FileFilter {
        names: params.all("name"),
        tags: params.all("tag"),
    };
    let (files, total) = state.store.list_children(&folder.id, &filter, page).await?;
    let items = files.iter().map(|f| views::file(state.base(), f)).collect();
    Ok(list_page(state.base(), uri, page, total, items))
}

async fn list(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let folder = match (params.get("project"), params.get("parent")) {
        (Some(_), Some(_)) => return Err(ApiError::from(Code::ParentAndProject)),
        (None, None) => return Err(ApiError::from(Code::ParentOrProjectMissing)),
        (Some(project_id), None) => {
            parse_project_id(project_id)
                .map_err(|_| ApiError::from(Code::MalformedProjectQuery))?;
            let (project, _) = state.project_for(&user, project_id, Need::Read).await?;
            state
                .store
                .get_file(&project.root_folder)
                .await?
                .ok_or_else(|| ApiError::from(Code::Internal))?
        }
        (None, Some(parent_id)) => folder_for(&state, &user, parent_id).await?,
    };
    list_children(&state, &uri, &folder, &params).await
}

async fn folder_for(state: &AppState, user: &User, id: &str) -> ApiResult<FileRec> {
    let (folder, _) = state.file_for(user, id, Need::Read).await?;
    if !folder.is_folder {
        return Err(ApiError::from(Code::ParentNotFolder));
    }
    Ok(folder)
}

async fn list_folder(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let folder = folder_for(&state, &user, &id).await?;
    list_children(&state, &uri, &folder, &params).await
}

#[derive(Deserialize)]
struct NewFolder {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    project: Option<String>,
    parent: Option<String>,
}

async fn create_folder(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<NewFolder>,
) -> ApiResult<Json<Value>> {
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

async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (file, _) = state.file_for(&user, &id, Need::Read).await?;
    Ok(Json(views::file(state.base(), &file)))
}

fn name_clash(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict => ApiError::from(Code::FileExists),
        StoreError::NotFound => ApiError::from(Code::FileNotFound),
        e => e.into(),
    }
}

async fn update(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let (mut file, _) = state.file_for(&user, &id, Need::Write).await?;
    let (mut metadata_changed, mut tags_changed) = (false, false);
    for (key, value) in object(body)? {
        match (key.as_str(), value) {
            ("name", Value::String(name)) => {
                check_name(&name)?;
                if file.parent_id.is_none() {
                    return Err(ApiError::new(
                        Code::RenameForbidden,
                        "The root folder cannot be renamed.",
                    ));
                }
                if name != file.name && state.store.moving_export(&file.id).await?.is_some() {
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
    Ok(Json(views::file(state.base(), &file)))
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

async fn get_metadata(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (file, _) = state.file_for(&user, &id, Need::Read).await?;
    Ok(Json(Value::Object(file.metadata)))
}

async fn save_metadata(state: &AppState, mut file: FileRec) -> ApiResult<Json<Value>> {
    limits::check_metadata(&file.metadata)?;
    file.modified_at = now_ms();
    state.store.update_file(&file).await.map_err(name_clash)?;
    Ok(Json(Value::Object(file.metadata)))
}

async fn replace_metadata(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let mut file = editable_metadata(&state, &user, &id).await?;
    file.metadata = object(body)?;
    file.metadata.retain(|_, v| !v.is_null());
    save_metadata(&state, file).await
}

async fn merge_metadata(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let mut file = editable_metadata(&state, &user, &id).await?;
    merge(&mut file.metadata, object(body)?);
    save_metadata(&state, file).await
}

async fn set_tags(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let (mut file, _) = state.file_for(&user, &id, Need::Write).await?;
    if file.is_folder {
        return Err(ApiError::from(Code::FolderTags));
    }
    file.tags = parse_tags(body)?;
    limits::check_tags(&file.tags)?;
    file.modified_at = now_ms();
    state.store.update_file(&file).await.map_err(name_clash)?;
    Ok(Json(json!(file.tags)))
}

#[derive(Deserialize)]
struct CopyTarget {
    project: Option<String>,
    parent: Option<String>,
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

async fn copy(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<CopyTarget>,
) -> ApiResult<Json<Value>> {
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

async fn move_to(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Body(body): Body<CopyTarget>,
) -> ApiResult<Json<Value>> {
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

async fn download_info(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
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
            return Ok(Json(json!({ "url": url })));
        }
    }
    Ok(Json(
        json!({"url": super::transfer::download_url(&state, &file.id)}),
    ))
}

#[derive(Deserialize)]
struct FileIds {
    file_ids: Vec<String>,
}

async fn bulk_get(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<FileIds>,
) -> ApiResult<Json<Value>> {
    check_bulk_len(body.file_ids.len())?;
    let mut items = Vec::with_capacity(body.file_ids.len());
    for id in &body.file_ids {
        let result = state
            .file_for(&user, id, Need::Read)
            .await
            .map(|(f, _)| views::file(state.base(), &f));
        items.push(bulk_entry(result));
    }
    Ok(Json(json!({"items": items})))
}

async fn bulk_delete(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<FileIds>,
) -> ApiResult<Json<Value>> {
    check_bulk_len(body.file_ids.len())?;
    let mut items = Vec::with_capacity(body.file_ids.len());
    for id in &body.file_ids {
        let result = delete_file(&state, &user, id)
            .await
            .map(|f| json!({"id": f.id, "href": format!("{}/v2/files/{}", state.base(), f.id)}));
        items.push(bulk_entry(result));
    }
    Ok(Json(json!({"items": items})))
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
