//! Continuation-token paging of folder listings: `GET /v2/files/scroll` (a project's root or a
//! `parent` folder) and `GET /v2/files/{id}/scroll`, as `files.query(cont_token=…)` and
//! `file.list_files(cont_token=…)` send them: `token=init` (or no token) starts, and each page's
//! `next` link carries the token of the page after it. The last page has no `next` link.
//!
//! A token is the sort key of the last child returned (keyset paging, so files added or removed
//! meanwhile neither shift nor repeat the others), bound to its folder and signed with the
//! server key: one that was altered, made up or taken from another folder's listing is refused
//! (400). It only ever marks a position inside a folder the caller may read now.

use super::super::fields::{Fields, SelectedFile};
use super::super::list_filters;
use super::super::openapi::ErrorSchema;
use super::super::views;
use super::super::wire::{Link, LinkMethod, LinkRel, ListPage, Params, Selector, TOTAL_HEADER};
use super::super::AppState;
use super::{folder_for, listed_folder, ChildFilter, St};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use egress_store::{ChildKey, FileFilter, FileRec};
use std::sync::Arc;
use utoipa::IntoParams;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/files/scroll", get(scroll_files))
        .route("/v2/files/{id}/scroll", get(scroll_folder))
}

/// The token that starts a listing, as the client's `cont_token='init'` sends it.
const INIT: &str = "init";
/// The query keys that carry the token: the client sends `token`; `cont_token` is its name in
/// the client's API and in `POST /v2/files/search`.
const TOKEN_KEYS: [&str; 2] = ["token", "cont_token"];
/// What the server key signs a token for, so no other signature passes for one.
const PURPOSE: &str = "files scroll";

/// The paging of a scroll, for the API document (`Scroll::read` reads it).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters only.
struct ScrollPaging {
    /// `init` (or none) for the first page; then the token of the `next` link. `cont_token`
    /// is taken as the same parameter.
    token: Option<String>,
    /// Items per page.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// What a scroll request asks for, besides its folder.
struct Scroll {
    filter: FileFilter,
    limit: i64,
    token: Option<String>,
}

impl Scroll {
    /// Reads and checks the query; `scope` names the keys that pick the folder.
    fn read(params: &Params, scope: &[&str]) -> ApiResult<Self> {
        if params.0.iter().any(|(k, _)| k.starts_with("metadata.")) {
            return Err(ApiError::new(
                Code::BadRequest,
                "Metadata filters cannot be combined with continuation-token paging; filter by \
                 metadata with GET /v2/files (offset paging).",
            ));
        }
        if params.get("offset").is_some() {
            return Err(ApiError::new(
                Code::BadRequest,
                "Query parameter 'offset' cannot be combined with continuation-token paging.",
            ));
        }
        let mut tokens = params
            .0
            .iter()
            .filter(|(k, _)| TOKEN_KEYS.contains(&k.as_str()))
            .map(|(_, v)| v.clone());
        let token = tokens.next().filter(|t| !t.is_empty() && t != INIT);
        if tokens.next().is_some() {
            return Err(ApiError::new(
                Code::BadRequest,
                "Give the continuation token once (as 'token').",
            ));
        }
        let keys: Vec<&str> = scope.iter().copied().chain(TOKEN_KEYS).collect();
        let filter = list_filters::file_filter(params, &keys)?;
        let limit = params.page()?.limit;
        Ok(Scroll {
            filter,
            limit,
            token,
        })
    }
}

/// A continuation token: the position after `key` in the listing of `folder`, signed.
fn encode_token(state: &AppState, folder: &FileRec, key: &ChildKey) -> String {
    let position = (&folder.id, key.is_folder, &key.name, &key.id);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&position).expect("a tuple serializes"));
    // Tokens do not expire (0): they only mark a position.
    let signature = state.signer.sign(PURPOSE, &body, 0);
    format!("{body}.{signature}")
}

/// The position a token marks in `folder`'s listing; 400 for anything the server did not make
/// for this folder.
fn decode_token(state: &AppState, folder: &FileRec, token: &str) -> ApiResult<ChildKey> {
    let invalid = || {
        ApiError::new(
            Code::BadRequest,
            "Invalid continuation token: use the token of the previous page's 'next' link, or \
             token=init to start again.",
        )
    };
    let (body, signature) = token.split_once('.').ok_or_else(invalid)?;
    state
        .signer
        .verify(PURPOSE, body, 0, signature, 0)
        .map_err(|_| invalid())?;
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
    let (folder_id, is_folder, name, id): (String, bool, String, String) =
        serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if folder_id != folder.id {
        return Err(ApiError::new(
            Code::BadRequest,
            "This continuation token belongs to another folder's listing.",
        ));
    }
    Ok(ChildKey {
        is_folder,
        name,
        id,
    })
}

