//! MD5 and CRC32C computed as bytes stream past, so every platform file carries both.

use base64::Engine;
use md5::{Digest, Md5};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksums {
    pub size: u64,
    /// Lowercase hex, as SBG's `md5_sum`.
    pub md5: String,
    /// Base64 of the big-endian CRC32C, as S3's `ChecksumCRC32C`, so exports can compare directly.
    pub crc32c: String,
}

#[derive(Default, Clone)]
pub struct Hasher {
    md5: Md5,
    crc32c: u32,
    size: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.crc32c = crc32c::crc32c_append(self.crc32c, data);
        self.size += data.len() as u64;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn finish(self) -> Checksums {
        Checksums {
            size: self.size,
            md5: hex::encode(self.md5.finalize()),
            crc32c: base64::engine::general_purpose::STANDARD.encode(self.crc32c.to_be_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut h = Hasher::new();
        h.update(b"hello ");
        h.update(b"world");
        let sums = h.finish();
        assert_eq!(sums.size, 11);
        assert_eq!(sums.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        // CRC32C("hello world") = 0xc99465aa
        assert_eq!(sums.crc32c, "yZRlqg==");
        assert_eq!(
            Hasher::new().finish().md5,
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
