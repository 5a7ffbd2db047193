//! The engine's settings. Each flag's default, environment variable and help live here once;
//! the bounds live in `normalize`.

use std::time::Duration;

/// Settings of the export and import engine. Fields without a flag are tuning knobs that only
/// tests change.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineConfig {
    /// Export and import jobs this process runs at once; at least 1
    #[arg(long, env = "EGRESS_WORKERS", value_name = "N", default_value_t = 16)]
    pub workers: usize,
    /// Export jobs one volume may run at once in this process (imports count toward it), so a
    /// stalled volume always leaves workers to the others; 0: `--workers` less an eighth of them
    /// (at least 1 less, and at least 1)
    #[arg(
        long,
        env = "EGRESS_MAX_WORKERS_PER_VOLUME",
        value_name = "N",
        default_value_t = 0
    )]
    pub max_workers_per_volume: usize,
    /// Seconds a copy to S3 may move nothing (no answer from the volume, no part done; a request
    /// still being answered counts as moving) before the attempt is given up and retried; once the
    /// attempts are used up the job fails with 503 9000 "…stalled…". At least 1
    #[arg(
        long = "stall-timeout-secs",
        env = "EGRESS_STALL_TIMEOUT_SECS",
        value_name = "SECS",
        value_parser = secs,
        default_value = "120"
    )]
    pub stall_timeout: Duration,
    /// Largest object copied with one server-side CopyObject; above it, multipart UploadPartCopy
    #[arg(
        long = "multipart-copy-cutoff",
        env = "EGRESS_MULTIPART_COPY_CUTOFF",
        value_name = "BYTES",
        default_value_t = 5 * 1024 * 1024 * 1024
    )]
    pub multipart_cutoff: u64,
    /// Part size of multipart copies and streamed uploads; at least 5 MiB, and raised for files
    /// that would need more than 10,000 parts
    #[arg(
        long,
        env = "EGRESS_PART_SIZE",
        value_name = "BYTES",
        default_value_t = 16 * 1024 * 1024
    )]
    pub part_size: u64,
    /// Seconds a claimed job's lease lasts; workers renew it every third of it. At least 1
    #[arg(
        long = "lease-secs",
        env = "EGRESS_LEASE_SECS",
        value_name = "SECS",
        value_parser = secs,
        default_value = "30"
    )]
    pub lease: Duration,
    /// Attempts per job before a transient failure becomes final; at least 1
    #[arg(
        long,
        env = "EGRESS_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = 8
    )]
    pub max_attempts: i64,
    /// First retry delay in milliseconds; it doubles per attempt, with jitter, up to a minute. At
    /// least 1
    #[arg(
        long = "retry-base-ms",
        env = "EGRESS_RETRY_BASE_MS",
        value_name = "MS",
        value_parser = millis,
        default_value = "500"
    )]
    pub retry_base: Duration,
    /// On SIGTERM, seconds running copies may take to finish
    #[arg(
        long = "shutdown-grace-secs",
        env = "EGRESS_SHUTDOWN_GRACE_SECS",
        value_name = "SECS",
        value_parser = secs,
        default_value = "30"
    )]
    pub shutdown_grace: Duration,

    /// Milliseconds an async file job waits before each item; for tests that need a job
    /// caught in the middle (a crash test kills the server then)
    #[arg(
        long = "file-job-item-pause-ms",
        env = "EGRESS_FILE_JOB_ITEM_PAUSE_MS",
        value_name = "MS",
        value_parser = millis,
        default_value = "0",
        hide = true
    )]
    pub file_job_item_pause: Duration,

    /// Parts in flight per job.
    #[arg(skip = 4usize)]
    pub part_parallelism: usize,
    /// Bytes all streamed parts of this process may hold at once.
    #[arg(skip = 512u64 * 1024 * 1024)]
    pub memory_budget: u64,
    /// Longest retry delay.
    #[arg(skip = Duration::from_secs(60))]
    pub retry_cap: Duration,
    /// How often an idle dispatcher looks for work (submissions also wake it).
    #[arg(skip = Duration::from_millis(500))]
    pub poll: Duration,
    /// False: this process claims no jobs, so submitted ones wait in the queue (tests use it to
    /// hold a server's state still; `--workers` is at least 1).
    #[arg(skip = true)]
    pub run_jobs: bool,
}

impl EngineConfig {
    /// Raises every setting below its lower bound to that bound.
    pub fn normalize(&mut self) {
        at_least("--workers", &mut self.workers, 1);
        at_least(
            "--stall-timeout-secs",
            &mut self.stall_timeout,
            Duration::from_secs(1),
        );
        // S3's smallest part.
        at_least("--part-size", &mut self.part_size, 5 * 1024 * 1024);
        at_least("--lease-secs", &mut self.lease, Duration::from_secs(1));
        at_least("--max-attempts", &mut self.max_attempts, 1);
        at_least(
            "--retry-base-ms",
            &mut self.retry_base,
            Duration::from_millis(1),
        );
    }

    /// The per-volume cap in effect.
    pub fn volume_cap(&self) -> usize {
        match self.max_workers_per_volume {
            0 => self
                .workers
                .saturating_sub((self.workers / 8).max(1))
                .max(1),
            n => n,
        }
    }
}

// Value parsers and bounds that the binary's own settings use too.

/// Raises `value` to `min` if it is below, saying so.
pub fn at_least<T: PartialOrd + std::fmt::Debug>(flag: &str, value: &mut T, min: T) {
    if *value < min {
        tracing::warn!("{flag} {value:?} is below its minimum; using {min:?}");
        *value = min;
    }
}

/// Parses whole seconds.
pub fn secs(text: &str) -> Result<Duration, std::num::ParseIntError> {
    text.parse().map(Duration::from_secs)
}

/// Parses whole milliseconds.
pub fn millis(text: &str) -> Result<Duration, std::num::ParseIntError> {
    text.parse().map(Duration::from_millis)
}
