//! Security tests: names.
