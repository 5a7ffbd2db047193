//! Security tests: edge.
