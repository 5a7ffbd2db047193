//! Platform storage in a local folder. Writes go to a temporary file that is synced and then
//! renamed into place, so a crash never leaves a half-written object under its key.

use super::{ByteRange, ByteStream, ObjectStore};
use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub async fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        tokio::fs::create_dir_all(&root)
            .await
            .with_context(|| format!("creating platform storage folder {}", root.display()))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps a key to a path under the root; keys never climb out of it.
    fn path(&self, key: &str) -> Result<PathBuf> {
        let relative = Path::new(key);
        if key.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            bail!("invalid storage key");
        }
        Ok(self.root.join(relative))
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64> {
        let path = self.path(key)?;
        let dir = path.parent().context("key has no folder")?.to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        let tmp = dir.join(format!(".tmp-{}", egress_core::util::random_hex(8)));
        let result: Result<u64> = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await?;
                written += chunk.len() as u64;
            }
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&tmp, &path).await?;
            tokio::fs::File::open(&dir).await?.sync_all().await?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream> {
        let mut file = tokio::fs::File::open(self.path(key)?).await?;
        match range {
            None => Ok(Box::pin(ReaderStream::new(file))),
            Some(r) => {
                file.seek(SeekFrom::Start(r.start)).await?;
                Ok(Box::pin(ReaderStream::new(file.take(r.length()))))
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(tokio::fs::try_exists(self.path(key)?).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<std::io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn read_all(mut s: ByteStream) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn put_get_range_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        assert_eq!(
            store
                .put("blobs/a", body(&[b"hello ", b"world"]))
                .await
                .unwrap(),
            11
        );
        assert_eq!(
            read_all(store.get("blobs/a", None).await.unwrap()).await,
            b"hello world"
        );
        let r = ByteRange { start: 6, end: 10 };
        assert_eq!(
            read_all(store.get("blobs/a", Some(r)).await.unwrap()).await,
            b"world"
        );
        store.delete("blobs/a").await.unwrap();
        store.delete("blobs/a").await.unwrap();
        assert!(!store.exists("blobs/a").await.unwrap());
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        for key in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(store.put(key, body(&[b"x"])).await.is_err(), "{key}");
        }
    }
}
