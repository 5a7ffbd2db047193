//! The HTTP API: routes, the wire format and the middleware every request passes through.

mod access;
mod async_jobs;
mod auth;
pub mod error;
mod exports;
mod fields;
mod files;
pub mod http_server;
mod imports;
mod list_filters;
mod members;
pub mod metrics;
pub mod openapi;
mod projects;
mod ratelimit;
pub mod signing;
mod token_cache;
mod transfer;
mod uploads;
mod users;
mod views;
mod volumes;
pub mod wire;

pub use access::Need;
pub use ratelimit::RateLimiter;

use crate::error::{ApiError, Code};
use crate::signing::UrlSigner;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use egress_engine::services::Services;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Tunables of the API, set from the command line.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Base of every `href`, without a trailing slash.
    pub public_url: String,
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// How long signed download and upload-part URLs stay valid.
    pub url_ttl: Duration,
    /// An upload with no activity for this long is abandoned and swept.
    pub upload_ttl: Duration,
}

/// The HTTP layer's state: the core's services plus what only requests need.
pub struct AppState {
    pub services: Arc<Services>,
    pub signer: UrlSigner,
    pub limiter: RateLimiter,
    /// Users of recently seen tokens.
    pub tokens: token_cache::TokenCache,
    pub settings: ApiSettings,
}

impl AppState {
    pub fn base(&self) -> &str {
        &self.settings.public_url
    }
}

/// Handlers reach the store, storage and volumes as `state.store`, `state.platform`, ….
impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v2", get(users::root))
        .route("/v2/", get(users::root))
        .route("/v2/rate_limit", get(users::rate_limit))
        .route("/v2/user", get(users::me))
        .route("/v2/user/", get(users::me))
        .route("/v2/users/{username}", get(users::get_user))
        .route("/metrics", get(users::metrics))
        .route(openapi::PATH, get(openapi::openapi_json))
        .merge(projects::routes())
        .merge(files::routes())
        .merge(uploads::routes())
        .merge(volumes::routes())
        .merge(exports::routes())
        .merge(imports::routes())
        .merge(async_jobs::routes())
        .layer(middleware::from_fn(run_to_completion))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.settings.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(state.settings.body_limit));
    // Transfers carry their own signature instead of a token and may be large and slow.
    let transfers = Router::new()
        .route("/transfer/download/{file_id}", get(transfer::download))
        .route(
            "/transfer/upload/{upload_id}/{part}",
            put(transfer::upload_part),
        )
        .layer(middleware::from_fn(run_to_completion))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(api)
        .merge(transfers)
        .fallback(|| async { ApiError::new(Code::NotFound, "No such route. See GET /v2/ for the endpoints.") })
        .method_not_allowed_fallback(|| async { ApiError::from(Code::MethodNotAllowed) })
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(drop_ignored_bodies))
        .layer(CatchPanicLayer::custom(|_| ApiError::from(Code::Internal).into_response()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                // The path only: query strings of signed URLs are credentials.
                let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            HeaderName::from_static("x-sbg-auth-token"),
        ]))
        .with_state(state)
}

/// A request's work runs to its end even when the client goes away or the request times out:
/// only the wait for it is dropped. A handler cancelled between the statements of a transaction
/// leaves its pooled database connection inside that transaction, and every later write on the
/// connection fails ("begin at non-zero transaction depth"): one impatient client would break
/// writes for everyone.
async fn run_to_completion(req: Request, next: Next) -> Response {
    match tokio::spawn(next.run(req)).await {
        Ok(response) => response,
        // Re-raised here so that `CatchPanicLayer` answers it as before.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => ApiError::from(Code::ServiceUnavailable).into_response(),
    }
}

/// The official client sends `null` with every GET and `{}` with every DELETE. Reading that
/// small body before answering keeps the connection reusable: a body left unread makes the
/// server close the connection, and a client reusing it at that moment sees a reset.
async fn drop_ignored_bodies(req: Request, next: Next) -> Response {
    use axum::http::Method;
    if !matches!(*req.method(), Method::GET | Method::DELETE | Method::HEAD) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    if axum::body::to_bytes(body, 64 * 1024).await.is_err() {
        return ApiError::new(
            Code::RequestTooLarge,
            "GET and DELETE bodies are ignored and must be small.",
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::empty()))
        .await
}

/// Error responses that layers produce without a body (a timeout, say) get the SBG JSON shape.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let message = status.canonical_reason().unwrap_or("Error");
    let code = match status.as_u16() {
        400 => Code::BadRequest,
        404 => Code::NotFound,
        405 => Code::MethodNotAllowed,
        408 => Code::RequestTimeout,
        413 => Code::RequestTooLarge,
        415 => Code::UnsupportedMediaType,
        503 => Code::ServiceUnavailable,
        _ => Code::Internal,
    };
    let mut fixed = ApiError::new(code, message).into_response();
    for name in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        if let Some(v) = response.headers().get(name) {
            fixed.headers_mut().insert(name, v.clone());
        }
    }
    fixed
}
