//! End-to-end tests: the real server on a loopback port, a fresh SQLite store and data dir per
//! test, driven over HTTP.

mod cluster;
mod common;
mod emulators;
mod exports;
mod files;
mod filters;
mod imports;
mod openapi;
mod projects;
mod security;
mod uploads;
mod volumes;
mod volumes_azure;
mod volumes_gcs;
mod wire;
