//! Keeping a stalled volume from holding the workers: a watchdog that gives up on a job whose
//! copy stopped moving, and a count of the jobs each volume runs in this process, so that the
//! dispatcher can cap it and keep workers for every other volume.

use super::JobError;
use egress_storage::activity::Activity;
use egress_storage::volume::VolumeBackend;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Resolves once `activity` has not moved for `limit`: no answer from the object store, no bytes
/// recorded, and nothing it waits on that is guarded elsewhere (a streaming answer, memory).
/// It samples a few times per `limit`, so a busy job costs no clock reads of its own.
pub async fn watch(activity: &Activity, limit: Duration) {
    let tick = (limit / 8).max(Duration::from_millis(50));
    let (mut seen, _) = activity.snapshot();
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let (events, busy) = activity.snapshot();
        if events != seen || busy {
            seen = events;
            since = Instant::now();
        } else if since.elapsed() >= limit {
            return;
        }
    }
}

/// The error of an attempt the watchdog gave up on; it is retried with the usual backoff.
pub fn stalled(limit: Duration) -> JobError {
    JobError::Retryable(format!(
        "the volume stalled: nothing moved for {} s",
        limit.as_secs_f64()
    ))
}

/// Aborts the multipart upload an abandoned attempt left open. It runs in the background: the
/// volume may still be stalled, no worker should wait on it, and its own timeouts bound it. If
/// it fails, the job's next attempt finds the upload and aborts it.
pub(super) fn abort_abandoned(volume: Arc<dyn VolumeBackend>, key: String, upload_id: String) {
    tokio::spawn(async move {
        if let Err(e) = volume.abort_upload(&key, &upload_id).await {
            tracing::warn!(key, error = %e, "could not abort the multipart upload of an abandoned attempt");
        }
    });
}

/// Jobs running per volume in this process.
#[derive(Debug, Default)]
pub struct VolumeLoad {
    running: Mutex<HashMap<String, usize>>,
    released: Notify,
}

impl VolumeLoad {
    pub fn running(&self, volume: &str) -> usize {
        self.lock().get(volume).copied().unwrap_or(0)
    }

    /// Counts one more job on `volume` until the returned hold drops.
    pub fn hold(self: &Arc<Self>, volume: &str) -> VolumeHold {
        *self.lock().entry(volume.to_string()).or_default() += 1;
        VolumeHold {
            load: self.clone(),
            volume: volume.to_string(),
        }
    }

    /// Resolves when a hold has dropped (at once if one dropped since the last call).
    pub async fn released(&self) {
        self.released.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One running job's share of its volume; see `VolumeLoad::hold`.
#[derive(Debug)]
pub struct VolumeHold {
    load: Arc<VolumeLoad>,
    volume: String,
}

impl Drop for VolumeHold {
    fn drop(&mut self) {
        let mut running = self.load.lock();
        if let Some(n) = running.get_mut(&self.volume) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.volume);
            }
        }
        drop(running);
        self.load.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_that_stops_moving_is_seen_stalled() {
        let activity = Arc::new(Activity::default());
        let limit = Duration::from_millis(300);
        // Moving: every 50 ms an answer arrives, for a second, and no stall is seen.
        let moving = {
            let activity = activity.clone();
            async move {
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    activity.touch();
                }
            }
        };
        tokio::select! {
            _ = watch(&activity, limit) => panic!("a moving job was seen stalled"),
            _ = moving => {}
        }
        // Busy on something guarded elsewhere (a streaming answer): no stall either.
        let busy = activity.busy();
        tokio::select! {
            _ = watch(&activity, limit) => panic!("a busy job was seen stalled"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        drop(busy);
        // Then nothing moves: the watchdog fires, after the limit and not long after it.
        let started = Instant::now();
        watch(&activity, limit).await;
        assert!(started.elapsed() >= limit);
    }

    #[tokio::test]
    async fn holds_count_jobs_per_volume_until_they_drop() {
        let load = Arc::new(VolumeLoad::default());
        let a1 = load.hold("a");
        let a2 = load.hold("a");
        let b = load.hold("b");
        assert_eq!((load.running("a"), load.running("b")), (2, 1));
        drop(a1);
        load.released().await;
        assert_eq!(load.running("a"), 1);
        drop((a2, b));
        assert_eq!((load.running("a"), load.running("b")), (0, 0));
        assert!(load.lock().is_empty());
    }
}
