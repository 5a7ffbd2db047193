//! Volumes (sbg-api.md §4): users' buckets connected to Egress, their members, and browsing.

use super::access::Need;
use super::auth::AuthUser;
use super::members::{self, Members};
use super::openapi::{AccessModeSchema, ErrorSchema, ServiceKindSchema};
use super::views;
use super::wire::{list_page, object, Body, ListPage, Paging, Params};
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
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use utoipa::ToSchema;

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

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list,
    create,
    get_one,
    update,
    remove,
    browse,
    object_info,
    list_members,
    add_member,
    get_member,
    set_permissions,
    remove_member
))]
pub struct ApiDoc;

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

/// A volume: a bucket (or a folder on the server) connected to Egress.
#[derive(Debug, Serialize, ToSchema)]
pub struct Volume {
    #[schema(value_type = AccessModeSchema)]
    pub access_mode: AccessMode,
    /// A deactivated volume cannot be browsed, exported to or imported from.
    pub active: bool,
    #[schema(format = DateTime)]
    pub created_on: String,
    #[schema(required)]
    pub description: Option<String>,
    pub href: String,
    /// `owner/name`.
    pub id: String,
    #[schema(format = DateTime)]
    pub modified_on: String,
    pub name: String,
    pub service: VolumeService,
}

/// What the volume connects to; the secret half of its credentials is never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct VolumeService {
    /// Empty for a local volume.
    pub bucket: String,
    pub credentials: Credentials,
    /// S3 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub endpoint: Option<String>,
    /// The volume's objects live under it; empty for the whole bucket.
    pub prefix: String,
    /// Export defaults: `sse_algorithm`, `sse_aws_kms_key_id`, `aws_canned_acl`, `aws_storage_class`.
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
    /// S3 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub region: Option<String>,
    /// Local volumes only: the folder on the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub root: Option<String>,
    /// Azure only: the storage account (`bucket` is the container).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub storage_account: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = ServiceKindSchema)]
    pub kind: ServiceKind,
}

/// The public half of the credentials: an S3 access key id or a GCS client email; empty for a
/// local volume.
#[derive(Debug, Serialize, ToSchema)]
pub struct Credentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_email: Option<String>,
    /// Azure: the application's client id (the client secret is never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_id: Option<String>,
    /// S3 volumes on an IAM role: the role Egress assumes (the external id is never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub role_arn: Option<String>,
    /// Azure: the application's Entra ID tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tenant_id: Option<String>,
}

fn render(state: &AppState, v: &VolumeRec) -> Volume {
    let s = &v.service;
    let id = Some(s.credential_id.clone());
    let none = Credentials {
        access_key_id: None,
        client_email: None,
        client_id: None,
        role_arn: None,
        tenant_id: None,
    };
    let (credentials, s3) = match s.kind {
        ServiceKind::S3 if !s.role_arn.is_empty() => (
            Credentials {
                role_arn: Some(s.role_arn.clone()),
                ..none
            },
            true,
        ),
        ServiceKind::S3 | ServiceKind::Oss => (
            Credentials {
                access_key_id: id,
                ..none
            },
            true,
        ),
        ServiceKind::Gcs if s.federated => (none, false),
        ServiceKind::Gcs => (
            Credentials {
                client_email: id,
                ..none
            },
            false,
        ),
        ServiceKind::Local => (none, false),
        ServiceKind::Azure => (
            Credentials {
                client_id: id,
                tenant_id: Some(s.tenant_id.clone()),
                ..none
            },
            false,
        ),
    };
    let service = VolumeService {
        bucket: s.bucket.clone(),
        credentials,
        endpoint: (s3 || (s.kind != ServiceKind::Local && !s.endpoint.is_empty()))
            .then(|| s.endpoint.clone()),
        storage_account: (s.kind == ServiceKind::Azure).then(|| s.account.clone()),
        prefix: s.prefix.clone(),
        properties: s.properties.clone(),
        region: s3.then(|| s.region.clone()),
        root: (s.kind == ServiceKind::Local).then(|| s.root.clone()),
        kind: s.kind,
    };
    Volume {
        access_mode: v.access_mode,
        active: v.active,
        created_on: format_ms(v.created_at),
        description: v.description.clone(),
        href: format!("{}/v2/storage/volumes/{}", state.base(), v.id),
        id: v.id.clone(),
        modified_on: format_ms(v.modified_at),
        name: v.name.clone(),
        service,
    }
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

/// Properties of exports (`volume::check_properties` reads them): a volume's defaults, an
/// export's own values over them.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body only.
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// `AES256` or `aws:kms`.
    sse_algorithm: Option<String>,
    /// With `aws:kms` only.
    sse_aws_kms_key_id: Option<String>,
    /// An S3 canned ACL, such as `private` or `bucket-owner-full-control`.
    aws_canned_acl: Option<String>,
    /// An S3 storage class, such as `STANDARD` or `GLACIER_IR`.
    aws_storage_class: Option<String>,
}

