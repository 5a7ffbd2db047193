//! Metadata and job state. One `Store` trait, two engines: SQLite (embedded default) and Postgres
//! (several nodes sharing the work). Both engines run the same SQL, kept and compiled once in `sql/`
//! (`SqlStore<E: Engine>`), one file per aggregate.

mod file_jobs;
mod postgres;
mod sbg;
mod sql;
mod sqlite;
mod text_enums;

use anyhow::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use egress_core::model::{AccessMode, JobState, MemberKind};
pub use file_jobs::{FileJobItem, FileJobKind, FileJobQueue, FileJobRec, ItemApplied, ItemFailure};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken (a name in a folder, a username, a project slug…).
    #[error("conflict")]
    Conflict,
    /// The row the write was aimed at does not exist (any more).
    #[error("not found")]
    NotFound,
    /// A folder that still has children cannot be deleted.
    #[error("folder is not empty")]
    NotEmpty,
    /// Something still refers to the row (aliases pointing into a volume).
    #[error("still in use")]
    InUse,
    /// Jobs that are not finished still need the row (exports or imports on a volume).
    #[error("jobs are still running")]
    Busy,
    /// The folder a file is to go into does not exist (any more), is not a folder, or
    /// belongs to another project.
    #[error("no such parent folder")]
    NoParent,
    /// The job's owner lost a right, or its volume changed, before the write.
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// A folder would go inside itself or one of its own sub-folders.
    #[error("a folder cannot go inside itself")]
    IntoItself,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Maps a unique-key violation to `Conflict`, anything else to `Db`.
pub(crate) fn classify(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Db(err),
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub username: String,
    pub email: String,
    pub is_admin: bool,
    pub created_at: i64,
}

/// Permissions of a project or volume member. Volumes ignore `execute`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Perms {
    pub read: bool,
    pub copy: bool,
    pub write: bool,
    pub execute: bool,
    pub admin: bool,
}

