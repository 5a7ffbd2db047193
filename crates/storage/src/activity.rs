//! What a job's object-store calls have done lately, for the engine's stall detection.
//!
//! A job runs inside `Activity::scope`; every S3 client carries the `Observe` interceptor, which
//! moves the job's activity on whenever an answer arrives. While an answer's body streams in
//! (a long CopyObject or CompleteMultipartUpload trickles whitespace for minutes), the job counts
//! as busy: the SDK's stalled-stream protection guards that body. Calls made outside any job
//! (API requests) find no activity and cost nothing.

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

tokio::task_local! {
    static CURRENT: Arc<Activity>;
}

/// A job's recent activity: a count of events (answers, bytes recorded) and the number of
/// things it is waiting on that are guarded elsewhere (a streaming answer, a memory permit).
#[derive(Debug, Default)]
pub struct Activity {
    events: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    /// Something moved: an answer arrived, or bytes were written.
    pub fn touch(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// The event count and whether the job is busy on something guarded elsewhere.
    pub fn snapshot(&self) -> (u64, bool) {
        (
            self.events.load(Ordering::Relaxed),
            self.busy.load(Ordering::Relaxed) > 0,
        )
    }

    /// Marks the job busy until the guard drops; no stall is seen meanwhile.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Runs `work` with this activity as the one its S3 calls report to.
    pub async fn scope<F: Future>(self: Arc<Self>, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// The activity of the job running on this task, if any.
    pub fn current() -> Option<Arc<Activity>> {
        CURRENT.try_with(Arc::clone).ok()
    }
}

/// See `Activity::busy`.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Kept in an attempt's config bag from the response head to the attempt's end.
#[derive(Debug, Clone)]
struct Streaming {
    _busy: Arc<Busy>,
}

impl Storable for Streaming {
    type Storer = StoreReplace<Self>;
}

/// The interceptor every S3 client carries (see the module comment).
#[derive(Debug)]
pub struct Observe;

impl Intercept for Observe {
    fn name(&self) -> &'static str {
        "EgressActivity"
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(activity) = Activity::current() {
            activity.touch();
            cfg.interceptor_state().store_put(Streaming {
                _busy: Arc::new(activity.busy()),
            });
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Dropping the guard ends the busy time and counts the finished attempt.
        cfg.interceptor_state().unset::<Streaming>();
        Ok(())
    }
}
