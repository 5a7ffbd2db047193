//! Egress: a Seven Bridges / CAVATICA v2 storage API server.

pub mod api;
pub mod background;
pub mod blob;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod http_server;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod names;
pub mod secret_box;
pub mod secret_key;
pub mod server;
pub mod services;
pub mod signing;
pub mod store;
mod store_errors;
pub mod sweeper;
pub mod util;
pub mod volume;
