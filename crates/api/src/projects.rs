//! Projects and their members (sbg-api.md §6).

use super::access::Need;
use super::auth::AuthUser;
use super::members::Members;
use super::views;
use super::wire::{list_page, object, Body, Params};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, patch};
use axum::{Json, Router};
use egress_core::limits;
use egress_core::util::now_ms;
use egress_engine::services::projects::{check_billing_group, check_name, insert, NewProject};
use egress_store::{MemberKind, User};
use serde_json::Value;
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/projects", get(list).post(create))
        .route("/v2/projects/", get(list).post(create))
        .route("/v2/projects/{owner}", get(list_owned))
        .route(
            "/v2/projects/{owner}/{slug}",
            get(get_one).patch(update).delete(remove),
        )
        .route(
            "/v2/projects/{owner}/{slug}/members",
            get(list_members).post(add_member),
        )
        .route(
            "/v2/projects/{owner}/{slug}/members/{username}",
            get(get_member).delete(remove_member),
        )
        .route(
            "/v2/projects/{owner}/{slug}/members/{username}/permissions",
            patch(set_permissions),
        )
}

type St = State<Arc<AppState>>;

async fn create(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<NewProject>,
) -> ApiResult<Json<Value>> {
    let project = insert(&state, &user, body).await?;
    Ok(Json(views::project(state.base(), &project)))
}

async fn list_for(
    state: &AppState,
    user: &User,
    owner: Option<&str>,
    uri: &axum::http::Uri,
    params: &Params,
) -> ApiResult<Response> {
    let page = params.page()?;
    let (projects, total) = state
        .store
        .list_projects(&user.username, owner, params.get("name"), page)
        .await?;
    let items = projects
        .iter()
        .map(|p| views::project(state.base(), p))
        .collect();
    Ok(list_page(state.base(), uri, page, total, items))
}

async fn list(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    list_for(&state, &user, None, &uri, &params).await
}

async fn list_owned(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    Path(owner): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    list_for(&state, &user, Some(&owner), &uri, &params).await
}

async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (project, _) = state
        .project_for(&user, &format!("{owner}/{slug}"), Need::Read)
        .await?;
    Ok(Json(views::project(state.base(), &project)))
}

async fn update(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let (mut project, _) = state
        .project_for(&user, &format!("{owner}/{slug}"), Need::Admin)
        .await?;
    for (key, value) in object(body)? {
        let bad = || ApiError::new(Code::BadRequest, format!("Invalid value for '{key}'."));
        match (key.as_str(), value) {
            ("name", Value::String(name)) => {
                check_name(&name)?;
                project.name = name;
            }
            ("description", Value::String(d)) => project.description = Some(d),
            ("description", Value::Null) => project.description = None,
            ("billing_group", Value::String(b)) => project.billing_group = check_billing_group(&b)?,
            ("tags", v @ Value::Array(_)) => {
                project.tags = serde_json::from_value(v).map_err(|_| bad())?;
                limits::check_tags(&project.tags)?;
            }
            ("settings", Value::Object(s)) => {
                let mut merged = project.settings.as_object().cloned().unwrap_or_default();
                merged.extend(s);
                project.settings = Value::Object(merged);
                limits::check_settings(&project.settings)?;
            }
            (
                "id" | "href" | "created_by" | "created_on" | "modified_on" | "root_folder"
                | "type" | "category",
                _,
            ) => {}
            _ => return Err(bad()),
        }
    }
    project.modified_at = now_ms();
    state.store.update_project(&project).await?;
    Ok(Json(views::project(state.base(), &project)))
}

async fn remove(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (project, _) = state
        .project_for(&user, &format!("{owner}/{slug}"), Need::Admin)
        .await?;
    state.store.delete_project(&project.id).await?;
    state.sweep.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the caller's right on the project and returns its members collection.
async fn members<'a>(
    state: &'a AppState,
    user: &User,
    id: &'a str,
    need: Need,
) -> ApiResult<Members<'a>> {
    let (project, _) = state.project_for(user, id, need).await?;
    Ok(Members {
        state,
        kind: MemberKind::Project,
        resource_id: id,
        href: format!("{}/v2/projects/{id}/members", state.base()),
        owner: project.owner,
    })
}

type ProjectPath = Path<(String, String)>;
type MemberPath = Path<(String, String, String)>;

async fn list_members(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    Path((owner, slug)): ProjectPath,
    params: Params,
) -> ApiResult<Response> {
    let id = format!("{owner}/{slug}");
    members(&state, &user, &id, Need::Read)
        .await?
        .list(&uri, &params)
        .await
}

async fn add_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug)): ProjectPath,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let id = format!("{owner}/{slug}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .add(body)
        .await
}

async fn get_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug, name)): MemberPath,
) -> ApiResult<Json<Value>> {
    let id = format!("{owner}/{slug}");
    members(&state, &user, &id, Need::Read)
        .await?
        .get(&name)
        .await
}

async fn set_permissions(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug, name)): MemberPath,
    Body(body): Body<Value>,
) -> ApiResult<Json<Value>> {
    let id = format!("{owner}/{slug}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .set_permissions(&name, body)
        .await
}

async fn remove_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug, name)): MemberPath,
) -> ApiResult<StatusCode> {
    let id = format!("{owner}/{slug}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .remove(&name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
