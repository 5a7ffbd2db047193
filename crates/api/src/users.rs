//! `GET /v2/` (endpoint index), `/v2/rate_limit`, `/v2/user`, `/v2/users/{username}` and
//! `/metrics`.

use super::auth::AuthUser;
use super::openapi::ErrorSchema;
use super::views;
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(utoipa::OpenApi)]
#[openapi(paths(root, rate_limit, me, get_user, metrics))]
pub struct ApiDoc;

/// The endpoint index: absolute URLs of the API's collections.
#[derive(Debug, Serialize, ToSchema)]
pub struct Root {
    pub action_url: String,
    pub apps_url: String,
    pub billing_url: String,
    pub files_url: String,
    pub projects_url: String,
    pub rate_limit_url: String,
    pub storage_url: String,
    pub tasks_url: String,
    pub upload_url: String,
    pub user_url: String,
    pub users_url: String,
}

/// The endpoint index; needs no token.
#[utoipa::path(
    get,
    path = "/v2/",
    tag = "server",
    security(()),
    responses((status = 200, description = "The endpoint index (also at `/v2`).", body = Root)),
)]
pub async fn root(State(state): State<Arc<AppState>>) -> Json<Root> {
    let b = format!("{}/v2", state.base());
    Json(Root {
        action_url: format!("{b}/action"),
        apps_url: format!("{b}/apps"),
        billing_url: format!("{b}/billing"),
        files_url: format!("{b}/files"),
        projects_url: format!("{b}/projects"),
        rate_limit_url: format!("{b}/rate_limit"),
        storage_url: format!("{b}/storage"),
        tasks_url: format!("{b}/tasks"),
        upload_url: format!("{b}/upload"),
        user_url: format!("{b}/user"),
        users_url: format!("{b}/users"),
    })
}

/// The caller's request quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimit {
    pub instance_limit: InstanceLimit,
    pub rate: Rate,
}

/// Limits on running task instances: none here (`-1`).
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceLimit {
    pub limit: i64,
    pub remaining: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rate {
    /// Requests per window.
    pub limit: u32,
    /// Requests left in the current window.
    pub remaining: u32,
    /// Unix seconds when the current window ends.
    pub reset: u64,
}

/// The caller's rate-limit status; this request is not counted.
#[utoipa::path(
    get,
    path = "/v2/rate_limit",
    tag = "users",
    operation_id = "get_rate_limit",
    responses((status = 200, description = "The caller's quota.", body = RateLimit)),
)]
pub async fn rate_limit(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
) -> Json<RateLimit> {
    let quota = state
        .limiter
        .check(&format!("user:{}", user.username), false);
    Json(RateLimit {
        instance_limit: InstanceLimit {
            limit: -1,
            remaining: -1,
        },
        rate: Rate {
            limit: quota.limit,
            remaining: quota.remaining,
            reset: quota.reset,
        },
    })
}

/// The caller's own full profile.
#[utoipa::path(
    get,
    path = "/v2/user",
    tag = "users",
    operation_id = "get_current_user",
    responses((status = 200, description = "The caller (also at `/v2/user/`).", body = views::User)),
)]
pub async fn me(State(state): State<Arc<AppState>>, AuthUser(user): AuthUser) -> Json<views::User> {
    Json(views::user(state.base(), &user))
}

/// Any user's public profile; the full one (email, role, contact details) only for the user
/// themself or a platform administrator.
#[utoipa::path(
    get,
    path = "/v2/users/{username}",
    tag = "users",
    params(("username" = String, Path)),
    responses(
        (status = 200, description = "The user; another user's contact details, email and role are null.", body = views::User),
        (status = 404, description = "No such user (2002).", body = ErrorSchema),
    ),
)]
pub async fn get_user(
    State(state): State<Arc<AppState>>,
    AuthUser(caller): AuthUser,
    Path(username): Path<String>,
) -> ApiResult<Json<views::User>> {
    let user = state
        .store
        .get_user(&username)
        .await?
        .ok_or_else(|| ApiError::from(Code::UserNotFound))?;
    if caller.is_admin || caller.username == user.username {
        Ok(Json(views::user(state.base(), &user)))
    } else {
        Ok(Json(views::public_user(state.base(), &user)))
    }
}

/// Prometheus metrics, for platform administrators (they name projects).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    responses(
        (status = 200, description = "The Prometheus text exposition format.", body = String, content_type = "text/plain"),
        (status = 403, description = "The caller is not a platform administrator (90002).", body = ErrorSchema),
    ),
)]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
) -> ApiResult<String> {
    if !user.is_admin {
        return Err(ApiError::new(
            Code::Forbidden,
            "Metrics are for platform administrators.",
        ));
    }
    Ok(crate::metrics::render(&state.store).await?)
}
