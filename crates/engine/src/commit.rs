//! Group commit of job ends: workers hand their ends to one task, which records them in a
//! single transaction. While other jobs are still running it waits a few milliseconds for
//! their ends to join the batch; a lone job is committed at once.

use crate::services::JobEnds;
use egress_store::{DynStore, Finished, JobEnd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Most job ends recorded in one transaction.
const MAX_BATCH: usize = 256;
/// How long the first end of a batch may wait for others.
const GATHER: Duration = Duration::from_millis(10);

struct Pending {
    id: String,
    attempt: i64,
    end: JobEnd,
    reply: oneshot::Sender<Option<Finished>>,
}

enum Message {
    End(Pending),
    /// Answered once every end queued before it is recorded.
    Flush(oneshot::Sender<()>),
}

pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Message>,
}

impl GroupCommit {
    /// Starts the committing task; it ends when this handle is dropped. `running` counts the
    /// jobs whose ends are still to come.
    pub fn start(store: DynStore, ends: Arc<JobEnds>, running: Arc<AtomicUsize>) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(commit_loop(store, ends, running, waiting));
        Self { queue }
    }

    /// Queues one job's end at once; the returned future tells how it was recorded, fenced
    /// by its attempt: `None` when the transaction failed (nothing of it was written).
    pub fn record(
        &self,
        id: &str,
        attempt: i64,
        end: JobEnd,
    ) -> impl std::future::Future<Output = Option<Finished>> {
        let (reply, outcome) = oneshot::channel();
        let pending = Pending {
            id: id.to_string(),
            attempt,
            end,
            reply,
        };
        let queued = self.queue.send(Message::End(pending)).is_ok();
        async move {
            if !queued {
                return None;
            }
            outcome.await.ok().flatten()
        }
    }

    /// Waits until every end handed over so far is recorded.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }
}

async fn commit_loop(
    store: DynStore,
    ends: Arc<JobEnds>,
    running: Arc<AtomicUsize>,
    mut waiting: mpsc::UnboundedReceiver<Message>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = waiting.recv().await {
        let deadline = Instant::now() + GATHER;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::End(p) => batch.push(p),
                Message::Flush(done) => flushes.push(done),
            }
            if !flushes.is_empty() || batch.len() >= MAX_BATCH {
                break;
            }
            next = match waiting.try_recv() {
                Ok(m) => Some(m),
                Err(_) if running.load(Ordering::Relaxed) == 0 => None,
                Err(_) => tokio::time::timeout_at(deadline, waiting.recv())
                    .await
                    .ok()
                    .flatten(),
            };
        }
        commit(&store, &ends, &mut batch).await;
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn commit(store: &DynStore, job_ends: &JobEnds, batch: &mut Vec<Pending>) {
    if batch.is_empty() {
        return;
    }
    let ends: Vec<(&str, i64, &JobEnd)> = batch
        .iter()
        .map(|p| (p.id.as_str(), p.attempt, &p.end))
        .collect();
    let outcomes = match store.finish_exports(&ends).await {
        Ok(outcomes) => outcomes.into_iter().map(Some).collect(),
        Err(e) => {
            tracing::warn!(jobs = batch.len(), error = %e, "recording job ends failed");
            vec![None; batch.len()]
        }
    };
    metrics::histogram!("egress_export_commit_batch_size").record(batch.len() as f64);
    for (pending, outcome) in batch.drain(..).zip(outcomes) {
        let _ = pending.reply.send(outcome);
    }
    job_ends.record();
}
