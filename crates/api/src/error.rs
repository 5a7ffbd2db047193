//! SBG errors as HTTP responses. The core's [`SbgError`] is the one error type; this wrapper
//! exists because Rust lets `IntoResponse` be implemented only beside one of the two types. Every
//! failure a handler meets (an SBG error, a store error, an unexpected one) converts into it with
//! `?`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use egress_core::error::{Code, SbgError, MORE_INFO};
use egress_engine::services::VolumeAccessError;
use egress_store::StoreError;

/// An SBG error on its way to the wire.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(transparent)]
pub struct ApiError(pub SbgError);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self(SbgError::new(code, message))
    }

    /// A body that is not the JSON the route expects, with serde's account of why.
    pub fn invalid_json(detail: impl std::fmt::Display) -> Self {
        Self(SbgError::invalid_json(detail))
    }
}

impl std::ops::Deref for ApiError {
    type Target = SbgError;

    fn deref(&self) -> &SbgError {
        &self.0
    }
}

impl From<SbgError> for ApiError {
    fn from(err: SbgError) -> Self {
        Self(err)
    }
}

impl From<Code> for ApiError {
    fn from(code: Code) -> Self {
        Self(code.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self(err.into())
    }
}

impl From<VolumeAccessError> for ApiError {
    fn from(err: VolumeAccessError) -> Self {
        Self(err.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}
