//! SBG-style API errors: every non-2xx response carries `{status, code, message, more_info}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const MORE_INFO: &str = "https://docs.sevenbridges.com/reference/api-status-codes";

/// An error as the wire shows it. `code` is the SBG status code (sbg-api.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    pub status: u16,
    pub code: u32,
    pub message: String,
    pub more_info: &'static str,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            more_info: MORE_INFO,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, 90000, message)
    }
    pub fn invalid_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            400,
            90009,
            format!("Error decoding request content: {detail}"),
        )
    }
    pub fn unauthorized() -> Self {
        Self::new(
            401,
            90001,
            "Unauthorized. Send a valid token in X-SBG-Auth-Token.",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, 90002, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, 90003, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, 90007, message)
    }
    pub fn internal() -> Self {
        Self::new(500, 90004, "Unexpected error. It was logged; retry later.")
    }

    // Users (2xxx)
    pub fn user_not_found() -> Self {
        Self::new(404, 2002, "User does not exist.")
    }
    pub fn user_exists() -> Self {
        Self::new(409, 2003, "User already exists.")
    }

    // Projects (3xxx)
    pub fn project_forbidden() -> Self {
        Self::new(
            403,
            3001,
            "Insufficient privileges to access the requested project/member.",
        )
    }
    pub fn project_not_found() -> Self {
        Self::new(404, 3002, "Requested project or member does not exist.")
    }
    pub fn project_exists() -> Self {
        Self::new(409, 3003, "Requested project already exists.")
    }
    pub fn malformed_project_id() -> Self {
        Self::new(400, 3012, "Malformed project id, expecting owner/project.")
    }

    // Files (5xxx)
    pub fn file_forbidden() -> Self {
        Self::new(
            403,
            5001,
            "Insufficient privileges to access the requested file.",
        )
    }
    pub fn file_not_found() -> Self {
        Self::new(404, 5002, "Requested file does not exist.")
    }
    pub fn file_exists() -> Self {
        Self::new(409, 5003, "Requested file already exists.")
    }
    pub fn invalid_name() -> Self {
        Self::new(400, 5024, "Invalid name parameter: a name is 1 to 255 characters, without '/', and not '.' or '..'.")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self)).into_response()
    }
}

/// Unexpected failures (database, storage) become a logged 500 whose body reveals nothing internal.
impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{err:#}"), "internal error");
        Self::internal()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        anyhow::Error::from(err).into()
    }
}
