//! Authentication (`X-SBG-Auth-Token` or `Authorization: Bearer`), rate limiting and the
//! rate-limit headers every response carries.

use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use egress_core::util::token_hash;
use egress_store::User;
use std::net::SocketAddr;
use std::sync::Arc;

/// The caller a request was authenticated as, if any; set by `authenticate`.
#[derive(Clone)]
struct Caller(Option<User>);

/// Extractor for routes that need a user: 401 without a valid token.
pub struct AuthUser(pub User);

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        match parts.extensions.get::<Caller>() {
            Some(Caller(Some(user))) => Ok(AuthUser(user.clone())),
            _ => Err(ApiError::from(Code::Unauthorized)),
        }
    }
}

fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-sbg-auth-token") {
        return v.to_str().ok().map(str::trim);
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let (scheme, value) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| value.trim())
}

async fn user_by_token(state: &AppState, hash: &str) -> anyhow::Result<Option<User>> {
    if let Some(user) = state.tokens.get(hash) {
        return Ok(Some(user));
    }
    let user = state.store.user_by_token(hash).await?;
    if let Some(u) = &user {
        state.tokens.insert(hash, u);
    }
    Ok(user)
}

pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    // The API document is public: a token sent with it is not even looked up.
    let public = req.uri().path() == super::openapi::PATH;
    let user = match token(req.headers()).filter(|_| !public) {
        Some(t) if !t.is_empty() => match user_by_token(&state, &token_hash(t)).await {
            Ok(user) => user,
            Err(e) => return ApiError::from(e).into_response(),
        },
        _ => None,
    };
    let key = match (&user, req.extensions().get::<ConnectInfo<SocketAddr>>()) {
        (Some(u), _) => format!("user:{}", u.username),
        (None, Some(ConnectInfo(addr))) => format!("ip:{}", addr.ip()),
        (None, None) => "anonymous".to_string(),
    };
    let counted = req.uri().path() != "/v2/rate_limit";
    let quota = state.limiter.check(&key, counted);
    let mut response = if quota.allowed {
        req.extensions_mut().insert(Caller(user));
        next.run(req).await
    } else {
        ApiError::from(Code::RateLimited).into_response()
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(quota.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(quota.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(quota.reset));
    response
}
