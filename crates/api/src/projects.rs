//! Projects and their members (sbg-api.md §6).

mod leave;

use super::access::Need;
use super::auth::AuthUser;
use super::fields::{Fields, SelectedProject};
use super::list_filters;
use super::members::{self, Members};
use super::openapi::ErrorSchema;
use super::views;
use super::wire::{list_page, object, Body, ListPage, Paging, Params, Selector};
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
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

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
            get(get_member).delete(remove_member).post(leave::leave),
        )
        .route(
            "/v2/projects/{owner}/{slug}/members/{username}/permissions",
            patch(set_permissions),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list,
    create,
    list_owned,
    get_one,
    update,
    remove,
    list_members,
    add_member,
    get_member,
    set_permissions,
    remove_member,
    leave::leave
))]
pub struct ApiDoc;

type St = State<Arc<AppState>>;

/// The body of `POST /v2/projects` (`NewProject`, read in services/projects.rs).
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body only.
struct NewProjectBody {
    /// Not empty, at most 255 characters; the project's id is `owner/` and a slug of it.
    #[schema(min_length = 1)]
    name: String,
    /// A UUID; a new one when not given.
    #[schema(format = "uuid")]
    billing_group: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    settings: Option<Map<String, Value>>,
}

/// Creates a project owned by the caller, who becomes its admin member.
#[utoipa::path(
    post,
    path = "/v2/projects",
    tag = "projects",
    operation_id = "create_project",
    request_body = NewProjectBody,
    responses(
        (status = 200, description = "The new project.", body = views::Project),
        (status = 400, description = "A bad body: no name (3007), a billing group that is not a UUID (4005), over a limit (90000), not JSON of this shape (90009).", body = ErrorSchema),
        (status = 409, description = "No free slug for this name (3003).", body = ErrorSchema),
    ),
)]
async fn create(
    State(state): St,
    AuthUser(user): AuthUser,
    Body(body): Body<NewProject>,
) -> ApiResult<Json<views::Project>> {
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
    let filter = list_filters::project_filter(params)?;
    let page = params.page()?;
    let (projects, total) = state
        .store
        .list_projects(&user.username, owner, &filter, page)
        .await?;
    let items: Vec<views::Project> = projects
        .iter()
        .map(|p| views::project(state.base(), p))
        .collect();
    let items = Fields::from_params(params).select_all(&items);
    Ok(list_page(state.base(), uri, page, total, items))
}

/// The filters of a project listing, for the API document (`list_filters::project_filter` reads
/// them). Other query keys are refused (90000).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters only.
struct ProjectListFilter {
    /// Only projects of this name.
    name: Option<String>,
    /// Only projects of one of these categories (repeatable).
    category: Option<Vec<views::Category>>,
    /// Only projects with one of these tags (repeatable).
    tags: Option<Vec<String>>,
}

/// The projects the caller is a member of.
#[utoipa::path(
    get,
    path = "/v2/projects",
    tag = "projects",
    operation_id = "list_projects",
    params(ProjectListFilter, Paging, Selector),
    responses(
        (status = 200, description = "One page of projects.", body = ListPage<SelectedProject>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "A bad `offset`, `limit` or `category`, two names, or a query key the list does not know (90000).", body = ErrorSchema),
    ),
)]
async fn list(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    list_for(&state, &user, None, &uri, &params).await
}

/// The projects of one owner that the caller is a member of.
#[utoipa::path(
    get,
    path = "/v2/projects/{owner}",
    tag = "projects",
    operation_id = "list_owned_projects",
    params(
        ("owner" = String, Path),
        ProjectListFilter,
        Paging,
        Selector,
    ),
    responses(
        (status = 200, description = "One page of projects.", body = ListPage<SelectedProject>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "A bad `offset`, `limit` or `category`, two names, or a query key the list does not know (90000).", body = ErrorSchema),
    ),
)]
async fn list_owned(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    Path(owner): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    list_for(&state, &user, Some(&owner), &uri, &params).await
}

#[utoipa::path(
    get,
    path = "/v2/projects/{owner}/{slug}",
    tag = "projects",
    operation_id = "get_project",
    params(("owner" = String, Path), ("slug" = String, Path), Selector),
    responses(
        (status = 200, description = "The project.", body = SelectedProject),
        (status = 404, description = "No such project, or one the caller cannot see (3002).", body = ErrorSchema),
    ),
)]
async fn get_one(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (project, _) = state
        .project_for(&user, &format!("{owner}/{slug}"), Need::Read)
        .await?;
    Ok(Json(
        Fields::from_params(&params).select(&views::project(state.base(), &project)),
    ))
}

/// The fields a project update may change. The project's read-only fields (`id`, `href`,
/// `created_by`, `created_on`, `modified_on`, `root_folder`, `type`, `category`) are ignored.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body only; the handler reads it field by field.
struct ProjectChanges {
    name: Option<String>,
    /// `null` removes it.
    description: Option<String>,
    #[schema(format = "uuid")]
    billing_group: Option<String>,
    tags: Option<Vec<String>>,
    /// Merged into the settings.
    #[schema(value_type = Option<Object>)]
    settings: Option<Map<String, Value>>,
}

