//! A local volume's folder, reached only through `openat2` with `RESOLVE_BENEATH` and
//! `RESOLVE_NO_SYMLINKS`: the kernel refuses any key that would leave the root, by `..` or through
//! a symlink, whatever the folder holds at the moment of the call. The root itself is opened from
//! `/` with no symlink allowed on the way, so it stays the folder that was checked when the volume
//! was created. Only regular files and folders are served: FIFOs, devices, sockets and symlinks are
//! refused, and left out of listings.

use egress_core::volume::VolumePolicy;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// What a key names, when it names something a volume may serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File { size: u64, modified_ms: Option<i64> },
    Folder,
}

/// A new file in a folder of the volume, written under a temporary name and then published.
pub struct TempFile {
    dir: OwnedFd,
    temp_name: String,
    name: String,
}

/// Resolves a local volume's root (symlinks included) and checks it against the policy; the
/// answer says why not, when it may not be used.
pub fn resolve(root: &str, policy: &VolumePolicy) -> Result<LocalRoot, &'static str> {
    let path = Path::new(root);
    if !path.is_absolute() {
        return Err("root must be an absolute path");
    }
    let resolved = std::fs::canonicalize(path)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or("root must be an existing folder")?;
    match policy.refuse_local_root(&resolved) {
        Some(why) => Err(why),
        None => Ok(LocalRoot::new(resolved)),
    }
}

/// A special file: a FIFO, device, socket or symlink.
pub fn not_a_regular_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "not a regular file (FIFOs, devices, sockets and symlinks are refused)",
    )
}

/// True for the errors `openat2` gives when a path would leave the root or meets a symlink.
pub fn is_escape(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::XDEV | Errno::LOOP)
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRoot {
    path: PathBuf,
}

impl LocalRoot {
    /// `path` must be absolute and canonical (the volume's checked root).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_root(&self) -> io::Result<OwnedFd> {
        let slash = rfs::open("/", OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let rel = self
            .path
            .strip_prefix("/")
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the root is not absolute"))?;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        Ok(rfs::openat2(
            &slash,
            rel,
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )?)
    }

    /// Opens the folder `dir_key` ("" is the root) below an open root.
    fn open_dir(root: &OwnedFd, dir_key: &str) -> io::Result<OwnedFd> {
        let rel = if dir_key.is_empty() {
            "."
        } else {
            check_key(dir_key)?
        };
        Ok(rfs::openat2(
            root,
            rel,
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
            BENEATH,
        )?)
    }

    /// Is the root an existing folder we can open?
    pub fn check(&self) -> io::Result<()> {
        self.open_root().map(drop)
    }

    /// Opens a regular file for reading. `O_NONBLOCK` keeps a FIFO from blocking the open.
    pub fn open_file(&self, key: &str) -> io::Result<File> {
        let root = self.open_root()?;
        let fd = rfs::openat2(
            &root,
            check_key(key)?,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
            BENEATH,
        )?;
        if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::RegularFile {
            return Err(not_a_regular_file());
        }
        Ok(File::from(fd))
    }

    /// What `key` names: `None` when nothing is there; an error for a special file.
    pub fn stat(&self, key: &str) -> io::Result<Option<Entry>> {
        let root = self.open_root()?;
        let fd = match rfs::openat2(
            &root,
            check_key(key)?,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        entry_of(&rfs::fstat(&fd)?).map(Some)
    }

    /// The regular files and folders directly in `dir_key`, by name; `None` if it does not
    /// exist. Special files and names that are not UTF-8 are left out.
    pub fn read_dir(&self, dir_key: &str) -> io::Result<Option<Vec<(String, Entry)>>> {
        let root = self.open_root()?;
        let dir = match Self::open_dir(&root, dir_key) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for item in rfs::Dir::read_from(&dir)? {
            let item = item?;
            let Ok(name) = item.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let Ok(stat) = rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if let Ok(entry) = entry_of(&stat) {
                out.push((name.to_string(), entry));
            }
        }
        Ok(Some(out))
    }

    /// Creates a temporary file beside `key`, making the folders on the way; the file is
    /// returned open for writing.
    pub fn create_temp(&self, key: &str) -> io::Result<(File, TempFile)> {
        let (dir_key, name) = split_key(check_key(key)?);
        let mut dir = self.open_root()?;
        for part in dir_key.split('/').filter(|p| !p.is_empty()) {
            match rfs::mkdirat(&dir, part, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            dir = rfs::openat2(
                &dir,
                part,
                OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
                Mode::empty(),
                BENEATH,
            )?;
        }
        let temp_name = format!(".egress-tmp-{}", egress_core::util::random_hex(8));
        let fd = rfs::openat2(
            &dir,
            temp_name.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
            BENEATH,
        )?;
        let temp = TempFile {
            dir,
            temp_name,
            name: name.to_string(),
        };
        Ok((File::from(fd), temp))
    }
}

impl TempFile {
    /// Gives the file its name: a rename replaces what was there, a hard link refuses an
    /// existing name (`AlreadyExists`). Neither follows a symlink at the name.
    pub fn publish(self, overwrite: bool) -> io::Result<()> {
        let result = if overwrite {
            rfs::renameat(&self.dir, &self.temp_name, &self.dir, &self.name)
        } else {
            rfs::linkat(
                &self.dir,
                &self.temp_name,
                &self.dir,
                &self.name,
                AtFlags::empty(),
            )
        };
        let _ = rfs::unlinkat(&self.dir, &self.temp_name, AtFlags::empty());
        result.map_err(io::Error::from)
    }

    /// Removes the temporary file unpublished.
    pub fn discard(self) {
        let _ = rfs::unlinkat(&self.dir, &self.temp_name, AtFlags::empty());
    }
}

fn entry_of(stat: &rfs::Stat) -> io::Result<Entry> {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok(Entry::File {
            size: stat.st_size as u64,
            modified_ms: Some(stat.st_mtime * 1000 + stat.st_mtime_nsec as i64 / 1_000_000),
        }),
        FileType::Directory => Ok(Entry::Folder),
        _ => Err(not_a_regular_file()),
    }
}

