//! A read-only volume in an Azure Blob Storage container, through `object_store`'s Azure client:
//! listing, blob properties and reads. It signs in with the volume's Entra ID application (tenant
//! id, client id, client secret) at the server's authority host, or, for a storage account whose
//! shared key the operator gave the server (Azurite, development), with that key. Blobs are
//! served through Egress's own signed URLs.

use super::{
    read_only, CopyError, CopyIn, CopyProgress, Listing, ObjectInfo, VolumeBackend, VolumeError,
    VolumeErrorKind,
};
use crate::{ByteRange, ByteStream};
use async_trait::async_trait;
use egress_core::volume::Service;
use futures_util::{StreamExt, TryStreamExt};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, ObjectMeta, ObjectStore, RetryConfig};
use serde_json::{Map, Value};
use std::time::Duration;

/// Microsoft Entra ID's authority host, used when the server names no other.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

pub(super) struct AzureVolume {
    store: MicrosoftAzure,
}

impl AzureVolume {
    /// `secret` is the client secret; `shared_key` the account key when the operator gave one.
    pub(super) fn open(
        service: &Service,
        secret: &str,
        authority_host: &str,
        shared_key: Option<&str>,
    ) -> Result<Self, &'static str> {
        let account = &service.account;
        let endpoint = service.endpoint.trim_end_matches('/');
        // An account host (`<account>.blob.core.windows.net`) is the account's URL; any other
        // endpoint (an emulator) serves accounts by path.
        let own_host = endpoint
            .split("://")
            .nth(1)
            .is_some_and(|h| h.starts_with(&format!("{account}.")));
        let url = if own_host {
            endpoint.to_string()
        } else {
            format!("{endpoint}/{account}")
        };
        let options = ClientOptions::new()
            .with_allow_http(endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(120));
        let retry = RetryConfig {
            max_retries: 2,
            ..Default::default()
        };
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(account)
            .with_container_name(&service.bucket)
            .with_endpoint(url)
            .with_client_options(options)
            .with_retry(retry);
        builder = match shared_key {
            Some(key) => builder.with_access_key(key),
            None => builder
                .with_authority_host(if authority_host.is_empty() {
                    DEFAULT_AUTHORITY_HOST
                } else {
                    authority_host
                })
                .with_client_secret_authorization(
                    &service.credential_id,
                    secret,
                    &service.tenant_id,
                ),
        };
        let store = builder
            .build()
            .map_err(|_| "the Azure container cannot be addressed as configured")?;
        Ok(Self { store })
    }
}

fn path(key: &str) -> Path {
    Path::from(key)
}

fn classify(e: object_store::Error) -> VolumeError {
    use object_store::Error as E;
    use VolumeErrorKind as K;
    let text = e.to_string();
    let (kind, code) = match &e {
        E::NotFound { .. } => (K::NotFound, "NotFound"),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => (K::AccessDenied, "AccessDenied"),
        E::NotSupported { .. } | E::NotImplemented { .. } => (K::Unsupported, "NotSupported"),
        E::InvalidPath { .. } => (K::InvalidKey, "InvalidKey"),
        _ if text.contains("ContainerNotFound") => (K::NoSuchBucket, "ContainerNotFound"),
        _ if text.contains("AuthenticationFailed")
            || text.contains("AuthorizationFailure")
            || text.contains("403") =>
        {
            (K::AccessDenied, "AuthenticationFailed")
        }
        _ if text.contains("Client error") || text.contains("status 4") => (K::Other, "BadRequest"),
        _ => (K::Transient, "ServiceUnavailable"),
    };
    tracing::debug!(error = %text, "Azure call failed");
    VolumeError::new(kind, code)
}

fn info(meta: &ObjectMeta) -> ObjectInfo {
    let mut info = ObjectInfo::new(meta.location.to_string(), meta.size as i64);
    info.etag = meta.e_tag.clone();
    info.last_modified = Some(meta.last_modified.timestamp_millis());
    info
}

/// `object_store` paths carry no trailing `/`; a listing's prefix may.
fn prefix_path(prefix: &str) -> Option<Path> {
    let trimmed = prefix.trim_end_matches('/');
    (!trimmed.is_empty()).then(|| path(trimmed))
}

#[async_trait]
impl VolumeBackend for AzureVolume {
    async fn probe_read(&self, prefix: &str) -> Result<(), VolumeError> {
        let mut listing = self.store.list(prefix_path(prefix).as_ref());
        match listing.next().await {
            Some(Err(e)) => Err(classify(e)),
            _ => Ok(()),
        }
    }

    async fn probe_write(
        &self,
        _prefix: &str,
        _properties: &Map<String, Value>,
    ) -> Result<(), VolumeError> {
        Err(read_only())
    }

    /// The whole level at once: `object_store` follows Azure's pages itself.
    async fn list(
        &self,
        prefix: &str,
        _token: Option<&str>,
        _limit: i32,
    ) -> Result<Listing, VolumeError> {
        let result = self
            .store
            .list_with_delimiter(prefix_path(prefix).as_ref())
            .await
            .map_err(classify)?;
        // A prefix that is not a whole "folder" (`da` for `data/…`) filters the level.
        let objects = result
            .objects
            .iter()
            .map(info)
            .filter(|o| o.key.starts_with(prefix))
            .collect();
        let prefixes = result
            .common_prefixes
            .iter()
            .map(|p| format!("{p}/"))
            .filter(|p| p.starts_with(prefix))
            .collect();
        Ok(Listing {
            objects,
            prefixes,
            next_token: None,
        })
    }

    async fn list_recursive(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<ObjectInfo>, bool), VolumeError> {
        let limit = limit.max(1) as usize;
        let scope = prefix_path(prefix);
        let stream = match start_after {
            Some(after) => self.store.list_with_offset(scope.as_ref(), &path(after)),
            None => self.store.list(scope.as_ref()),
        };
        let mut objects: Vec<ObjectInfo> = stream
            .map_ok(|m| info(&m))
            .try_filter(|o| futures_util::future::ready(o.key.starts_with(prefix)))
            .take(limit + 1)
            .try_collect()
            .await
            .map_err(classify)?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let more = objects.len() > limit;
        objects.truncate(limit);
        Ok((objects, more))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, VolumeError> {
        let options = GetOptions::default().with_head(true);
        match self.store.get_opts(&path(key), options).await {
            Ok(found) => Ok(Some(info(&found.meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream, VolumeError> {
        let options =
            GetOptions::default().with_range(range.map(|r| r.start..r.end.saturating_add(1)));
        let found = self
            .store
            .get_opts(&path(key), options)
            .await
            .map_err(classify)?;
        Ok(Box::pin(found.into_stream().map_err(std::io::Error::other)))
    }

    async fn copy_in(
        &self,
        _req: &CopyIn<'_>,
        _progress: &dyn CopyProgress,
    ) -> Result<(), CopyError> {
        Err(CopyError::Volume(read_only()))
    }
}
