//! How store failures reach the wire: the one place that turns a `StoreError` into an SBG error.
//! Outside `api/`, because the services that the API and the core share return SBG errors too.

use crate::error::{ApiError, Code};
use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => ApiError::new(Code::Conflict, "The resource already exists."),
            StoreError::NotFound => ApiError::new(Code::NotFound, "The resource does not exist."),
            StoreError::NotEmpty => Code::FolderNotEmpty.into(),
            StoreError::InUse => ApiError::new(Code::Conflict, "The resource is still in use."),
            StoreError::Busy => ApiError::new(
                Code::Conflict,
                "Jobs that use the resource are still running.",
            ),
            StoreError::NoParent => Code::DestinationNotFound.into(),
            StoreError::Refused(_) => ApiError::new(
                Code::ProjectAccessDenied,
                "Insufficient privileges to access the requested project: write access was revoked.",
            ),
            StoreError::IntoItself => ApiError::new(
                Code::InvalidFileRequest,
                "A folder cannot be moved into itself or into one of its own sub-folders.",
            ),
            StoreError::Db(e) => anyhow::Error::from(e).into(),
        }
    }
}
