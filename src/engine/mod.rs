//! The export engine: every `egress serve` process runs workers that claim jobs with a lease,
//! copy bytes, verify them and commit — DESIGN.md invariants 1–5.

mod commit;
mod config;
mod copy;
mod imports;
mod orphans;
mod stall;

use crate::blob::activity::Activity;
use crate::blob::volume::{VolumeBackend, VolumeError, VolumeErrorKind};
use crate::blob::{self};
use crate::error::{ApiError, Code};
use crate::services::Services;
use crate::store::{Alias, ExportRec, FileRec, Finished, JobEnd, Refusal, VolumeRec};
use crate::util::{now_ms, random_hex};
use commit::GroupCommit;
pub use config::EngineConfig;
use copy::{Target, STAMP};
use rand::Rng;
use stall::{VolumeHold, VolumeLoad};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio_util::task::TaskTracker;

/// Why a job did not complete this time.
#[derive(Debug)]
pub enum JobError {
    /// The user must fix something; the job fails now with this error.
    Terminal(ApiError),
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
            ApiError::new(
                Code::LocationInaccessible,
                format!("Location on volume is not accessible as configured: {e}."),
            )
        };
        JobError::Terminal(match (access, e.kind) {
            (Access::Read, _) => inaccessible(),
            (Access::Write, K::AccessDenied) => ApiError::new(Code::CrossWriteDenied, format!("Could not obtain cross-write access on the volume: {e}. Check the volume's credentials and bucket policy.")),
            (Access::Write, K::NoSuchBucket) => ApiError::new(Code::BucketMissing, format!("Location on volume is not accessible as configured: {e}. The bucket does not exist.")),
            (Access::Write, K::KmsKey) => ApiError::new(Code::InvalidSse, format!("Server-side encryption failed: {e}. Check sse_aws_kms_key_id.")),
            (Access::Write, K::TooLarge) => ApiError::new(Code::ObjectRefused, format!("The volume refused the object: {e}.")),
            (Access::Write, _) => inaccessible(),
        })
    }

    /// The volume refused our credentials. A server-side copy needs them to read the platform
    /// bucket too, so the export may still succeed streamed.
    fn is_access_refused(&self) -> bool {
        matches!(self, JobError::Terminal(e) if e.code == Code::CrossWriteDenied)
    }

    fn internal(e: anyhow::Error) -> Self {
        JobError::Retryable(format!("internal error: {e:#}"))
    }

    fn platform(e: anyhow::Error) -> Self {
        JobError::Retryable(format!("reading platform storage: {e:#}"))
    }

    /// A local volume's file-system error: refused paths and special files are the user's to
    /// fix; anything else may pass.
    fn local(e: std::io::Error) -> Self {
        let failure = crate::blob::volume::io_error(e);
        match failure.kind {
            VolumeErrorKind::Other | VolumeErrorKind::NotFound => {
                JobError::Retryable(format!("local volume: {failure}"))
            }
            _ => JobError::from_volume(&failure, Access::Write),
        }
    }

    fn corrupt() -> Self {
        JobError::Terminal(ApiError::new(Code::Internal, "The platform copy of the file does not match its recorded checksum; nothing was changed."))
    }
}

fn api_error_json(e: &ApiError) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or_default()
}

pub struct Engine {
    services: Arc<Services>,
    config: EngineConfig,
    /// This process's name in `lease_owner`.
    node: String,
    /// Bounds the memory of streamed parts across all jobs.
    buffers: Semaphore,
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
    backend: Result<VolumeBackend, ApiError>,
}

/// While jobs run, the dispatcher waits this long for a quarter of the slots to free up, so
/// that one claim serves several jobs.
const CLAIM_GATHER: Duration = Duration::from_millis(5);

/// What one job needs while it runs.
pub struct JobCtx<'a> {
    engine: &'a Engine,
    services: &'a Services,
    job: &'a ExportRec,
    progress: std::sync::atomic::AtomicU64,
    /// What the stall watchdog reads.
    activity: Arc<Activity>,
    /// The multipart upload this attempt opened, to abort if the attempt is abandoned.
    upload: std::sync::Mutex<Option<String>>,
}

impl JobCtx<'_> {
    /// Records progress, fenced by the attempt: false means the lease was lost.
    async fn add_progress(&self, bytes: u64) -> Result<(), JobError> {
        self.activity.touch();
        let total = self
            .progress
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed)
            + bytes;
        match self
            .services
            .store
            .set_export_progress(&self.job.id, self.job.attempt, total as i64)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::LeaseLost),
            Err(e) => Err(JobError::internal(e)),
        }
    }

    /// Remembers the multipart upload this attempt opened.
    fn opened_upload(&self, upload_id: &str) {
        *self.upload.lock().unwrap_or_else(|e| e.into_inner()) = Some(upload_id.to_string());
    }
}