impl Perms {
    pub const ALL: Perms = Perms {
        read: true,
        copy: true,
        write: true,
        execute: true,
        admin: true,
    };
    /// What every user may do with a public project's files.
    pub const PUBLIC: Perms = Perms {
        read: true,
        copy: true,
        write: false,
        execute: false,
        admin: false,
    };
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub kind: MemberKind,
    pub resource_id: String,
    pub username: String,
    #[sqlx(flatten)]
    pub perms: Perms,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Project {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub description: Option<String>,
    pub billing_group: String,
    pub category: String,
    #[sqlx(json)]
    pub tags: Vec<String>,
    #[sqlx(json)]
    pub settings: serde_json::Value,
    pub root_folder: String,
    pub is_public: bool,
    pub created_by: String,
    pub created_at: i64,
    pub modified_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Folder,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct FileRec {
    pub id: String,
    pub project_id: String,
    /// `None` only for a project's root folder.
    pub parent_id: Option<String>,
    pub name: String,
    pub is_folder: bool,
    pub size: Option<i64>,
    /// The platform bytes this file refers to; `None` for folders and aliases.
    pub blob_id: Option<String>,
    /// Set for an alias: the volume object this file points at.
    pub volume_id: Option<String>,
    /// The alias's volume, by identity: a volume made again under the same id is another one.
    pub volume_uid: Option<String>,
    pub location: Option<String>,
    /// Public reference data, or a copy of it: readable by all, never exportable.
    pub is_public: bool,
    #[sqlx(json)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[sqlx(json)]
    pub tags: Vec<String>,
    pub created_at: i64,
    pub modified_at: i64,
    /// Recorded when the bytes arrived (or read from the object, for an import).
    pub md5: Option<String>,
    pub crc32c: Option<String>,
}

impl FileRec {
    /// A new, empty file or folder record; callers fill in bytes or storage.
    pub fn new(project_id: &str, parent_id: Option<&str>, name: &str, is_folder: bool) -> Self {
        let now = egress_core::util::now_ms();
        FileRec {
            id: egress_core::util::new_file_id(),
            project_id: project_id.to_string(),
            parent_id: parent_id.map(str::to_string),
            name: name.to_string(),
            is_folder,
            size: None,
            blob_id: None,
            volume_id: None,
            volume_uid: None,
            location: None,
            is_public: false,
            metadata: serde_json::Map::new(),
            tags: vec![],
            created_at: now,
            modified_at: now,
            md5: None,
            crc32c: None,
        }
    }

    pub fn kind(&self) -> FileKind {
        if self.is_folder {
            FileKind::Folder
        } else {
            FileKind::File
        }
    }
}

/// Stored platform bytes. Files share a blob; it is freed when no file refers to it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Blob {
    pub id: String,
    pub size: i64,
    pub md5: String,
    pub crc32c: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VolumeRec {
    /// `owner/name`.
    pub id: String,
    pub owner: String,
    pub name: String,
    pub description: Option<String>,
    pub access_mode: AccessMode,
    pub active: bool,
    #[sqlx(json)]
    pub service: egress_core::volume::Service,
    /// The sealed secret half of the credentials.
    pub secret: Vec<u8>,
    pub created_at: i64,
    pub modified_at: i64,
    /// Never changes and is never reused, unlike `id`: aliases and jobs hold it.
    pub uid: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Upload {
    pub id: String,
    pub owner: String,
    pub project_id: String,
    pub parent_id: String,
    pub name: String,
    pub size: i64,
    pub part_size: i64,
    pub overwrite: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An export job: what to copy where, and the engine's bookkeeping (lease, attempt, retry time).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRec {
    /// Submission order; assigned by the database.
    pub seq: i64,
    pub id: String,
    pub owner: String,
    pub file_id: String,
    pub volume_id: String,
    /// The volume by identity (`VolumeRec::uid`) when the job was submitted.
    pub volume_uid: String,
    /// Volume-relative, as submitted.
    pub location: String,
    /// The full key: the volume prefix joined with the location.
    pub object_key: String,
    /// Effective properties: the export's over the volume's over `AES256`.
    #[sqlx(json)]
    pub properties: serde_json::Map<String, serde_json::Value>,
    pub overwrite: bool,
    pub copy_only: bool,
    pub state: JobState,
    pub error: Option<sqlx::types::Json<serde_json::Value>>,
    pub attempt: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: i64,
    pub next_attempt_at: i64,
    /// A multipart upload this job started on the volume, until it completes or is aborted.
    pub upload_id: Option<String>,
    pub bytes_total: i64,
    pub bytes_copied: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// How a claimed job ends (or pauses); every write is fenced by the attempt number.
#[derive(Debug, Clone)]
pub enum JobEnd {
    /// Done. A move also turns the file into an alias and drops its blob reference.
    Completed {
        bytes: i64,
        alias: Option<Alias>,
    },
    Failed {
        error: serde_json::Value,
    },
    /// Back to the queue until `at`, with the error that caused it kept for the record.
    Retry {
        at: i64,
        error: serde_json::Value,
    },
}

/// What a job's owner may still do with its volume and project, read at the moment of effect
/// (a claim, a commit): rights are checked then, not only when the job was submitted.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRights {
    pub id: String,
    /// The job's volume still exists and is the very one it was submitted for.
    pub volume_same: bool,
    pub volume_active: bool,
    /// RW, where the job needs it (exports); always true for imports.
    pub volume_rw: bool,
    /// The owner's right on the volume: `write` for an export, `copy` for an import.
    pub volume_right: bool,
    /// The owner's right on the project: `copy` (a copy) or `write` (a move) on the file's
    /// project for an export, `write` on the destination for an import.
    pub project_right: bool,
}

/// Why a job may no longer take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    VolumeReplaced,
    VolumeInactive,
    VolumeReadOnly,
    NoVolumeRight,
    NoProjectRight,
}

impl JobRights {
    pub fn refusal(&self) -> Option<Refusal> {
        [
            (self.volume_same, Refusal::VolumeReplaced),
            (self.volume_active, Refusal::VolumeInactive),
            (self.volume_rw, Refusal::VolumeReadOnly),
            (self.volume_right, Refusal::NoVolumeRight),
            (self.project_right, Refusal::NoProjectRight),
        ]
        .into_iter()
        .find_map(|(ok, why)| (!ok).then_some(why))
    }
}

/// What recording one job's end did (see `Store::finish_exports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Recorded,
    /// The owner lost a right, or the volume changed, before the end was recorded; nothing was
    /// written but the job's failure.
    Refused(Refusal),
    /// Another attempt owns the job; nothing was written.
    LeaseLost,
    /// A move's file no longer holds the blob it copied; nothing was written.
    SourceChanged,
}

/// The flip a move commits: `file_id` stops holding `blob_id` and points at the volume object.
#[derive(Debug, Clone, Default)]
pub struct Alias {
    pub file_id: String,
    pub blob_id: String,
    pub volume_id: String,
    pub volume_uid: String,
    pub location: String,
}

/// An import job: a volume object, or every object under a folder, becomes alias files.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportRec {
    pub seq: i64,
    pub id: String,
    pub owner: String,
    pub volume_id: String,
    /// The volume by identity (`VolumeRec::uid`) when the job was submitted.
    pub volume_uid: String,
    /// Volume-relative; a folder ends with `/`.
    pub location: String,
    pub project_id: String,
    /// The destination folder (the project's root folder when a project was given).
    pub parent_id: String,
    pub name: Option<String>,
    pub overwrite: bool,
    pub autorename: bool,
    pub preserve_folder_structure: bool,
    pub state: JobState,
    pub error: Option<sqlx::types::Json<serde_json::Value>>,
    pub attempt: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: i64,
    pub next_attempt_at: i64,
    /// The last object key a folder import committed.
    pub cursor: Option<String>,
    pub objects_imported: i64,
    pub result_file_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl ImportRec {
    pub fn is_folder(&self) -> bool {
        self.location.ends_with('/')
    }
}

/// One alias an import batch adds.
#[derive(Debug, Clone)]
pub struct NewAlias {
    /// Sub-folders between the import's target folder and the file (created as needed).
    pub folders: Vec<String>,
    pub name: String,
    pub size: i64,
    pub md5: Option<String>,
    /// Volume-relative location of the object.
    pub location: String,
}

/// A step of an import, committed in one fenced transaction.
#[derive(Debug, Clone)]
pub struct ImportBatch {
    /// For a folder import that keeps its structure: the top folder to create (or reuse).
    pub top_folder: Option<String>,
    pub aliases: Vec<NewAlias>,
    /// The last key this batch covers.
    pub cursor: Option<String>,
    /// Whether this is the last batch: the job completes with it.
    pub done: bool,
}

/// The first response to a POST sent with an `Idempotency-Key`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Idempotent {
    pub owner: String,
    pub key: String,
    /// A hash of the request, so a different request with the same key is refused.
    pub request: String,
    pub response: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Part {
    pub part_number: i64,
    pub size: i64,
    pub etag: String,
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

/// Filters of a folder listing: any of `names`, and any of `tags`, and for each metadata key
/// any of its string values, and for each origin key any of its values (each list empty = no
/// filter).
#[derive(Debug, Clone, Default)]
pub struct FileFilter {
    pub names: Vec<String>,
    pub tags: Vec<String>,
    pub metadata: Vec<(String, Vec<String>)>,
    pub origin: Vec<(String, Vec<String>)>,
}

/// Where a folder listing stands, for keyset (continuation-token) paging: the sort key of the
/// last child already returned. Children are ordered folders first, then by name, then by id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChildKey {
    pub is_folder: bool,
    pub name: String,
    pub id: String,
}

impl ChildKey {
    pub fn of(file: &FileRec) -> Self {
        ChildKey {
            is_folder: file.is_folder,
            name: file.name.clone(),
            id: file.id.clone(),
        }
    }
}

/// Filters of a project listing: one `name` (if any), any of the visibilities in `public` (the
/// API's category: PUBLIC or PRIVATE) and any of `tags`.
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    pub name: Option<String>,
    pub public: Vec<bool>,
    pub tags: Vec<String>,
}

