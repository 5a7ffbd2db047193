//! A volume in a local folder, reached only through `LocalRoot` (see `blob::local_root`).
//! Every file-system call runs on the blocking pool; its failure is classified by `io_error`.

use super::{
    off_thread, CopyError, CopyIn, CopyProgress, Listing, ObjectInfo, VolumeBackend, VolumeError,
    VolumeErrorKind,
};
use crate::local_root::{self, Entry, LocalRoot};
use crate::{ByteRange, ByteStream, Hasher};
use async_trait::async_trait;
use egress_core::volume::{object_key, Service, VolumePolicy};
use futures_util::StreamExt;
use serde_json::{Map, Value};

/// Classifies a local volume's file-system error.
fn io_error(e: std::io::Error) -> VolumeError {
    use VolumeErrorKind as K;
    let (kind, code) = match e.kind() {
        _ if local_root::is_escape(&e) => (K::InvalidKey, "OutsideRoot"),
        std::io::ErrorKind::NotFound => (K::NotFound, "NoSuchKey"),
        std::io::ErrorKind::PermissionDenied => (K::AccessDenied, "AccessDenied"),
        std::io::ErrorKind::Unsupported => (K::InvalidKey, "NotARegularFile"),
        std::io::ErrorKind::InvalidInput => (K::InvalidKey, "InvalidKey"),
        _ => (K::Other, "IoError"),
    };
    VolumeError::new(kind, code)
}

/// A failure while writing an export: a folder that vanished meanwhile, or an I/O error, may
/// pass on another attempt; refused paths and special files are the user's to fix.
fn write_error(e: std::io::Error) -> CopyError {
    let failure = io_error(e);
    match failure.kind {
        VolumeErrorKind::NotFound | VolumeErrorKind::Other => CopyError::Volume(VolumeError::new(
            VolumeErrorKind::Transient,
            format!("local volume: {failure}"),
        )),
        _ => CopyError::Volume(failure),
    }
}

/// Runs a file-system call on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, VolumeError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(io_error),
        Err(e) => Err(io_error(std::io::Error::other(e))),
    }
}

pub(super) struct LocalVolume {
    root: LocalRoot,
}

impl LocalVolume {
    /// The volume's folder, checked against the policy at every use, not only when the volume
    /// was made; the answer says why not, when it may not be used.
    pub(super) fn open(service: &Service, policy: &VolumePolicy) -> Result<Self, &'static str> {
        match local_root::resolve(&service.root, policy) {
            // Resolving again must land on the same folder: a symlink planted on the way since
            // the volume was made does not move it.
            Ok(root) if root.path() == std::path::Path::new(&service.root) => Ok(Self { root }),
            Ok(_) => Err("the local volume's folder has moved; it is no longer served"),
            Err(why) => Err(why),
        }
    }

    /// Writes the blob to a synced temporary file, then gives it its name: a hard link (which
    /// refuses an existing name, for `overwrite=false`) or a rename (which replaces it). The
    /// bytes are hashed on the way and must match the file's MD5.
    async fn write(&self, req: &CopyIn<'_>, md5: &str) -> Result<(), CopyError> {
        use tokio::io::AsyncWriteExt;
        let (file, temp) = {
            let (root, key) = (self.root.clone(), req.key.to_string());
            off_thread(move || root.create_temp(&key))
                .await?
                .map_err(write_error)?
        };
        let written = async {
            let mut file = tokio::fs::File::from_std(file);
            let mut hasher = Hasher::new();
            if req.size > 0 {
                let mut stream = req
                    .platform
                    .get(req.blob_key, None)
                    .await
                    .map_err(CopyError::platform)?;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(write_error)?;
                    hasher.update(&chunk);
                    file.write_all(&chunk).await.map_err(write_error)?;
                }
            }
            file.sync_all().await.map_err(write_error)?;
            if hasher.finish().md5 != md5 {
                return Err(CopyError::Corrupt);
            }
            Ok(())
        }
        .await;
        let overwrite = req.overwrite;
        match written {
            Ok(()) => match off_thread(move || temp.publish(overwrite)).await? {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(CopyError::Exists),
                other => other.map_err(write_error),
            },
            Err(e) => {
                let _ = off_thread(move || temp.discard()).await;
                Err(e)
            }
        }
    }

    /// Does the object at `key` hold exactly these bytes? Sizes are compared first, and the
    /// file is hashed as a stream, so an object of any size costs a fixed amount of memory.
    async fn holds(&self, key: &str, size: u64, md5: &str) -> bool {
        let (root, key, md5) = (self.root.clone(), key.to_string(), md5.to_string());
        // Reading and hashing in one blocking task: one hop off the background thread, not two.
        let same = off_thread(move || -> std::io::Result<bool> {
            use std::io::Read;
            let mut file = root.open_file(&key)?;
            if file.metadata()?.len() != size {
                return Ok(false);
            }
            let mut hasher = <md5::Md5 as md5::Digest>::new();
            let mut buf = vec![0; 1 << 20];
            loop {
                match file.read(&mut buf)? {
                    0 => break,
                    n => md5::Digest::update(&mut hasher, &buf[..n]),
                }
            }
            Ok(hex::encode(md5::Digest::finalize(hasher)) == md5)
        });
        matches!(same.await, Ok(Ok(true)))
    }
}

