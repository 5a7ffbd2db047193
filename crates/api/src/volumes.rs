//! Volumes (sbg-api.md §4): users' buckets connected to Egress, their members, and browsing.

use super::access::Need;
use super::auth::AuthUser;
use super::members::Members;
use super::wire::{list_page, object, Body, Params};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, patch};
use axum::{Json, Router};
use egress_core::util::{format_ms, now_ms};
use egress_core::volume::{self, ServiceKind};
use egress_storage::volume::{ObjectInfo, VolumeBackend, VolumeError, VolumeErrorKind};
use egress_store::{AccessMode, MemberKind, StoreError, User, VolumeRec};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/storage/volumes", get(list).post(create))
        .route("/v2/storage/volumes/", get(list).post(create))
        .route(
            "/v2/storage/volumes/{owner}/{name}",
            get(get_one).patch(update).delete(remove),
        )
        .route("/v2/storage/volumes/{owner}/{name}/list", get(browse))
        .route(
            "/v2/storage/volumes/{owner}/{name}/object",
            get(object_info),
        )
        .route(
            "/v2/storage/volumes/{owner}/{name}/members",
            get(list_members).post(add_member),
        )
        .route(
            "/v2/storage/volumes/{owner}/{name}/members/{username}",
            get(get_member).delete(remove_member),
        )
        .route(
            "/v2/storage/volumes/{owner}/{name}/members/{username}/permissions",
            patch(set_permissions),
        )
}

type St = State<Arc<AppState>>;
type VolumePath = Path<(String, String)>;
type MemberPath = Path<(String, String, String)>;

pub fn volume_not_found() -> ApiError {
    ApiError::from(Code::VolumeNotFound)
}

pub fn volume_inactive() -> ApiError {
    ApiError::new(
        Code::LocationInaccessible,
        "The volume is deactivated; activate it first.",
    )
}

fn render(state: &AppState, v: &VolumeRec) -> Value {
    let s = &v.service;
    let credentials = match s.kind {
        ServiceKind::S3 => json!({"access_key_id": s.credential_id}),
        ServiceKind::Gcs => json!({"client_email": s.credential_id}),
        ServiceKind::Local => json!({}),
    };
    let mut service = json!({
        "type": s.kind.as_str(),
        "bucket": s.bucket,
        "prefix": s.prefix,
        "credentials": credentials,
        "properties": s.properties,
    });
    match s.kind {
        ServiceKind::S3 => {
            service["endpoint"] = json!(s.endpoint);
            service["region"] = json!(s.region);
        }
        ServiceKind::Local => service["root"] = json!(s.root),
        ServiceKind::Gcs => {}
    }
    json!({
        "href": format!("{}/v2/storage/volumes/{}", state.base(), v.id),
        "id": v.id,
        "name": v.name,
        "description": v.description,
        "access_mode": v.access_mode,
        "active": v.active,
        "service": service,
        "created_on": format_ms(v.created_at),
        "modified_on": format_ms(v.modified_at),
    })
}

/// Turns a failed probe into the SBG error the user can act on; the S3 code says what to fix.
fn probe_error(code: Code, what: &str, e: VolumeError) -> ApiError {
    ApiError::new(
        code,
        format!("Could not obtain {what} access on the service: {e}."),
    )
}

/// Checks that the volume's bucket can be read, and written when the mode is RW.
async fn probe(backend: &dyn VolumeBackend, v: &VolumeRec) -> ApiResult<()> {
    backend
        .probe_read(&v.service.prefix)
        .await
        .map_err(|e| probe_error(Code::ReadAccessDenied, "read", e))?;
    if v.access_mode == AccessMode::Rw {
        backend
            .probe_write(&v.service.prefix, &v.service.properties)
            .await
            .map_err(|e| probe_error(Code::CrossWriteDenied, "cross-write", e))?;
    }
    Ok(())
}

impl AppState {
    /// Loads a volume the caller may act on as `need` says (9007 / 9020).
    pub async fn volume_for(&self, user: &User, id: &str, need: Need) -> ApiResult<VolumeRec> {
        let volume = self
            .store
            .get_volume(id)
            .await?
            .ok_or_else(volume_not_found)?;
        let perms = match self
            .store
            .get_member(MemberKind::Volume, id, &user.username)
            .await?
        {
            Some(m) => m.perms,
            None if user.is_admin => egress_store::Perms::ALL,
            None => return Err(volume_not_found()),
        };
        if !need.granted_by(perms) {
            return Err(ApiError::from(Code::VolumeForbidden));
        }
        Ok(volume)
    }