/// Users and their API tokens.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, user: &User, token_hash: &str) -> Result<(), StoreError>;
    async fn add_token(&self, username: &str, token_hash: &str) -> Result<(), StoreError>;
    async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>>;
    async fn get_user(&self, username: &str) -> Result<Option<User>>;
}

/// Projects and the members of projects and volumes.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    async fn create_project(&self, project: &Project, root: &FileRec) -> Result<(), StoreError>;
    async fn get_project(&self, id: &str) -> Result<Option<Project>>;
    /// Projects `username` is a member of, optionally of one owner, that pass `filter`.
    async fn list_projects(
        &self,
        username: &str,
        owner: Option<&str>,
        filter: &ProjectFilter,
        page: Page,
    ) -> Result<(Vec<Project>, i64)>;
    async fn update_project(&self, project: &Project) -> Result<(), StoreError>;
    /// Removes the project, its members and files; releases their blobs.
    async fn delete_project(&self, id: &str) -> Result<(), StoreError>;
    async fn get_member(
        &self,
        kind: MemberKind,
        resource_id: &str,
        username: &str,
    ) -> Result<Option<Member>>;
    async fn list_members(
        &self,
        kind: MemberKind,
        resource_id: &str,
        page: Page,
    ) -> Result<(Vec<Member>, i64)>;
    async fn put_member(&self, member: &Member) -> Result<()>;
    async fn delete_member(
        &self,
        kind: MemberKind,
        resource_id: &str,
        username: &str,
    ) -> Result<bool>;
}

