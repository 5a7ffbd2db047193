//! Signed, expiring URLs for transfers that carry no token: downloads and upload parts.

use crate::error::{ApiError, ApiResult, Code};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub struct UrlSigner {
    key: [u8; 32],
}

impl UrlSigner {
    /// Derives a key of its own from the server key, so URL signatures reveal nothing about it.
    pub fn new(server_key: &[u8; 32]) -> Self {
        let mut mac = HmacSha256::new_from_slice(server_key).expect("any key length works");
        mac.update(b"egress url signing v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, purpose: &str, subject: &str, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length works");
        mac.update(format!("{purpose}\n{subject}\n{expires}").as_bytes());
        mac
    }

    pub fn sign(&self, purpose: &str, subject: &str, expires: i64) -> String {
        hex::encode(self.mac(purpose, subject, expires).finalize().into_bytes())
    }

    /// Checks a signature (in constant time) and its expiry (Unix seconds).
    pub fn verify(
        &self,
        purpose: &str,
        subject: &str,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> ApiResult<()> {
        let denied = || {
            ApiError::new(
                Code::Forbidden,
                "The URL signature is invalid or has expired.",
            )
        };
        let sig = hex::decode(signature).map_err(|_| denied())?;
        self.mac(purpose, subject, expires)
            .verify_slice(&sig)
            .map_err(|_| denied())?;
        if now > expires {
            return Err(denied());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_purpose_subject_and_expiry() {
        let s = UrlSigner::new(&[7; 32]);
        let sig = s.sign("download", "f1", 100);
        assert!(s.verify("download", "f1", 100, &sig, 50).is_ok());
        assert!(
            s.verify("download", "f1", 100, &sig, 101).is_err(),
            "expired"
        );
        assert!(
            s.verify("download", "f2", 100, &sig, 50).is_err(),
            "other file"
        );
        assert!(
            s.verify("upload", "f1", 100, &sig, 50).is_err(),
            "other purpose"
        );
        assert!(
            s.verify("download", "f1", 200, &sig, 50).is_err(),
            "extended expiry"
        );
        assert!(
            s.verify("download", "f1", 100, "zz", 50).is_err(),
            "not hex"
        );
        assert!(
            UrlSigner::new(&[8; 32])
                .verify("download", "f1", 100, &sig, 50)
                .is_err(),
            "other key"
        );
    }
}
