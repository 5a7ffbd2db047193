//! Egress: a Seven Bridges / CAVATICA v2 storage API server. This crate is the binary's wiring:
//! the command line and its settings, the key file, the demo set-up and the server's start-up.

pub mod config;
pub mod demo;
pub mod secret_key;
pub mod server;
