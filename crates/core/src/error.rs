//! SBG-style API errors: every non-2xx response carries `{status, code, message, more_info}`.
//!
//! [`Code`] lists every error Egress can return, each with its HTTP status, its SBG code
//! (sbg-api.md §7) and a default message. [`SbgError`] is one of them with the message this
//! occurrence shows. The HTTP crate turns it into a response; nothing here knows about HTTP
//! frameworks.

use serde::ser::{Serialize, SerializeStruct, Serializer};

pub const MORE_INFO: &str = "https://docs.sevenbridges.com/reference/api-status-codes";

/// Declares [`Code`] from one table row per variant: `Name = (status, code, "default message")`.
macro_rules! codes {
    ($($(#[doc = $doc:literal])+ $name:ident = ($status:literal, $number:literal, $message:literal),)+) => {
        /// Every error Egress returns: one variant per (HTTP status, SBG code) pair. The same SBG
        /// code under two statuses is two variants.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])+ $name,)+
        }

        impl Code {
            /// Every variant, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)+];

            /// The HTTP status of the response.
            pub const fn status(self) -> u16 {
                match self {
                    $(Code::$name => $status,)+
                }
            }

            /// The SBG code in the body's `code` field.
            pub const fn number(self) -> u32 {
                match self {
                    $(Code::$name => $number,)+
                }
            }

            /// The message when the caller has nothing more specific to say.
            pub const fn default_message(self) -> &'static str {
                match self {
                    $(Code::$name => $message,)+
                }
            }
        }
    };
}