/// A key is relative, with only normal segments (no `.`, `..` or empty ones).
fn check_key(key: &str) -> io::Result<&str> {
    let normal = !key.is_empty()
        && !key.contains("//")
        && !key.ends_with('/')
        && Path::new(key)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if normal {
        Ok(key)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the key has an absolute, empty, '.' or '..' segment",
        ))
    }
}

fn split_key(key: &str) -> (&str, &str) {
    match key.rfind('/') {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => ("", key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir, LocalRoot) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.key"), b"secret").unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        std::fs::write(root.path().join("d/ok.txt"), b"ok").unwrap();
        let canonical = std::fs::canonicalize(root.path()).unwrap();
        (root, outside, LocalRoot::new(canonical))
    }

    #[test]
    fn reads_stay_inside_the_root() {
        let (root, outside, local) = setup();
        let mut text = String::new();
        local
            .open_file("d/ok.txt")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "ok");
        symlink(outside.path().join("secret.key"), root.path().join("link")).unwrap();
        symlink(outside.path(), root.path().join("dirlink")).unwrap();
        for key in ["link", "dirlink/secret.key"] {
            let err = local.open_file(key).unwrap_err();
            assert!(is_escape(&err), "{key}: {err}");
            assert!(local.stat(key).is_err(), "{key}");
        }
        for key in [
            "../x",
            "/etc/passwd",
            "d/../d/ok.txt",
            "",
            "d//ok.txt",
            "./d",
        ] {
            assert!(local.open_file(key).is_err(), "{key}");
        }
        let names: Vec<String> = local
            .read_dir("")
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["d"], "symlinks are left out of listings");
        assert!(local.read_dir("dirlink").is_err());
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let (root, _outside, local) = setup();
        let fifo = root.path().join("fifo");
        rfs::mknodat(
            rfs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = local.open_file("fifo").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        assert!(local.stat("fifo").is_err());
        assert!(local
            .read_dir("")
            .unwrap()
            .unwrap()
            .iter()
            .all(|(n, _)| n != "fifo"));
    }

    #[test]
    fn writes_publish_inside_the_root_only() {
        let (root, outside, local) = setup();
        let (mut f, t) = local.create_temp("new/deep/file.txt").unwrap();
        f.write_all(b"hello").unwrap();
        t.publish(false).unwrap();
        assert_eq!(
            std::fs::read(root.path().join("new/deep/file.txt")).unwrap(),
            b"hello"
        );
        let (_, t) = local.create_temp("new/deep/file.txt").unwrap();
        assert_eq!(
            t.publish(false).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        // A folder that is a symlink to elsewhere is never written through.
        symlink(outside.path(), root.path().join("out")).unwrap();
        assert!(local.create_temp("out/evil.txt").is_err());
        assert!(!outside.path().join("evil.txt").exists());
        // Publishing over a symlink replaces the link, never the file it points at.
        symlink(outside.path().join("secret.key"), root.path().join("over")).unwrap();
        let (mut f, t) = local.create_temp("over").unwrap();
        f.write_all(b"mine").unwrap();
        t.publish(true).unwrap();
        assert_eq!(
            std::fs::read(outside.path().join("secret.key")).unwrap(),
            b"secret"
        );
        let leftovers = std::fs::read_dir(root.path().join("new/deep"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn a_root_behind_a_symlink_is_refused() {
        let (root, _outside, _) = setup();
        let parent = tempfile::tempdir().unwrap();
        let link = parent.path().join("root-link");
        symlink(root.path(), &link).unwrap();
        let local = LocalRoot::new(
            std::fs::canonicalize(parent.path())
                .unwrap()
                .join("root-link"),
        );
        assert!(is_escape(&local.check().unwrap_err()));
    }
}
