//! The core of Egress: SBG error codes, job states and access modes, name rules, limits and
//! volume rules. No I/O and no HTTP: every other crate builds on this one.

pub mod error;
pub mod limits;
pub mod model;
pub mod names;
pub mod secret_box;
pub mod util;
pub mod volume;