/// Volumes, and the jobs that still use one.
#[async_trait]
pub trait VolumeStore: Send + Sync {
    async fn create_volume(&self, volume: &VolumeRec) -> Result<(), StoreError>;
    async fn get_volume(&self, id: &str) -> Result<Option<VolumeRec>>;
    /// Volumes `username` is a member of.
    async fn list_volumes(&self, username: &str, page: Page) -> Result<(Vec<VolumeRec>, i64)>;
    async fn update_volume(&self, volume: &VolumeRec) -> Result<(), StoreError>;
    /// Deletes a volume and its members; `InUse` while aliases point into it.
    async fn delete_volume(&self, id: &str) -> Result<(), StoreError>;
    /// Exports and imports on a volume that are still PENDING or RUNNING.
    async fn unfinished_volume_jobs(&self, volume_id: &str) -> Result<i64>;
    /// Ends a volume's unfinished exports and imports as FAILED with `error`. Their attempt is
    /// raised, so a worker still copying for one is fenced out and writes nothing more.
    async fn fail_volume_jobs(&self, volume_id: &str, error: &serde_json::Value) -> Result<u64>;
}

/// Files, folders and the blobs they hold, with blob garbage collection (invariant 1: the sweeper frees only what a commit released).
#[async_trait]
pub trait FileStore: Send + Sync {
    async fn get_file(&self, id: &str) -> Result<Option<FileRec>>;
    /// The files among `ids` that exist, in no particular order.
    async fn get_files(&self, ids: &[String]) -> Result<Vec<FileRec>>;
    async fn list_children(
        &self,
        parent_id: &str,
        filter: &FileFilter,
        page: Page,
    ) -> Result<(Vec<FileRec>, i64)>;
    /// Up to `limit` children that pass `filter` and sort after `after` (from the first child
    /// when `None`), in the order of `list_children`, with the number of children passing
    /// `filter` in all.
    async fn scroll_children(
        &self,
        parent_id: &str,
        filter: &FileFilter,
        after: Option<&ChildKey>,
        limit: i64,
    ) -> Result<(Vec<FileRec>, i64)>;
    /// Inserts a folder, or a file sharing an existing blob (a copy). `Conflict` on a name clash,
    /// `NoParent` unless the parent is a folder of the same project.
    async fn create_file(&self, file: &FileRec) -> Result<(), StoreError>;
    /// Saves name, parent, metadata and tags. A new parent must be a folder of the same
    /// project (`NoParent`) and, for a folder, outside its own subtree (`IntoItself`).
    /// `Conflict` on a name clash.
    async fn update_file(&self, file: &FileRec) -> Result<(), StoreError>;
    /// Deletes a file or an empty folder and drops its blob reference, in one transaction.
    async fn delete_file(&self, id: &str) -> Result<(), StoreError>;
    /// Marks unreferenced blobs as being deleted and returns every blob in that state.
    async fn doomed_blobs(&self, limit: i64) -> Result<Vec<String>>;
    /// Drops the rows of blobs whose bytes are deleted.
    async fn forget_blobs(&self, ids: &[String]) -> Result<()>;
    /// Bytes held on the platform, per project (each file counted once per project).
    async fn platform_bytes(&self) -> Result<Vec<(String, i64)>>;
}

