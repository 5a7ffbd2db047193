//! Export jobs (sbg-api.md §2): single and bulk submission, get, bulk get and listing.
//! Submission validates metadata only and records the jobs in one transaction; the engine
//! does the copying.

use super::access::{file_access, Need};
use super::auth::AuthUser;
use super::openapi::{ErrorSchema, JobStateSchema};
use super::views;
use super::volumes::volume_inactive;
use super::wire::{check_bulk_len, list_page, parse_json, Bulk, ListPage, Paging, Params, RawBody};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use egress_core::util::{format_ms, new_long_id, now_ms, sha256_hex};
use egress_core::volume;
use egress_store::{
    AccessMode, ExportRec, FileRec, Idempotent, JobState, Perms, Project, StoreError, User,
    VolumeRec,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/storage/exports", get(list).post(create_one))
        .route("/v2/storage/exports/", get(list).post(create_one))
        .route("/v2/storage/exports/{id}", get(get_one))
        .route("/v2/bulk/storage/exports/create", post(create_bulk))
        .route("/v2/bulk/storage/exports", post(create_bulk))
        .route("/v2/bulk/storage/exports/get", post(get_bulk))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create_one, list, get_one, create_bulk, get_bulk))]
pub struct ApiDoc;

type St = State<Arc<AppState>>;

/// The platform file an export moves (or copies).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ExportSource {
    /// The file's id.
    pub file: String,
}

/// Where an export writes.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ExportDestination {
    /// Relative to the volume's prefix.
    #[schema(min_length = 1)]
    pub location: String,
    /// The volume's id, `owner/name`.
    pub volume: String,
}

/// One export to submit.
#[derive(Deserialize, ToSchema)]
struct ExportItem {
    source: ExportSource,
    destination: ExportDestination,
    /// Over the volume's defaults.
    #[serde(default)]
    #[schema(value_type = Option<super::volumes::Properties>)]
    properties: Option<Map<String, Value>>,
    /// Replace an object already at the location.
    #[serde(default)]
    overwrite: bool,
}

/// Exports to submit together.
#[derive(Deserialize, ToSchema)]
struct ExportItems {
    /// 1 to 100 items.
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<ExportItem>,
}

/// An export job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    /// The file stays on the platform and a copy goes to the volume.
    pub copy_only: bool,
    #[schema(format = DateTime)]
    pub created_on: String,
    pub destination: ExportDestination,
    /// Why the job failed, or why its last attempt did (while it is retried).
    #[schema(required, value_type = Option<ErrorSchema>)]
    pub error: Option<Value>,
    #[schema(required, format = DateTime)]
    pub finished_on: Option<String>,
    pub href: String,
    pub id: String,
    pub overwrite: bool,
    pub progress: ExportProgress,
    /// The properties in effect: the export's over the volume's over `AES256`.
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
    /// The file, an alias of the object, once the job has completed.
    #[schema(required)]
    pub result: Option<views::File>,
    pub source: ExportSource,
    #[schema(required, format = DateTime)]
    pub started_on: Option<String>,
    #[schema(value_type = JobStateSchema)]
    pub state: JobState,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportProgress {
    pub bytes_copied: i64,
    pub bytes_total: i64,
}

pub fn job_not_found() -> ApiError {
    ApiError::from(Code::JobNotFound)
}

/// An export id in SBG's shape: 32 alphanumeric characters.
fn new_export_id() -> String {
    new_long_id()
}

/// The Export resource; `result` is the file once the job has completed.
pub async fn render(state: &AppState, e: &ExportRec) -> ApiResult<Export> {
    Ok(render_all(state, std::slice::from_ref(e)).await?.remove(0))
}

