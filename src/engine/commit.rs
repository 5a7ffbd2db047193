//! Group commit of job ends: workers hand their ends to one task, which records every end
//! waiting at that moment in a single transaction. Under load this turns one commit per job
//! into one per batch, without delaying a lone job.

use crate::store::{DynStore, Finished, JobEnd};
use tokio::sync::{mpsc, oneshot};

/// Most job ends recorded in one transaction.
const MAX_BATCH: usize = 256;

struct Pending {
    id: String,
    attempt: i64,
    end: JobEnd,
    reply: oneshot::Sender<Option<Finished>>,
}

pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommit {
    /// Starts the committing task; it ends when this handle is dropped.
    pub fn start(store: DynStore) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(commit_loop(store, waiting));
        Self { queue }
    }

    /// Records one job's end, fenced by its attempt. `None` when the transaction failed
    /// (nothing of it was written).
    pub async fn record(&self, id: &str, attempt: i64, end: JobEnd) -> Option<Finished> {
        let (reply, outcome) = oneshot::channel();
        let pending = Pending {
            id: id.to_string(),
            attempt,
            end,
            reply,
        };
        self.queue.send(pending).ok()?;
        outcome.await.ok().flatten()
    }
}

async fn commit_loop(store: DynStore, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
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
    }
}
