//! The export engine: every `egress serve` process runs workers that claim jobs with a lease,
//! copy bytes, verify them and commit — DESIGN.md invariants 1–5.

pub mod background;
mod commit;
pub mod config;
mod file_jobs;
mod imports;
mod orphans;
pub mod services;
mod stall;
pub mod sweeper;

use crate::services::Services;
use commit::GroupCommit;
pub use config::EngineConfig;
use egress_core::error::{Code, SbgError};
use egress_core::util::{now_ms, random_hex};
use egress_storage::activity::Activity;
use egress_storage::volume::{
    CopyError, CopyIn, CopyLimits, CopyProgress, VolumeBackend, VolumeError, VolumeErrorKind,
};
use egress_storage::{self};
use egress_store::{Alias, ExportRec, FileRec, Finished, JobEnd, Refusal, VolumeRec};
use rand::Rng;
use stall::{VolumeHold, VolumeLoad};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// Why a job did not complete this time.
#[derive(Debug)]
pub enum JobError {
    /// The user must fix something; the job fails now with this error.
    Terminal(SbgError),
    /// Worth another attempt after a backoff.
    Retryable(String),
    /// `overwrite=false` met an existing object (a 412, or an existing local file).
    Exists,
    /// Another worker owns the job now; stop without writing anything.
    LeaseLost,
}

/// What a job was doing on its volume when a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading (an import): whatever the user must fix, the location is not accessible.
    Read,
    /// Writing (an export): the error says what to fix.
    Write,
}

impl JobError {
    /// The one place where a failed volume call becomes a job outcome and an SBG code.
    pub fn from_volume(e: &VolumeError, access: Access) -> Self {
        use VolumeErrorKind as K;
        if e.kind == K::PreconditionFailed {
            return JobError::Exists;
        }
        if e.is_retryable() {
            return JobError::Retryable(e.to_string());
        }
        let inaccessible = || {
            SbgError::new(
                Code::LocationInaccessible,
                format!("Location on volume is not accessible as configured: {e}."),
            )
        };
        JobError::Terminal(match (access, e.kind) {
            (Access::Read, _) => inaccessible(),
            (Access::Write, K::AccessDenied) => SbgError::new(Code::CrossWriteDenied, format!("Could not obtain cross-write access on the volume: {e}. Check the volume's credentials and bucket policy.")),
            (Access::Write, K::NoSuchBucket) => SbgError::new(Code::BucketMissing, format!("Location on volume is not accessible as configured: {e}. The bucket does not exist.")),
            (Access::Write, K::KmsKey) => SbgError::new(Code::InvalidSse, format!("Server-side encryption failed: {e}. Check sse_aws_kms_key_id.")),
            (Access::Write, K::TooLarge) => SbgError::new(Code::ObjectRefused, format!("The volume refused the object: {e}.")),
            (Access::Write, _) => inaccessible(),
        })
    }

    fn internal(e: anyhow::Error) -> Self {
        JobError::Retryable(format!("internal error: {e:#}"))
    }
}

impl From<CopyError> for JobError {
    fn from(e: CopyError) -> Self {
        match e {
            CopyError::Volume(e) => JobError::from_volume(&e, Access::Write),
            CopyError::Exists => JobError::Exists,
            CopyError::Platform(why) => {
                JobError::Retryable(format!("reading platform storage: {why}"))
            }
            CopyError::Corrupt => JobError::Terminal(SbgError::new(Code::Internal, "The platform copy of the file does not match its recorded checksum; nothing was changed.")),
            CopyError::Unverified(what) => JobError::Terminal(SbgError::new(
                Code::Internal,
                format!("Verification of the exported object failed: {what}."),
            )),
            CopyError::Retry(why) => JobError::Retryable(why),
            CopyError::Cancelled => JobError::LeaseLost,
        }
    }
}

fn api_error_json(e: &SbgError) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or_default()
}

pub struct Engine {
    services: Arc<Services>,
    config: EngineConfig,
    /// This process's name in `lease_owner`.
    node: String,
    /// Part sizes, parallelism and the memory budget of all copies.
    limits: CopyLimits,
    commits: GroupCommit,
    /// Export jobs whose ends are still to come (the group commit waits for them briefly).
    running: Arc<AtomicUsize>,
    /// Jobs running per volume, for the per-volume cap.
    load: Arc<VolumeLoad>,
}