/// Renders jobs, loading the result files of the completed ones in one query.
async fn render_all(state: &AppState, jobs: &[ExportRec]) -> ApiResult<Vec<Export>> {
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

fn to_json(state: &AppState, e: &ExportRec, result: Option<&FileRec>) -> Export {
    Export {
        copy_only: e.copy_only,
        created_on: format_ms(e.created_at),
        destination: ExportDestination {
            location: e.location.clone(),
            volume: e.volume_id.clone(),
        },
        error: e.error.as_ref().map(|j| j.0.clone()),
        finished_on: e.finished_at.map(format_ms),
        href: format!("{}/v2/storage/exports/{}", state.base(), e.id),
        id: e.id.clone(),
        overwrite: e.overwrite,
        progress: ExportProgress {
            bytes_copied: e.bytes_copied,
            bytes_total: e.bytes_total,
        },
        properties: e.properties.clone(),
        result: result.map(|f| views::file(state.base(), f)),
        source: ExportSource {
            file: e.file_id.clone(),
        },
        started_on: e.started_at.map(format_ms),
        state: e.state,
    }
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
    if vol.service.kind.read_only() {
        return Err(ApiError::new(
            Code::CrossCloudExport,
            format!(
                "Exporting files across different cloud services is not yet supported: \
                 volumes of type {} are read-only.",
                vol.service.kind.as_str()
            ),
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

    fn record(&self, user: &User, response: &impl Serialize) -> ApiResult<Option<Idempotent>> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        Ok(Some(Idempotent {
            owner: user.username.clone(),
            key: key.clone(),
            request: self.request.clone(),
            response: serde_json::to_string(response).map_err(anyhow::Error::from)?,
            created_at: now_ms(),
        }))
    }
}

/// Records the jobs and the response together; a concurrent retry with the same key gets
/// the response that won.
async fn commit(
    state: &AppState,
    user: &User,
    idem: &Idempotency,
    jobs: &[ExportRec],
    response: impl Serialize,
) -> ApiResult<Response> {
    match state
        .store
        .insert_exports(jobs, idem.record(user, &response)?.as_ref())
        .await
    {
        Ok(()) => {
            state.jobs.notify_one();
            Ok(Json(response).into_response())
        }
        Err(StoreError::Conflict) => idem
            .replay(state, user)
            .await?
            .map(|first| Json(first).into_response())
            .ok_or_else(|| ApiError::from(Code::Internal)),
        Err(e) => Err(e.into()),
    }
}

/// Submits up to 100 exports; each entry is the job or the error its item met. With an
/// `Idempotency-Key`, a repeated request gets the first answer.
#[utoipa::path(
    post,
    path = "/v2/bulk/storage/exports/create",
    tag = "exports",
    operation_id = "create_exports",
    params(
        ("copy_only" = Option<bool>, Query, description = "Copy the files to the volume and keep them on the platform, instead of moving them."),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, description = "1 to 255 visible characters; a repeated request with it gets the first answer."),
    ),
    request_body = ExportItems,
    responses(
        (status = 200, description = "One entry per item, in order (also at `/v2/bulk/storage/exports`).", body = Bulk<Export>),
        (status = 400, description = "No items or more than 100, a bad `copy_only` or Idempotency-Key (90000), not JSON of this shape (90009).", body = ErrorSchema),
        (status = 422, description = "The Idempotency-Key was used for another request (90000).", body = ErrorSchema),
    ),
)]
async fn create_bulk(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    params: Params,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let idem = Idempotency::new(&headers, &uri, &body)?;
    if let Some(first) = idem.replay(&state, &user).await? {
        return Ok(Json(first).into_response());
    }
    let copy_only = params.flag("copy_only")?;
    let request: ExportItems = parse_json(&body)?;
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
    let response = Bulk::new(
        results
            .into_iter()
            .map(|r| r.map(|job| to_json(&state, &job, None))),
    );
    commit(&state, &user, &idem, &jobs, response).await
}

