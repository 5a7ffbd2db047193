//! Export jobs (sbg-api.md §2): single and bulk submission, get, bulk get and listing.
//! Submission validates metadata only and records the jobs in one transaction; the engine
//! does the copying.

use super::access::{file_access, Need};
use super::auth::AuthUser;
use super::views;
use super::volumes::volume_inactive;
use super::wire::{bulk_entry, check_bulk_len, list_page, parse_json, Params, RawBody};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use egress_core::util::{format_ms, new_long_id, now_ms, sha256_hex};
use egress_core::volume::{self, ServiceKind};
use egress_store::{
    AccessMode, ExportRec, FileRec, Idempotent, JobState, Perms, Project, StoreError, User,
    VolumeRec,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/storage/exports", get(list).post(create_one))
        .route("/v2/storage/exports/", get(list).post(create_one))
        .route("/v2/storage/exports/{id}", get(get_one))
        .route("/v2/bulk/storage/exports/create", post(create_bulk))
        .route("/v2/bulk/storage/exports", post(create_bulk))
        .route("/v2/bulk/storage/exports/get", post(get_bulk))
}

type St = State<Arc<AppState>>;

#[derive(Deserialize)]
struct Source {
    file: String,
}

#[derive(Deserialize)]
struct Destination {
    volume: String,
    location: String,
}

#[derive(Deserialize)]
struct ExportItem {
    source: Source,
    destination: Destination,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    #[serde(default)]
    overwrite: bool,
}

#[derive(Deserialize)]
struct BulkBody {
    items: Vec<ExportItem>,
}

pub fn job_not_found() -> ApiError {
    ApiError::from(Code::JobNotFound)
}

/// An export id in SBG's shape: 32 alphanumeric characters.
fn new_export_id() -> String {
    new_long_id()
}

/// The Export resource; `result` is the file once the job has completed.
pub async fn render(state: &AppState, e: &ExportRec) -> ApiResult<Value> {
    Ok(render_all(state, std::slice::from_ref(e)).await?.remove(0))
}

/// Renders jobs, loading the result files of the completed ones in one query.
async fn render_all(state: &AppState, jobs: &[ExportRec]) -> ApiResult<Vec<Value>> {
    let done: Vec<String> = jobs
        .iter()
        .filter(|e| e.state == JobState::Completed)
        .map(|e| e.file_id.clone())
        .collect();
    let files: HashMap<String, FileRec> = if done.is_empty() {
        HashMap::new()
    } else {
        state
            .store
            .get_files(&done)
            .await?
            .into_iter()
            .map(|f| (f.id.clone(), f))
            .collect()
    };
    Ok(jobs
        .iter()
        .map(|e| {
            to_json(
                state,
                e,
                files
                    .get(&e.file_id)
                    .filter(|_| e.state == JobState::Completed),
            )
        })
        .collect())
}

fn to_json(state: &AppState, e: &ExportRec, result: Option<&FileRec>) -> Value {
    let result = result.map(|f| views::file(state.base(), f));
    json!({
        "href": format!("{}/v2/storage/exports/{}", state.base(), e.id),
        "id": e.id,
        "state": e.state,
        "source": {"file": e.file_id},
        "destination": {"volume": e.volume_id, "location": e.location},
        "properties": e.properties,
        "overwrite": e.overwrite,
        "copy_only": e.copy_only,
        "started_on": e.started_at.map(format_ms),
        "finished_on": e.finished_at.map(format_ms),
        "created_on": format_ms(e.created_at),
        "error": e.error.as_ref().map(|j| j.0.clone()),
        "result": result,
        "progress": {"bytes_copied": e.bytes_copied, "bytes_total": e.bytes_total},
    })
}

/// What the items of one request need, looked up together: the files and the move exports
/// that already hold them (one query each), projects with the caller's rights, and volumes.
struct Lookups {
    files: HashMap<String, FileRec>,
    /// File id → the pending or running move export that will take it.
    moving: HashMap<String, String>,
    projects: HashMap<String, Option<(Project, Option<Perms>)>>,
    volumes: HashMap<String, ApiResult<VolumeRec>>,
}

impl Lookups {
    async fn load(state: &AppState, file_ids: Vec<String>) -> ApiResult<Self> {
        let files: HashMap<String, FileRec> = state
            .store
            .get_files(&file_ids)
            .await?
            .into_iter()
            .map(|f| (f.id.clone(), f))
            .collect();
        let found: Vec<String> = files.keys().cloned().collect();
        let moving = state
            .store
            .moving_exports(&found)
            .await?
            .into_iter()
            .collect();
        Ok(Self {
            files,
            moving,
            projects: HashMap::new(),
            volumes: HashMap::new(),
        })
    }

