//! How store failures reach the wire: the one place that turns a `StoreError` into an SBG error.
//! It sits in the store crate because the services that the API and the engine share return SBG
//! errors too, and Rust allows the conversion only beside one of the two types.

use crate::StoreError;
use egress_core::error::{Code, SbgError};

impl From<StoreError> for SbgError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => SbgError::new(Code::Conflict, "The resource already exists."),
            StoreError::NotFound => SbgError::new(Code::NotFound, "The resource does not exist."),
            StoreError::NotEmpty => Code::FolderNotEmpty.into(),
            StoreError::InUse => SbgError::new(Code::Conflict, "The resource is still in use."),
            StoreError::Busy => SbgError::new(
                Code::Conflict,
                "Jobs that use the resource are still running.",
            ),
            StoreError::NoParent => Code::DestinationNotFound.into(),
            StoreError::Refused(_) => SbgError::new(
                Code::ProjectAccessDenied,
                "Insufficient privileges to access the requested project: write access was revoked.",
            ),
            StoreError::IntoItself => SbgError::new(
                Code::InvalidFileRequest,
                "A folder cannot be moved into itself or into one of its own sub-folders.",
            ),
            StoreError::Db(e) => anyhow::Error::from(e).into(),
        }
    }
}
