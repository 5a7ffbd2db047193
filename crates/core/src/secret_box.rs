//! Volume credentials at rest: AES-256-GCM under a key derived from the server key. Each value
//! gets a fresh nonce and is bound to its volume id, so a ciphertext cannot be moved to another.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{anyhow, Result};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const NONCE_LEN: usize = 12;

pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl SecretBox {
    pub fn new(server_key: &[u8; 32]) -> Self {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(server_key).expect("any key length works");
        mac.update(b"egress credentials v1");
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        Self {
            cipher: Aes256Gcm::new(&key.into()),
        }
    }

    /// `nonce || ciphertext`, bound to `context` (the volume id).
    pub fn seal(&self, plaintext: &str, context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("encryption with a valid key cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<String> {
        if sealed.len() < NONCE_LEN {
            return Err(anyhow!("sealed secret is too short"));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("a stored secret could not be decrypted: wrong server key?"))?;
        Ok(String::from_utf8(plain)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let b = SecretBox::new(&[1; 32]);
        let sealed = b.seal("s3cr3t", "ann/vol");
        assert!(!sealed.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(b.open(&sealed, "ann/vol").unwrap(), "s3cr3t");
        assert!(b.open(&sealed, "bob/vol").is_err(), "bound to its volume");
        assert!(
            SecretBox::new(&[2; 32]).open(&sealed, "ann/vol").is_err(),
            "needs the same server key"
        );
        assert_ne!(b.seal("s3cr3t", "ann/vol"), sealed, "fresh nonce each time");
    }
}
