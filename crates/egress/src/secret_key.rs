//! The server key: signs transfer URLs and (with volumes) encrypts credentials at rest.
//! Taken from `--secret-key-file` or `EGRESS_SECRET_KEY` (64 hex characters); without either, a
//! key file is generated in the data dir with 0600 permissions on first start.

use anyhow::{bail, Context, Result};
use std::path::Path;

pub const KEY_FILE_NAME: &str = "secret.key";

pub struct SecretKey(pub [u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

fn decode(text: &str) -> Result<SecretKey> {
    let bytes = hex::decode(text.trim()).context("the secret key must be 64 hex characters")?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the secret key must be 32 bytes (64 hex characters)"))?;
    Ok(SecretKey(key))
}

pub fn load(data_dir: &Path, key_file: Option<&Path>, key_env: Option<&str>) -> Result<SecretKey> {
    if let Some(text) = key_env {
        return decode(text);
    }
    if let Some(path) = key_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return decode(&text);
    }
    let path = data_dir.join(KEY_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => decode(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn create(path: &Path) -> Result<SecretKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = egress_core::util::random_hex(32);
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return decode(&std::fs::read_to_string(path)?);
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    if text.len() != 64 {
        bail!("generated key has the wrong length");
    }
    decode(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let first = load(dir.path(), None, None).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path(), None, None).unwrap().0, first.0);
    }

    #[test]
    fn operator_keys_win_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let hex64 = "ab".repeat(32);
        assert_eq!(load(dir.path(), None, Some(&hex64)).unwrap().0, [0xab; 32]);
        assert!(load(dir.path(), None, Some("short")).is_err());
        assert!(!dir.path().join(KEY_FILE_NAME).exists());
    }
}
