//! Prometheus metrics at `/metrics`: jobs by state, claim-to-finish latency, bytes copied,
//! retries and failures by class, S3 requests by operation and outcome, platform bytes held
//! per project and bytes freed by exports.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (tests start many servers in one process).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
    })
}

/// Records gauges read from the store, then renders everything.
pub async fn render(store: &egress_store::DynStore) -> anyhow::Result<String> {
    for (state, count) in store.export_state_counts().await? {
        metrics::gauge!("egress_export_jobs", "state" => state).set(count as f64);
    }
    for (project, bytes) in store.platform_bytes().await? {
        metrics::gauge!("egress_platform_bytes", "project" => project).set(bytes as f64);
    }
    Ok(handle().render())
}
