//! Import jobs (sbg-api.md §3): volume objects and folders become alias files in a project.
//! Submission checks metadata only; the engine reads the volume and commits the aliases.

use super::access::Need;
use super::auth::AuthUser;
use super::exports::job_not_found;
use super::files::{check_name, resolve_destination};
use super::views;
use super::volumes::volume_inactive;
use super::wire::{bulk_entry, check_bulk_len, list_page, Body, Params};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use egress_core::util::{format_ms, new_long_id, now_ms};
use egress_core::volume::{self, ServiceKind};
use egress_store::{ImportRec, JobState, User};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/storage/imports", get(list).post(create_one))
        .route("/v2/storage/imports/", get(list).post(create_one))
        .route("/v2/storage/imports/{id}", get(get_one))
        .route("/v2/bulk/storage/imports/create", post(create_bulk))
        .route("/v2/bulk/storage/imports", post(create_bulk))
        .route("/v2/bulk/storage/imports/get", post(get_bulk))
}

type St = State<Arc<AppState>>;

#[derive(Deserialize)]
struct Source {
    volume: String,
    location: String,
}

#[derive(Deserialize, Default)]
struct Destination {
    project: Option<String>,
    parent: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct ImportItem {
    source: Source,
    #[serde(default)]
    destination: Destination,
    #[serde(default)]
    overwrite: bool,
    /// The client sends it only when true.
    #[serde(default)]
    autorename: bool,
    /// The client sends it only when false.
    preserve_folder_structure: Option<bool>,
}

#[derive(Deserialize)]
struct BulkBody {
    items: Vec<ImportItem>,
}

async fn render(state: &AppState, i: &ImportRec) -> ApiResult<Value> {
    let result = match &i.result_file_id {
        Some(id) => state
            .store
            .get_file(id)
            .await?
            .map(|f| views::file(state.base(), &f)),
        None => None,
    };
    Ok(json!({
        "href": format!("{}/v2/storage/imports/{}", state.base(), i.id),
        "id": i.id,
        "state": i.state,
        "source": {"volume": i.volume_id, "location": i.location},
        "destination": {"project": i.project_id, "parent": i.parent_id, "name": i.name},
        "overwrite": i.overwrite,
        "autorename": i.autorename,
        "preserve_folder_structure": i.preserve_folder_structure,
        "started_on": i.started_at.map(format_ms),
        "finished_on": i.finished_at.map(format_ms),
        "created_on": format_ms(i.created_at),
        "error": i.error.as_ref().map(|j| j.0.clone()),
        "result": result,
        "progress": {"objects_imported": i.objects_imported},
    }))
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
    if vol.service.kind == ServiceKind::Gcs {
        return Err(ApiError::new(
            Code::InvalidService,
            "GCS volumes are stored but cannot be read from this server.",
        ));
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

async fn create_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(item): Body<ImportItem>,
) -> ApiResult<Json<Value>> {
    let job = validate(&state, &user, item).await?;
    state
        .store
        .insert_imports(std::slice::from_ref(&job))
        .await?;
    state.jobs.notify_one();
    Ok(Json(render(&state, &job).await?))
}

async fn create_bulk(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<BulkBody>,
) -> ApiResult<Json<Value>> {
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
        items.push(bulk_entry(match r {
            Ok(job) => render(&state, &job).await,
            Err(e) => Err(e),
        }));
    }
    Ok(Json(json!({"items": items})))
}

async fn own_import(state: &AppState, user: &User, id: &str) -> ApiResult<ImportRec> {
    match state.store.get_import(id).await? {
        Some(i) if i.owner == user.username || user.is_admin => Ok(i),
        _ => Err(job_not_found()),
    }
}

async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let i = own_import(&state, &user, &id).await?;
    Ok(Json(render(&state, &i).await?))
}

#[derive(Deserialize)]
struct ImportIds {
    import_ids: Vec<String>,
}

async fn get_bulk(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<ImportIds>,
) -> ApiResult<Json<Value>> {
    check_bulk_len(body.import_ids.len())?;
    let mut items = Vec::with_capacity(body.import_ids.len());
    for id in &body.import_ids {
        let result = match own_import(&state, &user, id).await {
            Ok(i) => render(&state, &i).await,
            Err(e) => Err(e),
        };
        items.push(bulk_entry(result));
    }
    Ok(Json(json!({"items": items})))
}

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
    let mut items = Vec::with_capacity(jobs.len());
    for i in &jobs {
        items.push(render(&state, i).await?);
    }
    Ok(list_page(state.base(), &uri, page, total, items))
}