/// One page of `folder`'s children after the request's token, with a `next` link while more
/// follow. The total header counts every child passing the filters, as offset lists do.
async fn page(
    state: &AppState,
    uri: &Uri,
    params: &Params,
    folder: &FileRec,
    scroll: Scroll,
) -> ApiResult<Response> {
    let after = match &scroll.token {
        Some(token) => Some(decode_token(state, folder, token)?),
        None => None,
    };
    let (mut files, total) = state
        .store
        .scroll_children(&folder.id, &scroll.filter, after.as_ref(), scroll.limit + 1)
        .await?;
    let more = files.len() as i64 > scroll.limit;
    files.truncate(scroll.limit as usize);
    let mut links = Vec::new();
    if let (true, Some(last)) = (more, files.last()) {
        let next = encode_token(state, folder, &ChildKey::of(last));
        let mut query: Vec<(String, String)> = params
            .0
            .iter()
            .filter(|(k, _)| !TOKEN_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        query.push(("token".into(), next));
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        links.push(Link {
            href: format!("{}{}?{encoded}", state.base(), uri.path()),
            method: LinkMethod::Get,
            rel: LinkRel::Next,
        });
    }
    let href = match uri.query() {
        Some(q) => format!("{}{}?{q}", state.base(), uri.path()),
        None => format!("{}{}", state.base(), uri.path()),
    };
    let items: Vec<views::File> = files.iter().map(|f| views::file(state.base(), f)).collect();
    let items = Fields::from_params(params).select_all(&items);
    let mut response = axum::Json(ListPage { href, items, links }).into_response();
    response
        .headers_mut()
        .insert(TOTAL_HEADER, HeaderValue::from(total));
    Ok(response)
}

/// The children of a project's root folder (`project`) or of a folder (`parent`), paged with
/// a continuation token. `metadata.<key>` filters are refused here, as the official client
/// refuses them; `GET /v2/files` takes them.
#[utoipa::path(
    get,
    path = "/v2/files/scroll",
    tag = "files",
    operation_id = "scroll_files",
    params(
        ("project" = Option<String>, Query, description = "A project id, `owner/slug`; exactly one of `project` and `parent`."),
        ("parent" = Option<String>, Query, description = "A folder's id."),
        ChildFilter,
        ScrollPaging,
        Selector,
    ),
    responses(
        (status = 200, description = "One page of files and folders; the `next` link carries the next token and is missing on the last page.", body = ListPage<SelectedFile>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "Neither or both of `project` and `parent` (5029, 5031), a malformed project id (5005), a parent that is a file (5022); a token the server did not make for this folder, `offset` or `metadata.<key>` given, a bad `limit` or a query key the list does not know (90000).", body = ErrorSchema),
        (status = 403, description = "The caller may not read the project (3001, 5001).", body = ErrorSchema),
        (status = 404, description = "No such project (3002) or folder (5002).", body = ErrorSchema),
    ),
)]
pub async fn scroll_files(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let scroll = Scroll::read(&params, &["project", "parent"])?;
    let folder = listed_folder(&state, &user, &params).await?;
    page(&state, &uri, &params, &folder, scroll).await
}

/// The children of a folder, paged with a continuation token.
#[utoipa::path(
    get,
    path = "/v2/files/{id}/scroll",
    tag = "files",
    operation_id = "scroll_folder",
    params(("id" = String, Path, description = "A folder's id."), ChildFilter, ScrollPaging, Selector),
    responses(
        (status = 200, description = "One page of the folder's children; the `next` link carries the next token and is missing on the last page.", body = ListPage<SelectedFile>, headers(("X-Total-Matching-Query" = i64))),
        (status = 400, description = "A file, not a folder (5022); a token the server did not make for this folder, `offset` or `metadata.<key>` given, a bad `limit` or a query key the list does not know (90000).", body = ErrorSchema),
        (status = 403, description = "The caller may not read the project (5001).", body = ErrorSchema),
        (status = 404, description = "No such folder (5002).", body = ErrorSchema),
    ),
)]
pub async fn scroll_folder(
    State(state): St,
    AuthUser(user): AuthUser,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let scroll = Scroll::read(&params, &[])?;
    let folder = folder_for(&state, &user, &id).await?;
    page(&state, &uri, &params, &folder, scroll).await
}