    /// The volume an alias points at: the very volume it was made on, never another one made
    /// later under the same id.
    pub async fn alias_volume(&self, file: &egress_store::FileRec) -> ApiResult<VolumeRec> {
        let volume_id = file.volume_id.as_deref().ok_or_else(volume_not_found)?;
        match self.store.get_volume(volume_id).await? {
            Some(v) if file.volume_uid.as_deref() == Some(v.uid.as_str()) => Ok(v),
            _ => Err(volume_not_found()),
        }
    }
}

async fn create(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let mut spec = volume::parse_new_volume(&object(body)?, &state.volume_policy)?;
    if spec.service.kind == ServiceKind::Local {
        spec.service.root = local_volume_root(&state, &user, &spec.service.root)?;
    }
    let id = format!("{}/{}", user.username, spec.name);
    let duplicate = || ApiError::from(Code::VolumeNameExists);
    if state.store.get_volume(&id).await?.is_some() {
        return Err(duplicate());
    }
    let now = now_ms();
    let record = VolumeRec {
        id: id.clone(),
        owner: user.username.clone(),
        name: spec.name,
        description: spec.description,
        access_mode: spec.access_mode,
        active: true,
        service: spec.service,
        secret: state.secrets.seal(&spec.secret, &id),
        created_at: now,
        modified_at: now,
        uid: egress_core::util::new_long_id(),
    };
    if record.service.kind != ServiceKind::Gcs {
        let backend = state.volume_backend(&record, Some(&spec.secret))?;
        probe(&*backend, &record).await?;
    }
    state
        .store
        .create_volume(&record)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => duplicate(),
            e => e.into(),
        })?;
    Ok(Json(render(&state, &record)))
}

/// A local volume is a folder on the server: only a platform administrator may make one, and only
/// inside a folder the operator declared. The root is stored resolved.
fn local_volume_root(state: &AppState, user: &User, root: &str) -> ApiResult<String> {
    if !user.is_admin {
        return Err(ApiError::new(
            Code::VolumeForbidden,
            "Only platform administrators may create local volumes.",
        ));
    }
    let root = egress_storage::local_root::resolve(root, &state.volume_policy).map_err(|why| {
        ApiError::new(
            Code::InvalidService,
            format!("The service object is invalid: {why}"),
        )
    })?;
    Ok(root.path().display().to_string())
}

async fn list(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let page = params.page()?;
    let (volumes, total) = state.store.list_volumes(&user.username, page).await?;
    let items = volumes.iter().map(|v| render(&state, v)).collect();
    Ok(list_page(state.base(), &uri, page, total, items))
}

async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
) -> ApiResult<Json<Value>> {
    let v = state
        .volume_for(&user, &format!("{owner}/{name}"), Need::Read)
        .await?;
    Ok(Json(render(&state, &v)))
}

fn text_field(key: &str, value: &Value) -> ApiResult<String> {
    value.as_str().map(str::to_string).ok_or_else(|| {
        ApiError::new(
            Code::InvalidService,
            format!("The service object is invalid: '{key}' must be a string"),
        )
    })
}

