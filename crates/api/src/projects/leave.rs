//! `POST /v2/projects/{owner}/{slug}/members/leave`: the caller ends their own membership.
//!
//! The owner cannot leave: a project's owner is always its admin, and can be neither removed
//! nor reduced (`members.rs`), which is also what keeps every project with an admin, so no
//! other "last admin" case exists. SBG documents no such call for volumes, and Egress has none.

use super::super::openapi::ErrorSchema;
use super::{MemberPath, St};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::State;
use axum::http::StatusCode;
use egress_store::MemberKind;

/// The last path segment that names this call rather than a member.
const LEAVE: &str = "leave";

/// The caller leaves the project: their membership and every right it gave end now (jobs they
/// submitted re-check those rights when they run, and fail). Answers 404 alike for a project
/// that does not exist, one the caller cannot see and one they are not a member of.
///
/// Routed as `POST …/members/{username}` so a user named `leave` stays reachable by the other
/// member calls; a POST there with any other name is 405.
#[utoipa::path(
    post,
    path = "/v2/projects/{owner}/{slug}/members/leave",
    tag = "projects",
    operation_id = "leave_project",
    params(("owner" = String, Path), ("slug" = String, Path)),
    responses(
        (status = 204, description = "The caller is no longer a member."),
        (status = 400, description = "A malformed project id (3012).", body = ErrorSchema),
        (status = 403, description = "The caller owns the project, and the owner cannot leave it (3001).", body = ErrorSchema),
        (status = 404, description = "No such project, or the caller is not a member of it (3002).", body = ErrorSchema),
    ),
)]
pub async fn leave(
    State(state): St,
    AuthUser(user): AuthUser,
    axum::extract::Path((owner, slug, name)): MemberPath,
) -> ApiResult<StatusCode> {
    if name != LEAVE {
        return Err(ApiError::from(Code::MethodNotAllowed));
    }
    let id = format!("{owner}/{slug}");
    crate::access::parse_project_id(&id)?;
    let not_member = || {
        ApiError::new(
            Code::ProjectNotFound,
            "Requested project does not exist, or you are not a member of it.",
        )
    };
    let project = state.store.get_project(&id).await?.ok_or_else(not_member)?;
    if project.owner == user.username {
        return Err(ApiError::new(
            Code::ProjectForbidden,
            "The project's owner cannot leave it: the owner stays its admin. Delete the project, or ask a platform administrator.",
        ));
    }
    if !state
        .store
        .delete_member(MemberKind::Project, &id, &user.username)
        .await?
    {
        return Err(not_member());
    }
    Ok(StatusCode::NO_CONTENT)
}
