//! Security tests: matrix.
