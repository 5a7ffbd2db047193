//! What the core (the engine, the sweeper and the demo) runs on: the store, platform storage,
//! volume access and the wake-ups between them. No HTTP here; the API's `AppState` holds these
//! services beside its own request-only parts.

pub mod files;
mod job_ends;
pub mod projects;
pub mod uploads;

use egress_core::error::{Code, SbgError};
use egress_core::secret_box::SecretBox;
use egress_core::volume::{ServiceKind, VolumePolicy};
use egress_storage::volume::{VolumeBackend, VolumeClients};
use egress_storage::DynObjectStore;
pub use job_ends::JobEnds;

use egress_store::{DynStore, VolumeRec};
use std::sync::Arc;
use tokio::sync::Notify;

pub struct Services {
    pub store: DynStore,
    pub platform: DynObjectStore,
    /// Wakes the sweeper after a commit that may have released platform bytes.
    pub sweep: Arc<Notify>,
    /// Wakes the engine when jobs are submitted.
    pub jobs: Arc<Notify>,
    /// Tells waiters when jobs end.
    pub job_ends: Arc<JobEnds>,
    /// Seals and opens volume credentials.
    pub secrets: SecretBox,
    pub volume_policy: VolumePolicy,
    pub volume_clients: VolumeClients,
}

/// Why a volume's backend could not be opened.
#[derive(Debug)]
pub enum VolumeAccessError {
    /// The stored secret could not be unsealed (a server fault, never the user's).
    Secret(anyhow::Error),
    /// The configured policy refuses a local volume's folder.
    LocalRefused(&'static str),
    /// The volume's service cannot be reached from this server (GCS).
    Unreachable(&'static str),
}

impl From<VolumeAccessError> for SbgError {
    fn from(e: VolumeAccessError) -> Self {
        match e {
            VolumeAccessError::Secret(e) => e.into(),
            VolumeAccessError::LocalRefused(why) => SbgError::new(
                Code::LocationInaccessible,
                format!("Location on volume is not accessible as configured: {why}."),
            ),
            VolumeAccessError::Unreachable(why) => {
                SbgError::new(Code::InvalidService, format!("{why}."))
            }
        }
    }
}

impl Services {
    /// The backend of a volume, with its secret unsealed; GCS volumes have none here.
    pub fn volume_backend(
        &self,
        v: &VolumeRec,
        secret: Option<&str>,
    ) -> Result<VolumeBackend, VolumeAccessError> {
        let unsealed;
        let secret = match secret {
            Some(s) => s,
            None => {
                unsealed = self
                    .secrets
                    .open(&v.secret, &v.id)
                    .map_err(VolumeAccessError::Secret)?;
                &unsealed
            }
        };
        self.volume_clients
            .backend(v, secret, &self.volume_policy)
            .map_err(|why| match v.service.kind {
                ServiceKind::Local => VolumeAccessError::LocalRefused(why),
                _ => VolumeAccessError::Unreachable(why),
            })
    }
}