#[async_trait]
impl VolumeBackend for LocalVolume {
    async fn probe_read(&self, _prefix: &str) -> Result<(), VolumeError> {
        let root = self.root.clone();
        blocking(move || root.check()).await
    }

    async fn probe_write(
        &self,
        prefix: &str,
        _properties: &Map<String, Value>,
    ) -> Result<(), VolumeError> {
        let (root, key) = (self.root.clone(), super::probe_key(prefix));
        blocking(move || {
            use std::io::Write;
            let (mut file, probe) = root.create_temp(&key)?;
            let written = file.write_all(b"egress");
            probe.discard();
            written
        })
        .await
    }

    /// A delimited listing of one folder, in key order, paged by the last key returned.
    async fn list(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: i32,
    ) -> Result<Listing, VolumeError> {
        let limit = limit as usize;
        let (dir_key, name_prefix) = match prefix.rfind('/') {
            Some(i) => (prefix[..i].to_string(), prefix[i + 1..].to_string()),
            None => (String::new(), prefix.to_string()),
        };
        let entries = {
            let (root, dir_key) = (self.root.clone(), dir_key.clone());
            blocking(move || root.read_dir(&dir_key)).await?
        };
        let mut found: Vec<(String, Option<ObjectInfo>)> = Vec::new();
        for (name, entry) in entries.unwrap_or_default() {
            if !name.starts_with(&name_prefix) || name.starts_with(".egress-") {
                continue;
            }
            let key = object_key(&dir_key, &name);
            match entry {
                Entry::Folder => found.push((format!("{key}/"), None)),
                Entry::File { size, modified_ms } => {
                    let mut info = ObjectInfo::new(key.clone(), size as i64);
                    info.last_modified = modified_ms;
                    found.push((key, Some(info)));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let mut listing = Listing::default();
        let after = token.unwrap_or("");
        for (taken, (key, info)) in found
            .into_iter()
            .filter(|(k, _)| k.as_str() > after)
            .enumerate()
        {
            if taken == limit {
                listing.next_token = listing
                    .objects
                    .last()
                    .map(|o| o.key.clone())
                    .max(listing.prefixes.last().cloned());
                break;
            }
            match info {
                Some(i) => listing.objects.push(i),
                None => listing.prefixes.push(key),
            }
        }
        Ok(listing)
    }

    async fn list_recursive(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<ObjectInfo>, bool), VolumeError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        let start_after = start_after.map(str::to_string);
        let mut keys = blocking(move || {
            let mut keys = Vec::new();
            let mut stack = vec![String::new()];
            while let Some(dir) = stack.pop() {
                for (name, entry) in root.read_dir(&dir)?.unwrap_or_default() {
                    let key = object_key(&dir, &name);
                    match entry {
                        Entry::Folder => stack.push(key),
                        Entry::File { .. } if name.starts_with(".egress-") => {}
                        Entry::File { .. }
                            if !key.starts_with(&prefix)
                                || start_after.as_ref().is_some_and(|s| &key <= s) => {}
                        Entry::File { size, modified_ms } => {
                            let mut info = ObjectInfo::new(key, size as i64);
                            info.last_modified = modified_ms;
                            keys.push(info);
                        }
                    }
                }
            }
            Ok(keys)
        })
        .await?;
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        let more = keys.len() > limit as usize;
        keys.truncate(limit as usize);
        Ok((keys, more))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, VolumeError> {
        let (root, owned_key) = (self.root.clone(), key.to_string());
        match blocking(move || root.stat(&owned_key)).await? {
            Some(Entry::File { size, modified_ms }) => {
                let mut info = ObjectInfo::new(key.to_string(), size as i64);
                info.last_modified = modified_ms;
                Ok(Some(info))
            }
            Some(Entry::Folder) | None => Ok(None),
        }
    }

    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream, VolumeError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let (root, key) = (self.root.clone(), key.to_string());
        let mut file = tokio::fs::File::from_std(blocking(move || root.open_file(&key)).await?);
        Ok(match range {
            None => Box::pin(tokio_util::io::ReaderStream::new(file)),
            Some(r) => {
                file.seek(std::io::SeekFrom::Start(r.start))
                    .await
                    .map_err(io_error)?;
                Box::pin(tokio_util::io::ReaderStream::new(file.take(r.length())))
            }
        })
    }

    /// A local write reports its bytes once, when it is done.
    async fn copy_in(
        &self,
        req: &CopyIn<'_>,
        progress: &dyn CopyProgress,
    ) -> Result<(), CopyError> {
        let md5 = req.md5.unwrap_or_default();
        match self.write(req, md5).await {
            Ok(()) => progress.bytes_copied(req.size).await,
            // The same bytes are already there: a retry of ours (or a twin); done.
            Err(CopyError::Exists) if self.holds(req.key, req.size, md5).await => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalStore, ObjectStore};
    use egress_core::volume::ServiceKind;
    use std::sync::Mutex;
    use tokio::sync::Semaphore;

    /// Remembers what a copy reported.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<u64>>);

    #[async_trait]
    impl CopyProgress for Recorded {
        async fn bytes_copied(&self, bytes: u64) -> Result<(), CopyError> {
            self.0.lock().unwrap().push(bytes);
            Ok(())
        }
        async fn upload_intent(&self, _open: &[String]) -> Result<(), CopyError> {
            unreachable!("a local write opens no multipart upload")
        }
        async fn upload_started(&self, _upload_id: &str) -> Result<(), CopyError> {
            unreachable!("a local write opens no multipart upload")
        }
        async fn upload_ended(&self) {}
    }

    fn body(bytes: &'static [u8]) -> ByteStream {
        Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from_static(
            bytes,
        ))]))
    }

    #[tokio::test]
    async fn copies_in_and_keeps_what_another_writer_left() {
        let platform_dir = tempfile::tempdir().unwrap();
        let platform = LocalStore::open(platform_dir.path()).await.unwrap();
        platform.put("blobs/a", body(b"hello")).await.unwrap();
        let folder = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(folder.path()).unwrap();
        let policy = VolumePolicy {
            local_roots: vec![root.clone()],
            ..Default::default()
        };
        let service = Service {
            kind: ServiceKind::Local,
            bucket: String::new(),
            prefix: String::new(),
            endpoint: String::new(),
            region: String::new(),
            credential_id: String::new(),
            root: root.display().to_string(),
            properties: Map::new(),
            ..Default::default()
        };
        let volume = LocalVolume::open(&service, &policy).unwrap();
        let limits = crate::volume::CopyLimits {
            multipart_cutoff: 0,
            part_size: 0,
            part_parallelism: 1,
            buffers: Semaphore::new(1),
        };
        let properties = Map::new();
        let md5 = "5d41402abc4b2a76b9719d911017c592";
        let request = |key, md5| CopyIn {
            platform: &platform,
            blob_key: "blobs/a",
            size: 5,
            md5: Some(md5),
            crc32c: None,
            key,
            properties: &properties,
            overwrite: false,
            export_id: "e1",
            limits: &limits,
        };
        let progress = Recorded::default();
        volume
            .copy_in(&request("d/x.txt", md5), &progress)
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("d/x.txt")).unwrap(), b"hello");
        assert_eq!(*progress.0.lock().unwrap(), [5]);
        // The same bytes again: a retry of ours; done.
        volume
            .copy_in(&request("d/x.txt", md5), &progress)
            .await
            .unwrap();
        // Other bytes at the key: left alone.
        std::fs::write(root.join("other.txt"), b"HELLO").unwrap();
        let taken = volume.copy_in(&request("other.txt", md5), &progress).await;
        assert!(matches!(taken, Err(CopyError::Exists)), "{taken:?}");
        // A blob that does not match its checksum is never published.
        let corrupt = volume
            .copy_in(
                &request("y.txt", "00000000000000000000000000000000"),
                &progress,
            )
            .await;
        assert!(matches!(corrupt, Err(CopyError::Corrupt)), "{corrupt:?}");
        assert!(volume.head("y.txt").await.unwrap().is_none());
    }
}