/// Submits one export. With an `Idempotency-Key`, a repeated request gets the first answer.
#[utoipa::path(
    post,
    path = "/v2/storage/exports",
    tag = "exports",
    operation_id = "create_export",
    params(
        ("copy_only" = Option<bool>, Query, description = "Copy the file to the volume and keep it on the platform, instead of moving it."),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, description = "1 to 255 visible characters; a repeated request with it gets the first answer."),
    ),
    request_body = ExportItem,
    responses(
        (status = 200, description = "The new job, PENDING.", body = Export),
        (status = 400, description = "A read-only volume (9026), a GCS or OSS volume (9027), a bad location (9011) or property (9017, 9022, 9023, 9024), a bad `copy_only` or Idempotency-Key (90000), not JSON of this shape (90009).", body = ErrorSchema),
        (status = 403, description = "The caller may not export the file (9004), it cannot be exported (9006), the caller may not write the volume (9020), or the volume is deactivated (9103).", body = ErrorSchema),
        (status = 404, description = "No such file (5002) or volume (9007).", body = ErrorSchema),
        (status = 409, description = "Another export is moving the file (90007).", body = ErrorSchema),
        (status = 422, description = "The Idempotency-Key was used for another request (90000).", body = ErrorSchema),
    ),
)]
async fn create_one(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    params: Params,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let idem = Idempotency::new(&headers, &uri, &body)?;
    if let Some(first) = idem.replay(&state, &user).await? {
        return Ok(Json(first).into_response());
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
    commit(&state, &user, &idem, std::slice::from_ref(&job), response).await
}

/// An export the caller submitted (platform admins see all).
async fn own_export(state: &AppState, user: &User, id: &str) -> ApiResult<ExportRec> {
    match state.store.get_export(id).await? {
        Some(e) if e.owner == user.username || user.is_admin => Ok(e),
        _ => Err(job_not_found()),
    }
}

/// An export of the caller's (platform administrators see all).
#[utoipa::path(
    get,
    path = "/v2/storage/exports/{id}",
    tag = "exports",
    operation_id = "get_export",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The job.", body = Export),
        (status = 404, description = "No such job of the caller's (9008).", body = ErrorSchema),
    ),
)]
async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Export>> {
    let e = own_export(&state, &user, &id).await?;
    Ok(Json(render(&state, &e).await?))
}

#[derive(Deserialize, ToSchema)]
struct ExportIds {
    /// 1 to 100 export ids.
    #[schema(min_items = 1, max_items = 100)]
    export_ids: Vec<String>,
}

/// Gets up to 100 exports; each entry is the job or the error it met.
#[utoipa::path(
    post,
    path = "/v2/bulk/storage/exports/get",
    tag = "exports",
    operation_id = "get_exports",
    request_body = ExportIds,
    responses(
        (status = 200, description = "One entry per id, in order.", body = Bulk<Export>),
        (status = 400, description = "No ids or more than 100 (90000), not JSON of this shape (90009).", body = ErrorSchema),
    ),
)]
async fn get_bulk(
    State(state): St,
    AuthUser(user): AuthUser,
    RawBody(body): RawBody,
) -> ApiResult<Json<Bulk<Export>>> {
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
    let results = request.export_ids.iter().map(|id| match found.get(id) {
        Some(_) => rendered
            .next()
            .ok_or_else(|| ApiError::from(Code::Internal)),
        None => Err(job_not_found()),
    });
    Ok(Json(Bulk::new(results)))
}

/// The filters of a job listing, for the API document (`parse_states` reads `state`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters only.
pub struct JobFilter {
    /// Only jobs in one of these states (repeatable).
    #[param(value_type = Option<Vec<JobStateSchema>>)]
    state: Option<Vec<JobState>>,
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

/// The caller's exports.
#[utoipa::path(
    get,
    path = "/v2/storage/exports",
    tag = "exports",
    operation_id = "list_exports",
    params(
        ("volume" = Option<String>, Query, description = "Only exports to this volume."),
        JobFilter,
        Paging,
    ),
    responses(
        (status = 200, description = "One page of jobs.", body = ListPage<Export>, headers(("X-Total-Matching-Query" = i64))),
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