/// Changes a project; needs its admin right.
#[utoipa::path(
    patch,
    path = "/v2/projects/{owner}/{slug}",
    tag = "projects",
    operation_id = "update_project",
    params(("owner" = String, Path), ("slug" = String, Path)),
    request_body = ProjectChanges,
    responses(
        (status = 200, description = "The changed project.", body = views::Project),
        (status = 400, description = "A bad value (3007, 4005, 90000), or a body that is not a JSON object (90009).", body = ErrorSchema),
        (status = 403, description = "The caller is not the project's admin (3001).", body = ErrorSchema),
        (status = 404, description = "No such project, or one the caller cannot see (3002).", body = ErrorSchema),
    ),
)]
async fn update(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> ApiResult<Json<views::Project>> {
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

/// Deletes a project and its files; needs its admin right.
#[utoipa::path(
    delete,
    path = "/v2/projects/{owner}/{slug}",
    tag = "projects",
    operation_id = "delete_project",
    params(("owner" = String, Path), ("slug" = String, Path)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "The caller is not the project's admin (3001).", body = ErrorSchema),
        (status = 404, description = "No such project, or one the caller cannot see (3002).", body = ErrorSchema),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/v2/projects/{owner}/{slug}/members",
    tag = "projects",
    operation_id = "list_project_members",
    params(("owner" = String, Path), ("slug" = String, Path), Paging),
    responses(
        (status = 200, description = "One page of members.", body = ListPage<views::Member>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "A bad `offset` or `limit` (90000).", body = ErrorSchema),
        (status = 404, description = "No such project, or one the caller cannot see (3002).", body = ErrorSchema),
    ),
)]
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

/// Adds a member; needs the project's admin right.
#[utoipa::path(
    post,
    path = "/v2/projects/{owner}/{slug}/members",
    tag = "projects",
    operation_id = "add_project_member",
    params(("owner" = String, Path), ("slug" = String, Path)),
    request_body = members::NewMember,
    responses(
        (status = 200, description = "The member.", body = views::Member),
        (status = 400, description = "No username (3005), bad permissions (3013), a type other than USER (90000), a body that is not a JSON object (90009).", body = ErrorSchema),
        (status = 403, description = "The caller is not the project's admin (3001).", body = ErrorSchema),
        (status = 404, description = "No such project (3002) or user (2002).", body = ErrorSchema),
        (status = 409, description = "The user is the owner (3003).", body = ErrorSchema),
    ),
)]
async fn add_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug)): ProjectPath,
    Body(body): Body<Value>,
) -> ApiResult<Json<views::Member>> {
    let id = format!("{owner}/{slug}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .add(body)
        .await
}

#[utoipa::path(
    get,
    path = "/v2/projects/{owner}/{slug}/members/{username}",
    tag = "projects",
    operation_id = "get_project_member",
    params(("owner" = String, Path), ("slug" = String, Path), ("username" = String, Path)),
    responses(
        (status = 200, description = "The member.", body = views::Member),
        (status = 404, description = "No such project or member (3002).", body = ErrorSchema),
    ),
)]
async fn get_member(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug, name)): MemberPath,
) -> ApiResult<Json<views::Member>> {
    let id = format!("{owner}/{slug}");
    members(&state, &user, &id, Need::Read)
        .await?
        .get(&name)
        .await
}

/// Changes a member's permissions; needs the project's admin right.
#[utoipa::path(
    patch,
    path = "/v2/projects/{owner}/{slug}/members/{username}/permissions",
    tag = "projects",
    operation_id = "set_project_member_permissions",
    params(("owner" = String, Path), ("slug" = String, Path), ("username" = String, Path)),
    request_body = members::PermissionChanges,
    responses(
        (status = 200, description = "The member's permissions now.", body = views::Permissions),
        (status = 400, description = "Bad permissions (3013), a body that is not JSON (90009).", body = ErrorSchema),
        (status = 403, description = "The caller is not the project's admin, or the member is the owner (3001).", body = ErrorSchema),
        (status = 404, description = "No such project or member (3002).", body = ErrorSchema),
    ),
)]
async fn set_permissions(
    State(state): St,
    AuthUser(user): AuthUser,
    Path((owner, slug, name)): MemberPath,
    Body(body): Body<Value>,
) -> ApiResult<Json<views::Permissions>> {
    let id = format!("{owner}/{slug}");
    members(&state, &user, &id, Need::Admin)
        .await?
        .set_permissions(&name, body)
        .await
}

/// Removes a member; needs the project's admin right.
#[utoipa::path(
    delete,
    path = "/v2/projects/{owner}/{slug}/members/{username}",
    tag = "projects",
    operation_id = "remove_project_member",
    params(("owner" = String, Path), ("slug" = String, Path), ("username" = String, Path)),
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "The caller is not the project's admin, or the member is the owner (3001).", body = ErrorSchema),
        (status = 404, description = "No such project or member (3002).", body = ErrorSchema),
    ),
)]
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
