//! `POST /v2/files/search`, which `api.files.search(query)` calls with a query "written in SBG
//! query language". The SBG docs do not describe that language or the call (only the client's
//! `{count, cont_token, result_set}` answer shows its shape), so Egress cannot answer it
//! faithfully: it says so with 501 in the SBG error shape, after the usual authentication,
//! rather than guess.

use super::super::openapi::ErrorSchema;
use super::super::wire::RawBody;
use super::super::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use axum::routing::post;
use axum::Router;
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v2/files/search", post(search))
}

/// Not served: the SBG query language it takes is not documented. List files with
/// `GET /v2/files` and its filters (`name`, `tag`, `metadata.<key>`, `origin.*`) instead.
#[utoipa::path(
    post,
    path = "/v2/files/search",
    tag = "files",
    operation_id = "search_files",
    request_body(content = Object, description = "`{\"query\": …}` in the SBG query language; not read."),
    responses(
        (status = 501, description = "Egress does not serve file search (90000).", body = ErrorSchema),
    ),
)]
pub async fn search(AuthUser(_): AuthUser, _body: RawBody) -> ApiError {
    // The body is read (and dropped) so the connection stays reusable.
    ApiError::new(
        Code::NotImplemented,
        "File search (POST /v2/files/search, SBG query language) is not supported by this \
         server. List files with GET /v2/files and its filters: name, tag, metadata.<key>, \
         origin.task, origin.dataset.",
    )
}
