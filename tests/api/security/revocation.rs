//! Security tests: revocation.