    async fn file(
        &mut self,
        state: &AppState,
        user: &User,
        id: &str,
    ) -> ApiResult<(FileRec, Project, Perms)> {
        let file = self
            .files
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::from(Code::FileNotFound))?;
        let project = match self.projects.get(&file.project_id) {
            Some(known) => known.clone(),
            None => {
                let found = state.project_with_perms(user, &file.project_id).await?;
                self.projects.insert(file.project_id.clone(), found.clone());
                found
            }
        };
        file_access(file, project, Need::Read)
    }

    async fn volume(&mut self, state: &AppState, user: &User, id: &str) -> ApiResult<VolumeRec> {
        if let Some(known) = self.volumes.get(id) {
            return known.clone();
        }
        let found = state.volume_for(user, id, Need::Write).await;
        self.volumes.insert(id.to_string(), found.clone());
        found
    }
}

/// Validates one item against metadata only, in the order a user would fix things: the file,
/// the rights on it, the volume, the location, the properties.
async fn validate(
    state: &AppState,
    user: &User,
    item: ExportItem,
    copy_only: bool,
    taken: &mut HashSet<String>,
    lookups: &mut Lookups,
) -> ApiResult<ExportRec> {
    let (file, project, perms) = lookups.file(state, user, &item.source.file).await?;
    if file.is_folder
        || file.volume_id.is_some()
        || file.blob_id.is_none()
        || file.is_public
        || project.is_public
    {
        return Err(ApiError::new(Code::NotExportable, "Requested file cannot be exported: folders, public files and aliases (including files already exported) stay where they are."));
    }
    let need = if copy_only { Need::Copy } else { Need::Write };
    if !need.granted_by(perms) {
        let right = if copy_only { "copy" } else { "write" };
        return Err(ApiError::new(Code::ExportFileForbidden, format!("Insufficient privileges to access the requested file: exporting it needs '{right}' on its project.")));
    }
    if taken.contains(&file.id) {
        return Err(ApiError::new(
            Code::Conflict,
            "Another item of this request moves the same file.",
        ));
    }
    if let Some(other) = lookups.moving.get(&file.id) {
        return Err(ApiError::new(
            Code::Conflict,
            format!("The file is being moved by export {other}; wait for it to end."),
        ));
    }
    let vol = lookups
        .volume(state, user, &item.destination.volume)
        .await?;
    if vol.service.kind == ServiceKind::Gcs {
        return Err(ApiError::new(
            Code::CrossCloudExport,
            "Export to GCS is not supported.",
        ));
    }
    if vol.access_mode != AccessMode::Rw {
        return Err(ApiError::from(Code::VolumeReadOnly));
    }
    if !vol.active {
        return Err(volume_inactive());
    }
    let object_key = volume::checked_key(&vol.service.prefix, &item.destination.location)?;
    let given = item.properties.unwrap_or_default();
    volume::check_properties(&given)?;
    if !copy_only {
        taken.insert(file.id.clone());
    }
    Ok(ExportRec {
        seq: 0,
        id: new_export_id(),
        owner: user.username.clone(),
        file_id: file.id,
        volume_id: vol.id,
        volume_uid: vol.uid,
        location: item.destination.location,
        object_key,
        properties: volume::effective_properties(&vol.service.properties, &given),
        overwrite: item.overwrite,
        copy_only,
        state: JobState::Pending,
        error: None,
        attempt: 0,
        lease_owner: None,
        lease_expires_at: 0,
        next_attempt_at: 0,
        upload_id: None,
        bytes_total: file.size.unwrap_or(0),
        bytes_copied: 0,
        created_at: now_ms(),
        started_at: None,
        finished_at: None,
    })
}

/// Replays the first response to a request carrying the same `Idempotency-Key`.
struct Idempotency {
    key: Option<String>,
    request: String,
}

impl Idempotency {
    fn new(headers: &HeaderMap, uri: &axum::http::Uri, body: &[u8]) -> ApiResult<Self> {
        let key = match headers.get("idempotency-key") {
            None => None,
            Some(v) => match v.to_str() {
                Ok(k) if !k.is_empty() && k.len() <= 255 => Some(k.to_string()),
                _ => {
                    return Err(ApiError::new(
                        Code::BadRequest,
                        "Idempotency-Key must be 1 to 255 visible characters.",
                    ))
                }
            },
        };
        let request = sha256_hex(&[uri.to_string().as_bytes(), b"\n", body].concat());
        Ok(Self { key, request })
    }

    async fn replay(&self, state: &AppState, user: &User) -> ApiResult<Option<Value>> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        match state.store.get_idempotent(&user.username, key).await? {
            None => Ok(None),
            Some(first) if first.request == self.request => Ok(Some(
                serde_json::from_str(&first.response).map_err(anyhow::Error::from)?,
            )),
            Some(_) => Err(ApiError::from(Code::IdempotencyKeyReused)),
        }
    }

    fn record(&self, user: &User, response: &Value) -> Option<Idempotent> {
        self.key.as_ref().map(|key| Idempotent {
            owner: user.username.clone(),
            key: key.clone(),
            request: self.request.clone(),
            response: response.to_string(),
            created_at: now_ms(),
        })
    }
}