/// Multipart uploads into a project.
#[async_trait]
pub trait UploadStore: Send + Sync {
    async fn create_upload(&self, upload: &Upload) -> Result<()>;
    async fn get_upload(&self, id: &str) -> Result<Option<Upload>>;
    /// Records a received part; false when the upload no longer exists.
    async fn put_part(&self, upload_id: &str, part: &Part, expires_at: i64) -> Result<bool>;
    async fn list_parts(&self, upload_id: &str) -> Result<Vec<Part>>;
    async fn delete_upload(&self, id: &str) -> Result<bool>;
    /// Adds new platform bytes and the file holding them, in one transaction: the upload row
    /// (if any) goes, and `replace` (an existing file of the same name) is removed. `NoParent`
    /// (nothing written) unless the parent is a folder of the same project.
    async fn complete_upload(
        &self,
        upload_id: Option<&str>,
        blob: &Blob,
        file: &FileRec,
        replace: Option<&str>,
    ) -> Result<(), StoreError>;
    async fn expired_uploads(&self, now: i64, limit: i64) -> Result<Vec<Upload>>;
}

/// The export queue: submission, claims with a lease, fenced progress and the group commit.
#[async_trait]
pub trait ExportQueue: Send + Sync {
    /// Records jobs (and the idempotent response) in one transaction; `Conflict` when the
    /// idempotency key was taken meanwhile.
    async fn insert_exports(
        &self,
        jobs: &[ExportRec],
        idempotent: Option<&Idempotent>,
    ) -> Result<(), StoreError>;
    async fn get_idempotent(&self, owner: &str, key: &str) -> Result<Option<Idempotent>>;
    async fn get_export(&self, id: &str) -> Result<Option<ExportRec>>;
    /// The jobs among `ids` that exist, in no particular order.
    async fn get_exports(&self, ids: &[String]) -> Result<Vec<ExportRec>>;
    async fn list_exports(
        &self,
        owner: &str,
        volume_id: Option<&str>,
        states: &[JobState],
        page: Page,
    ) -> Result<(Vec<ExportRec>, i64)>;
    /// The pending or running move export that will take each of these files, as
    /// `(file_id, export_id)` pairs.
    async fn moving_exports(&self, file_ids: &[String]) -> Result<Vec<(String, String)>>;
    /// The pending or running move export that will take this file, if any.
    async fn moving_export(&self, file_id: &str) -> Result<Option<String>> {
        let found = self.moving_exports(&[file_id.to_string()]).await?;
        Ok(found.into_iter().next().map(|(_, id)| id))
    }
    /// `(owner, volume)` pairs with runnable jobs, oldest first; the engine shares its
    /// workers among them so no user or volume starves the others.
    async fn runnable_export_groups(&self, now: i64, limit: i64) -> Result<Vec<(String, String)>>;
    /// Claims up to `max` runnable jobs of one group, oldest first, skipping any whose
    /// destination an earlier unfinished job still targets.
    async fn claim_exports(
        &self,
        owner: &str,
        volume_id: &str,
        node: &str,
        now: i64,
        lease_until: i64,
        max: i64,
    ) -> Result<Vec<ExportRec>>;
    /// The files and volumes of claimed jobs, those that exist. They are read where the engine
    /// writes: on SQLite that connection's page cache survives its own claims and commits,
    /// while every other connection's is dropped after each of them.
    async fn claimed_sources(
        &self,
        file_ids: &[String],
        volume_ids: &[String],
    ) -> Result<(Vec<FileRec>, Vec<VolumeRec>)>;
    /// What the owners of these exports may still do, now.
    async fn export_rights(&self, ids: &[String]) -> Result<Vec<JobRights>>;
    /// Fenced writes: each returns false when the lease was lost.
    async fn renew_export(&self, id: &str, attempt: i64, lease_until: i64) -> Result<bool>;
    async fn set_export_upload(
        &self,
        id: &str,
        attempt: i64,
        upload_id: Option<&str>,
    ) -> Result<bool>;
    async fn set_export_progress(&self, id: &str, attempt: i64, bytes: i64) -> Result<bool>;
    /// Records the ends of several jobs in one transaction (the engine's group commit), each
    /// fenced by its attempt; returns what happened to each, in order.
    async fn finish_exports(
        &self,
        ends: &[(&str, i64, &JobEnd)],
    ) -> Result<Vec<Finished>, StoreError>;
    /// How many export jobs are in each state.
    async fn export_state_counts(&self) -> Result<Vec<(String, i64)>>;
}

