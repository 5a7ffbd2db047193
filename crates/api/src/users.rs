//! `GET /v2/` (endpoint index), `/v2/rate_limit`, `/v2/user` and `/v2/users/{username}`.

use super::auth::AuthUser;
use super::views;
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn root(State(state): State<Arc<AppState>>) -> Json<Value> {
    let b = format!("{}/v2", state.base());
    Json(json!({
        "rate_limit_url": format!("{b}/rate_limit"),
        "user_url": format!("{b}/user"),
        "users_url": format!("{b}/users"),
        "billing_url": format!("{b}/billing"),
        "projects_url": format!("{b}/projects"),
        "files_url": format!("{b}/files"),
        "tasks_url": format!("{b}/tasks"),
        "apps_url": format!("{b}/apps"),
        "action_url": format!("{b}/action"),
        "upload_url": format!("{b}/upload"),
        "storage_url": format!("{b}/storage"),
    }))
}

pub async fn rate_limit(
    State(state): State<Arc<AppState>>,
    AuthUser(user): AuthUser,
) -> Json<Value> {
    let quota = state
        .limiter
        .check(&format!("user:{}", user.username), false);
    Json(json!({
        "rate": {"limit": quota.limit, "remaining": quota.remaining, "reset": quota.reset},
        "instance_limit": {"limit": -1, "remaining": -1},
    }))
}

pub async fn me(State(state): State<Arc<AppState>>, AuthUser(user): AuthUser) -> Json<Value> {
    Json(views::user(state.base(), &user))
}

/// Any user's public profile; the full one (email, role, contact details) only for the user
/// themself or a platform administrator.
pub async fn get_user(
    State(state): State<Arc<AppState>>,
    AuthUser(caller): AuthUser,
    Path(username): Path<String>,
) -> ApiResult<Json<Value>> {
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
