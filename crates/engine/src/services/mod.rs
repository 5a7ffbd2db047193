//! What the core (the engine, the sweeper and the demo) runs on: the store, platform storage,
//! volume access and the wake-ups between them. No HTTP here; the API's `AppState` holds these
//! services beside its own request-only parts.

pub mod files;
mod job_ends;
pub mod projects;
pub mod uploads;

use egress_core::error::{Code, SbgError};
use egress_core::secret_box::SecretBox;
use egress_storage::volume::{OpenError, VolumeBackend, VolumeClients};
use egress_storage::DynObjectStore;
pub use job_ends::JobEnds;

use egress_core::volume::VolumePolicy;
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
    /// Wakes the engine's file job runner when async file jobs are submitted.
    pub file_jobs: Arc<Notify>,
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
    /// The backend could not be opened: the policy refuses the volume's folder, or its kind
    /// cannot be reached from this server (GCS).
    Open(OpenError),
}

impl From<VolumeAccessError> for SbgError {
    fn from(e: VolumeAccessError) -> Self {
        match e {
            VolumeAccessError::Secret(e) => e.into(),
            VolumeAccessError::Open(OpenError::Refused(why)) => SbgError::new(
                Code::LocationInaccessible,
                format!("Location on volume is not accessible as configured: {why}."),
            ),
            VolumeAccessError::Open(OpenError::Unreachable(why)) => {
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
    ) -> Result<Arc<dyn VolumeBackend>, VolumeAccessError> {
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
            .open(v, secret, &self.volume_policy)
            .map_err(VolumeAccessError::Open)
    }
}
