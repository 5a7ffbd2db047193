//! Security tests: integrity.