/// A new volume, as `volume::parse_new_volume` reads it.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body only.
struct NewVolume {
    /// 3 to 32 English letters, digits and underscores; the volume's id is `owner/name`.
    #[schema(pattern = "^[A-Za-z0-9_]{3,32}$")]
    name: String,
    description: Option<String>,
    /// `RO` or `RW` (any case) [default: RW].
    access_mode: Option<String>,
    service: NewService,
}

/// What a new volume connects to.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body only.
struct NewService {
    /// `s3`, `gcs`, `oss` or `azure` (these three read-only), or `local` (platform
    /// administrators only), in any case.
    #[serde(rename = "type")]
    kind: String,
    /// S3, GCS and OSS.
    bucket: Option<String>,
    /// Azure: the storage account.
    storage_account: Option<String>,
    /// Azure: the container.
    container: Option<String>,
    /// A relative path without `.` or `..` segments.
    prefix: Option<String>,
    /// S3, OSS and GCS (also as `root_url`): `http(s)://host[:port]`, one the server allows
    /// [S3 default: AWS S3; GCS default: Google; required for OSS].
    endpoint: Option<String>,
    /// S3 [default: `us-east-1`].
    region: Option<String>,
    /// Local: an absolute folder inside one the server declares.
    root: Option<String>,
    /// S3: `access_key_id` and `secret_access_key`, or `role_arn` and `external_id` (an IAM
    /// role Egress assumes); GCS: `client_email` and `private_key` (PEM), or `configuration`
    /// (workload identity federation: accepted, but this server cannot be trusted by Google, so
    /// the access probe fails with 9001).
    #[schema(value_type = Option<Object>)]
    credentials: Option<Map<String, Value>>,
    /// Export defaults.
    properties: Option<Properties>,
}