codes! {
    // General (0–1000)
    /// The caller spent its request quota for the current window.
    RateLimited = (429, 1000, "Rate limit exceeded! Check response headers."),

    // Users (2xxx)
    /// No user has this username.
    UserNotFound = (404, 2002, "User does not exist."),

    // Projects and members (3xxx), billing (4xxx)
    /// The caller may not do this to the project or its member list (also: the owner's own
    /// membership cannot be changed or removed).
    ProjectForbidden = (403, 3001, "Insufficient privileges to access the requested project/member."),
    /// No such project, or no such member in it; also what a project the caller cannot see gives.
    ProjectNotFound = (404, 3002, "Requested project or member does not exist."),
    /// The project slug is taken, or the user is already a member.
    ProjectExists = (409, 3003, "Requested project already exists."),
    /// Adding a member without a username.
    MemberUsernameMissing = (400, 3005, "Member username must be provided."),
    /// Creating a project with an empty name.
    ProjectNameEmpty = (400, 3007, "Project name must not be empty."),
    /// A project id that is not `owner/project`.
    MalformedProjectId = (400, 3012, "Malformed project id, expecting owner/project."),
    /// A member's permissions object is not a map of known permissions to booleans.
    InvalidPermissions = (400, 3013, "Provide all permissions data."),
    /// A billing group id that is not a UUID.
    BillingGroupNotUuid = (400, 4005, "Billing group id must be a UUID."),

    // Files and folders (5xxx)
    /// The caller lacks the right on the file's project (also: deleting a project's root folder).
    FileForbidden = (403, 5001, "Insufficient privileges to access the requested file."),
    /// No such file, or one the caller cannot see (also: an export's source deleted meanwhile).
    FileNotFound = (404, 5002, "Requested file does not exist."),
    /// A file or folder of that name is already in the destination folder.
    FileExists = (409, 5003, "Requested file already exists."),
    /// A bulk file item without a file id.
    FileIdMissing = (400, 5004, "File id must not be null or an empty string."),
    /// `?project=` that is not `owner/project`.
    MalformedProjectQuery = (400, 5005, "Malformed project query parameter, expecting ?project=owner/project."),
    /// Renaming a project's root folder.
    RenameForbidden = (403, 5008, "File renaming is not allowed."),
    /// Creating a folder with a `type` other than `folder`.
    InvalidFileType = (400, 5012, "Invalid 'type', allowed: [folder]."),
    /// Copying a file without the right to read it or to write the destination.
    CopyForbidden = (403, 5014, "Insufficient privileges to copy the file."),
    /// Moving a file into a folder of another project.
    CrossProjectMove = (400, 5015, "Moving files between projects is not supported."),
    /// Asking for a download URL of a folder.
    FolderDownload = (400, 5017, "Downloading folders is not supported."),
    /// Copying a folder.
    FolderCopy = (400, 5018, "Copying folders is not supported."),
    /// Deleting a folder that still has children.
    FolderNotEmpty = (400, 5021, "Deleting non-empty folders is not supported."),
    /// The given parent is a file.
    ParentNotFolder = (400, 5022, "Parent is not a folder."),
    /// A file or folder name breaks the naming rule (names.rs).
    InvalidName = (400, 5024, "Invalid name parameter: a name is 1 to 255 characters, without '/', and not '.' or '..'."),
    /// Setting metadata on a folder.
    FolderMetadata = (400, 5025, "Updating folder metadata is not supported."),
    /// The destination folder does not exist (any more), at request time or at commit.
    DestinationNotFound = (404, 5026, "Destination folder not found."),
    /// Setting tags on a folder.
    FolderTags = (400, 5027, "Updating folder tags is not supported."),
    /// Neither `parent` nor `project` was given.
    ParentOrProjectMissing = (400, 5029, "Either 'parent' or 'project' must be given."),
    /// Creating a folder whose name is taken.
    FolderExists = (409, 5030, "A file or folder with this name already exists."),
    /// Both `parent` and `project` were given.
    ParentAndProject = (400, 5031, "Give either 'parent' or 'project', not both."),
    /// Moving a file without the rights, or moving a project's root folder.
    MoveForbidden = (403, 5032, "Insufficient privileges to move the file."),
    /// A file request field has a bad value (metadata, tags, a folder moved into itself).
    InvalidFileRequest = (400, 5033, "Invalid request."),

    // Uploads (8xxx)
    /// No such multipart upload, or one of another user.
    UploadNotFound = (404, 8003, "Requested upload does not exist."),
    /// The upload's target name is taken and overwrite was not asked (or is a folder).
    UploadTargetExists = (409, 8004, "A file with this name already exists."),
    /// Completing an upload with parts missing, or whose parts do not add up to its size.
    UploadIncomplete = (400, 8007, "The upload could not be completed."),
    /// A part reported as done was not received, or its ETag differs.
    PartMismatch = (400, 8008, "The part was not received as reported."),
    /// A part number out of range, or a part of the wrong size.
    InvalidPart = (400, 8011, "Invalid part."),
    /// An announced file size out of range.
    InvalidFileSize = (400, 8012, "File size must be between 0 and 5 TiB."),
    /// An announced part size that is not positive.
    InvalidPartSize = (400, 8013, "Part size must be positive."),

    // Volumes, exports and imports (9xxx)
    /// A volume's service failed or timed out (listing it, signing a URL on it), or a job used
    /// up its attempts on retryable errors.
    ServiceError = (503, 9000, "There was an error communicating with the service."),
    /// Probing a volume: its bucket cannot be read with the given credentials.
    ReadAccessDenied = (403, 9001, "Could not obtain read access on the service."),
    /// Probing an RW volume, or an export's write: the bucket refuses our writes. The engine
    /// then streams instead of copying server-side.
    CrossWriteDenied = (403, 9002, "Could not obtain cross-write access on the service."),
    /// A job's owner lost the rights it needs on the project before the job took effect.
    ProjectAccessDenied = (403, 9003, "Insufficient privileges to access the requested project."),
    /// Exporting a file without the right on its project that exporting needs.
    ExportFileForbidden = (403, 9004, "Insufficient privileges to access the requested file."),
    /// The file cannot be exported: a folder, a public file, an alias, or no longer on the platform.
    NotExportable = (403, 9006, "Requested file cannot be exported."),
    /// No such volume, one the caller cannot see, or one deleted or replaced under a job.
    VolumeNotFound = (404, 9007, "Requested volume does not exist."),
    /// No such export or import job, or one of another user.
    JobNotFound = (404, 9008, "Requested job does not exist."),
    /// The volume name is taken.
    VolumeNameExists = (409, 9010, "Requested volume name already exists."),
    /// A location or prefix that cannot be used (invalid key, missing, or not a valid name).
    InvalidLocation = (400, 9011, "Invalid request syntax."),
    /// A volume name that is null or empty.
    VolumeNameEmpty = (400, 9013, "Volume name must not be null or an empty string."),
    /// A volume name outside 3 to 32 letters, digits and underscores, or not a string.
    InvalidVolumeName = (400, 9014, "Volume name must consist of 3 to 32 English letters, numbers and underscores."),
    /// Creating a volume without `access_mode`.
    AccessModeMissing = (400, 9015, "access_mode must be provided (either RO or RW)."),
    /// Creating a volume without `service`.
    ServiceMissing = (400, 9016, "The service object must be provided."),
    /// A `service` object that is invalid, not allowed here, or cannot be served (GCS reads).
    InvalidService = (400, 9017, "The service object is invalid. Check the documentation."),
    /// The caller lacks the volume right (or admin role) that the action needs.
    VolumeForbidden = (403, 9020, "Insufficient privileges to access the requested volume."),
    /// An unknown `aws_canned_acl`.
    InvalidCannedAcl = (400, 9022, "Invalid canned ACL selected (aws_canned_acl)."),
    /// An invalid `sse_algorithm` or KMS key, found at validation or when S3 refuses the key.
    InvalidSse = (400, 9023, "Invalid server-side encryption selected (sse_algorithm)."),
    /// An unknown `aws_storage_class`.
    InvalidStorageClass = (400, 9024, "Invalid S3 storage class selected (aws_storage_class)."),
    /// A GCS `private_key` that is not a PEM key.
    InvalidPrivateKey = (400, 9025, "Invalid private key given (private_key)."),
    /// Exporting to a volume whose access mode is RO.
    VolumeReadOnly = (400, 9026, "The volume is not configured for writing access (access_mode is not RW)."),
    /// A volume was made RO after a job was submitted, before it took effect.
    VolumeMadeReadOnly = (403, 9026, "The volume is not configured for writing access (access_mode is not RW)."),
    /// Exporting to a GCS volume.
    CrossCloudExport = (400, 9027, "Exporting files across different cloud services is not yet supported."),
    /// A GCS volume that is not RO.
    GcsReadOnlyOnly = (400, 9057, "This environment only supports RO buckets of type GCS."),
    /// The volume is deactivated, or its bucket refuses access as configured.
    LocationInaccessible = (403, 9103, "Location on volume is not accessible as configured."),
    /// An export's bucket does not exist.
    BucketMissing = (404, 9103, "Location on volume is not accessible as configured."),
    /// The volume refused the object itself (too large for it).
    ObjectRefused = (400, 9103, "The volume refused the object."),
    /// A job failed because its volume was deactivated with `force=true` while it was pending.
    VolumeForceDeactivated = (409, 9103, "The volume was deactivated (force=true) before the job finished; nothing was committed."),
    /// No object at the location on the volume.
    LocationNotFound = (404, 9105, "Location on volume not found."),
    /// An export without overwrite met an object at its location.
    LocationExists = (409, 9107, "Location on volume already contains a file."),
    /// An import without overwrite or autorename met a file at its destination.
    ImportDestinationExists = (409, 9108, "Requested file already exists."),

    // Generic (9xxxx)
    /// A request the specific codes do not cover: a malformed parameter, a body over a limit.
    BadRequest = (400, 90000, "Bad request."),
    /// The request took longer than the request timeout.
    RequestTimeout = (408, 90000, "Request Timeout"),
    /// A request body over the size limit (or a GET or DELETE body that is not small).
    RequestTooLarge = (413, 90000, "The request body is too large."),
    /// A download range outside the file.
    RangeNotSatisfiable = (416, 90000, "The requested range is not satisfiable."),
    /// An Idempotency-Key reused with a different request.
    IdempotencyKeyReused = (422, 90000, "This Idempotency-Key was used for a different request."),
    /// No token, or a token that is unknown or revoked.
    Unauthorized = (401, 90001, "Unauthorized. Send a valid token in X-SBG-Auth-Token."),
    /// The caller may not do this (an admin-only route, an invalid URL signature).
    Forbidden = (403, 90002, "Forbidden."),
    /// An unknown route, or a resource the store could not find.
    NotFound = (404, 90003, "Not found."),
    /// Something unexpected failed; it was logged and the body reveals nothing internal.
    Internal = (500, 90004, "Unexpected error. It was logged; retry later."),
    /// The server is not able to answer now.
    ServiceUnavailable = (503, 90005, "Service unavailable."),
    /// The route exists but not with this method.
    MethodNotAllowed = (405, 90006, "Method not allowed."),
    /// The request conflicts with the resource's state (in use, busy, changing).
    Conflict = (409, 90007, "Conflict."),
    /// A body of a media type the route does not take.
    UnsupportedMediaType = (415, 90008, "Unsupported Media Type"),
    /// A request body that is not the JSON the route expects.
    InvalidJson = (400, 90009, "Error decoding request content."),
    /// A documented SBG call that Egress does not serve (`POST /v2/files/search`).
    NotImplemented = (501, 90000, "Not implemented."),
}