/// Records the jobs and the response together; a concurrent retry with the same key gets
/// the response that won.
async fn commit(
    state: &AppState,
    user: &User,
    idem: &Idempotency,
    jobs: &[ExportRec],
    response: Value,
) -> ApiResult<Value> {
    match state
        .store
        .insert_exports(jobs, idem.record(user, &response).as_ref())
        .await
    {
        Ok(()) => {
            state.jobs.notify_one();
            Ok(response)
        }
        Err(StoreError::Conflict) => idem
            .replay(state, user)
            .await?
            .ok_or_else(|| ApiError::from(Code::Internal)),
        Err(e) => Err(e.into()),
    }
}

async fn create_bulk(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    params: Params,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let idem = Idempotency::new(&headers, &uri, &body)?;
    if let Some(first) = idem.replay(&state, &user).await? {
        return Ok(Json(first));
    }
    let copy_only = params.flag("copy_only")?;
    let request: BulkBody = parse_json(&body)?;
    check_bulk_len(request.items.len())?;
    let mut taken = HashSet::new();
    let file_ids = request.items.iter().map(|i| i.source.file.clone());
    let mut lookups = Lookups::load(&state, file_ids.collect()).await?;
    let mut results = Vec::with_capacity(request.items.len());
    for item in request.items {
        results.push(validate(&state, &user, item, copy_only, &mut taken, &mut lookups).await);
    }
    let jobs: Vec<ExportRec> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    // New jobs are PENDING: nothing to load to render them.
    let items: Vec<Value> = results
        .into_iter()
        .map(|r| bulk_entry(r.map(|job| to_json(&state, &job, None))))
        .collect();
    Ok(Json(
        commit(&state, &user, &idem, &jobs, json!({"items": items})).await?,
    ))
}

async fn create_one(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    params: Params,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let idem = Idempotency::new(&headers, &uri, &body)?;
    if let Some(first) = idem.replay(&state, &user).await? {
        return Ok(Json(first));
    }
    let item: ExportItem = parse_json(&body)?;
    let mut lookups = Lookups::load(&state, vec![item.source.file.clone()]).await?;
    let job = validate(
        &state,
        &user,
        item,
        params.flag("copy_only")?,
        &mut HashSet::new(),
        &mut lookups,
    )
    .await?;
    let response = render(&state, &job).await?;
    Ok(Json(
        commit(&state, &user, &idem, std::slice::from_ref(&job), response).await?,
    ))
}

/// An export the caller submitted (platform admins see all).
async fn own_export(state: &AppState, user: &User, id: &str) -> ApiResult<ExportRec> {
    match state.store.get_export(id).await? {
        Some(e) if e.owner == user.username || user.is_admin => Ok(e),
        _ => Err(job_not_found()),
    }
}

async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let e = own_export(&state, &user, &id).await?;
    Ok(Json(render(&state, &e).await?))
}

#[derive(Deserialize)]
struct ExportIds {
    export_ids: Vec<String>,
}

async fn get_bulk(
    State(state): St,
    AuthUser(user): AuthUser,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let request: ExportIds = parse_json(&body)?;
    check_bulk_len(request.export_ids.len())?;
    let found: HashMap<String, ExportRec> = state
        .store
        .get_exports(&request.export_ids)
        .await?
        .into_iter()
        .filter(|e| e.owner == user.username || user.is_admin)
        .map(|e| (e.id.clone(), e))
        .collect();
    let jobs: Vec<ExportRec> = request
        .export_ids
        .iter()
        .filter_map(|id| found.get(id).cloned())
        .collect();
    let mut rendered = render_all(&state, &jobs).await?.into_iter();
    let items: Vec<Value> = request
        .export_ids
        .iter()
        .map(|id| match found.get(id) {
            Some(_) => bulk_entry(
                rendered
                    .next()
                    .ok_or_else(|| ApiError::from(Code::Internal)),
            ),
            None => bulk_entry(Err(job_not_found())),
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

/// The `state` filters of a job listing (repeatable).
pub fn parse_states(params: &Params) -> ApiResult<Vec<JobState>> {
    params
        .all("state")
        .iter()
        .map(|s| {
            s.parse().map_err(|_| {
                ApiError::new(
                    Code::BadRequest,
                    format!("Unknown state '{s}': use PENDING, RUNNING, COMPLETED or FAILED."),
                )
            })
        })
        .collect()
}

async fn list(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let page = params.page()?;
    let states = parse_states(&params)?;
    let (jobs, total) = state
        .store
        .list_exports(&user.username, params.get("volume"), &states, page)
        .await?;
    let items = render_all(&state, &jobs).await?;
    Ok(list_page(state.base(), &uri, page, total, items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn state_filters_parse_into_states_or_name_the_bad_one() {
        let ok = params(&[("state", "COMPLETED"), ("limit", "5"), ("state", "PENDING")]);
        assert_eq!(
            parse_states(&ok).unwrap(),
            [JobState::Completed, JobState::Pending]
        );
        assert_eq!(parse_states(&params(&[])).unwrap(), []);
        let bad = params(&[("state", "RUNNING"), ("state", "running")]);
        let err = parse_states(&bad).unwrap_err();
        assert_eq!(err.code, Code::BadRequest);
        assert_eq!(
            err.message,
            "Unknown state 'running': use PENDING, RUNNING, COMPLETED or FAILED."
        );
    }
}