/// Connects a bucket as a volume of the caller's; its credentials are checked by reading (and,
/// for RW, writing) the bucket.
#[utoipa::path(
    post,
    path = "/v2/storage/volumes",
    tag = "volumes",
    operation_id = "create_volume",
    request_body = NewVolume,
    responses(
        (status = 200, description = "The new volume.", body = Volume),
        (status = 400, description = "A bad name (9013, 9014), access mode (9015), service (9016, 9017, 9057, 9025) or property (9017, 9022, 9023, 9024), not a JSON object (90009).", body = ErrorSchema),
        (status = 403, description = "The bucket refuses reads (9001) or writes (9002), or a local volume by a user who is not an administrator (9020).", body = ErrorSchema),
        (status = 409, description = "The caller has a volume of this name (9010).", body = ErrorSchema),
        (status = 503, description = "The bucket's service failed (9000).", body = ErrorSchema),
    ),
)]
async fn create(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<Value>,
) -> ApiResult<Json<Volume>> {
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
    check_private_key(&record.service, &spec.secret)?;
    let backend = state.volume_backend(&record, Some(&spec.secret))?;
    probe(&*backend, &record).await?;
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

/// A GCS service account's key must be one Egress can sign with (9025).
fn check_private_key(service: &volume::Service, secret: &str) -> ApiResult<()> {
    if service.kind == ServiceKind::Gcs
        && !service.federated
        && egress_storage::volume::parse_private_key(secret).is_none()
    {
        return Err(ApiError::new(
            Code::InvalidPrivateKey,
            "Invalid private key given (private_key): it must be an RSA key in PEM (PKCS #8), \
             as in the service account's JSON key file.",
        ));
    }
    Ok(())
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

/// The volumes the caller is a member of.
#[utoipa::path(
    get,
    path = "/v2/storage/volumes",
    tag = "volumes",
    operation_id = "list_volumes",
    params(Paging),
    responses(
        (status = 200, description = "One page of volumes.", body = ListPage<Volume>, headers(("X-Total-Matching-Query" = i64))),
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
    let (volumes, total) = state.store.list_volumes(&user.username, page).await?;
    let items: Vec<Volume> = volumes.iter().map(|v| render(&state, v)).collect();
    Ok(list_page(state.base(), &uri, page, total, items))
}

#[utoipa::path(
    get,
    path = "/v2/storage/volumes/{owner}/{name}",
    tag = "volumes",
    operation_id = "get_volume",
    params(("owner" = String, Path), ("name" = String, Path)),
    responses(
        (status = 200, description = "The volume.", body = Volume),
        (status = 403, description = "The caller may not read the volume (9020).", body = ErrorSchema),
        (status = 404, description = "No such volume, or one the caller cannot see (9007).", body = ErrorSchema),
    ),
)]
async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
) -> ApiResult<Json<Volume>> {
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
                v.service.endpoint = volume::check_endpoint_for(
                    v.service.kind,
                    &text_field(&key, &value)?,
                    &state.volume_policy,
                )?
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
                let on_role = !v.service.role_arn.is_empty() || v.service.federated;
                for (k, val) in creds {
                    match (v.service.kind, on_role, k.as_str()) {
                        (ServiceKind::S3, true, "role_arn") => {
                            v.service.role_arn = volume::check_role_arn(&text_field(&k, &val)?)?
                        }
                        (ServiceKind::S3, true, "external_id") => {
                            let given = match val {
                                Value::Null => String::new(),
                                other => text_field(&k, &other)?,
                            };
                            secret = Some(volume::check_external_id(&given)?)
                        }
                        (ServiceKind::S3, false, "access_key_id")
                        | (ServiceKind::Oss, _, "access_key_id")
                        | (ServiceKind::Azure, _, "client_id")
                        | (ServiceKind::Gcs, false, "client_email") => {
                            v.service.credential_id = text_field(&k, &val)?
                        }
                        (ServiceKind::Azure, _, "tenant_id") => {
                            v.service.tenant_id = text_field(&k, &val)?
                        }
                        (ServiceKind::Gcs, true, "configuration") => {
                            secret = Some(volume::check_gcs_configuration(Some(&val))?)
                        }
                        (ServiceKind::S3, false, "secret_access_key")
                        | (ServiceKind::Oss, _, "secret_access_key")
                        | (ServiceKind::Azure, _, "client_secret")
                        | (ServiceKind::Gcs, false, "private_key") => {
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

/// What a volume update may change. `id`, `href`, `name`, `created_on` and `modified_on` are
/// ignored.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body only; the handler reads it field by field.
struct VolumeChanges {
    /// `null` removes it.
    description: Option<String>,
    /// `RO` or `RW` (any case).
    access_mode: Option<String>,
    active: Option<bool>,
    /// The owner or a platform administrator only. Keys of a new service object, each
    /// replacing the stored one (`properties` are merged); pointing the volume elsewhere needs
    /// the secret in `credentials` too. The type cannot change.
    #[schema(value_type = Option<Object>)]
    service: Option<Map<String, Value>>,
}

/// Changes a volume; needs its admin right.
#[utoipa::path(
    patch,
    path = "/v2/storage/volumes/{owner}/{name}",
    tag = "volumes",
    operation_id = "update_volume",
    params(
        ("owner" = String, Path),
        ("name" = String, Path),
        ("force" = Option<bool>, Query, description = "Deactivate even with unfinished jobs, which fail."),
    ),
    request_body = VolumeChanges,
    responses(
        (status = 200, description = "The changed volume.", body = Volume),
        (status = 400, description = "A bad value (9015, 9017, 9057, 90000), not a JSON object (90009).", body = ErrorSchema),
        (status = 403, description = "The caller is not the volume's admin, or changes the service without being its owner (9020); the bucket refuses access (9001, 9002).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007).", body = ErrorSchema),
        (status = 409, description = "Exports or imports on the volume are unfinished (90007).", body = ErrorSchema),
        (status = 503, description = "The bucket's service failed (9000).", body = ErrorSchema),
    ),
)]
async fn update(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
    params: Params,
    Body(body): Body<Value>,
) -> ApiResult<Json<Volume>> {
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
        || new.region != old.region
        || new.role_arn != old.role_arn;
    if repointed && new_secret.is_none() {
        return Err(ApiError::new(
            Code::InvalidService,
            "The service object is invalid: pointing a volume at another bucket, endpoint, \
             prefix, region or role needs its credentials (the secret, or the role's \
             external_id) in the same request.",
        ));
    }
    volume::check_access_mode(v.service.kind, v.access_mode)?;
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
    if reconnect {
        let secret = match &new_secret {
            Some(s) => s.clone(),
            None => state.secrets.open(&before.secret, &before.id)?,
        };
        check_private_key(&v.service, &secret)?;
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

/// Deletes a deactivated volume; needs its admin right.
#[utoipa::path(
    delete,
    path = "/v2/storage/volumes/{owner}/{name}",
    tag = "volumes",
    operation_id = "delete_volume",
    params(("owner" = String, Path), ("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "The caller is not the volume's admin (9020).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007).", body = ErrorSchema),
        (status = 409, description = "The volume is active, has aliases in projects, or has unfinished jobs (90007).", body = ErrorSchema),
    ),
)]
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

/// An object on a volume.
#[derive(Debug, Serialize, ToSchema)]
pub struct VolumeObject {
    pub href: String,
    /// Relative to the volume's prefix.
    pub location: String,
    /// `size`, `etag`, `content_type`, `last_modified`, `sse_algorithm`, `sse_aws_kms_key_id`,
    /// `storage_class` and the object's user metadata as `x-amz-meta-<key>`.
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[serde(rename = "type")]
    #[schema(value_type = ServiceKindSchema)]
    pub kind: ServiceKind,
    /// The volume's id.
    pub volume: String,
}

/// A common prefix ("folder") of a volume listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct VolumePrefix {
    /// The listing of this prefix.
    pub href: String,
    pub prefix: String,
    pub volume: String,
}

/// One page of a volume listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct VolumeListing {
    pub href: String,
    pub items: Vec<VolumeObject>,
    /// The next page, when there is one.
    pub links: Vec<NextPage>,
    pub prefixes: Vec<VolumePrefix>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NextPage {
    pub next: String,
}

fn object_json(state: &AppState, v: &VolumeRec, info: &ObjectInfo) -> VolumeObject {
    let location = relative(v, &info.key);
    VolumeObject {
        href: format!(
            "{}/v2/storage/volumes/{}/object?location={}",
            state.base(),
            v.id,
            encode(&location)
        ),
        location,
        metadata: metadata_json(info),
        kind: v.service.kind,
        volume: v.id.clone(),
    }
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
        // A local volume's keys have no empty, `.` or `..` segments: the caller's prefix or
        // location is at fault, not the volume.
        VolumeErrorKind::InvalidKey if e.code == "InvalidKey" => ApiError::new(
            Code::InvalidLocation,
            "Invalid location: empty, '.' and '..' segments are not allowed on this volume.",
        ),
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

/// Lists a volume's objects and common prefixes under a prefix, one level deep.
#[utoipa::path(
    get,
    path = "/v2/storage/volumes/{owner}/{name}/list",
    tag = "volumes",
    operation_id = "list_volume",
    params(
        ("owner" = String, Path),
        ("name" = String, Path),
        ("prefix" = Option<String>, Query, description = "Relative to the volume's prefix; not starting with `/`, without `..`."),
        ("continuation_token" = Option<String>, Query, description = "From the previous page's `next` link."),
        Paging,
    ),
    responses(
        (status = 200, description = "One page of the listing.", body = VolumeListing),
        (status = 400, description = "A bad prefix (9011), continuation token or paging (90000).", body = ErrorSchema),
        (status = 403, description = "The caller may not read the volume (9020), or it is deactivated or refuses access (9103).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007).", body = ErrorSchema),
        (status = 503, description = "The bucket's service failed (9000).", body = ErrorSchema),
    ),
)]
async fn browse(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Json<VolumeListing>> {
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
    let items = listing
        .objects
        .iter()
        .map(|o| object_json(&state, &v, o))
        .collect();
    let prefixes = listing
        .prefixes
        .iter()
        .map(|p| {
            let rel = relative(&v, p);
            VolumePrefix {
                href: format!(
                    "{}/v2/storage/volumes/{}/list?prefix={}",
                    state.base(),
                    v.id,
                    encode(&rel)
                ),
                prefix: rel,
                volume: v.id.clone(),
            }
        })
        .collect();
    let links = listing
        .next_token
        .iter()
        .map(|t| NextPage {
            next: href_of(&state, &uri, Some(t)),
        })
        .collect();
    Ok(Json(VolumeListing {
        href,
        items,
        links,
        prefixes,
    }))
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

/// One object's metadata.
#[utoipa::path(
    get,
    path = "/v2/storage/volumes/{owner}/{name}/object",
    tag = "volumes",
    operation_id = "get_volume_object",
    params(
        ("owner" = String, Path),
        ("name" = String, Path),
        ("location" = String, Query, description = "Relative to the volume's prefix."),
    ),
    responses(
        (status = 200, description = "The object.", body = VolumeObject),
        (status = 400, description = "No or a bad location (9011).", body = ErrorSchema),
        (status = 403, description = "The caller may not read the volume (9020), or it is deactivated or refuses access (9103).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007) or object (9105).", body = ErrorSchema),
        (status = 503, description = "The bucket's service failed (9000).", body = ErrorSchema),
    ),
)]
async fn object_info(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
    params: Params,
) -> ApiResult<Json<VolumeObject>> {
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

#[utoipa::path(
    get,
    path = "/v2/storage/volumes/{owner}/{name}/members",
    tag = "volumes",
    operation_id = "list_volume_members",
    params(("owner" = String, Path), ("name" = String, Path), Paging),
    responses(
        (status = 200, description = "One page of members.", body = ListPage<views::Member>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "Bad paging (90000).", body = ErrorSchema),
        (status = 403, description = "The caller may not read the volume (9020).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007).", body = ErrorSchema),
    ),
)]
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