/// Applies a partial `service` object; returns the new secret if credentials changed it.
fn patch_service(
    state: &AppState,
    v: &mut VolumeRec,
    service: Map<String, Value>,
) -> ApiResult<Option<String>> {
    let mut secret = None;
    for (key, value) in service {
        match key.as_str() {
            "type" => {
                if !text_field(&key, &value)?.eq_ignore_ascii_case(v.service.kind.as_str()) {
                    return Err(ApiError::new(
                        Code::InvalidService,
                        "The service type of a volume cannot change.",
                    ));
                }
            }
            "bucket" => v.service.bucket = text_field(&key, &value)?,
            "prefix" => v.service.prefix = volume::normalize_prefix(&text_field(&key, &value)?)?,
            "region" => v.service.region = text_field(&key, &value)?,
            "endpoint" => {
                v.service.endpoint =
                    volume::check_endpoint(&text_field(&key, &value)?, &state.volume_policy)?
            }
            "properties" => {
                let Value::Object(changes) = value else {
                    return Err(ApiError::new(
                        Code::InvalidService,
                        "The service object is invalid: properties must be an object",
                    ));
                };
                let mut merged = v.service.properties.clone();
                merged.extend(changes);
                volume::check_properties(&merged)?;
                v.service.properties = merged;
            }
            "credentials" => {
                let Value::Object(creds) = value else {
                    return Err(ApiError::new(
                        Code::InvalidService,
                        "The service object is invalid: credentials must be an object",
                    ));
                };
                for (k, val) in creds {
                    match (v.service.kind, k.as_str()) {
                        (ServiceKind::S3, "access_key_id") | (ServiceKind::Gcs, "client_email") => {
                            v.service.credential_id = text_field(&k, &val)?
                        }
                        (ServiceKind::S3, "secret_access_key")
                        | (ServiceKind::Gcs, "private_key") => {
                            let given = text_field(&k, &val)?;
                            if given.is_empty() {
                                return Err(ApiError::new(
                                    Code::InvalidService,
                                    format!(
                                        "The service object is invalid: '{k}' must not be empty"
                                    ),
                                ));
                            }
                            secret = Some(given)
                        }
                        _ => {
                            return Err(ApiError::new(
                                Code::InvalidService,
                                format!("The service object is invalid: unknown credential '{k}'"),
                            ))
                        }
                    }
                }
            }
            _ => {
                return Err(ApiError::new(
                    Code::InvalidService,
                    format!("The service object is invalid: '{key}' cannot be changed"),
                ))
            }
        }
    }
    Ok(secret)
}

async fn update(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
    params: Params,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let force = params.flag("force")?;
    let before = state
        .volume_for(&user, &format!("{owner}/{name}"), Need::Admin)
        .await?;
    let body = object(body)?;
    // The service holds the owner's credentials: a delegated admin may rename, describe or
    // deactivate the volume, but never aim those credentials at anything else.
    if body.contains_key("service") && !(user.is_admin || user.username == before.owner) {
        return Err(ApiError::new(
            Code::VolumeForbidden,
            "Only the volume's owner or a platform administrator may change its service.",
        ));
    }
    let mut v = before.clone();
    let mut new_secret = None;
    for (key, value) in body {
        match (key.as_str(), value) {
            ("description", Value::String(d)) => v.description = Some(d),
            ("description", Value::Null) => v.description = None,
            ("access_mode", mode) => v.access_mode = volume::parse_access_mode(Some(&mode))?,
            ("active", Value::Bool(active)) => v.active = active,
            ("service", Value::Object(service)) => {
                new_secret = patch_service(&state, &mut v, service)?
            }
            ("id" | "href" | "name" | "created_on" | "modified_on", _) => {}
            (other, _) => {
                return Err(ApiError::new(
                    Code::BadRequest,
                    format!("Invalid value for '{other}'."),
                ))
            }
        }
    }
    // The sealed secret was given for one place; another place needs its own.
    let (old, new) = (&before.service, &v.service);
    let repointed = new.bucket != old.bucket
        || new.endpoint != old.endpoint
        || new.prefix != old.prefix
        || new.region != old.region;
    if repointed && new_secret.is_none() {
        return Err(ApiError::new(
            Code::InvalidService,
            "The service object is invalid: pointing a volume at another bucket, endpoint, \
             prefix or region needs its credentials (the secret) in the same request.",
        ));
    }
    if v.service.kind == ServiceKind::Gcs && v.access_mode == AccessMode::Rw {
        return Err(ApiError::from(Code::GcsReadOnlyOnly));
    }
    let deactivating = before.active && !v.active;
    let jobs_in_the_way = (deactivating
        || repointed
        || (before.access_mode == AccessMode::Rw && v.access_mode != AccessMode::Rw))
        && state.store.unfinished_volume_jobs(&v.id).await? > 0;
    if jobs_in_the_way && !(force && deactivating) {
        return Err(jobs_running());
    }
    let reconnect = v.service != before.service
        || new_secret.is_some()
        || (v.access_mode == AccessMode::Rw && before.access_mode != AccessMode::Rw);
    if reconnect && v.service.kind != ServiceKind::Gcs {
        let secret = match &new_secret {
            Some(s) => s.clone(),
            None => state.secrets.open(&before.secret, &before.id)?,
        };
        probe(&*state.volume_backend(&v, Some(&secret))?, &v).await?;
    }
    if let Some(secret) = new_secret {
        v.secret = state.secrets.seal(&secret, &v.id);
    }
    v.modified_at = now_ms();
    state.store.update_volume(&v).await?;
    if jobs_in_the_way {
        // Deactivated first: a job that commits meanwhile sees it and fails on its own.
        fail_jobs_of(&state, &v).await?;
    }
    Ok(Json(render(&state, &v)))
}

