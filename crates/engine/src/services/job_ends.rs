//! A signal that jobs ended in this process, for whoever waits on jobs without polling the store
//! (the test harness today). It carries no data: a waiter looks at the jobs it cares about again.

use tokio::sync::watch;

/// Counts job ends recorded by this process.
pub struct JobEnds(watch::Sender<u64>);

impl Default for JobEnds {
    fn default() -> Self {
        Self(watch::Sender::new(0))
    }
}

impl JobEnds {
    /// Tells the waiters that one or more jobs ended.
    pub fn record(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every `record` made after this call.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