/// Adds a member; needs the volume's admin right.
#[utoipa::path(
    post,
    path = "/v2/storage/volumes/{owner}/{name}/members",
    tag = "volumes",
    operation_id = "add_volume_member",
    params(("owner" = String, Path), ("name" = String, Path)),
    request_body = members::NewMember,
    responses(
        (status = 200, description = "The member.", body = views::Member),
        (status = 400, description = "No username (3005), bad permissions (3013), a type other than USER (90000), not a JSON object (90009).", body = ErrorSchema),
        (status = 403, description = "The caller is not the volume's admin (9020).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007) or user (2002).", body = ErrorSchema),
        (status = 409, description = "The user is the owner (3003).", body = ErrorSchema),
    ),
)]
async fn add_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name)): VolumePath,
    Body(body): Body<Value>,
) -> ApiResult<Json<views::Member>> {
    let id = format!("{owner}/{name}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .add(body)
        .await
}

#[utoipa::path(
    get,
    path = "/v2/storage/volumes/{owner}/{name}/members/{username}",
    tag = "volumes",
    operation_id = "get_volume_member",
    params(("owner" = String, Path), ("name" = String, Path), ("username" = String, Path)),
    responses(
        (status = 200, description = "The member.", body = views::Member),
        (status = 403, description = "The caller may not read the volume (9020).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007) or member (3002).", body = ErrorSchema),
    ),
)]
async fn get_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name, member)): MemberPath,
) -> ApiResult<Json<views::Member>> {
    let id = format!("{owner}/{name}");
    members(&state, &user, &id, Need::Read)
        .await?
        .get(&member)
        .await
}