/// Ends the unfinished jobs of a volume deactivated with `force=true`, their workers fenced out.
/// Without force, a volume whose exports or imports are unfinished is not deactivated, made
/// read-only or re-pointed (`jobs_running`); every job also re-checks its volume when it
/// commits, which covers one submitted meanwhile.
async fn fail_jobs_of(state: &AppState, v: &VolumeRec) -> ApiResult<()> {
    let error = ApiError::from(Code::VolumeForceDeactivated);
    let failed = state
        .store
        .fail_volume_jobs(&v.id, &serde_json::to_value(&error).unwrap_or_default())
        .await?;
    tracing::info!(volume = %v.id, jobs = failed, "volume deactivated with force; its jobs failed");
    Ok(())
}

fn jobs_running() -> ApiError {
    ApiError::new(
        Code::Conflict,
        "Exports or imports on this volume are still pending or running; wait for them, or \
         deactivate it with force=true to fail them.",
    )
}

async fn remove(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
) -> ApiResult<StatusCode> {
    let v = state
        .volume_for(&user, &format!("{owner}/{name}"), Need::Admin)
        .await?;
    if v.active {
        return Err(ApiError::new(
            Code::Conflict,
            "Deactivate the volume (active: false) before deleting it.",
        ));
    }
    state
        .store
        .delete_volume(&v.id)
        .await
        .map_err(|e| match e {
            StoreError::InUse => ApiError::new(
                Code::Conflict,
                "Files in projects are aliases of objects on this volume; delete them first.",
            ),
            StoreError::NotFound => volume_not_found(),
            StoreError::Busy => jobs_running(),
            e => e.into(),
        })?;
    state.volume_clients.forget(&v.id);
    Ok(StatusCode::NO_CONTENT)
}

/// A volume that may be browsed: readable by the caller and active.
async fn browsable(
    state: &AppState,
    user: &User,
    id: &str,
) -> ApiResult<(VolumeRec, Arc<dyn VolumeBackend>)> {
    let v = state.volume_for(user, id, Need::Read).await?;
    if !v.active {
        return Err(volume_inactive());
    }
    let backend = state.volume_backend(&v, None)?;
    Ok((v, backend))
}

