//! Small shared helpers: clocks, date format, random ids and hashing.

use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};

/// Milliseconds since the Unix epoch; the store keeps every instant in this unit.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The wire date format: `2024-01-01T00:00:00Z`. The client cannot parse `+00:00`.
pub fn format_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Milliseconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05.678Z`).
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill(&mut bytes[..]);
    hex::encode(bytes)
}

/// A unique id that sorts by creation time: the millisecond clock in 12 hex digits, then
/// `random` random bytes in hex. Rows made together then sit side by side in every index on
/// their id, so a batch of them touches a few index pages, not a page per row. (SBG's file
/// ids are MongoDB ObjectIds, which lead with their creation time too.)
pub fn ordered_id(random: usize) -> String {
    format!("{:012x}{}", now_ms() & 0xffff_ffff_ffff, random_hex(random))
}

/// A file id in SBG's shape: 24 hex characters.
pub fn new_file_id() -> String {
    ordered_id(6)
}

/// An id of a job, upload or blob: 32 hex characters.
pub fn new_long_id() -> String {
    ordered_id(10)
}

/// An API token: 128 random bits, shown once and stored only as a hash.
pub fn new_token() -> String {
    random_hex(16)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_use_z_suffix() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(1_704_067_205_123), "2024-01-01T00:00:05Z");
    }

    #[test]
    fn ids_have_sbg_shapes() {
        let id = new_file_id();
        assert_eq!(id.len(), 24);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_token(), new_token());
        assert_eq!(new_token().len(), 32);
        let long = new_long_id();
        assert_eq!(long.len(), 32);
        assert!(long.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let first = new_long_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (second, file) = (new_long_id(), new_file_id());
        assert!(first < second, "{first} then {second}");
        assert!(first[..12] < file[..12], "{first} then {file}");
        assert_ne!(new_long_id(), new_long_id());
    }
}