/// Changes a member's permissions; needs the volume's admin right.
#[utoipa::path(
    patch,
    path = "/v2/storage/volumes/{owner}/{name}/members/{username}/permissions",
    tag = "volumes",
    operation_id = "set_volume_member_permissions",
    params(("owner" = String, Path), ("name" = String, Path), ("username" = String, Path)),
    request_body = members::PermissionChanges,
    responses(
        (status = 200, description = "The member's permissions now.", body = views::Permissions),
        (status = 400, description = "Bad permissions (3013), not JSON (90009).", body = ErrorSchema),
        (status = 403, description = "The caller is not the volume's admin (9020), or the member is the owner (3001).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007) or member (3002).", body = ErrorSchema),
    ),
)]
async fn set_permissions(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, name, member)): MemberPath,
    Body(body): Body<Value>,
) -> ApiResult<Json<views::Permissions>> {
    let id = format!("{owner}/{name}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .set_permissions(&member, body)
        .await
}

/// Removes a member; needs the volume's admin right.
#[utoipa::path(
    delete,
    path = "/v2/storage/volumes/{owner}/{name}/members/{username}",
    tag = "volumes",
    operation_id = "remove_volume_member",
    params(("owner" = String, Path), ("name" = String, Path), ("username" = String, Path)),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "The caller is not the volume's admin (9020), or the member is the owner (3001).", body = ErrorSchema),
        (status = 404, description = "No such volume (9007) or member (3002).", body = ErrorSchema),
    ),
)]
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
