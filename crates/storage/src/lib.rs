//! Object storage: the platform's own storage (a local folder or an S3 bucket), and checksums.

pub mod activity;
mod checksum;
mod local;
pub mod local_root;
mod s3;
pub mod volume;

pub use checksum::{Checksums, Hasher};
pub use local::LocalStore;
pub use s3::{build_client, S3Location, S3Store};

use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An inclusive byte range, as HTTP `Range` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn length(&self) -> u64 {
        self.end - self.start + 1
    }
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Writes the whole stream under `key` durably, replacing what was there. Returns the size.
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64>;
    /// Reads `key`, or one inclusive range of it.
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream>;
    /// Deletes `key`. Deleting a missing key succeeds, so callers may retry freely.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Deletes several keys, as `delete` does each. Every key is tried; the first failure is
    /// returned.
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let mut first_failure = None;
        for key in keys {
            if let Err(e) = self.delete(key).await {
                first_failure.get_or_insert(e);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
    /// Whether `key` exists (tests and sweeps use it).
    async fn exists(&self, key: &str) -> Result<bool>;
    /// Where `key` lives when this store is an S3 bucket, so a volume on the same endpoint
    /// can copy it server-side.
    fn s3_source(&self, _key: &str) -> Option<S3Source> {
        None
    }
}

/// An object in an S3 bucket, as a CopyObject source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Source {
    /// Normalized `scheme://host[:port]`.
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
}

pub type DynObjectStore = Arc<dyn ObjectStore>;

/// Opens platform storage from `--platform-storage`: `s3://bucket/prefix?endpoint=…&region=…`,
/// `file:///path`, or a plain folder path.
pub async fn open_platform(spec: &str) -> Result<DynObjectStore> {
    if spec.starts_with("s3://") {
        let location = S3Location::parse(spec)?;
        Ok(Arc::new(S3Store::from_env(location)?))
    } else {
        let path = spec.strip_prefix("file://").unwrap_or(spec);
        Ok(Arc::new(LocalStore::open(path).await?))
    }
}

/// Where a blob's bytes live in platform storage.
pub fn blob_key(blob_id: &str) -> String {
    format!("blobs/{blob_id}")
}

/// Where a multipart upload keeps a part until the upload completes.
pub fn part_key(upload_id: &str, part_number: i64) -> String {
    format!("uploads/{upload_id}/{part_number:05}")
}