impl Engine {
    pub fn new(services: Arc<Services>, config: EngineConfig) -> Arc<Self> {
        let parts = (config.memory_budget / config.part_size.max(1))
            .max(config.part_parallelism as u64) as usize;
        let running = Arc::new(AtomicUsize::new(0));
        Arc::new(Self {
            node: format!("{}-{}", hostname(), random_hex(4)),
            buffers: Semaphore::new(parts),
            commits: GroupCommit::start(services.store.clone(), running.clone()),
            running,
            load: Default::default(),
            services,
            config,
        })
    }

    /// Holds room for `parts` part buffers of the global memory budget.
    async fn buffer_permit(&self, parts: u32) -> Option<SemaphorePermit<'_>> {
        // Waiting for memory is no stall of the volume.
        let _busy = Activity::current().map(|a| a.busy());
        self.buffers.acquire_many(parts).await.ok()
    }

    /// Claims and runs jobs until `shutdown` turns true, then lets running copies finish for
    /// up to the grace period. Jobs still running after that keep their lease until it
    /// expires, and any node (this one, restarted) takes them again.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
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
                    .map_err(ApiError::from);
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
            engine: &self,
            services: &self.services,
            job: &job,
            progress: Default::default(),
            activity: activity.clone(),
            upload: Default::default(),
        };
        // Only copies to S3 are watched: a local volume's writes report no progress until done.
        let destination = volume.clone();
        let watched = destination
            .as_ref()
            .is_some_and(|v| matches!(v.backend, Ok(VolumeBackend::S3 { .. })));
        let stall_timeout = self.config.stall_timeout;
        let work = async {
            if let (Some(recorded), Some(Ok(VolumeBackend::S3 { client, bucket }))) =
                (&earlier, destination.as_ref().map(|v| &v.backend))
            {
                orphans::clean_earlier(&ctx, client, bucket, recorded).await?;
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
            JobError::Terminal(ApiError::new(
                Code::FileNotFound,
                "The source file was deleted before the export ran.",
            ))
        })?;
        let Some(blob_id) = file.blob_id.clone() else {
            return Err(JobError::Terminal(ApiError::new(
                Code::NotExportable,
                "Requested file cannot be exported: it is no longer on the platform.",
            )));
        };
        if !volume.active {
            return Err(JobError::Terminal(ApiError::new(
                Code::LocationInaccessible,
                "The volume was deactivated before the export ran.",
            )));
        }
        let size = file.size.unwrap_or(0) as u64;
        match backend {
            VolumeBackend::S3 { client, bucket } => {
                let target = Target {
                    client,
                    bucket,
                    key: &job.object_key,
                    properties: &job.properties,
                    overwrite: job.overwrite,
                };
                let verified = self
                    .copy_to_s3(ctx, &target, volume, &file, &blob_id, size)
                    .await?;
                if !verified {
                    verify_s3(&target, job, &file, size).await?;
                }
            }
            VolumeBackend::Local { root } => {
                let md5 = file.md5.clone().unwrap_or_default();
                match copy::write_local(
                    ctx,
                    root,
                    &job.object_key,
                    &blob::blob_key(&blob_id),
                    size,
                    &md5,
                    job.overwrite,
                )
                .await
                {
                    // The same bytes are already there: a retry of ours (or a twin); done.
                    Err(JobError::Exists)
                        if copy::local_matches(root, &job.object_key, size, &md5).await => {}
                    Err(JobError::Exists) => return Err(exists_error()),
                    other => other?,
                }
            }
        }
        let alias = (!job.copy_only).then(|| Alias {
            file_id: file.id.clone(),
            blob_id,
            volume_id: volume.id.clone(),
            volume_uid: volume.uid.clone(),
            location: job.location.clone(),
        });
        Ok((size as i64, alias))
    }

    /// Picks the copy strategy (DESIGN.md): server-side when the platform bucket is on the
    /// volume's endpoint, streamed otherwise or when the source is not readable server-side.
    async fn copy_to_s3(
        &self,
        ctx: &JobCtx<'_>,
        t: &Target<'_>,
        volume: &VolumeRec,
        file: &FileRec,
        blob_id: &str,
        size: u64,
    ) -> Result<bool, JobError> {
        let job = ctx.job;
        if !job.overwrite {
            if let Some(info) = head(t).await? {
                return if info.user_metadata.get(STAMP) == Some(&job.id) {
                    Ok(false)
                } else {
                    Err(exists_error())
                };
            }
        }
        let blob_key = blob::blob_key(blob_id);
        let source = self
            .services
            .platform
            .s3_source(&blob_key)
            .filter(|s| s.endpoint == volume.service.endpoint);
        let server_side = match &source {
            Some(src) if size <= self.config.multipart_cutoff => {
                // A single-part copy without KMS answers with the MD5 as its ETag: verified.
                let kms =
                    t.properties.get("sse_algorithm").and_then(|v| v.as_str()) == Some("aws:kms");
                let copied = copy::copy_object(ctx, t, &src.bucket, &src.key).await;
                Some(copied.map(|etag| !kms && etag.is_some() && etag == file.md5))
            }
            Some(src) => Some(
                copy::multipart_copy(ctx, t, &src.bucket, &src.key, size)
                    .await
                    .map(|()| false),
            ),
            None => None,
        };
        let refused = matches!(&server_side, Some(Err(e)) if e.is_access_refused());
        if refused {
            tracing::info!(export = %job.id, "server-side copy refused; streaming instead");
        }
        let result = match server_side {
            Some(done) if !refused => done,
            _ => {
                let (md5, crc) = (
                    file.md5.clone().unwrap_or_default(),
                    file.crc32c.clone().unwrap_or_default(),
                );
                copy::streamed_upload(ctx, t, &blob_key, size, &md5, &crc)
                    .await
                    .map(|()| false)
            }
        };
        match result {
            Err(JobError::Exists) => match head(t).await? {
                Some(info) if info.user_metadata.get(STAMP) == Some(&job.id) => Ok(false),
                _ => Err(exists_error()),
            },
            other => other,
        }
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
                        error: api_error_json(&ApiError::new(Code::Conflict, "The source file changed while it was exported; the object on the volume was left as written.")),
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
        let error = ApiError::new(
            Code::ServiceError,
            format!("There was an error communicating with the service: {why}."),
        );
        if attempt >= self.config.max_attempts {
            let error = ApiError::new(
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
pub fn refusal_error(why: Refusal, job: &str) -> ApiError {
    match why {
        Refusal::VolumeReplaced => volume_replaced(job),
        Refusal::VolumeInactive => ApiError::new(
            Code::LocationInaccessible,
            format!("The volume was deactivated before the {job} took effect."),
        ),
        Refusal::VolumeReadOnly => ApiError::new(
            Code::VolumeMadeReadOnly,
            format!("The volume was made read-only (access_mode RO) before the {job} took effect."),
        ),
        Refusal::NoVolumeRight => ApiError::new(
            Code::VolumeForbidden,
            format!("Insufficient privileges to access the requested volume: its owner no longer grants the rights this {job} needs."),
        ),
        Refusal::NoProjectRight => ApiError::new(
            Code::ProjectAccessDenied,
            format!("Insufficient privileges to access the requested project: the rights this {job} needs on it were revoked."),
        ),
    }
}

/// The job's volume is gone, or another one now has its id.
fn volume_replaced(job: &str) -> ApiError {
    ApiError::new(
        Code::VolumeNotFound,
        format!("The volume was deleted, or replaced by another of the same name, before the {job} ran."),
    )
}

fn exists_error_api() -> ApiError {
    ApiError::new(
        Code::LocationExists,
        "Location on volume already contains a file; export with overwrite=true to replace it.",
    )
}

fn exists_error() -> JobError {
    JobError::Terminal(exists_error_api())
}

async fn head(t: &Target<'_>) -> Result<Option<crate::blob::volume::ObjectInfo>, JobError> {
    let backend = VolumeBackend::S3 {
        client: t.client.clone(),
        bucket: t.bucket.to_string(),
    };
    backend
        .head(t.key)
        .await
        .map_err(|e| JobError::from_volume(&e, Access::Write))
}

/// Reads the object back: it must be ours, of the right size, and where S3 gives an MD5 (a
/// single-part object without KMS) it must match the file's.
async fn verify_s3(
    t: &Target<'_>,
    job: &ExportRec,
    file: &FileRec,
    size: u64,
) -> Result<(), JobError> {
    let info = head(t)
        .await?
        .ok_or_else(|| JobError::Retryable("the object is not visible yet".into()))?;
    let bad = |what: &str| {
        JobError::Terminal(ApiError::new(
            Code::Internal,
            format!("Verification of the exported object failed: {what}."),
        ))
    };
    if info.user_metadata.get(STAMP) != Some(&job.id) {
        return Err(bad("another writer replaced the object"));
    }
    if info.size as u64 != size {
        return Err(bad("its size differs from the file's"));
    }
    let etag_is_md5 = info
        .etag
        .as_deref()
        .is_some_and(|e| e.len() == 32 && !e.contains('-'))
        && info.sse_algorithm.as_deref() != Some("aws:kms");
    if etag_is_md5 && file.md5.is_some() && info.etag != file.md5 {
        return Err(bad("its checksum differs from the file's"));
    }
    Ok(())
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