/// An error as the wire shows it: a [`Code`] and the message of this occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbgError {
    pub code: Code,
    pub message: String,
}

pub type SbgResult<T> = Result<T, SbgError>;

impl SbgError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// A body that is not the JSON the route expects, with serde's account of why.
    pub fn invalid_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            Code::InvalidJson,
            format!("Error decoding request content: {detail}"),
        )
    }
}

impl From<Code> for SbgError {
    fn from(code: Code) -> Self {
        Self::new(code, code.default_message())
    }
}

impl Serialize for SbgError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut body = s.serialize_struct("SbgError", 4)?;
        body.serialize_field("status", &self.code.status())?;
        body.serialize_field("code", &self.code.number())?;
        body.serialize_field("message", &self.message)?;
        body.serialize_field("more_info", MORE_INFO)?;
        body.end()
    }
}

impl std::fmt::Display for SbgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.status(),
            self.code.number(),
            self.message
        )
    }
}

impl std::error::Error for SbgError {}

/// Unexpected failures (database, storage) become a logged 500 whose body reveals nothing internal.
impl From<anyhow::Error> for SbgError {
    fn from(err: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{err:#}"), "internal error");
        Code::Internal.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_one_distinct_status_and_number_with_a_message() {
        let mut seen = HashSet::new();
        for &code in Code::ALL {
            assert!(
                seen.insert((code.status(), code.number())),
                "{code:?} repeats ({}, {})",
                code.status(),
                code.number()
            );
            assert!(!code.default_message().is_empty(), "{code:?}");
            assert!((400..600).contains(&code.status()), "{code:?}");
        }
    }

    #[test]
    fn serializes_in_the_sbg_shape() {
        let e = SbgError::new(Code::VolumeNotFound, "Requested volume does not exist.");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"status":404,"code":9007,"message":"Requested volume does not exist.","more_info":"https://docs.sevenbridges.com/reference/api-status-codes"}"#
        );
        let e = SbgError::from(Code::LocationInaccessible);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({
                "status": 403,
                "code": 9103,
                "message": "Location on volume is not accessible as configured.",
                "more_info": MORE_INFO,
            })
        );
        assert_eq!(
            e.to_string(),
            "403 (9103): Location on volume is not accessible as configured."
        );
    }
}
