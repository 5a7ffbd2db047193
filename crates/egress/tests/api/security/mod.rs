//! The permanent security suite: every attack found against Egress, kept as a test
//! (see SECURITY.md for the threat model and the limits these tests pin).

mod edge;
mod integrity;
mod local_volumes;
mod matrix;
mod names;
mod revocation;