/// A claimed export with its file and volume, loaded for the whole claim at once.
struct Claimed {
    job: ExportRec,
    file: Option<FileRec>,
    volume: Option<Arc<ClaimedVolume>>,
    /// Why the owner may no longer do this, read at the claim.
    refused: Option<Refusal>,
}

/// A volume and its backend, opened once per claim for all of the claim's jobs on it.
struct ClaimedVolume {
    rec: VolumeRec,
    backend: Result<Arc<dyn VolumeBackend>, SbgError>,
}

/// While jobs run, the dispatcher waits this long for a quarter of the slots to free up, so
/// that one claim serves several jobs.
const CLAIM_GATHER: Duration = Duration::from_millis(5);

/// What one job needs while it runs.
pub struct JobCtx<'a> {
    services: &'a Services,
    job: &'a ExportRec,
    progress: std::sync::atomic::AtomicU64,
    /// What the stall watchdog reads.
    activity: Arc<Activity>,
    /// The multipart upload this attempt opened, to abort if the attempt is abandoned.
    upload: std::sync::Mutex<Option<String>>,
}

/// A write to the job's row, fenced by its attempt: `false` means the lease was lost.
fn fenced(written: anyhow::Result<bool>) -> Result<(), CopyError> {
    match written {
        Ok(true) => Ok(()),
        Ok(false) => Err(CopyError::Cancelled),
        Err(e) => Err(CopyError::Retry(format!("internal error: {e:#}"))),
    }
}

/// What a copy reports lands on the job: its progress, and the multipart upload it opens (so
/// that a later attempt can abort it; see `orphans`).
#[async_trait::async_trait]
impl CopyProgress for JobCtx<'_> {
    async fn bytes_copied(&self, bytes: u64) -> Result<(), CopyError> {
        self.activity.touch();
        let total = self
            .progress
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed)
            + bytes;
        let store = &self.services.store;
        fenced(
            store
                .set_export_progress(&self.job.id, self.job.attempt, total as i64)
                .await,
        )
    }

    async fn upload_intent(&self, open: &[String]) -> Result<(), CopyError> {
        let intent = orphans::intent(open);
        let store = &self.services.store;
        fenced(
            store
                .set_export_upload(&self.job.id, self.job.attempt, Some(&intent))
                .await,
        )
    }

    async fn upload_started(&self, upload_id: &str) -> Result<(), CopyError> {
        *self.upload.lock().unwrap_or_else(|e| e.into_inner()) = Some(upload_id.to_string());
        let store = &self.services.store;
        fenced(
            store
                .set_export_upload(&self.job.id, self.job.attempt, Some(upload_id))
                .await,
        )
    }

    async fn upload_ended(&self) {
        let store = &self.services.store;
        let _ = store
            .set_export_upload(&self.job.id, self.job.attempt, None)
            .await;
    }
}

impl Engine {
    pub fn new(services: Arc<Services>, config: EngineConfig) -> Arc<Self> {
        let parts = (config.memory_budget / config.part_size.max(1))
            .max(config.part_parallelism as u64) as usize;
        let running = Arc::new(AtomicUsize::new(0));
        Arc::new(Self {
            node: format!("{}-{}", hostname(), random_hex(4)),
            limits: CopyLimits {
                multipart_cutoff: config.multipart_cutoff,
                part_size: config.part_size,
                part_parallelism: config.part_parallelism,
                buffers: Semaphore::new(parts),
            },
            commits: GroupCommit::start(
                services.store.clone(),
                services.job_ends.clone(),
                running.clone(),
            ),
            running,
            load: Default::default(),
            services,
            config,
        })
    }

