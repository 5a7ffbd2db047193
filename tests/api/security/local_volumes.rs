//! Security tests: local_volumes.