/// The volume-relative location of a full key.
fn relative(v: &VolumeRec, key: &str) -> String {
    let prefix = &v.service.prefix;
    if prefix.is_empty() {
        key.to_string()
    } else {
        key.strip_prefix(&format!("{prefix}/"))
            .unwrap_or(key)
            .to_string()
    }
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn object_json(state: &AppState, v: &VolumeRec, info: &ObjectInfo) -> Value {
    let location = relative(v, &info.key);
    json!({
        "href": format!("{}/v2/storage/volumes/{}/object?location={}", state.base(), v.id, encode(&location)),
        "location": location,
        "volume": v.id,
        "type": v.service.kind.as_str(),
        "metadata": metadata_json(info),
    })
}

/// The `metadata` object of a VolumeObject.
fn metadata_json(info: &ObjectInfo) -> Value {
    let mut m = Map::new();
    m.insert("size".into(), json!(info.size));
    m.insert("etag".into(), json!(info.etag));
    m.insert("content_type".into(), json!(info.content_type));
    m.insert(
        "last_modified".into(),
        json!(info.last_modified.map(format_ms)),
    );
    m.insert("sse_algorithm".into(), json!(info.sse_algorithm));
    m.insert("sse_aws_kms_key_id".into(), json!(info.kms_key_id));
    m.insert("storage_class".into(), json!(info.storage_class));
    for (k, v) in &info.user_metadata {
        m.insert(format!("x-amz-meta-{k}"), json!(v));
    }
    Value::Object(m)
}

fn browse_error(e: VolumeError) -> ApiError {
    match e.kind {
        VolumeErrorKind::InvalidArgument => {
            ApiError::new(Code::BadRequest, "Invalid continuation token.")
        }
        _ if e.is_retryable() => ApiError::new(
            Code::ServiceError,
            format!("There was an error communicating with the service: {e}."),
        ),
        _ => ApiError::new(
            Code::LocationInaccessible,
            format!("Location on volume is not accessible as configured: {e}."),
        ),
    }
}

async fn browse(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (v, backend) = browsable(&state, &user, &format!("{owner}/{name}")).await?;
    let page = params.page()?;
    let user_prefix = params.get("prefix").unwrap_or("");
    if user_prefix.starts_with('/') || user_prefix.split('/').any(|s| s == "..") {
        return Err(ApiError::new(Code::InvalidLocation, "Invalid prefix."));
    }
    let full_prefix = if v.service.prefix.is_empty() {
        user_prefix.to_string()
    } else {
        format!("{}/{user_prefix}", v.service.prefix)
    };
    let listing = backend
        .list(
            &full_prefix,
            params.get("continuation_token"),
            page.limit as i32,
        )
        .await
        .map_err(browse_error)?;
    let href = href_of(&state, &uri, None);
    let items: Vec<Value> = listing
        .objects
        .iter()
        .map(|o| object_json(&state, &v, o))
        .collect();
    let prefixes: Vec<Value> = listing
        .prefixes
        .iter()
        .map(|p| {
            let rel = relative(&v, p);
            json!({
                "href": format!("{}/v2/storage/volumes/{}/list?prefix={}", state.base(), v.id, encode(&rel)),
                "prefix": rel,
                "volume": v.id,
            })
        })
        .collect();
    let links: Vec<Value> = listing
        .next_token
        .iter()
        .map(|t| json!({"next": href_of(&state, &uri, Some(t))}))
        .collect();
    Ok(Json(
        json!({"href": href, "items": items, "prefixes": prefixes, "links": links}),
    ))
}

/// The absolute URL of this listing, with `continuation_token` replaced.
fn href_of(state: &AppState, uri: &Uri, token: Option<&str>) -> String {
    let mut query: Vec<(String, String)> = Params::parse(uri.query().unwrap_or(""))
        .0
        .into_iter()
        .filter(|(k, _)| k != "continuation_token")
        .collect();
    if let Some(t) = token {
        query.push(("continuation_token".into(), t.to_string()));
    }
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    if encoded.is_empty() {
        format!("{}{}", state.base(), uri.path())
    } else {
        format!("{}{}?{encoded}", state.base(), uri.path())
    }
}

async fn object_info(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (v, backend) = browsable(&state, &user, &format!("{owner}/{name}")).await?;
    let location = params.get("location").ok_or_else(|| {
        ApiError::new(
            Code::InvalidLocation,
            "Query parameter 'location' is required.",
        )
    })?;
    let key = volume::checked_key(&v.service.prefix, location)?;
    let info = backend
        .head(&key)
        .await
        .map_err(browse_error)?
        .ok_or_else(|| ApiError::from(Code::LocationNotFound))?;
    Ok(Json(object_json(&state, &v, &info)))
}

async fn members<'a>(
    state: &'a AppState,
    user: &User,
    id: &'a str,
    need: Need,
) -> ApiResult<Members<'a>> {
    let v = state.volume_for(user, id, need).await?;
    Ok(Members {
        state,
        kind: MemberKind::Volume,
        resource_id: id,
        href: format!("{}/v2/storage/volumes/{id}/members", state.base()),
        owner: v.owner,
    })
}

async fn list_members(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    Path((owner, name)): VolumePath,
    params: Params,
) -> ApiResult<Response> {
    let id = format!("{owner}/{name}");
    members(&state, &user, &id, Need::Read)
        .await?
        .list(&uri, &params)
        .await
}

async fn add_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let id = format!("{owner}/{name}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .add(body)
        .await
}

async fn get_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name, member)): MemberPath,
) -> ApiResult<Json<Value>> {
    let id = format!("{owner}/{name}");
    members(&state, &user, &id, Need::Read)
        .await?
        .get(&member)
        .await
}

async fn set_permissions(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name, member)): MemberPath,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let id = format!("{owner}/{name}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .set_permissions(&member, body)
        .await
}

async fn remove_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name, member)): MemberPath,
) -> ApiResult<StatusCode> {
    let id = format!("{owner}/{name}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .remove(&member)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
