//! Background work (the export engine and the sweeper) runs on a runtime of its own, whose
//! threads have a lower OS scheduling priority than the request handlers'. On a busy machine
//! the kernel then serves API calls first, and copies take the CPU that is left.

use std::future::Future;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

pub struct Background {
    handle: Handle,
    /// `None` only while being dropped.
    runtime: Option<Runtime>,
}

impl Background {
    pub fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let nice = background_nice();
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("egress-background")
            .on_thread_start(move || set_own_nice(nice))
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
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
    /// Dropping a runtime blocks, which async code must not do: its tasks are cancelled instead.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
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
