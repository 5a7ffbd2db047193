//! Bulk changes of file details, as `api.files.bulk_update` and `bulk_edit` send them:
//! `POST /v2/bulk/files/update` replaces each file's name, metadata and tags (PUT semantics);
//! `POST /v2/bulk/files/edit` changes only what each item gives (PATCH semantics). Each item is
//! checked and saved on its own, through the same code as `PATCH /v2/files/{id}`, with the
//! caller's write right on the file's project checked when it takes effect.

use super::super::openapi::ErrorSchema;
use super::super::views;
use super::super::wire::{check_bulk_len, Body, Bulk};
use super::super::AppState;
use super::{change_file, Omitted, St};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use egress_store::User;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::ToSchema;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/bulk/files/update", post(bulk_update))
        .route("/v2/bulk/files/edit", post(bulk_edit))
}

/// The body of a bulk update or edit.
#[derive(Deserialize, ToSchema)]
pub struct FileChangesList {
    /// 1 to 100 items; a malformed item gets an error entry of its own.
    #[schema(min_items = 1, max_items = 100, value_type = Vec<FileDetails>)]
    items: Vec<Value>,
}

/// One file's new details.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes an item only; `change_one` reads it field by field.
pub struct FileDetails {
    /// The file's id (the client's key); `file_id`, as in the SBG docs' examples, is taken too.
    id: Option<String>,
    file_id: Option<String>,
    /// A new name (not for a project's root folder); unchanged when missing.
    #[schema(min_length = 1, pattern = "^[^/]+$")]
    name: Option<String>,
    /// Update: the whole metadata (missing: none). Edit: merged in, a `null` value removes its
    /// key.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// The tags (update: missing means none; edit: missing keeps them).
    tags: Option<Vec<String>>,
}

/// Replaces the name, metadata and tags of up to 100 files: what an item leaves out (or gives
/// as `null`) is cleared, except the name, which stays. Each entry is the changed file or the
/// error that item met; items are done in order, each on its own.
#[utoipa::path(
    post,
    path = "/v2/bulk/files/update",
    tag = "files",
    operation_id = "bulk_update_files",
    request_body = FileChangesList,
    responses(
        (status = 200, description = "One entry per item, in order: the file, or its error (a missing id 5004, an item that is not an object or a bad value 5033, a bad name 5024, over a limit 90000, no write right 5001, no such file 5002, a renamed root folder 5008, a name taken 5003, a file an export is moving 90007).", body = Bulk<views::File>),
        (status = 400, description = "No items or more than 100 (90000), not JSON of this shape (90009).", body = ErrorSchema),
    ),
)]
pub async fn bulk_update(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<FileChangesList>,
) -> ApiResult<Json<Bulk<views::File>>> {
    change_all(&state, &user, body.items, Omitted::Clear).await
}

/// Changes the name, metadata and tags of up to 100 files as each item gives them, keeping
/// what it leaves out; metadata is merged. Each entry is the changed file or the error that
/// item met; items are done in order, each on its own.
#[utoipa::path(
    post,
    path = "/v2/bulk/files/edit",
    tag = "files",
    operation_id = "bulk_edit_files",
    request_body = FileChangesList,
    responses(
        (status = 200, description = "One entry per item, in order: the file, or its error (as for a bulk update).", body = Bulk<views::File>),
        (status = 400, description = "No items or more than 100 (90000), not JSON of this shape (90009).", body = ErrorSchema),
    ),
)]
pub async fn bulk_edit(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<FileChangesList>,
) -> ApiResult<Json<Bulk<views::File>>> {
    change_all(&state, &user, body.items, Omitted::Keep).await
}

async fn change_all(
    state: &AppState,
    user: &User,
    items: Vec<Value>,
    omitted: Omitted,
) -> ApiResult<Json<Bulk<views::File>>> {
    check_bulk_len(items.len())?;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let result = change_one(state, user, item, omitted)
            .await
            .map(|file| views::file(state.base(), &file));
        results.push(result);
    }
    Ok(Json(Bulk::new(results)))
}

async fn change_one(
    state: &AppState,
    user: &User,
    item: Value,
    omitted: Omitted,
) -> ApiResult<egress_store::FileRec> {
    let Value::Object(mut changes) = item else {
        return Err(ApiError::new(
            Code::InvalidFileRequest,
            "Each item must be a JSON object with the file's 'id'.",
        ));
    };
    let id = item_id(&mut changes)?;
    change_file(state, user, &id, changes, omitted).await
}

/// Takes the file id out of an item: `id`, or `file_id`; both must agree when both are given.
fn item_id(changes: &mut Map<String, Value>) -> ApiResult<String> {
    let id = changes.remove("id");
    let file_id = changes.remove("file_id");
    let as_id = |v: Option<Value>| -> ApiResult<Option<String>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::new(
                Code::InvalidFileRequest,
                "A file id must be a string.",
            )),
        }
    };
    match (as_id(id)?, as_id(file_id)?) {
        (Some(a), Some(b)) if a != b => Err(ApiError::new(
            Code::InvalidFileRequest,
            "'id' and 'file_id' name different files.",
        )),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(ApiError::from(Code::FileIdMissing)),
    }
}