    /// Claims and runs jobs until `shutdown` turns true, then lets running copies finish for
    /// up to the grace period. Jobs still running after that keep their lease until it
    /// expires, and any node (this one, restarted) takes them again.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let file_jobs = tokio::spawn(self.clone().run_file_jobs(shutdown.clone()));
        let slots = Arc::new(Semaphore::new(self.config.workers));
        let tasks = TaskTracker::new();
        let mut groups: VecDeque<(String, String)> = VecDeque::new();
        let mut refreshed = Instant::now() - Duration::from_secs(60);
        let gather = (self.config.workers / 4).max(1) as u32;
        while !*shutdown.borrow() {
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    permit = slots.clone().acquire_owned() => drop(permit),
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            if free < gather as usize {
                let _ = tokio::time::timeout(CLAIM_GATHER, slots.acquire_many(gather)).await;
            }
            let free = slots.available_permits();
            let (claimed, capped) = match self.claim(free, &mut groups, &mut refreshed).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "claiming jobs failed; will retry");
                    (Vec::new(), false)
                }
            };
            let imports = match self.claim_imports(free.saturating_sub(claimed.len())).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "claiming imports failed; will retry");
                    Vec::new()
                }
            };
            for job in imports {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let hold = self.load.hold(&job.volume_id);
                tasks.spawn(self.clone().run_import(job, (permit, hold)));
            }
            if claimed.is_empty() && slots.available_permits() == free {
                // A volume at its cap may take more work once one of its jobs ends; wait a
                // moment after that, so that one claim serves several ends.
                tokio::select! {
                    _ = self.services.jobs.notified() => {}
                    _ = tokio::time::sleep(self.config.poll) => {}
                    _ = shutdown.changed() => {}
                    _ = self.load.released(), if capped => {
                        tokio::time::sleep(CLAIM_GATHER).await;
                    }
                }
                continue;
            }
            for job in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let hold = self.load.hold(&job.job.volume_id);
                self.running.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(self.clone().run_job(job, permit, hold));
            }
        }
        // A job frees its slot once its end is queued for the commit, but its task lives on
        // until the end is recorded and logged: wait for the tasks, not the slots.
        tasks.close();
        if tokio::time::timeout(self.config.shutdown_grace, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown grace ended with copies still running; their leases will expire"
            );
        }
        self.commits.flush().await;
        let _ = file_jobs.await;
    }

    /// Claims up to `free` jobs, sharing them round-robin among `(owner, volume)` groups so
    /// that no user or volume starves the others, and never more on a volume than its cap
    /// leaves room for. The group list is refreshed at most a few times a second. The flag
    /// says whether a volume at its cap was passed over.
    async fn claim(
        &self,
        free: usize,
        groups: &mut VecDeque<(String, String)>,
        refreshed: &mut Instant,
    ) -> anyhow::Result<(Vec<Claimed>, bool)> {
        let now = now_ms();
        if groups.is_empty() || refreshed.elapsed() > Duration::from_millis(250) {
            let expired = self.services.store.expire_leases(now).await?;
            if expired > 0 {
                tracing::info!(jobs = expired, "leases expired; the jobs are queued again");
            }
            *groups = self
                .services
                .store
                .runnable_export_groups(now, 256)
                .await?
                .into();
            *refreshed = Instant::now();
        }
        let mut claimed = Vec::new();
        let share = free.div_ceil(groups.len().max(1));
        let lease_until = now + self.config.lease.as_millis() as i64;
        let mut exhausted = Vec::new();
        let cap = self.config.volume_cap();
        // Claimed in this round per volume; `load` counts them only once they are spawned.
        let mut taken: HashMap<&str, usize> = HashMap::new();
        let mut capped = false;
        for (i, (owner, volume)) in groups.iter().enumerate() {
            if claimed.len() >= free {
                break;
            }
            let taken = taken.entry(volume.as_str()).or_default();
            let room = cap.saturating_sub(self.load.running(volume) + *taken);
            if room == 0 {
                capped = true;
                continue;
            }
            let want = share.min(free - claimed.len()).min(room) as i64;
            let got = self
                .services
                .store
                .claim_exports(owner, volume, &self.node, now, lease_until, want)
                .await?;
            if (got.len() as i64) < want {
                exhausted.push(i);
            }
            *taken += got.len();
            claimed.extend(got);
        }
        for i in exhausted.into_iter().rev() {
            groups.remove(i);
        }
        groups.rotate_left(usize::from(!groups.is_empty()));
        Ok((self.load_claimed(claimed).await?, capped))
    }

    /// Loads the files and volumes of claimed jobs, with one query for each.
    async fn load_claimed(&self, jobs: Vec<ExportRec>) -> anyhow::Result<Vec<Claimed>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let file_ids: Vec<String> = jobs.iter().map(|j| j.file_id.clone()).collect();
        let mut volume_ids: Vec<String> = jobs.iter().map(|j| j.volume_id.clone()).collect();
        volume_ids.sort();
        volume_ids.dedup();
        let (files, volumes) = self
            .services
            .store
            .claimed_sources(&file_ids, &volume_ids)
            .await?;
        let job_ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        let mut refused: HashMap<String, Refusal> = HashMap::new();
        for rights in self.services.store.export_rights(&job_ids).await? {
            if let Some(why) = rights.refusal() {
                refused.insert(rights.id, why);
            }
        }
        let files: HashMap<String, FileRec> =
            files.into_iter().map(|f| (f.id.clone(), f)).collect();
        let volumes: HashMap<String, Arc<ClaimedVolume>> = volumes
            .into_iter()
            .map(|rec| {
                let backend = self
                    .services
                    .volume_backend(&rec, None)
                    .map_err(SbgError::from);
                (rec.id.clone(), Arc::new(ClaimedVolume { rec, backend }))
            })
            .collect();
        Ok(jobs
            .into_iter()
            .map(|job| Claimed {
                file: files.get(&job.file_id).cloned(),
                volume: volumes.get(&job.volume_id).cloned(),
                refused: refused.get(&job.id).copied(),
                job,
            })
            .collect())
    }

    async fn run_job(
        self: Arc<Self>,
        claimed: Claimed,
        slot: OwnedSemaphorePermit,
        hold: VolumeHold,
    ) {
        let Claimed {
            mut job,
            file,
            volume,
            refused,
        } = claimed;
        // What an earlier attempt recorded of a multipart upload is this attempt's to clean up.
        let earlier = job.upload_id.take();
        let heartbeat = {
            let (services, id, attempt) = (self.services.clone(), job.id.clone(), job.attempt);
            keep_lease(self.config.lease, move |until| {
                let (services, id) = (services.clone(), id.clone());
                async move { services.store.renew_export(&id, attempt, until).await }
            })
        };
        let claimed_at = Instant::now();
        let activity = Arc::new(Activity::default());
        let ctx = JobCtx {
            services: &self.services,
            job: &job,
            progress: Default::default(),
            activity: activity.clone(),
            upload: Default::default(),
        };
        // Only copies that report activity as they go can be seen to stall.
        let destination = volume
            .as_ref()
            .and_then(|v| v.backend.as_ref().ok())
            .cloned();
        let watched = destination.as_ref().is_some_and(|b| b.reports_activity());
        let stall_timeout = self.config.stall_timeout;
        let work = async {
            if let (Some(recorded), Some(backend)) = (&earlier, &destination) {
                orphans::clean_earlier(&ctx, &**backend, recorded).await?;
            }
            self.execute(&ctx, file, volume, refused).await
        };
        let (outcome, abandoned) = tokio::select! {
            r = activity.clone().scope(work) => (r, false),
            _ = heartbeat => (Err(JobError::LeaseLost), true),
            _ = stall::watch(&activity, stall_timeout), if watched => {
                tracing::warn!(export = %job.id, attempt = job.attempt, seconds = stall_timeout.as_secs_f64(), "the copy stalled; this attempt is given up");
                metrics::counter!("egress_export_stalls_total").increment(1);
                (Err(stall::stalled(stall_timeout)), true)
            }
        };
        drop(hold);
        if abandoned {
            let upload = ctx.upload.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let (Some(upload_id), Some(destination)) = (upload, destination) {
                stall::abort_abandoned(destination, job.object_key.clone(), upload_id);
            }
        }
        self.running.fetch_sub(1, Ordering::Relaxed);
        self.finish(&job, outcome, slot).await;
        metrics::histogram!("egress_export_claim_to_finish_seconds")
            .record(claimed_at.elapsed().as_secs_f64());
    }

    /// Copies one job's file and verifies it; returns the bytes written and, for a move,
    /// the alias flip to commit.
    async fn execute(
        &self,
        ctx: &JobCtx<'_>,
        file: Option<FileRec>,
        volume: Option<Arc<ClaimedVolume>>,
        refused: Option<Refusal>,
    ) -> Result<(i64, Option<Alias>), JobError> {
        let job = ctx.job;
        if let Some(why) = refused {
            return Err(JobError::Terminal(refusal_error(why, "export")));
        }
        let claimed = volume
            .filter(|v| v.rec.uid == job.volume_uid)
            .ok_or_else(|| JobError::Terminal(volume_replaced("export")))?;
        let backend = claimed
            .backend
            .as_ref()
            .map_err(|e| JobError::Terminal(e.clone()))?;
        let volume = &claimed.rec;
        let file = file.ok_or_else(|| {
            JobError::Terminal(SbgError::new(
                Code::FileNotFound,
                "The source file was deleted before the export ran.",
            ))
        })?;
        let Some(blob_id) = file.blob_id.clone() else {
            return Err(JobError::Terminal(SbgError::new(
                Code::NotExportable,
                "Requested file cannot be exported: it is no longer on the platform.",
            )));
        };
        if !volume.active {
            return Err(JobError::Terminal(SbgError::new(
                Code::LocationInaccessible,
                "The volume was deactivated before the export ran.",
            )));
        }
        let size = file.size.unwrap_or(0) as u64;
        let request = CopyIn {
            platform: &*self.services.platform,
            blob_key: &egress_storage::blob_key(&blob_id),
            size,
            md5: file.md5.as_deref(),
            crc32c: file.crc32c.as_deref(),
            key: &job.object_key,
            properties: &job.properties,
            overwrite: job.overwrite,
            export_id: &job.id,
            limits: &self.limits,
        };
        backend.copy_in(&request, ctx).await?;
        let alias = (!job.copy_only).then(|| Alias {
            file_id: file.id.clone(),
            blob_id,
            volume_id: volume.id.clone(),
            volume_uid: volume.uid.clone(),
            location: job.location.clone(),
        });
        Ok((size as i64, alias))
    }

    /// Records how a job ended. Once its end is queued for the group commit, the job's slot
    /// takes the next job; shutdown still sees every end queued before it flushes the commits.
    async fn finish(
        &self,
        job: &ExportRec,
        outcome: Result<(i64, Option<Alias>), JobError>,
        slot: OwnedSemaphorePermit,
    ) {
        let mut slot = Some(slot);
        let end = match outcome {
            Ok((bytes, alias)) => {
                let moved = alias.is_some();
                let recorded =
                    self.commits
                        .record(&job.id, job.attempt, JobEnd::Completed { bytes, alias });
                drop(slot.take());
                match recorded.await {
                    Some(Finished::Recorded) => {
                        tracing::info!(export = %job.id, attempt = job.attempt, bytes, moved, "export completed");
                        metrics::counter!("egress_export_bytes_copied_total").increment(bytes as u64);
                        if moved {
                            metrics::counter!("egress_platform_bytes_freed_by_exports_total").increment(bytes as u64);
                            self.services.sweep.notify_one();
                        }
                        return;
                    }
                    Some(Finished::LeaseLost) => return tracing::warn!(export = %job.id, "lease lost before the commit"),
                    Some(Finished::Refused(why)) => JobEnd::Failed {
                        error: api_error_json(&refusal_error(why, "export")),
                    },
                    Some(Finished::SourceChanged) => JobEnd::Failed {
                        error: api_error_json(&SbgError::new(Code::Conflict, "The source file changed while it was exported; the object on the volume was left as written.")),
                    },
                    None => self.retry_end(job, "the commit failed".into()),
                }
            }
            Err(JobError::Terminal(e)) => JobEnd::Failed {
                error: api_error_json(&e),
            },
            Err(JobError::Exists) => JobEnd::Failed {
                error: api_error_json(&exists_error_api()),
            },
            Err(JobError::Retryable(why)) => self.retry_end(job, why),
            Err(JobError::LeaseLost) => {
                return tracing::warn!(export = %job.id, "lease lost; another worker owns the job")
            }
        };
        match &end {
            JobEnd::Failed { error } => {
                let class = if error["status"] == 503 {
                    "retries_exhausted"
                } else {
                    "terminal"
                };
                metrics::counter!("egress_export_failures_total", "class" => class).increment(1);
                tracing::info!(export = %job.id, attempt = job.attempt, error = %error, "export failed");
            }
            JobEnd::Retry { .. } => {
                metrics::counter!("egress_export_retries_total", "class" => "retryable")
                    .increment(1)
            }
            JobEnd::Completed { .. } => {}
        }
        let recorded = self.commits.record(&job.id, job.attempt, end);
        drop(slot);
        match recorded.await {
            Some(Finished::Recorded) => {}
            Some(_) => {
                tracing::warn!(export = %job.id, "lease lost before recording the outcome")
            }
            None => {
                tracing::warn!(export = %job.id, "could not record the outcome; the lease will expire")
            }
        }
    }

    /// Another attempt after a capped exponential backoff with jitter, or failure when the
    /// attempts are used up.
    fn retry_end(&self, job: &ExportRec, why: String) -> JobEnd {
        self.retry_or_fail(&job.id, job.attempt, why)
    }

    fn retry_or_fail(&self, id: &str, attempt: i64, why: String) -> JobEnd {
        let error = SbgError::new(
            Code::ServiceError,
            format!("There was an error communicating with the service: {why}."),
        );
        if attempt >= self.config.max_attempts {
            let error = SbgError::new(
                Code::ServiceError,
                format!("Gave up after {} attempts: {why}.", attempt),
            );
            return JobEnd::Failed {
                error: api_error_json(&error),
            };
        }
        let exp = self
            .config
            .retry_base
            .saturating_mul(1 << (attempt - 1).clamp(0, 20) as u32)
            .min(self.config.retry_cap);
        let delay = rand::thread_rng().gen_range(exp / 2..=exp);
        tracing::info!(job = %id, attempt = attempt, delay_ms = delay.as_millis() as u64, reason = %why, "job will be retried");
        JobEnd::Retry {
            at: now_ms() + delay.as_millis() as i64,
            error: api_error_json(&error),
        }
    }
}

