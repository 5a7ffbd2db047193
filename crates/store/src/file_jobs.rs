//! Async bulk file jobs: copy, move or delete up to 100 files and folders in the background.
//! The records and the queue's trait; the SQL is in `sql/file_jobs.rs`.

use crate::{FileRec, JobEnd, JobState, Page, StoreError};
use anyhow::Result;
use async_trait::async_trait;
use serde_json::Value;
use sqlx::types::Json;

/// What a file job does to each of its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileJobKind {
    Copy,
    Move,
    Delete,
}

impl FileJobKind {
    pub const ALL: [FileJobKind; 3] = [FileJobKind::Copy, FileJobKind::Move, FileJobKind::Delete];

    /// As stored, and as the job's `type` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileJobKind::Copy => "COPY",
            FileJobKind::Move => "MOVE",
            FileJobKind::Delete => "DELETE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A file job: its items' count and progress, and the engine's bookkeeping.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileJobRec {
    pub seq: i64,
    pub id: String,
    pub owner: String,
    /// `FileJobKind::as_str`.
    pub kind: String,
    pub state: JobState,
    pub total_items: i64,
    /// The position of the first item not done yet.
    pub next_item: i64,
    pub completed_items: i64,
    pub failed_items: i64,
    pub attempt: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: i64,
    pub next_attempt_at: i64,
    /// The last transient error, kept while the job waits for another attempt.
    pub error: Option<Json<Value>>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl FileJobRec {
    pub fn kind(&self) -> Option<FileJobKind> {
        FileJobKind::parse(&self.kind)
    }
}

/// One item of a file job, in request order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileJobItem {
    pub job_id: String,
    pub position: i64,
    pub file_id: String,
    /// The destination of a copy or move: a project's root folder, or a folder.
    pub project_id: Option<String>,
    pub parent_id: Option<String>,
    /// The new name of a copy or move; `None` keeps the file's.
    pub name: Option<String>,
    pub done: bool,
    /// Once done: the file right after the effect (a `FileRec` as JSON)…
    pub resource: Option<Json<Value>>,
    /// …or the SBG error the item met. Set from the start for an item refused at submission.
    pub error: Option<Json<Value>>,
}

impl FileJobItem {
    /// An item to submit, at `position` of job `job_id`.
    pub fn new(job_id: &str, position: i64) -> Self {
        FileJobItem {
            job_id: job_id.to_string(),
            position,
            file_id: String::new(),
            project_id: None,
            parent_id: None,
            name: None,
            done: false,
            resource: None,
            error: None,
        }
    }

    /// Marks an item refused at submission: it ends with `error` when its turn comes.
    pub fn refuse(&mut self, error: Value) {
        self.error = Some(Json(error));
    }

    /// The file a done item's `resource` holds.
    pub fn resource_file(&self) -> Option<FileRec> {
        let Json(value) = self.resource.as_ref()?;
        serde_json::from_value(value.clone()).ok()
    }
}

/// Why an item could not take effect. Nothing of it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFailure {
    /// The file does not exist, or its owner cannot see it.
    SourceMissing,
    /// The owner sees the file but lacks the right the item needs on its project.
    SourceForbidden,
    /// A project's root folder cannot be copied, moved or deleted.
    RootFolder,
    /// The destination project does not exist, or the owner cannot see it.
    ProjectMissing,
    /// The owner may not write the destination project.
    ProjectForbidden,
    /// The destination folder does not exist, or the owner cannot see it.
    ParentMissing,
    /// The owner may not write the destination folder's project.
    ParentForbidden,
    /// The destination `parent` is a file.
    ParentNotFolder,
    /// A folder would go into itself or one of its own sub-folders.
    IntoItself,
    /// An unfinished move export will take the file (or a file in the folder).
    BeingExported,
    /// No free name was found in the destination.
    NoFreeName,
}

/// What applying one item did.
#[derive(Debug, Clone)]
pub enum ItemApplied {
    /// Done, and recorded with the job's cursor: the file right after the effect.
    Done(Box<FileRec>),
    /// Refused; nothing was written (record it with `fail_file_job_item`).
    Failed(ItemFailure),
    /// Another attempt owns the job, or the item is already done; nothing was written.
    LeaseLost,
}

/// The file job queue: submission, claims with a lease, and items committed one by one,
/// fenced by the attempt and the cursor.
#[async_trait]
pub trait FileJobQueue: Send + Sync {
    /// Records a job and its items in one transaction.
    async fn insert_file_job(
        &self,
        job: &FileJobRec,
        items: &[FileJobItem],
    ) -> Result<(), StoreError>;
    async fn get_file_job(&self, id: &str) -> Result<Option<FileJobRec>>;
    /// The items of these jobs, by job and position.
    async fn file_job_items(&self, job_ids: &[String]) -> Result<Vec<FileJobItem>>;
    /// One user's jobs, newest first.
    async fn list_file_jobs(&self, owner: &str, page: Page) -> Result<(Vec<FileJobRec>, i64)>;
    /// Claims up to `max` runnable jobs, oldest first.
    async fn claim_file_jobs(
        &self,
        node: &str,
        now: i64,
        lease_until: i64,
        max: i64,
    ) -> Result<Vec<FileJobRec>>;
    async fn renew_file_job(&self, id: &str, attempt: i64, lease_until: i64) -> Result<bool>;
    /// Applies the item at the job's cursor for its owner, with the owner's rights read in
    /// the same transaction, and records its result and the advanced cursor with it.
    async fn apply_file_job_item(
        &self,
        job: &FileJobRec,
        item: &FileJobItem,
    ) -> Result<ItemApplied, StoreError>;
    /// Records the item at the job's cursor as failed with `error`; false when the lease
    /// was lost (or the item is already done).
    async fn fail_file_job_item(
        &self,
        job: &FileJobRec,
        position: i64,
        error: &Value,
    ) -> Result<bool>;
    /// Records the job's end (`Completed`, `Retry` or `Failed`), fenced. A failed job's
    /// items not done yet end with `error`.
    async fn finish_file_job(&self, id: &str, attempt: i64, end: &JobEnd) -> Result<bool>;
}