/// The import queue: submission, claims with a lease and fenced batch commits.
#[async_trait]
pub trait ImportQueue: Send + Sync {
    /// What the owner of this import may still do, now.
    async fn import_rights(&self, id: &str) -> Result<Option<JobRights>>;
    async fn insert_imports(&self, jobs: &[ImportRec]) -> Result<(), StoreError>;
    async fn get_import(&self, id: &str) -> Result<Option<ImportRec>>;
    async fn list_imports(
        &self,
        owner: &str,
        project_id: Option<&str>,
        volume_id: Option<&str>,
        states: &[JobState],
        page: Page,
    ) -> Result<(Vec<ImportRec>, i64)>;
    /// Claims up to `max` runnable imports, oldest first.
    async fn claim_imports(
        &self,
        node: &str,
        now: i64,
        lease_until: i64,
        max: i64,
    ) -> Result<Vec<ImportRec>>;
    async fn renew_import(&self, id: &str, attempt: i64, lease_until: i64) -> Result<bool>;
    /// Adds a batch of aliases (folders made as needed, name clashes resolved as the job
    /// says) and advances the cursor, fenced by the attempt; `Ok(false)` when the lease was
    /// lost, `Conflict` on a clash the job may not resolve, `NoParent` when the job's
    /// destination folder is gone.
    async fn commit_import_batch(
        &self,
        job: &ImportRec,
        batch: &ImportBatch,
    ) -> Result<bool, StoreError>;
    /// Records a failure or a retry (`JobEnd::Failed` / `JobEnd::Retry`), fenced.
    async fn finish_import(&self, id: &str, attempt: i64, end: &JobEnd) -> Result<bool>;
}

/// The whole store: every aggregate, and the upkeep that spans them. Its methods and those of
/// its parts are callable on a `DynStore` without importing the parts.
#[async_trait]
pub trait Store:
    UserStore
    + ProjectStore
    + VolumeStore
    + FileStore
    + UploadStore
    + ExportQueue
    + ImportQueue
    + FileJobQueue
    + Send
    + Sync
    + 'static
{
    fn engine(&self) -> &'static str;
    /// Puts jobs whose lease expired (their worker died or stalled) back in the queue; their
    /// next claim raises the attempt, which fences the old worker out.
    async fn expire_leases(&self, now: i64) -> Result<u64>;
    /// Moves committed pages from the write-ahead log into the database file, so that
    /// requests need not (SQLite); a no-op on Postgres.
    async fn checkpoint(&self) -> Result<()>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store the URL names (`sqlite:` or `postgres:`), applying its migrations.
pub async fn open(url: &str) -> Result<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        anyhow::bail!("unsupported database URL scheme: expected sqlite: or postgres://")
    }
}

#[doc(hidden)]
pub mod testdb;

#[cfg(test)]
mod suite;