/// The error a job ends with when its owner lost a right, or its volume changed, before it
/// took effect. Nothing was written through it.
pub fn refusal_error(why: Refusal, job: &str) -> SbgError {
    match why {
        Refusal::VolumeReplaced => volume_replaced(job),
        Refusal::VolumeInactive => SbgError::new(
            Code::LocationInaccessible,
            format!("The volume was deactivated before the {job} took effect."),
        ),
        Refusal::VolumeReadOnly => SbgError::new(
            Code::VolumeMadeReadOnly,
            format!("The volume was made read-only (access_mode RO) before the {job} took effect."),
        ),
        Refusal::NoVolumeRight => SbgError::new(
            Code::VolumeForbidden,
            format!("Insufficient privileges to access the requested volume: its owner no longer grants the rights this {job} needs."),
        ),
        Refusal::NoProjectRight => SbgError::new(
            Code::ProjectAccessDenied,
            format!("Insufficient privileges to access the requested project: the rights this {job} needs on it were revoked."),
        ),
    }
}

/// The job's volume is gone, or another one now has its id.
fn volume_replaced(job: &str) -> SbgError {
    SbgError::new(
        Code::VolumeNotFound,
        format!("The volume was deleted, or replaced by another of the same name, before the {job} ran."),
    )
}

fn exists_error_api() -> SbgError {
    SbgError::new(
        Code::LocationExists,
        "Location on volume already contains a file; export with overwrite=true to replace it.",
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "node".into())
}

/// Renews a lease every third of its length until a renewal says it was lost; the returned
/// future ends then, so a `select!` against it stops the work that needed the lease.
async fn keep_lease<F, Fut>(lease: Duration, renew: F)
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    loop {
        tokio::time::sleep(lease / 3).await;
        match renew(now_ms() + lease.as_millis() as i64).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "lease renewal failed; will retry"),
        }
    }
}
